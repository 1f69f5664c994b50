"""In-memory state of the emulated Stytch project.

One ``Store`` per emulator. Every method that reads or writes takes the
re-entrant lock, and the API handlers hold it across a whole call, so a
request sees and leaves a consistent state even with a threaded server.
"""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from typing import Callable

from . import errors
from .records import (IST_TTL, OAUTH_TOKEN_TTL, SEED_NAMESPACE, IntermediateSession, MagicLink, Member,
                      OAuthToken, Organization, Passcode, Session, email_domain, new_id, new_token,
                      well_formed)


class Store:
    def __init__(self, clock: Callable[[], float] | None = None, seed: bool = True):
        # Look time.time up on every call, so time_machine's patching applies.
        self._clock = clock or (lambda: time.time())
        self.lock = threading.RLock()
        self._seed = seed
        self.reset()

    def now(self) -> float:
        return float(self._clock())

    # ---------------------------------------------------------------- lifecycle
    def reset(self) -> None:
        with self.lock:
            self.organizations: dict[str, Organization] = {}
            self.members: dict[str, Member] = {}
            self.sessions: dict[str, Session] = {}
            self.oauth_tokens: dict[str, OAuthToken] = {}
            self.intermediate_sessions: dict[str, IntermediateSession] = {}
            self.passcodes: dict[tuple[str, str], Passcode] = {}
            self.magic_links: dict[str, MagicLink] = {}
            self.outbox: dict[str, list[dict]] = {}
            self.step_up_domains: set[str] = set()
            if self._seed:
                self._seed_data()

    def _seed_data(self) -> None:
        def sid(kind: str, name: str) -> str:
            return f"{kind}-test-{uuid.uuid5(SEED_NAMESPACE, f'{kind}:{name}')}"

        acme = self.add_organization(
            "Acme", "acme", organization_id=sid("organization", "acme"),
            email_allowed_domains=["acme.test"], email_jit_provisioning="RESTRICTED",
        )
        self.add_member(acme, "alice@acme.test", "Alice Admin", admin=True,
                        member_id=sid("member", "alice@acme.test"))
        self.add_member(acme, "bob@acme.test", "Bob Builder", member_id=sid("member", "bob@acme.test"))
        self.add_organization(
            "Globex", "globex", organization_id=sid("organization", "globex"),
            email_allowed_domains=["globex.test"], email_jit_provisioning="RESTRICTED",
        )

    # ------------------------------------------------------------ organizations
    def add_organization(self, name: str, slug: str, *, organization_id: str | None = None,
                         logo_url: str = "", external_id: str | None = None,
                         trusted_metadata: dict | None = None, **settings) -> Organization:
        with self.lock:
            now = self.now()
            org = Organization(organization_id or new_id("organization"), name, slug, now, now,
                               logo_url=logo_url, external_id=external_id,
                               trusted_metadata=dict(trusted_metadata or {}))
            org.settings.update(settings)
            self.organizations[org.organization_id] = org
            return org

    def find_organization(self, ref: str | None) -> Organization | None:
        """By id, slug or external id, as Stytch accepts all three."""
        if not ref:
            return None
        with self.lock:
            if ref in self.organizations:
                return self.organizations[ref]
            for org in self.organizations.values():
                if ref in (org.slug, org.external_id):
                    return org
            return None

    def organization(self, ref: str | None) -> Organization:
        org = self.find_organization(ref)
        if org is None:
            raise errors.organization_not_found()
        return org

    def slug_taken(self, slug: str) -> bool:
        with self.lock:
            return any(o.slug == slug for o in self.organizations.values())

    # ------------------------------------------------------------------ members
    def add_member(self, org: Organization, email: str, name: str, *, admin: bool = False,
                   status: str = "active", member_id: str | None = None) -> Member:
        with self.lock:
            now = self.now()
            roles = ["stytch_member", "stytch_admin"] if admin else ["stytch_member"]
            member = Member(member_id or new_id("member"), org.organization_id, email.lower(),
                            name, status, now, now, roles=roles)
            self.members[member.member_id] = member
            return member

    def find_member(self, org: Organization, *, email: str | None = None,
                    member_id: str | None = None) -> Member | None:
        """A live (not deleted) member of ``org``: deleted members are invisible,
        as Stytch's get excludes them unless asked (dangerously_get include_deleted)."""
        with self.lock:
            for m in self.members.values():
                if m.organization_id != org.organization_id or m.status == "deleted":
                    continue
                if member_id is not None and m.member_id == member_id:
                    return m
                if email is not None and m.email == email.lower():
                    return m
            return None

    def members_by_email(self, email: str) -> list[Member]:
        with self.lock:
            return [m for m in self.members.values() if m.email == email.lower() and m.status != "deleted"]

    def delete_member(self, member: Member) -> None:
        with self.lock:
            member.status = "deleted"
            member.updated_at = self.now()
            self.revoke_sessions(member_id=member.member_id)

    # ----------------------------------------------------------------- sessions
    def add_session(self, member: Member, factors: list[dict], minutes: int,
                    custom_claims: dict | None) -> Session:
        with self.lock:
            now = self.now()
            session = Session(new_id("member-session"), new_token(), member.member_id,
                              member.organization_id, now, now, now + minutes * 60,
                              [dict(f) for f in factors], dict(custom_claims or {}))
            self.sessions[session.member_session_id] = session
            return session

    def live_session(self, *, token: str | None = None, session_id: str | None = None) -> Session:
        with self.lock:
            if token is not None:
                if not well_formed(token):
                    raise errors.invalid_session_token()
                found = next((s for s in self.sessions.values() if secrets.compare_digest(s.token, token)), None)
            else:
                found = self.sessions.get(session_id or "")
            if found is None or found.expires_at <= self.now():
                raise errors.session_not_found()
            return found

    def revoke_sessions(self, *, member_id: str | None = None, session_id: str | None = None) -> int:
        with self.lock:
            doomed = [s.member_session_id for s in self.sessions.values()
                      if s.member_id == member_id or s.member_session_id == session_id]
            for key in doomed:
                del self.sessions[key]
            return len(doomed)

    # -------------------------------------------------------------- OAuth tokens
    def add_oauth_token(self, **fields) -> OAuthToken:
        with self.lock:
            token = OAuthToken(token=new_token(), expires_at=self.now() + OAUTH_TOKEN_TTL, **fields)
            self.oauth_tokens[token.token] = token
            return token

    def usable_oauth_token(self, token: str | None, *, discovery: bool) -> OAuthToken:
        with self.lock:
            found = self.oauth_tokens.get(token or "")
            if found is None or found.used or found.discovery != discovery or found.expires_at <= self.now():
                raise errors.oauth_token_not_found()
            return found

    # ----------------------------------------------------- intermediate sessions
    def add_intermediate_session(self, email: str, name: str, factors: list[dict],
                                 organization_id: str | None = None) -> IntermediateSession:
        with self.lock:
            ist = IntermediateSession(new_token(), email.lower(), name, [dict(f) for f in factors],
                                      self.now() + IST_TTL, organization_id)
            self.intermediate_sessions[ist.token] = ist
            return ist

    def live_intermediate_session(self, token: str | None) -> IntermediateSession:
        with self.lock:
            if not well_formed(token or ""):
                raise errors.invalid_session_token()
            ist = self.intermediate_sessions.get(token)
            if ist is None or ist.consumed or ist.expires_at <= self.now():
                raise errors.intermediate_session_not_found()
            return ist

    # ------------------------------------------------------- passcodes and links
    def issue_passcode(self, org: Organization, email: str, minutes: int) -> str:
        """A new 6-digit code; it replaces any earlier one (only the newest is valid)."""
        with self.lock:
            code = f"{secrets.randbelow(10**6):06d}"
            self.passcodes[(org.organization_id, email.lower())] = Passcode(code, self.now() + minutes * 60)
            self.deliver(email, {"type": "otp", "code": code, "organization_id": org.organization_id})
            return code

    def add_magic_link(self, member: Member, minutes: int, pkce_challenge: str | None) -> MagicLink:
        with self.lock:
            link = MagicLink(new_token(), member.organization_id, member.member_id,
                             self.now() + minutes * 60, pkce_challenge)
            self.magic_links[link.token] = link
            return link

    def deliver(self, email: str, message: dict) -> None:
        with self.lock:
            entry = {**message, "sent_at": self.now()}
            self.outbox.setdefault(email.lower(), []).append(entry)

    # -------------------------------------------------------------- step-up rule
    def set_step_up(self, domain: str, required: bool) -> None:
        with self.lock:
            (self.step_up_domains.add if required else self.step_up_domains.discard)(domain.lower())

    def needs_step_up(self, email: str) -> bool:
        with self.lock:
            return email_domain(email) in self.step_up_domains
