"""End-to-end: the official ``mcp`` Python SDK client connects to the example
MCP server (examples/mcp_server) protected by this authorization server, with
nothing pre-registered (docs/requirements.md: B.3, B.4, B.5, B.6, B.7, B.10; issue 5).

discovery from the 401 → RFC 9728 resource metadata → RFC 8414 metadata →
a client → authorization with PKCE and ``resource`` (login and consent driven
headlessly) → token whose ``aud`` is the MCP server → tool call → refresh after
expiry (rotated) → a second run with the stored credentials that needs no new
client.

The client comes about in two ways (the two legs of one parametrized test):

- ``dcr``: dynamic registration (RFC 7591), the SDK's default;
- ``cimd``: a client ID metadata document. The SDK is given
  ``client_metadata_url`` and chooses CIMD by itself because our metadata says
  ``client_id_metadata_document_supported``; the document is served from the
  test on loopback. mcp 2.3 accepts only an ``https`` ``client_metadata_url``
  (``is_valid_client_metadata_url``), so the document is served over TLS with a
  throwaway CA that our fetcher trusts through ``SSL_CERT_FILE`` (OpenSSL's
  default verify paths, the operator's way to trust a private CA); the server
  runs with ``cimd_allow_loopback`` so that a loopback address is fetched.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import ssl
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

mcp = pytest.importorskip("mcp", reason="the official mcp SDK is not installed (pip install -e '.[test]')")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn (an mcp dependency) is not installed")

import httpx2  # noqa: E402  (installed with mcp)
from mcp import Client  # noqa: E402
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.auth import OAuthClientMetadata  # noqa: E402
from pydantic import AnyUrl  # noqa: E402

from authz_server.models import AuditEvent, Client as ClientRow, RefreshToken  # noqa: E402
from authz_server.security import digest  # noqa: E402

from tests.browser import Browser  # noqa: E402
from tests.helpers import LiveServer, serve_in_thread  # noqa: E402
from .examples.mcp_runner import MemoryStorage, example_mcp_server  # noqa: E402

MCP_SCOPE = "mcp:tools"
CALLBACK = "http://127.0.0.1:53682/callback"  # nothing listens: the handler never follows the redirect


def _claims(jwt_: str) -> dict:
    payload = jwt_.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- The CIMD leg's document, over HTTPS on loopback -------------------------

def _loopback_tls(directory) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 it signed: (CA file, cert
    file, key file). Generated per test (EC keys: milliseconds)."""
    now = dt.datetime.now(dt.timezone.utc)
    # Valid well past the clock travel below (OpenSSL reads the real clock anyway).
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=2)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authz_server e2e test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = (directory / "ca.pem", directory / "loopback.pem", directory / "loopback.key")
    files[0].write_bytes(ca.public_bytes(pem))
    files[1].write_bytes(leaf.public_bytes(pem))
    files[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tuple(str(f) for f in files)


class DocumentServer:
    """The MCP client's metadata document (draft-ietf-oauth-client-id-metadata-
    document), served over HTTPS on a loopback port; counts the fetches."""

    PATH = "/mcp-e2e/client-metadata.json"
    MAX_AGE = 300  # Cache-Control of the document (our cache honours it, B.4 item 5)
    NAME = "mcp SDK e2e (from its CIMD document)"  # differs from the SDK's client_name: proves the source

    def __init__(self, directory):
        self.ca_file, cert, key = _loopback_tls(directory)
        self.fetches = 0
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path != docs.PATH:
                    self.send_error(404)
                    return
                docs.fetches += 1
                body = json.dumps(docs.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"max-age={docs.MAX_AGE}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}{self.PATH}"
        self.document = {
            "client_id": self.url,  # string-identical to its URL (B.4 item 4)
            "client_name": self.NAME,
            "redirect_uris": [CALLBACK],  # the SDK's loopback callback
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        serve_in_thread(self.httpd)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Leg:
    """How the SDK gets its client: ``dcr`` on the shared server, or ``cimd``
    on a server that may fetch documents from loopback."""

    name: str
    live: LiveServer
    docs: DocumentServer | None = None

    @property
    def client_metadata_url(self) -> str | None:
        return self.docs.url if self.docs else None


@pytest.fixture(params=["dcr", "cimd"])
def leg(request, tmp_path, monkeypatch):
    if request.param == "dcr":
        yield Leg("dcr", request.getfixturevalue("live"))
        return
    docs = DocumentServer(tmp_path)
    # Our fetcher verifies TLS with ssl.create_default_context(): trust the test CA
    # the way an operator trusts a private one (OpenSSL reads it per context).
    monkeypatch.setenv("SSL_CERT_FILE", docs.ca_file)
    try:
        yield Leg("cimd", request.getfixturevalue("make_server_with")(cimd_allow_loopback=True), docs)
    finally:
        docs.close()


@pytest.fixture
def expiry_clock(leg):
    """A clock past the access token's expiry, started by the test mid-connection
    (the SDK only knows the expiry of tokens it obtained itself; a provider
    reloaded from storage does not, see the report on SDK quirks)."""
    traveller = time_machine.travel(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=leg.live.settings.access_token_ttl + 60), tick=True)
    started = []
    yield lambda: started.append(traveller.start())
    if started:
        traveller.stop()


@pytest.fixture
def mcp_server(leg, expiry_clock):
    """The example MCP server on a free port (uvicorn in a thread), registered on
    our server as a resource with its scope, so ``resource=`` becomes ``aud``.
    Stopped before ``expiry_clock`` is: time_machine moves time.monotonic too, so
    timers the server's event loop set in travelled time would not fire once the
    clock came back (its shutdown would hang)."""
    with example_mcp_server(leg.live, scopes=(MCP_SCOPE,)) as resource:
        yield resource


class Sent(NamedTuple):
    method: str
    url: str
    form: dict
    authorization: str | None


class Recorder:
    """Every request the SDK sends (its own auth-flow requests included)."""

    def __init__(self):
        self.requests: list[Sent] = []

    async def __call__(self, request):
        form = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(request.content.decode()))
        elif request.headers.get("content-type", "").startswith("application/json") and "/oauth/" in str(request.url):
            form = json.loads(request.content or b"{}")
        self.requests.append(Sent(request.method, str(request.url), form, request.headers.get("authorization")))

    def sent(self, method, url_prefix) -> list[Sent]:
        return [r for r in self.requests if r.method == method and r.url.startswith(url_prefix)]

    def to(self, method, url_prefix):
        return [r.form for r in self.sent(method, url_prefix)]

    def registrations(self, since=0):
        """Any registration attempt, ours or the SDK's fallback ``<origin>/register``."""
        return [r for r in self.requests[since:] if r.method == "POST" and urlsplit(r.url).path.endswith("/register")]


def _provider(mcp_url, storage, browser, box, client_metadata_url=None):
    """An OAuthClientProvider whose redirect handler is the member's browser:
    it opens the authorization URL, signs in, allows on the consent page, and
    stops at the redirect to the client's callback, handing code, state and iss
    to the callback handler (B.10). With ``client_metadata_url`` the SDK uses it
    as its client_id when the server advertises CIMD (B.7 step 4)."""

    async def redirect_handler(authorization_url: str) -> None:
        box["authorization_url"] = authorization_url
        params = dict(parse_qsl(urlsplit(authorization_url).query))
        resp = await asyncio.to_thread(browser.authorize, params, "allow")
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = resp.headers["Location"]
        assert location.startswith(CALLBACK + "?"), location
        q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert "error" not in q, q
        box["result"] = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    async def callback_handler() -> AuthorizationCodeResult:
        return box.pop("result")

    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(client_name="mcp SDK e2e", redirect_uris=[AnyUrl(CALLBACK)],
                                            grant_types=["authorization_code", "refresh_token"]),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )


