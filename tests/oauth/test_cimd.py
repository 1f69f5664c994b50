"""Client ID metadata documents (spec-checklist B.4, A.2 item 11; issue 5 item 1).

Documents are served by a local HTTP server on loopback; the authorization
server under test runs with ``cimd_allow_loopback=True`` (the development
switch) except where the test checks that loopback is refused without it.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from authz_server.models import Client
from tests.conftest import Browser, pkce_pair, redirect_params

REDIRECT = "http://127.0.0.1:53682/callback"


class DocServer:
    """path -> (status, headers, body); counts GETs per path."""

    def __init__(self):
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: dict[str, int] = {}
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                docs.hits[self.path] = docs.hits.get(self.path, 0) + 1
                status, headers, body = docs.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if callable(body):
                    self.end_headers()
                    try:
                        body(self.wfile)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return self.base + path

    def serve_json(self, path, doc, headers=None):
        self.routes[path] = (200, {"Content-Type": "application/json", **(headers or {})},
                             json.dumps(doc).encode())

    def document(self, path, **overrides):
        doc = {
            "client_id": self.url(path),
            "client_name": "Agent CLI",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        doc.update(overrides)
        return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def docs():
    server = DocServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def cimd_live(make_server_with):
    return make_server_with(cimd_allow_loopback=True)


def _params(client_id, challenge, redirect_uri=REDIRECT, **extra):
    p = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
         "scope": "openid profile", "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256"}
    p.update(extra)
    return p


def _rows(live, client_id):
    with live.app.app_context():
        try:
            return live.db.session.get(Client, client_id)
        finally:
            live.db.session.remove()


def _assert_refused_at_authorize(live, client_id):
    """B.4 item 8: an error page, never a redirect (the redirect URIs are unverified)."""
    _, challenge = pkce_pair()
    resp = Browser(live).authorize(_params(client_id, challenge))
    assert resp.status_code == 400, (resp.status_code, resp.headers.get("Location"), resp.text[:300])
    assert "Location" not in resp.headers
    assert "text/html" in resp.headers["Content-Type"]
    assert _rows(live, client_id) is None


def _tokens(live, client_id, redirect_uri=REDIRECT):
    verifier, challenge = pkce_pair()
    resp = Browser(live).authorize(_params(client_id, challenge, redirect_uri=redirect_uri))
    params = redirect_params(resp)
    assert "code" in params, params
    assert resp.headers["Location"].startswith(redirect_uri)
    return requests.post(live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect_uri,
        "code_verifier": verifier, "client_id": client_id}, timeout=10)


# --- Happy path -----------------------------------------------------------

def test_b4_full_flow_with_a_cimd_public_client(cimd_live, docs):
    """B.4 items 3-7: a URL client_id is fetched, validated, authorized with
    consent, and redeemed with token_endpoint_auth_method none (client_id = URL)."""
    url = docs.url("/client.json")
    docs.serve_json("/client.json", docs.document("/client.json"))
    resp = _tokens(cimd_live, url)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"].lower() == "bearer" and body["access_token"] and body["refresh_token"]
    row = _rows(cimd_live, url)
    assert row is not None and row.registered_via == "cimd" and row.token_endpoint_auth_method == "none"
    assert row.client_secret_hash is None
    # The refresh token points at the row keyed by the URL.
    refreshed = requests.post(cimd_live.url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": url}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text


def test_b4_6_consent_shows_client_id_host_redirect_host_and_localhost_warning(cimd_live, docs):
    """B.4 item 6: consent shows client_name, the client_id host, the redirect
    host, and a warning for localhost-only clients."""
    docs.serve_json("/c.json", docs.document("/c.json", client_name="Handy Agent"))
    _, challenge = pkce_pair()
    b = Browser(cimd_live)
    resp = b.authorize(_params(docs.url("/c.json"), challenge), decision=None)
    assert resp.status_code == 200 and 'name="decision"' in resp.text, resp.text[:300]
    assert "Handy Agent" in resp.text
    assert "data-client-id-host" in resp.text and f"127.0.0.1:{docs.port}" in resp.text
    assert "127.0.0.1:53682" in resp.text  # redirect host
    assert "only returns to localhost" in resp.text
    assert "data-self-registered" in resp.text


def test_b4_9_metadata_advertises_cimd_and_none(live):
    """B.4 item 9: client_id_metadata_document_supported true and none listed."""
    meta = live.metadata()
    assert meta["client_id_metadata_document_supported"] is True
    assert "none" in meta["token_endpoint_auth_methods_supported"]


# --- Cache ----------------------------------------------------------------

def test_b4_5_cached_within_max_age(cimd_live, docs):
    """B.4 item 5: cached according to Cache-Control; a second authorization
    within max-age does not refetch."""
    url = docs.url("/cached.json")
    docs.serve_json("/cached.json", docs.document("/cached.json"), {"Cache-Control": "max-age=600"})
    assert _tokens(cimd_live, url).status_code == 200
    hits = docs.hits["/cached.json"]
    assert hits == 1
    assert _tokens(cimd_live, url).status_code == 200
    assert docs.hits["/cached.json"] == hits


def test_b4_5_errors_are_not_cached(cimd_live, docs):
    """B.4 item 5: never cache errors or invalid documents: a fixed document
    works on the next try."""
    url = docs.url("/fixme.json")
    docs.serve_json("/fixme.json", docs.document("/fixme.json", client_id=url + "x"))
    _assert_refused_at_authorize(cimd_live, url)
    assert docs.hits["/fixme.json"] == 1  # once per request, however often it is looked up
    docs.serve_json("/fixme.json", docs.document("/fixme.json"))
    assert _tokens(cimd_live, url).status_code == 200
    assert docs.hits["/fixme.json"] == 2


# --- Rejections (each: error page, nothing stored) ----------------------

def test_b4_3_redirect_is_not_followed(cimd_live, docs):
    """B.4 item 3: do not follow redirects; only 200 counts."""
    docs.serve_json("/real.json", docs.document("/moved.json"))
    docs.routes["/moved.json"] = (302, {"Location": docs.url("/real.json")}, b"")
    _assert_refused_at_authorize(cimd_live, docs.url("/moved.json"))
    assert "/real.json" not in docs.hits


def test_b4_3_non_200_refused(cimd_live, docs):
    """B.4 item 3: every status but 200 is an error."""
    _assert_refused_at_authorize(cimd_live, docs.url("/missing.json"))


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "192.168.1.10", "100.64.0.1", "[fd00::1]",
                                  "0.0.0.0", "224.0.0.1"])
def test_b4_3_private_and_special_use_addresses_refused(cimd_live, host):
    """B.4 item 3: SSRF guard, special-use/private ranges (RFC 6890) refused
    before any connection."""
    _assert_refused_at_authorize(cimd_live, f"https://{host}/client.json")


def test_b4_3_loopback_refused_without_dev_switch(live, docs):
    """B.4 item 3: loopback is only allowed with the development switch; a
    host named localhost is resolved and refused before connecting."""
    docs.serve_json("/local.json", docs.document("/local.json"))
    _assert_refused_at_authorize(live, f"https://localhost:{docs.port}/local.json")
    _assert_refused_at_authorize(live, docs.url("/local.json"))
    assert docs.hits == {}


def test_b4_3_body_cap_10mb_refused(cimd_live, docs):
    """B.4 item 3: a body cap of about 5 KB; a 10 MB document is refused and
    not read to the end (no Content-Length, streamed)."""
    written = []

    def stream(wfile):
        chunk = b" " * 65536
        for _ in range(160):  # 10 MB
            wfile.write(chunk)
            written.append(len(chunk))

    docs.routes["/huge.json"] = (200, {"Content-Type": "application/json"}, stream)
    _assert_refused_at_authorize(cimd_live, docs.url("/huge.json"))
    assert sum(written) < 10 * 1024 * 1024


def test_b4_3_large_content_length_refused(cimd_live, docs):
    """B.4 item 3: a declared body larger than the cap is refused."""
    doc = docs.document("/big.json", client_name="x" * 150, padding="y" * 6000)
    docs.serve_json("/big.json", doc)
    _assert_refused_at_authorize(cimd_live, docs.url("/big.json"))


def test_b4_4_client_id_must_be_string_identical(cimd_live, docs):
    """B.4 item 4: client_id in the document string-identical to the URL."""
    docs.serve_json("/liar.json", docs.document("/liar.json", client_id="https://victim.example/client.json"))
    _assert_refused_at_authorize(cimd_live, docs.url("/liar.json"))


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "client_secret_jwt"])
def test_a2_11_b4_4_shared_secret_methods_refused(cimd_live, docs, method):
    """A.2 item 11 / B.4 item 4: shared-secret methods are forbidden for CIMD clients."""
    docs.serve_json("/secret.json", docs.document("/secret.json", token_endpoint_auth_method=method))
    _assert_refused_at_authorize(cimd_live, docs.url("/secret.json"))


def test_b4_4_client_secret_member_refused(cimd_live, docs):
    """B.4 item 4: client_secret or client_secret_expires_at means reject."""
    docs.serve_json("/s.json", docs.document("/s.json", client_secret="hunter2"))
    _assert_refused_at_authorize(cimd_live, docs.url("/s.json"))


def test_b4_4_javascript_redirect_uri_refused(cimd_live, docs):
    """B.4 item 4 / item 28: each redirect URI must be valid; javascript: never."""
    docs.serve_json("/js.json", docs.document("/js.json", redirect_uris=["javascript:alert(1)"]))
    _assert_refused_at_authorize(cimd_live, docs.url("/js.json"))


@pytest.mark.parametrize("body", [b"<html>not json</html>", b"[1, 2]", b"\xff\xfe", b'"string"'])
def test_b4_4_body_must_be_a_json_object(cimd_live, docs, body):
    """B.4 item 4: the body is a valid JSON object."""
    docs.routes["/bad.json"] = (200, {"Content-Type": "application/json"}, body)
    _assert_refused_at_authorize(cimd_live, docs.url("/bad.json"))


@pytest.mark.parametrize("overrides", [
    {"redirect_uris": []}, {"redirect_uris": None}, {"client_name": None},
    {"grant_types": ["authorization_code", "password"]}, {"response_types": ["token"]},
])
def test_b4_4_required_members_and_supported_values(cimd_live, docs, overrides):
    """B.4 item 4: non-empty redirect_uris, client_name (MCP), grant and
    response types a subset of what is supported."""
    docs.serve_json("/m.json", docs.document("/m.json", **overrides))
    _assert_refused_at_authorize(cimd_live, docs.url("/m.json"))


@pytest.mark.parametrize("path", ["/", "/a/../client.json", "/./client.json", "/client.json?x=1",
                                  "/client.json#frag"])
def test_b4_1_url_shape_checked_on_raw_string(cimd_live, docs, path):
    """B.4 item 1: an https URL with a path; no dot segments, fragment or query
    (checked on the raw string)."""
    docs.routes["/client.json"] = (200, {}, b"{}")
    _assert_refused_at_authorize(cimd_live, docs.base + path)
    assert docs.hits == {}


def test_b4_1_userinfo_refused(cimd_live, docs):
    """B.4 item 1: no userinfo."""
    _assert_refused_at_authorize(cimd_live, f"http://user@127.0.0.1:{docs.port}/client.json")
    assert docs.hits == {}


def test_b4_6_redirect_uri_must_match_document(cimd_live, docs):
    """B.4 item 6: the redirect_uri must match a redirect_uris entry; otherwise
    an error page (no redirect)."""
    url = docs.url("/r.json")
    docs.serve_json("/r.json", docs.document("/r.json"))
    _, challenge = pkce_pair()
    resp = Browser(cimd_live).authorize(_params(url, challenge, redirect_uri="https://evil.example/cb"))
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_b4_7_token_endpoint_refuses_invalid_document(cimd_live, docs):
    """B.4 item 7: at /token a URL client_id whose document is invalid gets invalid_client."""
    url = docs.url("/t.json")
    docs.serve_json("/t.json", docs.document("/t.json", token_endpoint_auth_method="client_secret_post"))
    resp = requests.post(cimd_live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT, "code_verifier": "v" * 43,
        "client_id": url, "client_secret": "s"}, timeout=10)
    assert resp.status_code in (400, 401)
    assert resp.json()["error"] == "invalid_client"
    assert _rows(cimd_live, url) is None


def test_a2_11_secret_at_token_endpoint_refused_for_cimd_client(cimd_live, docs):
    """A.2 item 11: a request carrying client_secret for a CIMD client is refused."""
    url = docs.url("/p.json")
    docs.serve_json("/p.json", docs.document("/p.json"))
    resp = requests.post(cimd_live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT, "code_verifier": "v" * 43,
        "client_id": url, "client_secret": "guess"}, timeout=10)
    assert resp.status_code in (400, 401)
    assert resp.json()["error"] == "invalid_client"


# --- private_key_jwt (RFC 7523) -------------------------------------------

def _assertion(key, client_id, aud, **claims):
    import secrets
    import time as _time

    from joserfc import jwt

    now = int(_time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 120,
               "jti": secrets.token_hex(8)}
    payload.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, payload, key)


def test_a2_11_private_key_jwt_cimd_client(cimd_live, docs):
    """A.2 item 11 / B.4 item 7: a CIMD client whose document says
    private_key_jwt authenticates with a signed assertion verified against the
    document's keys; a replayed assertion, a wrong key, or a client_secret is refused."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    other = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    url = docs.url("/pkjwt.json")
    docs.serve_json("/pkjwt.json", docs.document("/pkjwt.json", token_endpoint_auth_method="private_key_jwt",
                                                 jwks={"keys": [key.as_dict(private=False)]}))
    verifier, challenge = pkce_pair()
    params = redirect_params(Browser(cimd_live).authorize(_params(url, challenge)))
    token_url = cimd_live.url + "/oauth/token"
    base = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": url,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    # Without an assertion ("none") or with a secret: invalid_client.
    for extra in ({}, {"client_secret": "guess"}):
        data = {k: v for k, v in base.items() if k != "client_assertion_type"}
        resp = requests.post(token_url, data={**data, **extra}, timeout=10)
        assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_client", resp.text
    # Signed by a key the document does not publish.
    resp = requests.post(token_url, data={**base, "client_assertion": _assertion(other, url, token_url)}, timeout=10)
    assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_client", resp.text
    good = _assertion(key, url, token_url)
    resp = requests.post(token_url, data={**base, "client_assertion": good}, timeout=10)
    assert resp.status_code == 200, resp.text
    row = _rows(cimd_live, url)
    assert row.token_endpoint_auth_method == "private_key_jwt" and row.client_type == "third_party"
    # RFC 7523 §3 item 7: the same jti is not accepted twice.
    resp = requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": resp.json()["refresh_token"],
                                          "client_id": url, "client_assertion_type": base["client_assertion_type"],
                                          "client_assertion": good}, timeout=10)
    assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_client", resp.text


