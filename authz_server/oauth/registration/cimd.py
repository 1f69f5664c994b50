"""Client ID metadata documents (CIMD; docs/requirements.md B4-1 to B4-9, MCP 2026-07-28
"Client ID Metadata Documents", draft-ietf-oauth-client-id-metadata-document).

A ``client_id`` that is an https URL with a path names a JSON document the
client publishes about itself. We fetch it (no redirects, SSRF-guarded, capped,
one short deadline for the whole fetch; first fetches rate limited per source),
validate it, cache it as its HTTP cache headers allow (clamped;
errors never cached) and keep a row keyed by the URL in ``clients`` so codes,
grants and refresh tokens can point at it (foreign keys).

A ``private_key_jwt`` client publishes its public keys inline (``jwks``) or by
reference (``jwks_uri``, RFC 7591 §2). A ``jwks_uri`` is fetched with the same
fetcher and guards as the document, cached the same way, and refetched early
(rate-limited) when an assertion names a ``kid`` the cached set lacks (key
rotation, RFC 7523 §2.2 / RFC 7517 §4.5).
"""
from __future__ import annotations

import asyncio
import dataclasses
import http.client
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import urllib3.connection
import urllib3.exceptions
from flask import g, has_app_context, has_request_context
from joserfc.jwk import KeySet
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion

from ...errors import Throttled
from ...models import RegisteredVia
from .. import limits as limit_rules
from ...rules import redirect_uris
from ...storage import clients as client_store

log = logging.getLogger(__name__)

# The CIMD draft recommends a cap of about 5 KB; a few seconds of timeout (B4-3).
MAX_BODY = 5 * 1024
# The default deadline of one fetch, from the DNS lookup to the last body byte
# (AUTHZ_CIMD_FETCH_TIMEOUT).
TIMEOUT = 3.0
# Cache lifetime bounds for a valid document (B4-5).
MIN_CACHE = 60
MAX_CACHE = 24 * 3600
DEFAULT_CACHE = 300
MAX_ID_LENGTH = 255  # clients.client_id is String(255)
# A JWK Set may hold up to MAX_KEYS keys; ten RSA-4096 public keys are about
# 8 KB, so the key set gets a larger cap than the 5 KB document (still tiny).
MAX_JWKS_BODY = 16 * 1024
MAX_KEYS = 10
# An assertion whose kid the cached set lacks refetches the jwks_uri at most
# once per this many seconds per client: anyone can send such an assertion
# (the signature cannot be checked without the key), so it must not cost a
# fetch every time.
JWKS_REFETCH_SECONDS = 60
# RFC 7517 §4 / RFC 7518 §6: members that only private (or symmetric) keys carry.
PRIVATE_KEY_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
SECRET_METHODS = {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
SUPPORTED_GRANTS = {"authorization_code", "refresh_token"}
# RFC 6598 shared address space: not covered by ipaddress.is_private on every Python.
CGNAT = ipaddress.ip_network("100.64.0.0/10")
# RFC 6052 §2.1: the NAT64 well-known prefix; the last 32 bits are an IPv4 address.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names listed here are answered from it, before DNS, as the C library's
# usual "hosts: files dns" does (localhost and other loopback names included).
HOSTS_FILE = "/etc/hosts"
_hosts_table: tuple[tuple, dict] | None = None  # ((mtime, size), name -> addresses)


class CimdError(ValueError):
    """Why a metadata document was refused (logged, never cached)."""


def looks_like_cimd(client_id) -> bool:
    """A client_id this module owns: it starts like an http(s) URL. The AS's own
    ids never do (``dcr-`` / generated ids), B4-1."""
    return isinstance(client_id, str) and client_id[:8].lower().startswith(("https://", "http://"))


def check_url(url: str, *, allow_loopback: bool, what: str = "client_id URL") -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable CIMD URL, checked on the raw string
    (B4-1: normalization must not hide a dot segment or userinfo). A
    document's ``jwks_uri`` is held to the same rules (``what`` names it)."""
    if len(url) > MAX_ID_LENGTH or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise CimdError(f"{what} is too long or has forbidden characters")
    m = re.match(r"^(https|http)://([^/?#]*)(/[^?#]*)?(\?[^#]*)?(#.*)?$", url)
    if not m:
        raise CimdError(f"{what} is not an absolute http(s) URL")
    scheme, authority, path, query, fragment = m.groups()
    if fragment is not None:
        raise CimdError(f"{what} must not have a fragment")
    if query is not None:
        raise CimdError(f"{what} should not have a query")
    if "@" in authority:
        raise CimdError(f"{what} must not have userinfo")
    if not path or path == "/":
        raise CimdError(f"{what} must have a path")
    if any(seg in (".", "..") for seg in path.split("/")) or "%2e" in path.lower():
        raise CimdError(f"{what} must not have dot segments")
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise CimdError(f"{what} has an invalid port") from None
    if not host:
        raise CimdError(f"{what} has no host")
    if scheme == "http" and not (allow_loopback and redirect_uris.is_loopback_host(host)):
        raise CimdError(f"{what} must use https")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _refused(ip, allow_loopback: bool) -> bool:
    # RFC 6890 special-use ranges and RFC 1918 private ones (SSRF guard, B4-3).
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        else:
            # 6to4 (RFC 3056; its relays deprecated by RFC 7526) and Teredo
            # (RFC 4380) tunnel to whatever IPv4 address they embed, and no
            # client's metadata host needs them: refused whole, whatever the
            # embedded address. NAT64 (RFC 6052 §2.1) is how IPv6-only networks
            # reach every IPv4 host, so there the embedded address decides, by
            # the IPv4 rules, loopback included (the development switch is for
            # direct loopback only).
            if ip.sixtofour or ip.teredo:
                return True
            if ip in NAT64:
                return _refused(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), allow_loopback=False)
            # Site-local (fec0::/10) was deprecated by RFC 3879 but is still
            # routed inside some networks; ipaddress counts it as global.
            if ip.is_site_local:
                return True
    if ip.is_loopback:
        return not allow_loopback
    return (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or (ip.version == 4 and ip in CGNAT) or not ip.is_global)