async def _call_whoami(client: Client) -> dict:
    result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return result.structured_content or json.loads(result.content[0].text)


def _count(live, model, **where):
    with live.db.engine.connect() as conn:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return conn.scalar(stmt)


def test_b7_mcp_sdk_client_dcr_or_cimd_pkce_resource_refresh_and_stored_credentials(leg, mcp_server, expiry_clock):
    """B.4/B.7/B.10: the mcp SDK client, nothing pre-registered: 401 → metadata →
    DCR or CIMD → PKCE + resource → aud = MCP server → refresh rotated → stored
    credentials reused, no new client."""
    live = leg.live
    browser = Browser(live)
    # The resource server's challenge as an MCP client first sees it (B.3 step 1).
    r = requests.post(mcp_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
    assert r.status_code == 401
    metadata_url = mcp_server.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert r.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata_url}", scope="{MCP_SCOPE}"'
    prm = requests.get(metadata_url, timeout=10).json()
    assert prm["resource"] == mcp_server
    assert prm["authorization_servers"] == [live.url]  # byte-identical to our issuer (C-5)

    storage = MemoryStorage()
    recorder = Recorder()
    box: dict = {}

    def provider():
        return _provider(mcp_server, storage, browser, box, leg.client_metadata_url)

    async def run_session(provider, *calls):
        """One MCP connection; runs each call (a coroutine function of the client)."""
        async with httpx2.AsyncClient(auth=provider, event_hooks={"request": [recorder]}, timeout=30) as http:
            async with Client(streamable_http_client(mcp_server, http_client=http)) as client:
                return [await call(client) for call in calls]

    mark = {}

    async def expire(client):
        mark["tokens"], mark["requests"] = storage.tokens, len(recorder.requests)
        mark["fetches"] = leg.docs.fetches if leg.docs else None
        expiry_clock()  # the clock moves past the access token's expiry mid-connection

    [who, _, who2, who3] = asyncio.run(run_session(provider(), _call_whoami, expire, _call_whoami, _call_whoami))
    _check_run(live, mcp_server, metadata_url, storage, recorder, box, mark, who, who2, who3)
    _check_client(leg, storage, recorder, box)
    if leg.docs:
        # B.4 item 5: fetched once for the authorization, consent and code
        # exchange (cached for its max-age), and again for the refresh: the
        # clock has travelled past the max-age (time_machine also moves the
        # time.monotonic the cache runs on, by far more than any max-age).
        assert mark["fetches"] == 1
        assert leg.docs.fetches == 2

    # A second connection with the stored credentials: no registration, no authorization.
    box.clear()
    before = len(recorder.requests)
    [who4] = asyncio.run(run_session(provider(), _call_whoami))
    assert who4["sub"] == who["sub"]
    assert "authorization_url" not in box
    assert not any("/oauth/" in r.url for r in recorder.requests[before:])
    _check_client(leg, storage, recorder, box=None)

    # A host restarted with its stored client but no tokens: a new authorization, no new client.
    storage.tokens = None
    before = len(recorder.requests)
    [who5] = asyncio.run(run_session(provider(), _call_whoami))
    assert "authorization_url" in box
    assert who5["sub"] == who["sub"]
    assert who5["client_id"] == who["client_id"]
    assert recorder.registrations(before) == []
    _check_client(leg, storage, recorder, box)
    if leg.docs:
        # The document fetched for the refresh is still fresh: the new
        # authorization and code exchange are served from the cache.
        assert leg.docs.fetches == 2


