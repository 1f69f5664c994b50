"""Client metadata for dynamic registration (RFC 7591 §2 and §3.2.1, RFC 7592 §2.2,
OIDC Registration §2), and the client information response (RFC 7591 §3.2.1,
RFC 7592 §3).

Hand-written, not Authlib's ``rfc7591.ClientRegistrationEndpoint``: that one
always issues a secret, refuses unknown scopes and grant types instead of
trimming them, drops ``application_type`` and can emit nulls (docs/requirements.md:
D-9), while RFC 7591 §3.2.1 lets the server replace values and MCP clients need
it to (C-2).

The policy, with its defaults (docs/requirements.md: A14-73 to A14-78, C-2, C-7, C-9,
C-10, C-13, C-19):

- The body is a JSON object. Unknown members are ignored (RFC 7591 §2); a member
  sent as ``null`` counts as absent. A member of the wrong JSON type, an over-long
  string or a control character is refused with ``invalid_client_metadata``.
- ``redirect_uris``: 1 to ``MAX_REDIRECT_URIS`` entries, each accepted by
  ``redirect_uris.validate_registration`` (https; http on loopback; private-use
  schemes for native apps, RFC 8252 §7.1; never ``javascript:``, ``data:``, a
  fragment, or http elsewhere). One bad entry refuses the whole registration
  with ``invalid_redirect_uri``: what is registered is exactly what /authorize
  matches, so a bad URI fails here and not at the last step (C-19). Required
  with the authorization_code grant.
- ``token_endpoint_auth_method``: ``none``, ``client_secret_basic`` or
  ``client_secret_post``. Omitted means ``client_secret_basic`` (RFC 7591 §2): a
  client that omits it (the MCP Python SDK) gets a secret, and the method is
  always echoed so it authenticates as registered (C-10). Any other method
  (``private_key_jwt`` …) is replaced by ``client_secret_basic``.
- ``grant_types``: trimmed to authorization_code, refresh_token, the device
  code grant (RFC 8628, for CLI agents) and, for confidential clients when the
  registration policy allows it (``AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES``
  not empty, see ``oauth.permissions``), client_credentials: anyone may register,
  and a client acting as itself is consented to by nobody. refresh_token only
  next to authorization_code or the device grant. Omitted means
  authorization_code + refresh_token (RFC 7591 says authorization_code alone,
  which would log MCP users out every hour, C-7a; the effective list is
  echoed). Nothing left: refused.
- ``response_types``: ``["code"]`` exactly when authorization_code is granted.
- ``scope``: trimmed to the scope catalog. For a dynamic client it is the scope
  of a request that names none, not a limit (B6: step-up asks for more later).
- ``application_type``: ``web`` or ``native``. Omitted or unknown: ``native`` when
  every redirect URI is loopback http or a private-use scheme (or there are none
  and the device grant is asked for), else ``web``. A
  ``web`` client with a private-use redirect URI is registered as ``native``
  (OIDC Registration §2: custom schemes are for native apps).
- ``client_name``: up to 200 characters; omitted means the host (or scheme) of the
  first redirect URI. ``logo_uri`` and ``client_uri``: https only, else dropped
  (RFC 7591 §5: self-asserted, shown on the consent page).
- ``post_logout_redirect_uris`` (RP-Initiated Logout §3.1): checked like redirect
  URIs, a bad one is ``invalid_client_metadata``. ``id_token_signed_response_alg``:
  RS256 or ES256, else dropped.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from ...errors import RegistrationError
from ...rules import redirect_uris as redirect_rules
from .. import scopes as scope_rules

MAX_REDIRECT_URIS = 20
MAX_NAME = 200
MAX_STRING = 2000
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
DEFAULT_AUTH_METHOD = "client_secret_basic"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE)
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
APPLICATION_TYPES = ("web", "native")
ID_TOKEN_ALGS = ("RS256", "ES256")
# RFC 7592 §2.2: values only the server sets; an update must not carry them.
SERVER_MEMBERS = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
                  "client_id_issued_at")


def _bad(description: str) -> RegistrationError:
    return RegistrationError("invalid_client_metadata", description)


def parse_body(raw: bytes) -> dict:
    """The request body as a JSON object (RFC 7591 §3.1), or RegistrationError."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("The body must be a JSON object (RFC 7591 section 3.1)") from None
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object (RFC 7591 section 3.1)")
    return body


