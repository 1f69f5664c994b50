"""The per-app emulator object: credentials, state, key, and response helpers."""
from __future__ import annotations

import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit
from dataclasses import dataclass, field

from flask import current_app, jsonify

from . import shapes
from .flows import Outcome
from .signing import Signer
from .records import Session
from .store import Store

EXTENSION = "stytch_emulator"


def request_id() -> str:
    return f"request-id-test-{uuid.uuid4()}"


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to whatever query it already has."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def ok(body: dict, status: int = 200):
    """A success body: the SDK reads status_code and request_id from the JSON (§1.3)."""
    response = jsonify({**body, "status_code": status, "request_id": request_id()})
    response.status_code = status
    return response


@dataclass
class Emulator:
    project_id: str
    secret: str
    public_token: str
    store: Store
    signer: Signer = field(default_factory=Signer)
    # Where the browser goes when a start URL names no redirect URL (Stytch
    # would use the dashboard default); None means such a request is refused.
    default_redirect_url: str | None = None

    # ------------------------------------------------------------- sessions
    def session_jwt(self, session: Session) -> str:
        store = self.store
        member = store.members[session.member_id]
        org = store.organizations[session.organization_id]
        return self.signer.sign(shapes.session_claims(self.project_id, session, member, org, store.now()))

    def session_fields(self, session: Session) -> dict:
        store = self.store
        member = store.members[session.member_id]
        org = store.organizations[session.organization_id]
        return {
            "member_session": shapes.member_session(session, member, org),
            "session_token": session.token,
            "session_jwt": self.session_jwt(session),
            "member": shapes.member(member),
            "organization": shapes.organization(org),
        }

    def login_fields(self, outcome: Outcome) -> dict:
        """The fields every login-style response shares (oauth, exchange, create, otp, magic link).

        On a step-up the token strings are ``""``, never null: the SDK's models
        type them as plain ``str``.
        """
        ist = outcome.intermediate_session
        body = {
            "member_id": outcome.member.member_id,
            "member": shapes.member(outcome.member),
            "organization_id": outcome.organization.organization_id,
            "organization": shapes.organization(outcome.organization),
            "member_authenticated": outcome.session is not None,
            "session_token": "",
            "session_jwt": "",
            "member_session": None,
            "intermediate_session_token": ist.token if ist else "",
            "intermediate_session_token_expires_at": shapes.iso(ist.expires_at) if ist else None,
            "primary_required": {"allowed_auth_methods": outcome.required} if outcome.required else None,
            "mfa_required": None,
            "member_device": None,
        }
        if outcome.session is not None:
            body.update(self.session_fields(outcome.session))
        return body


def current() -> Emulator:
    return current_app.extensions[EXTENSION]