def _hosts() -> dict:
    """Name -> addresses of the hosts file, read again when it changes."""
    global _hosts_table
    try:
        st = os.stat(HOSTS_FILE)
        key = (st.st_mtime_ns, st.st_size)
        cached = _hosts_table
        if cached is not None and cached[0] == key:
            return cached[1]
        table: dict[str, list] = {}
        with open(HOSTS_FILE, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) < 2:
                    continue
                try:
                    ip = ipaddress.ip_address(fields[0].split("%", 1)[0])
                except ValueError:
                    continue
                for name in fields[1:]:
                    table.setdefault(name.lower().rstrip("."), []).append(ip)
    except OSError:
        return {}
    _hosts_table = (key, table)
    return table


def _dns_resolver() -> dns.asyncresolver.Resolver:
    """A resolver set up from the system's resolv.conf, read at each lookup as
    the C library does when it changes (tests point it at their own server)."""
    return dns.asyncresolver.Resolver()


def _dns_lookup(host: str, timeout: float, what: str) -> list:
    """The A and AAAA records of ``host``, asked for together, given up after
    ``timeout`` seconds. Asked by dnspython in the calling thread (an event
    loop of its own): getaddrinfo has no timeout, so a lookup run elsewhere and
    abandoned at the deadline would hold its thread until the system resolver
    gave up (5-30 s), and a few hanging names would starve everyone else's
    lookups. The search list is not applied: a client's host is a full name."""
    async def both():
        resolver = _dns_resolver()
        answers = await asyncio.gather(*(
            resolver.resolve(host, rdtype, search=False, raise_on_no_answer=False, lifetime=timeout)
            for rdtype in ("A", "AAAA")))
        return [ipaddress.ip_address(r.address) for answer in answers if answer.rrset is not None
                for r in answer.rrset]

    try:
        # wait_for bounds the retries' back-off sleeps too, which dnspython's
        # lifetime alone does not.
        return asyncio.run(asyncio.wait_for(both(), timeout))
    except (TimeoutError, dns.exception.Timeout):
        raise CimdError(f"{what} host did not resolve in time") from None