def _clean(value: str) -> bool:
    """No control characters, no lone surrogates (Postgres and browsers refuse them),
    no bidirectional overrides (they disguise a name on the consent page)."""
    for ch in value:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            return False
    return True


def _text(body: dict, name: str, max_len: int = MAX_STRING, error: str = "invalid_client_metadata") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RegistrationError(error, f"'{name}' must be a string")
    if len(value) > max_len:
        raise RegistrationError(error, f"'{name}' is longer than {max_len} characters")
    if not _clean(value):
        raise RegistrationError(error, f"'{name}' contains a control character")
    return value


def _text_list(body: dict, name: str, max_items: int = 50, error: str = "invalid_client_metadata") -> list | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RegistrationError(error, f"'{name}' must be an array of strings")
    if len(value) > max_items:
        raise RegistrationError(error, f"'{name}' has more than {max_items} entries")
    for item in value:
        if not isinstance(item, str):
            raise RegistrationError(error, f"'{name}' must be an array of strings")
        if len(item) > MAX_STRING or not _clean(item):
            raise RegistrationError(error, f"'{name}' holds an over-long value or a control character")
    return list(dict.fromkeys(value))


def _uri_list(body: dict, name: str, label: str, error: str) -> list:
    uris = _text_list(body, name, MAX_REDIRECT_URIS, error) or []
    for uri in uris:
        why = redirect_rules.validate_registration(uri)
        if why:
            raise RegistrationError(error, f"The {label} {_shown(uri)} {why}")
    return uris


def _shown(uri: str) -> str:
    # error_description is limited to printable ASCII without '"' and '\' (RFC 6749 §5.2).
    text = uri if len(uri) <= 80 else uri[:77] + "..."
    return "'" + "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in text) + "'"


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.lower()


def _is_private_use(uri: str) -> bool:
    return _scheme(uri) not in ("http", "https")


def _is_native(uri: str) -> bool:
    return _is_private_use(uri) or redirect_rules.all_loopback([uri])


