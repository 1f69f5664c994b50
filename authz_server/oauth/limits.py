"""Who is rate limited, by which key and how much (RFC 7591 §3.1;
docs/requirements.md: A14-77, C-14, C-15). The buckets themselves are in ``ratelimit``.

Policies (each a setting; N per minute, a burst of one minute's worth; 0 = off):

- token endpoint (``AUTHZ_TOKEN_RATE``, 1200): tokens *issued* per client and
  grant type. Separate buckets per grant type, and only successful answers
  spend, so a client looping on ``invalid_grant`` keeps getting that terminal
  answer and its code exchange still works (docs/requirements.md C-15: never turn
  ``invalid_grant`` into 429). A public client's id is no secret, so anyone could drain its
  bucket: public clients are counted per client, grant type and source.
- failed client authentication (``AUTHZ_CLIENT_AUTH_FAILURE_RATE``, 60) at the
  token, introspection and revocation endpoints, per source and claimed
  client_id: slows secret guessing. The claimed client_id is part of the key so
  that one client with a stale secret (or a garbage-collected DCR client) does
  not lock every other client out of a shared egress address (docs/requirements.md: C-15).
- introspection (``AUTHZ_INTROSPECTION_RATE``, 6000) per authenticated caller.
- login pages (``AUTHZ_LOGIN_RATE``, 300) per source, in ``web.login``.
- registration (``AUTHZ_REGISTRATION_RATE``, 20) per source, in ``web.registration``.
- first fetches of client ID metadata documents (``AUTHZ_CIMD_FETCH_RATE``, 30)
  per source, in ``registration.cimd``: a document not cached in this process
  costs a connection to a host the caller chose (and one that fails is never
  cached), wherever a client is looked up (authorize, token, login pages).
- wrong user codes on the device verification page and its decision form, one
  bucket for both (``AUTHZ_DEVICE_CODE_ATTEMPTS``, 10) per member, in
  ``web.device`` (RFC 8628 §5.1). Per member, not per source:
  members behind one NAT must not lock each other out, and the page is only
  reachable signed in.

Excess gets 429 with ``Retry-After`` (RFC 6585 §4). The JSON error code is
``temporarily_unavailable`` (RFC 6749 §4.1.2.1), as for registration and the
503s: RFC 6749 §5.2 defines no code for it, ``slow_down`` is the device flow's
polling answer (RFC 8628 §3.5, a 400) and an unregistered code would be worse.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from authlib.oauth2.rfc6749 import OAuth2Error

from ..ratelimit import RedisStore, limiter


class RateLimited(OAuth2Error):
    """429 from an Authlib endpoint (token, introspection, revocation)."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: int, description: str):
        super().__init__(description=description)
        self.retry_after = retry_after

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.retry_after))]


@dataclass
class Limits:
    registration: object
    token: object
    client_auth_failure: object
    introspection: object
    login: object
    device_code: object
    cimd_fetch: object
    # The RedisStore when REDIS_URL is set (also the jti replay memory's), else None.
    store: object = None

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        store = RedisStore(settings.redis_url, settings.rate_limit_prefix) if settings.redis_url else None
        return cls(
            registration=limiter("registration", settings.registration_rate, store),
            token=limiter("token", settings.token_rate, store),
            client_auth_failure=limiter("client-auth-failure", settings.client_auth_failure_rate, store),
            introspection=limiter("introspection", settings.introspection_rate, store),
            login=limiter("login", settings.login_rate, store),
            device_code=limiter("device-code", settings.device_code_attempts, store),
            cimd_fetch=limiter("cimd-fetch", settings.cimd_fetch_rate, store),
            store=store,
        )


def _digest(*parts: str) -> str:
    # Bounded keys whatever the client sends (a client_id may be a long URL).
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()[:40]


def token_key(client, grant_type: str | None, source: str) -> str:
    parts = [client.client_id, grant_type or ""]
    if client.is_public:
        parts.append(source)
    return _digest(*parts)


def auth_failure_key(source: str, claimed_client_id: str) -> str:
    return _digest(source, claimed_client_id)


def introspection_key(client) -> str:
    return _digest(client.client_id)


def login_key(source: str) -> str:
    return source


def cimd_fetch_key(source: str) -> str:
    return source


def device_code_key(member) -> str:
    return _digest(member.organization_id or "", member.member_id)


def claimed_client_id(request) -> str:
    """The client_id a request claims (Basic credentials, else the body), before
    anything is verified; "" when there is none or it cannot be read."""
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            return unquote(user)  # RFC 6749 §2.3.1: form-encoded before Basic
        except (binascii.Error, ValueError):
            return ""
    return str(request.form.get("client_id") or "")
