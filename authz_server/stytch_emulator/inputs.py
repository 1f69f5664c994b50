"""Request parsing shared by the API routes: JSON bodies, required fields,
bounded integers, custom claims, and the session named by a token or JWT."""
from __future__ import annotations

import re

from flask import request

from . import errors, flows
from .context import current
from .records import SESSION_MINUTES

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RESERVED_CLAIMS = {"aud", "exp", "iat", "iss", "jti", "nbf", "sub"}


def body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data():
            raise errors.bad_request("The request body is not valid JSON.")
        return {}
    if not isinstance(data, dict):
        raise errors.bad_request("The request body must be a JSON object.")
    return data


def required(data: dict, name: str) -> str:
    value = data.get(name)
    if value in (None, ""):
        raise errors.bad_request(f"{name} is required.")
    if not isinstance(value, str):
        raise errors.bad_request(f"{name} must be a string.")
    return value


def email_address(data: dict) -> str:
    email = required(data, "email_address").strip().lower()
    if not _EMAIL_RE.match(email):
        raise errors.bad_request("email_address is not a valid email address.", "invalid_email")
    return email


def minutes(data: dict, name: str, default: int, low: int, high: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise errors.bad_request(f"{name} must be an integer from {low} to {high}.",
                                 "invalid_session_duration_minutes" if name.startswith("session") else "invalid_expiration")
    return value


def session_minutes(data: dict) -> int:
    """session_duration_minutes: Stytch allows 5 minutes to a year; 60 by default."""
    return minutes(data, "session_duration_minutes", SESSION_MINUTES, 5, 527040)


def custom_claims(data: dict) -> dict | None:
    claims = data.get("session_custom_claims")
    if claims is None:
        return None
    if not isinstance(claims, dict):
        raise errors.bad_request("session_custom_claims must be an object.")
    if set(claims) & _RESERVED_CLAIMS:
        raise errors.bad_request("session_custom_claims may not set registered JWT claims.",
                                 "reserved_claims_in_custom_claims")
    if any(k.startswith("https://stytch.com/") for k in claims):
        raise errors.bad_request("session_custom_claims may not set Stytch's own claims.",
                                 "stytch_claims_in_custom_claims")
    return claims


def session_from(data: dict):
    """The live session named by exactly one of session_token / session_jwt."""
    emu = current()
    token, jwt = data.get("session_token"), data.get("session_jwt")
    if token and jwt:
        raise errors.bad_request("Send session_token or session_jwt, not both.", "too_many_session_arguments")
    if token:
        return emu.store.live_session(token=token)
    if jwt:
        return emu.store.live_session(session_id=session_id_from_jwt(jwt))
    raise errors.bad_request("Send session_token or session_jwt.", "no_session_arguments")


def session_id_from_jwt(jwt: str) -> str:
    # The signature must be ours; time claims are not checked (expired JWTs of
    # live sessions are accepted and re-minted, as by Stytch's sessions.authenticate).
    emu = current()
    claims = emu.signer.verify(jwt)
    session_claim = (claims or {}).get("https://stytch.com/session")
    aud = (claims or {}).get("aud")
    if (not isinstance(session_claim, dict) or emu.project_id not in (aud if isinstance(aud, list) else [aud])
            or not isinstance(session_claim.get("id"), str)):
        raise errors.ApiError(400, "unable_to_parse_session_jwt", "The session JWT could not be parsed or verified.")
    return session_claim["id"]


def member_or_jit(org, email: str):
    """The live member with this email, or a new pending one; True when created."""
    store = current().store
    member = store.find_member(org, email=email)
    if member is not None:
        return member, False
    return flows.member_for_login(store, org, email, email.partition("@")[0].title()), True