def _https(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname or any(c.isspace() for c in value):
        return None
    return value


def _default_name(redirects: list) -> str:
    if redirects:
        parts = urlsplit(redirects[0])
        return (parts.hostname or parts.scheme or "Unnamed client")[:MAX_NAME]
    return "Unnamed client"


@dataclass
class Metadata:
    """The effective metadata: what is registered and echoed back."""

    client_name: str
    redirect_uris: list
    grant_types: list
    token_endpoint_auth_method: str
    application_type: str
    scopes: list
    post_logout_redirect_uris: list = field(default_factory=list)
    logo_uri: str | None = None
    client_uri: str | None = None
    id_token_signed_response_alg: str | None = None

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def fingerprint(self) -> str:
        """Digest of the effective metadata: equal for identical registrations."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read(body: dict, catalog, *, current_auth_method: str | None = None,
         client_credentials: bool = False) -> Metadata:
    """The effective metadata of a registration (or, with ``current_auth_method``,
    of an RFC 7592 update, which keeps the client's method when the body omits
    it and may switch only between the two secret-based ones).
    ``client_credentials``: whether the registration policy offers that grant."""
    redirects = _uri_list(body, "redirect_uris", "redirect URI", "invalid_redirect_uri")
    post_logout = _uri_list(body, "post_logout_redirect_uris", "post-logout redirect URI", "invalid_client_metadata")

    method = _text(body, "token_endpoint_auth_method", 64)
    if method not in AUTH_METHODS:
        method = current_auth_method or DEFAULT_AUTH_METHOD
    if current_auth_method and (method == "none") != (current_auth_method == "none"):
        raise _bad("token_endpoint_auth_method cannot change between 'none' and a secret; register a new client")

    requested = _text_list(body, "grant_types")
    grants = [g for g in (DEFAULT_GRANT_TYPES if requested is None else requested) if g in GRANT_TYPES]
    if method == "none" or not client_credentials:
        # RFC 7591 §3.2.1: an unsupported value is replaced, and the answer says so.
        grants = [g for g in grants if g != "client_credentials"]
    if "authorization_code" not in grants and DEVICE_CODE not in grants:
        grants = [g for g in grants if g != "refresh_token"]
    if not grants:
        also = ", or client_credentials for a confidential client" if client_credentials else \
            " (client_credentials is not offered to registered clients here)"
        raise _bad(f"None of the requested grant_types is supported: use authorization_code (and refresh_token) "
                   f"or {DEVICE_CODE}{also}")
    if "authorization_code" in grants and not redirects:
        raise RegistrationError("invalid_redirect_uri", "redirect_uris is required for the authorization_code grant")
    _text_list(body, "response_types")  # checked for shape only; derived from grant_types

    known = set(catalog)
    scopes = [s for s in scope_rules.split(_text(body, "scope")) if s in known]

    app_type = _text(body, "application_type", 32)
    if app_type not in APPLICATION_TYPES:
        # A client with only the device grant runs on a device: native too.
        app_type = "native" if (all(_is_native(u) for u in redirects) if redirects else DEVICE_CODE in grants) \
            else "web"
    if app_type == "web" and any(_is_private_use(u) for u in redirects):
        app_type = "native"

    name = (_text(body, "client_name", MAX_NAME) or "").strip() or _default_name(redirects)
    alg = _text(body, "id_token_signed_response_alg", 16)
    return Metadata(
        client_name=name,
        redirect_uris=redirects,
        grant_types=grants,
        token_endpoint_auth_method=method,
        application_type=app_type,
        scopes=scopes,
        post_logout_redirect_uris=post_logout,
        logo_uri=_https(_text(body, "logo_uri")),
        client_uri=_https(_text(body, "client_uri")),
        id_token_signed_response_alg=alg if alg in ID_TOKEN_ALGS else None,
    )


def registration_client_uri(issuer: str, client_id: str) -> str:
    return f"{issuer}/oauth/register/{client_id}"


def client_information(client, issuer: str, *, client_secret: str | None = None,
                       registration_access_token: str | None = None) -> dict:
    """RFC 7591 §3.2.1 / RFC 7592 §3: ``client_id`` and every registered member,
    with the effective ``token_endpoint_auth_method`` always present, and never a
    ``null`` or empty value (docs/requirements.md: A1-6, C-9). ``redirect_uris`` is
    always there (the TS SDK's schema requires it)."""
    grants = list(client.grant_types or [])
    body = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
    }
    if client_secret:
        body["client_secret"] = client_secret
        body["client_secret_expires_at"] = 0  # never (RFC 7591 §3.2.1)
    if registration_access_token:
        body["registration_access_token"] = registration_access_token
        body["registration_client_uri"] = registration_client_uri(issuer, client.client_id)
    body.update(
        client_name=client.name,
        redirect_uris=list(client.redirect_uris or []),
        grant_types=grants,
        response_types=["code"] if "authorization_code" in grants else None,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        application_type=client.application_type,
        scope=scope_rules.join(client.scopes or []),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris or []) or None,
        logo_uri=client.logo_uri,
        client_uri=client.client_uri,
        id_token_signed_response_alg=client.id_token_signed_response_alg,
    )
    return {k: v for k, v in body.items() if v is not None and v != "" and (v != [] or k == "redirect_uris")}
