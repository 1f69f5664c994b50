"""Client ID metadata documents (CIMD; spec-checklist B.4, MCP 2026-07-28
"Client ID Metadata Documents", draft-ietf-oauth-client-id-metadata-document).

A ``client_id`` that is an https URL with a path names a JSON document the
client publishes about itself. We fetch it (no redirects, SSRF-guarded, capped,
short timeout), validate it, cache it as its HTTP cache headers allow (clamped;
errors never cached) and keep a row keyed by the URL in ``clients`` so codes,
grants and refresh tokens can point at it (foreign keys).
"""
from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import g, has_app_context
from joserfc.jwk import KeySet
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...db import utcnow
from ...models import Client, ClientType
from .. import redirect_uris

# The CIMD draft recommends a cap of about 5 KB; a few seconds of timeout (B.4 item 3).
MAX_BODY = 5 * 1024
TIMEOUT = 3.0
# Cache lifetime bounds for a valid document (B.4 item 5).
MIN_CACHE = 60
MAX_CACHE = 24 * 3600
DEFAULT_CACHE = 300
MAX_ID_LENGTH = 255  # clients.client_id is String(255)
SECRET_METHODS = {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
SUPPORTED_GRANTS = {"authorization_code", "refresh_token"}
# RFC 6598 shared address space: not covered by ipaddress.is_private on every Python.
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class CimdError(ValueError):
    """Why a metadata document was refused (logged, never cached)."""


def looks_like_cimd(client_id) -> bool:
    """A client_id this module owns: it starts like an http(s) URL. The AS's own
    ids never do (``dcr-`` / generated ids), B.4 item 1."""
    return isinstance(client_id, str) and client_id[:8].lower().startswith(("https://", "http://"))


def check_url(url: str, *, allow_loopback: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable CIMD URL, checked on the raw string
    (B.4 item 1: normalization must not hide a dot segment or userinfo)."""
    if len(url) > MAX_ID_LENGTH or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise CimdError("client_id URL is too long or has forbidden characters")
    m = re.match(r"^(https|http)://([^/?#]*)(/[^?#]*)?(\?[^#]*)?(#.*)?$", url)
    if not m:
        raise CimdError("client_id URL is not an absolute http(s) URL")
    scheme, authority, path, query, fragment = m.groups()
    if fragment is not None:
        raise CimdError("client_id URL must not have a fragment")
    if query is not None:
        raise CimdError("client_id URL should not have a query")
    if "@" in authority:
        raise CimdError("client_id URL must not have userinfo")
    if not path or path == "/":
        raise CimdError("client_id URL must have a path")
    if any(seg in (".", "..") for seg in path.split("/")) or "%2e" in path.lower():
        raise CimdError("client_id URL must not have dot segments")
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise CimdError("client_id URL has an invalid port") from None
    if not host:
        raise CimdError("client_id URL has no host")
    if scheme == "http" and not (allow_loopback and redirect_uris.is_loopback_host(host)):
        raise CimdError("client_id URL must use https")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _refused(ip, allow_loopback: bool) -> bool:
    # RFC 6890 special-use ranges and RFC 1918 private ones (SSRF guard, B.4 item 3).
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return not allow_loopback
    return (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or (ip.version == 4 and ip in CGNAT) or not ip.is_global)


def resolve(host: str, port: int, *, allow_loopback: bool) -> str:
    """The address to connect to; every address the name resolves to must be
    public (an attacker's DNS could mix a private one in)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        raise CimdError("client_id host does not resolve") from None
    addrs = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _refused(ip, allow_loopback):
            raise CimdError(f"client_id host resolves to a refused address ({ip})")
        addrs.append(str(ip))
    if not addrs:
        raise CimdError("client_id host does not resolve")
    return addrs[0]


def fetch(url: str, *, allow_loopback: bool, timeout: float = TIMEOUT) -> tuple[bytes, int]:
    """GET the document: (body, cache seconds). No redirects, the checked
    address pinned for the connection (no DNS rebinding), at most MAX_BODY bytes."""
    scheme, host, port = check_url(url, allow_loopback=allow_loopback)
    ip = resolve(host, port, allow_loopback=allow_loopback)
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    # Connect to the address we checked, not to a second resolution (TLS still
    # verifies the certificate against ``host``).
    conn._create_connection = lambda addr, *a, **k: socket.create_connection((ip, addr[1]), *a, **k)
    deadline = time.monotonic() + timeout
    try:
        path = url.split("://", 1)[1]
        path = path[path.index("/"):]
        conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "authz-server-cimd"})
        resp = conn.getresponse()
        # B.4 item 3: only 200 counts; a redirect is an error, never followed.
        if resp.status != 200:
            raise CimdError(f"client_id URL answered {resp.status}")
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            raise CimdError("client metadata document is too large")
        body = b""
        while len(body) <= MAX_BODY:
            if time.monotonic() > deadline:
                raise CimdError("client metadata document took too long")
            # read1: at most one receive per call, so a server dripping bytes
            # cannot hold the request past the deadline (read() waits for n bytes).
            chunk = resp.read1(min(1024, MAX_BODY + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        if len(body) > MAX_BODY:
            raise CimdError("client metadata document is too large")
        return body, cache_seconds(resp.getheader("Cache-Control"))
    except (OSError, http.client.HTTPException) as e:
        raise CimdError(f"client_id URL could not be fetched ({type(e).__name__})") from None
    finally:
        conn.close()


def cache_seconds(header: str | None) -> int:
    """Cache-Control max-age clamped to [MIN_CACHE, MAX_CACHE] (B.4 item 5)."""
    directives = [d.strip().lower() for d in (header or "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return MIN_CACHE
    for d in directives:
        if d.startswith("max-age="):
            try:
                return max(MIN_CACHE, min(MAX_CACHE, int(d[8:].strip('"'))))
            except ValueError:
                break
    return DEFAULT_CACHE


@dataclass(frozen=True)
class Document:
    client_id: str
    client_name: str
    redirect_uris: tuple
    grant_types: tuple
    token_endpoint_auth_method: str
    logo_uri: str | None
    client_uri: str | None
    post_logout_redirect_uris: tuple
    jwks: dict | None = None


def _optional_uri(data, name):
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2000 or not value.startswith("https://"):
        raise CimdError(f"{name} must be an https URL")
    return value


def validate(url: str, body: bytes) -> Document:
    """B.4 item 4."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CimdError("client metadata document is not JSON") from None
    if not isinstance(data, dict):
        raise CimdError("client metadata document is not a JSON object")
    # String-identical, not "equivalent after normalization".
    if data.get("client_id") != url:
        raise CimdError("client_id in the document differs from its URL")
    if "client_secret" in data or "client_secret_expires_at" in data:
        raise CimdError("a client metadata document must not carry a client secret")
    method = data.get("token_endpoint_auth_method", "none")
    if method in SECRET_METHODS:
        raise CimdError(f"token_endpoint_auth_method {method} needs a shared secret, which CIMD forbids")
    jwks = None
    if method == "private_key_jwt":
        # RFC 7523 §2.2 / A.2 item 11: the document's public keys verify the
        # client's assertions. Only inline jwks for now (a jwks_uri would be a
        # second SSRF-guarded fetch).
        jwks = data.get("jwks")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not 0 < len(jwks["keys"]) <= 10:
            raise CimdError("private_key_jwt needs an inline jwks with 1 to 10 keys (jwks_uri is not supported)")
        if any(not isinstance(k, dict) or "d" in k or k.get("kty") == "oct" for k in jwks["keys"]):
            raise CimdError("jwks must hold public keys only")
        try:
            KeySet.import_key_set(jwks)
        except Exception:
            raise CimdError("jwks is not a valid JWK set") from None
    elif method != "none":
        raise CimdError(f"unsupported token_endpoint_auth_method {method!r}")
    name = data.get("client_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise CimdError("client_name is required (1 to 200 characters)")
    uris = data.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > 20:
        raise CimdError("redirect_uris must be a non-empty array (at most 20)")
    for uri in uris:
        why = redirect_uris.validate_registration(uri)
        if why:
            raise CimdError(f"redirect URI {uri!r} {why}"[:300])
    grants = data.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not grants or not set(grants) <= SUPPORTED_GRANTS \
            or "authorization_code" not in grants:
        raise CimdError("grant_types must be a subset of authorization_code, refresh_token")
    responses = data.get("response_types", ["code"])
    if responses != ["code"]:
        raise CimdError("response_types must be [\"code\"]")
    logout = data.get("post_logout_redirect_uris", [])
    if not isinstance(logout, list) or len(logout) > 20 or any(redirect_uris.validate_registration(u) for u in logout):
        raise CimdError("post_logout_redirect_uris is invalid")
    # Refresh tokens are on by default for a public client here, as for DCR ones.
    if "refresh_token" not in grants:
        grants = list(grants) + ["refresh_token"]
    return Document(
        client_id=url, client_name=name.strip(), redirect_uris=tuple(uris), grant_types=tuple(grants),
        token_endpoint_auth_method=method, logo_uri=_optional_uri(data, "logo_uri"),
        client_uri=_optional_uri(data, "client_uri"), post_logout_redirect_uris=tuple(logout), jwks=jwks,
    )


class CimdResolver:
    """Fetches, validates, caches and persists CIMD clients (``query_client``, B.4)."""

    def __init__(self, db, *, allow_loopback: bool = False, timeout: float = TIMEOUT):
        self.db = db
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self._items: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, url: str):
        from ..clients import OAuthClient

        now = time.monotonic()
        hit = self._items.get(url)
        if hit and now < hit[0]:
            return hit[1]
        # One request may look the client up several times (Authlib, then our
        # error handling): a refused document is fetched once per request, not
        # once per lookup, so /authorize is no fetch amplifier.
        failed = g.setdefault("cimd_failed", set()) if has_app_context() else set()
        if url in failed:
            return None
        try:
            body, seconds = fetch(url, allow_loopback=self.allow_loopback, timeout=self.timeout)
            doc = validate(url, body)
        except CimdError:
            # Never cache errors or invalid documents (B.4 item 5): a fixed
            # document works on the next request.
            with self._lock:
                self._items.pop(url, None)
            failed.add(url)
            return None
        model = self._store(doc)
        if model is None or not model.is_active:
            return None
        # The keys live only in the cached client, refreshed with the document.
        value = dataclasses.replace(OAuthClient.from_model(model), jwks=doc.jwks)
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[url] = (now + seconds, value)
        return value

    def _store(self, doc: Document) -> Client | None:
        """Upsert the row keyed by the URL, in a session of its own so the
        request's unit of work is not committed with it."""
        for _ in range(2):
            with Session(self.db.engine, expire_on_commit=False) as s:
                row = s.get(Client, doc.client_id)
                if row is not None and row.registered_via != "cimd":
                    return None  # an admin row with a URL id is not ours to rewrite
                if row is None:
                    row = Client(client_id=doc.client_id, registered_via="cimd", require_auth_time=False,
                                 scopes=[], created_at=utcnow())
                    s.add(row)
                row.client_type = (ClientType.THIRD_PARTY_PUBLIC if doc.token_endpoint_auth_method == "none"
                                   else ClientType.THIRD_PARTY).value
                changed = (row.name, list(row.redirect_uris or []), list(row.grant_types or [])) != (
                    doc.client_name, list(doc.redirect_uris), list(doc.grant_types))
                row.name = doc.client_name
                row.redirect_uris = list(doc.redirect_uris)
                row.post_logout_redirect_uris = list(doc.post_logout_redirect_uris)
                row.grant_types = list(doc.grant_types)
                row.token_endpoint_auth_method = doc.token_endpoint_auth_method
                row.logo_uri = doc.logo_uri
                row.client_uri = doc.client_uri
                row.application_type = None
                if changed or row.updated_at is None:
                    row.updated_at = utcnow()
                try:
                    s.commit()
                    return row
                except IntegrityError:
                    s.rollback()  # a concurrent first fetch inserted it: update instead
        return None

    def invalidate(self, url: str | None = None):
        with self._lock:
            if url is None:
                self._items.clear()
            else:
                self._items.pop(url, None)


class CimdPrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 §2.2 ``private_key_jwt`` for CIMD clients whose document
    publishes keys (A.2 item 11, B.4 item 7)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, issuer: str):
        super().__init__(validate_jti=True, leeway=60)
        self.issuer = issuer
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def get_audiences(self):
        # RFC 7523 §3: the token endpoint URL, or the issuer identifier.
        return [self.issuer + "/oauth/token", self.issuer]

    def resolve_client_public_key(self, client):
        if not getattr(client, "jwks", None):
            raise InvalidClientError(description="The client publishes no keys")
        return KeySet.import_key_set(client.jwks)

    def validate_jti(self, claims, jti):
        # RFC 7523 §3 item 7: a jti is used once (in-process memory until exp).
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            return False
        now = time.time()
        key = f"{claims.get('iss')}\x00{jti}"
        with self._lock:
            if len(self._seen) > 10000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if self._seen.get(key, 0) > now:
                return False
            self._seen[key] = float(claims.get("exp") or now) + self.leeway
        return True