def _addresses(host: str, timeout: float, what: str) -> list:
    try:
        return [ipaddress.ip_address(host.split("%", 1)[0])]  # a literal: no lookup
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    listed = _hosts().get(name)
    if listed:
        return listed
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761 §6.3: localhost names are the loopback addresses, never
        # asked of DNS (for a hosts file that does not list them).
        return [ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1")]
    if timeout <= 0:
        raise CimdError(f"{what} took too long")
    return _dns_lookup(host, timeout, what)


def _source_for(ip) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address this host would send from to ``ip``, or None without a
    route (connecting a UDP socket only looks the route up; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((str(ip), 9))
            return ipaddress.ip_address(s.getsockname()[0].split("%", 1)[0])
    except (OSError, ValueError):
        return None


def _preferred(addrs: list):
    """The address to connect to, ordered as getaddrinfo would (RFC 6724 §6,
    in brief): one without a route last (rule 1); IPv6 first (rule 6) when it
    is sent from an address of its own kind, global to global or loopback to
    loopback (rules 2 and 5), else IPv4 first."""
    def rank(ip):
        source = _source_for(ip)
        if source is None:
            return 3
        if ip.version == 4:
            return 1
        return 0 if (source.is_global, source.is_loopback) == (ip.is_global, ip.is_loopback) else 2
    return min(addrs, key=rank)  # the first of the best rank, in answer order


def resolve(host: str, port: int, *, allow_loopback: bool, what: str = "client_id URL",
            timeout: float = TIMEOUT) -> str:
    """The address to connect to; every address the name resolves to must be
    public (an attacker's DNS could mix a private one in). An IP literal is
    not looked up; a name the hosts file lists is answered from it; any other
    name is asked of DNS, given up after ``timeout`` seconds."""
    try:
        addrs = _addresses(host, timeout, what)
    except CimdError:
        raise
    except (dns.exception.DNSException, UnicodeError, ValueError, OSError):
        raise CimdError(f"{what} host does not resolve") from None
    for ip in addrs:
        if _refused(ip, allow_loopback):
            raise CimdError(f"{what} host resolves to a refused address ({ip})")
    if not addrs:
        raise CimdError(f"{what} host does not resolve")
    return str(_preferred(addrs))


def fetch(url: str, *, allow_loopback: bool, timeout: float = TIMEOUT, max_body: int = MAX_BODY,
          what: str = "client_id URL", deadline: float | None = None) -> tuple[bytes, int]:
    """GET the document (or a document's ``jwks_uri``): (body, cache seconds).
    No redirects, the checked address pinned for the connection (no DNS
    rebinding), at most ``max_body`` bytes.

    One deadline covers the whole fetch: DNS, connect, TLS, headers and body
    (``deadline``, a ``time.monotonic()`` value, else ``timeout`` seconds from
    now). The lookup, the connect and the TLS handshake each get the time left
    as their own timeout (each is bounded whole by it). Headers and body are
    many receives, and a socket timeout counts per receive, so a server sending
    one byte a second would hold the request as long as it likes: a watchdog
    shuts the connection down at the deadline, whatever it is waiting for."""
    if deadline is None:
        deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CimdError(f"{what} took too long")
        return remaining

    scheme, host, port = check_url(url, allow_loopback=allow_loopback, what=what)
    ip = resolve(host, port, allow_loopback=allow_loopback, what=what, timeout=deadline - time.monotonic())
    context = ssl.create_default_context() if scheme == "https" else None
    name = f"[{host}]" if ":" in host else host
    authority = name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"
    path = url.split("://", 1)[1]
    path = path[path.index("/"):]
    expired = threading.Event()
    lock = threading.Lock()  # cut() never shuts down a descriptor being closed
    sock = guard = watchdog = conn = None

    def cut():
        # Shutting the connection down wakes whatever handshake or read is blocked on it.
        with lock:
            expired.set()
            if guard is not None:
                try:
                    guard.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    try:
        # Connect to the address we checked, not to a second resolution.
        sock = socket.create_connection((ip, port), timeout=left())
        # The watchdog's own descriptor of the connection, armed before the
        # handshake: TLS takes over the descriptor of the socket it wraps
        # (leaving that socket object closed), and shutting a connection down
        # through any of its descriptors ends it for all.
        guard = sock.dup()
        watchdog = threading.Timer(left(), cut)
        watchdog.daemon = True
        watchdog.start()
        if context is not None:
            # TLS sends the URL's host name (SNI) and verifies the certificate
            # against it; one handshake call, bounded whole by its timeout.
            sock.settimeout(left())
            sock = context.wrap_socket(sock, server_hostname=host.rstrip("."))
        # urllib3 writes the request and reads the response on the connection
        # made here (it connects only when it has none); the Host header names
        # the URL's host.
        conn = urllib3.connection.HTTPConnection(ip, port, timeout=left())
        conn.sock = sock
        conn.request("GET", path, headers={"Host": authority, "Accept": "application/json",
                                           "User-Agent": "authz-server-cimd"},
                     preload_content=False, decode_content=False)
        resp = conn.getresponse()
        # B4-3: only 200 counts; a redirect is an error, never followed.
        if resp.status != 200:
            raise CimdError(f"{what} answered {resp.status}")
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_body:
            raise CimdError(f"{what} serves a body that is too large")
        # At most one byte past the cap is read: a larger body is not read to its end.
        body = resp.read(max_body + 1)
        if expired.is_set():
            raise CimdError(f"{what} took too long")  # a body cut short is no document
        if len(body) > max_body:
            raise CimdError(f"{what} serves a body that is too large")
        return body, cache_seconds(resp.headers.get("Cache-Control"))
    except CimdError:
        raise
    except (OSError, ValueError, http.client.HTTPException, urllib3.exceptions.HTTPError) as e:
        # Every timeout above is the time left, so one firing is the deadline.
        if expired.is_set() or isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError)):
            raise CimdError(f"{what} took too long") from None
        raise CimdError(f"{what} could not be fetched ({type(e).__name__})") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        with lock:
            if guard is not None:
                guard.close()
        if conn is not None:
            conn.close()
        if sock is not None:
            sock.close()