def _check_client(leg, storage, recorder, box):
    """How the SDK came by its client, and that there is exactly one: a single
    DCR registration (B.5), or none at all and the document's URL (B.4, B.7 step 4)."""
    live = leg.live
    client_id = storage.client_info.client_id
    [row] = _clients(live)  # one client, whatever happened since
    assert row.client_id == client_id
    if box is not None:
        auth_q = dict(parse_qsl(urlsplit(box["authorization_url"]).query))
        assert auth_q["client_id"] == client_id
    token_requests = recorder.sent("POST", live.url + "/oauth/token")
    assert token_requests

    if leg.name == "dcr":
        [registration] = recorder.registrations()
        assert registration.url == live.url + "/oauth/register"
        assert registration.form["redirect_uris"] == [CALLBACK]
        assert MCP_SCOPE in registration.form["scope"].split()
        assert "token_endpoint_auth_method" not in registration.form  # omitted → client_secret_basic (B.5)
        assert storage.client_info.client_secret
        assert storage.client_info.token_endpoint_auth_method == "client_secret_basic"
        assert row.registered_via == "dcr"
        assert all(r.authorization and r.authorization.startswith("Basic ") for r in token_requests)
        assert _count(live, AuditEvent, event="client_registered") == 1
        return

    # CIMD: the SDK chose the URL because our metadata advertises it; nothing registered.
    assert live.metadata()["client_id_metadata_document_supported"] is True
    assert recorder.registrations() == []
    assert _count(live, AuditEvent, event="client_registered") == 0
    assert client_id == leg.docs.url
    assert storage.client_info.token_endpoint_auth_method == "none" and not storage.client_info.client_secret
    # The row is keyed by the URL and made from the document (its name), not from what the SDK holds.
    assert row.registered_via == "cimd"
    assert row.name == DocumentServer.NAME
    assert row.redirect_uris == [CALLBACK]
    assert row.token_endpoint_auth_method == "none"
    # A public client: client_id = URL in the body, no client authentication (B.4 item 7).
    assert all(r.form["client_id"] == client_id and r.authorization is None for r in token_requests)


