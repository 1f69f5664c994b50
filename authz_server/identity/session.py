"""The member session: who is signed in, in which organization, since when.

This is the narrow interface the authorization endpoint reads. The Stytch B2B
login fills it with ``sign_in``; it lives in the signed, HttpOnly Flask session
cookie together with the Stytch ``session_jwt`` and ``session_token``. Each
request checks the JWT locally against Stytch's JWKS and goes to Stytch
(``sessions.authenticate``) only when the JWT is stale (docs/architecture.md#login-through-stytch).

Each sign-in gets a random session id in the cookie; logout records it as ended
(``storage.member_sessions``), so a copy of the cookie taken before the logout
is refused for as long as the cookie itself could be accepted. The cookie also
carries a random browser binding, kept across sign-in, that server-side state
started in this browser (parked authorization requests) is bound to.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from flask import current_app, g, session

from ..security import new_secret
from ..storage import member_sessions

KEY = "member"
STYTCH_KEY = "stytch"
SESSION_ID_KEY = "sid"
BINDING_KEY = "binding"


@dataclass(frozen=True)
class Member:
    member_id: str
    organization_id: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    organization_slug: str | None = None
    organization_name: str | None = None
    roles: tuple = field(default_factory=tuple)
    auth_time: int = 0  # when the member really authenticated (epoch seconds)

    def claims(self) -> dict:
        """The member claims tokens may carry (filtered by scope later)."""
        out = {
            "email": self.email,
            "email_verified": bool(self.email_verified) if self.email else None,
            "name": self.name,
            "organization_id": self.organization_id,
            "organization_slug": self.organization_slug,
            "organization_name": self.organization_name,
            "roles": list(self.roles) or None,
        }
        return {k: v for k, v in out.items() if v is not None}


def _db():
    return current_app.extensions["authz"].db.session


def _forget_member() -> None:
    """Signed out, but still the same browser: only the binding stays."""
    keep = {k: session[k] for k in (BINDING_KEY,) if k in session}
    session.clear()
    session.update(keep)


def cookie_member() -> Member | None:
    """The member this browser's cookie names, unless that session was ended by a
    logout; Stytch is not asked (logout must work while Stytch is down). At most
    one indexed lookup per request."""
    if "cookie_member" in g:
        return g.cookie_member
    member = None
    data = session.get(KEY)
    if isinstance(data, dict):
        try:
            data = dict(data)
            data["roles"] = tuple(data.get("roles") or ())
            member = Member(**data)
        except TypeError:
            pass
        session_id = session.get(SESSION_ID_KEY)
        # A cookie without a session id predates them: it cannot be checked, so
        # it counts as signed out.
        if member is None or not isinstance(session_id, str) or not session_id \
                or member_sessions.is_ended(_db(), session_id):
            member = None
            _forget_member()
    g.cookie_member = member
    return member


def current_member() -> Member | None:
    """The signed-in member, with the Stytch session still alive, or None."""
    if "current_member" in g:
        return g.current_member
    member = cookie_member()
    if member is not None:
        member = _check_stytch(member)
    g.current_member = member
    return member


def _check_stytch(member: Member) -> Member | None:
    gateway = current_app.extensions.get("identity")
    tokens = session.get(STYTCH_KEY)
    if gateway is None:
        return member
    if not isinstance(tokens, dict) or not tokens.get("session_jwt"):
        _forget_member()
        return None
    if gateway.verify_session_jwt(tokens["session_jwt"]):
        return member
    # Stale JWT (they live 5 minutes): one network call renews it, or says the
    # session is gone (revoked in Stytch, expired, member removed).
    renewed = gateway.refresh_session(tokens.get("session_token", ""))
    if renewed is None:
        _forget_member()
        return None
    session[STYTCH_KEY] = {"session_token": renewed.session_token, "session_jwt": renewed.session_jwt}
    # Keep the original authentication time: a renewal is not a new login.
    return member


def sign_in(member: Member, session_token: str | None = None, session_jwt: str | None = None) -> None:
    if not member.auth_time:
        member = Member(**{**asdict(member), "auth_time": int(time.time())})
    # A new login gets a new session (no fixation): a new session id, and a new
    # CSRF token on the next form (RFC 6749 §10.12: a token seen before the login
    # must not stay valid after it). Only the browser binding stays, so the
    # authorization request parked before the login resumes after it.
    binding = browser_binding()
    session.clear()
    session[BINDING_KEY] = binding
    session[SESSION_ID_KEY] = new_secret(32)
    session[KEY] = {**asdict(member), "roles": list(member.roles)}
    if session_token or session_jwt:
        session[STYTCH_KEY] = {"session_token": session_token or "", "session_jwt": session_jwt or ""}
    session.permanent = True
    g.current_member = g.cookie_member = member


def stytch_session_token() -> str | None:
    tokens = session.get(STYTCH_KEY)
    return tokens.get("session_token") if isinstance(tokens, dict) else None


def sign_out() -> None:
    """Forget the member, and record the session id as ended until the cookie's
    own lifetime is over, so a copy of this cookie no longer signs anyone in.
    The caller commits."""
    session_id = session.get(SESSION_ID_KEY)
    if isinstance(session_id, str) and session_id:
        member_sessions.end(_db(), session_id, current_app.permanent_session_lifetime)
    session.clear()
    g.current_member = g.cookie_member = None


def browser_binding(create: bool = True) -> str | None:
    """This browser's random binding value (made on first use when ``create``)."""
    value = session.get(BINDING_KEY)
    if not isinstance(value, str) or not value:
        if not create:
            return None
        value = session[BINDING_KEY] = new_secret(24)
    return value