def cache_seconds(header: str | None) -> int:
    """Cache-Control max-age clamped to [MIN_CACHE, MAX_CACHE] (B4-5)."""
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
    jwks_uri: str | None = None


def _optional_uri(data, name):
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2000 or not value.startswith("https://"):
        raise CimdError(f"{name} must be an https URL")
    return value


def check_jwks(jwks, what: str = "jwks") -> KeySet:
    """A JWK Set of 1 to MAX_KEYS public keys (RFC 7517 §5), as a KeySet."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not 0 < len(jwks["keys"]) <= MAX_KEYS:
        raise CimdError(f"{what} must be a JWK set with 1 to {MAX_KEYS} keys")
    # A published private key is no longer private, and an oct key is a shared
    # secret, which CIMD forbids (B4-4): refuse the whole set.
    if any(not isinstance(k, dict) or PRIVATE_KEY_MEMBERS & set(k) or k.get("kty") == "oct" for k in jwks["keys"]):
        raise CimdError(f"{what} must hold public keys only")
    try:
        return KeySet.import_key_set(jwks)
    except Exception:
        raise CimdError(f"{what} is not a valid JWK set") from None


def parse_jwks(body: bytes) -> KeySet:
    """The body a ``jwks_uri`` served (RFC 7591 §2: a JWK Set document)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CimdError("jwks_uri does not serve JSON") from None
    return check_jwks(data, "the key set at jwks_uri")


def validate(url: str, body: bytes, *, allow_loopback: bool = False) -> Document:
    """B4-4. ``allow_loopback`` as for the document URL, for ``jwks_uri``."""
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
    jwks, jwks_uri = data.get("jwks"), data.get("jwks_uri")
    # RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present".
    if jwks is not None and jwks_uri is not None:
        raise CimdError("jwks and jwks_uri must not both be present")
    if method == "private_key_jwt":
        # RFC 7523 §2.2 / A2-11: the document's public keys verify the
        # client's assertions, inline or at jwks_uri (fetched by the resolver
        # with the document's guards before the client is accepted).
        if jwks_uri is not None:
            if not isinstance(jwks_uri, str):
                raise CimdError("jwks_uri must be a string")
            check_url(jwks_uri, allow_loopback=allow_loopback, what="jwks_uri")
        elif jwks is None:
            raise CimdError("private_key_jwt needs jwks or jwks_uri")
        else:
            check_jwks(jwks)
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
        client_uri=_optional_uri(data, "client_uri"), post_logout_redirect_uris=tuple(logout),
        # Keys matter only to private_key_jwt; a "none" client's are ignored.
        jwks=jwks if method == "private_key_jwt" else None,
        jwks_uri=jwks_uri if method == "private_key_jwt" else None,
    )