def _clients(live):
    with live.db.engine.connect() as conn:
        return conn.execute(select(ClientRow)).all()


def _check_run(live, mcp_server, metadata_url, storage, recorder, box, mark, who, who2, who3):
    # Discovery and authorization went as B.7 records.
    assert recorder.to("GET", metadata_url), "resource metadata not fetched from the 401's URL"
    assert recorder.to("GET", live.url + "/.well-known/oauth-authorization-server")

    auth_q = dict(parse_qsl(urlsplit(box["authorization_url"]).query))
    assert box["authorization_url"].startswith(live.metadata()["authorization_endpoint"] + "?")
    assert auth_q["code_challenge_method"] == "S256" and auth_q["code_challenge"]
    assert auth_q["resource"] == mcp_server
    assert MCP_SCOPE in auth_q["scope"].split()

    [code_exchange] = [f for f in recorder.to("POST", live.url + "/oauth/token")
                       if f["grant_type"] == "authorization_code"]
    assert code_exchange["resource"] == mcp_server and code_exchange["code_verifier"]

    # The token is bound to the MCP server (RFC 8707) and the tool sees its caller.
    first = mark["tokens"]
    at = _claims(first.access_token)
    assert at["aud"] == mcp_server
    assert at["iss"] == live.url
    assert at["client_id"] == storage.client_info.client_id
    assert MCP_SCOPE in at["scope"].split()
    assert first.refresh_token
    assert who["aud"] == mcp_server
    assert who["sub"] == at["sub"] and who["sub"]
    assert who["organization_id"] == at["organization_id"] and who["organization_id"]
    assert who["client_id"] == storage.client_info.client_id
    assert MCP_SCOPE in who["scopes"]

    # Our token for another audience, or with a bad signature, is refused by the
    # MCP server (RFC 8707; MCP "Token Audience Binding and Validation").
    with live.app.app_context():
        elsewhere, _ = live.server.minter.access_token(client_id=at["client_id"], subject=at["sub"], scope=MCP_SCOPE,
                                                       audience=[live.url], organization_id=at["organization_id"])
    for bad in (elsewhere, first.access_token[:-4] + "AAAA"):
        other = requests.post(mcp_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10,
                              headers={"Authorization": "Bearer " + bad})
        assert other.status_code == 401
        assert other.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", resource_metadata=')
    # Our token for this server but without its scope: 403 naming the scope needed (RFC 6750 §3.1, B.6).
    with live.app.app_context():
        narrow, _ = live.server.minter.access_token(client_id=at["client_id"], subject=at["sub"], scope="openid",
                                                    audience=[mcp_server], organization_id=at["organization_id"])
    r = requests.post(mcp_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10,
                      headers={"Authorization": "Bearer " + narrow})
    assert r.status_code == 403
    challenge = r.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{MCP_SCOPE}"' in challenge
    assert f'resource_metadata="{metadata_url}"' in challenge

    # Expiry: the SDK refreshes before calling (B.7 step 9), and our server rotates.
    later = recorder.requests[mark["requests"]:]
    token_requests = [r.form for r in later if r.method == "POST" and r.url == live.url + "/oauth/token"]
    assert [f["grant_type"] for f in token_requests] == ["refresh_token"], token_requests
    assert token_requests[0]["refresh_token"] == first.refresh_token
    assert token_requests[0]["resource"] == mcp_server
    second = storage.tokens
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert _claims(second.access_token)["aud"] == mcp_server
    assert who2["sub"] == who3["sub"] == who["sub"]
    assert who2["expires_at"] > who["expires_at"]
    with live.db.engine.connect() as conn:
        old = conn.execute(select(RefreshToken).where(RefreshToken.token_hash == digest(first.refresh_token))).one()
        new = conn.execute(select(RefreshToken).where(RefreshToken.token_hash == digest(second.refresh_token))).one()
    assert old.used_at is not None  # rotated: the old one is spent
    assert new.parent_hash == old.token_hash and new.used_at is None