@pytest.mark.parametrize("jwks", [None, {"keys": []}, "not-an-object"])
def test_a2_11_private_key_jwt_without_keys_refused(cimd_live, docs, jwks):
    """B.4 item 4: private_key_jwt only with published keys (inline jwks here)."""
    docs.serve_json("/nokeys.json", docs.document("/nokeys.json", token_endpoint_auth_method="private_key_jwt",
                                                  jwks=jwks))
    _assert_refused_at_authorize(cimd_live, docs.url("/nokeys.json"))


def test_a2_11_private_key_jwt_private_key_in_document_refused(cimd_live, docs):
    """A published private key is no public key: refused."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    docs.serve_json("/priv.json", docs.document("/priv.json", token_endpoint_auth_method="private_key_jwt",
                                                jwks={"keys": [key.as_dict(private=True)]}))
    _assert_refused_at_authorize(cimd_live, docs.url("/priv.json"))


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "localhost", "100.64.0.1", "::ffff:10.0.0.1"])
def test_b4_3_refused_addresses_are_refused_before_connecting(host):
    """B.4 item 3: the SSRF guard refuses on the resolved address, before any
    connection (so the HTTP tests above cannot have passed by timing out)."""
    from authz_server.oauth.registration import cimd

    with pytest.raises(cimd.CimdError, match="refused address"):
        cimd.resolve(host, 443, allow_loopback=False)
