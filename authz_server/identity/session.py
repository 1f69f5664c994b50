"""The member session: who is signed in, in which organization, since when.

This is the narrow interface the authorization endpoint reads. The Stytch B2B
login (identity gateway) fills it with ``sign_in``; it lives in the signed,
HttpOnly Flask session cookie.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from flask import session

KEY = "member"


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


def current_member() -> Member | None:
    data = session.get(KEY)
    if not isinstance(data, dict):
        return None
    try:
        data = dict(data)
        data["roles"] = tuple(data.get("roles") or ())
        return Member(**data)
    except TypeError:
        session.pop(KEY, None)
        return None


def sign_in(member: Member) -> None:
    if not member.auth_time:
        member = Member(**{**asdict(member), "auth_time": int(time.time())})
    session.clear()  # a new login gets a new session (no fixation)
    session[KEY] = {**asdict(member), "roles": list(member.roles)}
    session.permanent = True


def sign_out() -> None:
    session.clear()