@dataclass(frozen=True)
class _Cached:
    expires: float  # time.monotonic()
    client: object  # clients.OAuthClient
    jwks_uri: str | None


@dataclass(frozen=True)
class _Keys:
    uri: str
    keys: KeySet
    kids: frozenset
    expires: float  # time.monotonic(), from the key set's own Cache-Control
    fetched: float  # the last fetch attempt: JWKS_REFETCH_SECONDS counts from here


class CimdResolver:
    """Fetches, validates, caches and persists CIMD clients (``query_client``, B4),
    and the key sets of those that publish a ``jwks_uri``.

    ``timeout`` is the deadline of a resolution, its document and key set
    together. ``first_fetches`` (a rate limiter) and ``source`` (the caller's
    source key) limit fetches of documents not cached in this process: each
    costs a connection to a host of the caller's choosing, and a document that
    fails is never cached, so without the limit every request could cost one.
    ``make_client`` turns a stored row into the client Authlib sees
    (``clients.OAuthClient.from_model``), passed in so that this module does not
    import ``oauth.clients``, which imports it."""

    def __init__(self, db, *, make_client, allow_loopback: bool = False, timeout: float = TIMEOUT,
                 first_fetches=None, source=None):
        self.db = db
        self.make_client = make_client
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.first_fetches = first_fetches
        self.source = source
        self._items: dict[str, _Cached] = {}
        self._keys: dict[str, _Keys] = {}  # by client_id
        self._lock = threading.Lock()

    def get(self, url: str):
        now = time.monotonic()
        hit = self._items.get(url)
        # One request may look the client up several times (Authlib, then our
        # error handling): a refused document is fetched once per request, not
        # once per lookup, so /authorize is no fetch amplifier.
        failed = g.setdefault("cimd_failed", set()) if has_app_context() else set()
        if hit and now < hit.expires:
            if hit.jwks_uri is None:
                return hit.client
            if url in failed:
                return None
            # The document is fresh but its key set has a lifetime of its own.
            try:
                self._key_set(url, hit.jwks_uri)
            except CimdError as e:
                self._refuse(url, failed, e)
                return None
            return hit.client
        if url in failed:
            return None
        deadline = now + self.timeout
        try:
            if hit is None:
                check_url(url, allow_loopback=self.allow_loopback)  # a malformed URL costs nothing
                self._spend_first_fetch()
            body, seconds = fetch(url, allow_loopback=self.allow_loopback, deadline=deadline)
            doc = validate(url, body, allow_loopback=self.allow_loopback)
            # A client whose keys cannot be fetched is refused before anything
            # is stored, like one whose document cannot be; both fetches share
            # the one deadline.
            if doc.jwks_uri is not None:
                self._key_set(url, doc.jwks_uri, deadline=deadline)
        except CimdError as e:
            self._refuse(url, failed, e)
            return None
        model = client_store.store_cimd(self.db.engine, doc)
        if model is None or not model.is_active:
            with self._lock:
                self._keys.pop(url, None)
            return None
        # Inline keys live only in the cached client, refreshed with the
        # document; keys from jwks_uri in self._keys (client_keys).
        value = dataclasses.replace(self.make_client(model), jwks=doc.jwks)
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[url] = _Cached(now + seconds, value, doc.jwks_uri)
            if doc.jwks_uri is None:
                self._keys.pop(url, None)
        return value

    def _spend_first_fetch(self):
        """Raise errors.Throttled when the caller's source has used up its
        first fetches (AUTHZ_CIMD_FETCH_RATE)."""
        if self.first_fetches is None or self.source is None or not has_request_context():
            return
        wait = self.first_fetches.spend(limit_rules.cimd_fetch_key(self.source()))
        if wait:
            raise Throttled(wait, "Too many client metadata documents fetched for your network; "
                                              f"retry in {wait} s")

    def _refuse(self, url: str, failed: set, why: CimdError):
        # Never cache errors or invalid documents or key sets (B4-5): a
        # fixed document works on the next request.
        log.info("CIMD client %s refused: %s", url, why)
        with self._lock:
            self._items.pop(url, None)
            self._keys.pop(url, None)
        failed.add(url)

    def client_keys(self, client, kid: str | None) -> KeySet:
        """The key set at the jwks_uri of ``client`` (a CIMD client resolved by
        ``get``) to verify an assertion whose header names ``kid``."""
        hit = self._items.get(client.client_id)
        if hit is None or hit.jwks_uri is None:
            raise CimdError("the client's document names no jwks_uri")
        return self._key_set(client.client_id, hit.jwks_uri, kid=kid)

    def _key_set(self, client_id: str, uri: str, *, kid: str | None = None,
                 deadline: float | None = None) -> KeySet:
        """The cached key set of ``uri``, fetched when missing or expired, and
        refetched once when ``kid`` is not in it (the client rotated its keys,
        RFC 7517 §4.5) unless the last fetch is under JWKS_REFETCH_SECONDS old."""
        now = time.monotonic()
        with self._lock:
            entry = self._keys.get(client_id)
            if entry is not None and entry.uri == uri and now < entry.expires:
                if kid is None or kid in entry.kids:
                    return entry.keys
                if now - entry.fetched < JWKS_REFETCH_SECONDS:
                    return entry.keys  # the assertion fails on its unknown kid
                # Claimed under the lock: concurrent requests with unknown kids
                # make one refetch, not one each.
                entry = self._keys[client_id] = dataclasses.replace(entry, fetched=now)
        try:
            # Same fetcher, same guards as the document (B4-3).
            body, seconds = fetch(uri, allow_loopback=self.allow_loopback, timeout=self.timeout,
                                  deadline=deadline, max_body=MAX_JWKS_BODY, what="jwks_uri")
            keys = parse_jwks(body)
        except CimdError:
            # Errors are never cached (B4-5), and a set its publisher no
            # longer serves is not trusted either: the next request fetches
            # again (the client is refused meanwhile).
            with self._lock:
                if self._keys.get(client_id) is entry:
                    self._keys.pop(client_id, None)
            raise
        kids = frozenset(k.kid for k in keys.keys if k.kid)
        with self._lock:
            if len(self._keys) > 10000:
                self._keys.clear()
            self._keys[client_id] = _Keys(uri, keys, kids, now + seconds, now)
        return keys

    def invalidate(self, url: str | None = None):
        with self._lock:
            if url is None:
                self._items.clear()
                self._keys.clear()
            else:
                self._items.pop(url, None)
                self._keys.pop(url, None)


class CimdPrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 §2.2 ``private_key_jwt`` for CIMD clients whose document
    publishes keys, inline (``jwks``) or by reference (``jwks_uri``, through
    ``resolver``) (docs/requirements.md: A2-11, B4-7)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, issuer: str, resolver: CimdResolver | None = None, *, replay):
        super().__init__(validate_jti=True, leeway=60)
        self.issuer = issuer
        self.resolver = resolver
        # oauth.assertion_replay.ReplayMemory: shared by every node.
        self.replay = replay

    def get_audiences(self):
        # RFC 7523 §3: the token endpoint URL, or the issuer identifier.
        return [self.issuer + "/oauth/token", self.issuer]

    def resolve_client_public_key(self, client):
        if getattr(client, "jwks", None):
            return KeySet.import_key_set(client.jwks)
        resolver = self.resolver
        if resolver is None or getattr(client, "registered_via", None) != RegisteredVia.CIMD:
            raise InvalidClientError(description="The client publishes no keys")

        def for_assertion(token):
            # joserfc calls this with the assertion before verifying it: its
            # header's kid decides whether a rotated key set is refetched.
            kid = token.headers().get("kid")
            try:
                return resolver.client_keys(client, kid if isinstance(kid, str) else None)
            except CimdError as e:
                log.info("CIMD client %s: no key set: %s", client.client_id, e)
                raise InvalidClientError(description="The client's keys could not be fetched") from None

        return for_assertion

    def validate_jti(self, claims, jti):
        # RFC 7523 §3 item 7: a jti is used once, on every node, until the
        # assertion expires (the leeway after exp included: it is accepted
        # until then). Called after the signature and exp were checked.
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            return False
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            return False
        return self.replay.first_use(claims["sub"], jti, float(exp) + self.leeway)
