"""Client ID metadata documents (docs/requirements.md: B.4, A.2 item 11; issue 5 item 1).

Documents are served by a local HTTP server on loopback; the authorization
server under test runs with ``cimd_allow_loopback=True`` (the development
switch) except where the test checks that loopback is refused without it.
"""
from __future__ import annotations

import json
import logging
import socket
import threading

import pytest
import requests

from authz_server.models import Client
from tests.browser import Browser
from tests.cimd_docs import (ASSERTION_TYPE, REDIRECT, DocServer, assertion as _assertion, cimd_params as _params,
                             code_for as _code, ec_key as _ec)
from tests.helpers import oauth_error, pkce_pair, redirect_params

@pytest.fixture
def docs():
    server = DocServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def cimd_live(make_server_with):
    return make_server_with(cimd_allow_loopback=True)


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
    return resp


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


def _ten_megabytes(written: list):
    """A response body of 10 MB streamed without Content-Length; ``written``
    collects the size of each chunk the server managed to send."""
    def stream(wfile):
        chunk = b" " * 65536
        for _ in range(160):
            wfile.write(chunk)
            written.append(len(chunk))

    return stream


def test_b4_3_body_cap_10mb_refused(cimd_live, docs):
    """B.4 item 3: a body cap of about 5 KB; a 10 MB document is refused and
    not read to the end (no Content-Length, streamed)."""
    written = []
    docs.routes["/huge.json"] = (200, {"Content-Type": "application/json"}, _ten_megabytes(written))
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
    oauth_error(resp, 400, "invalid_client")
    assert _rows(cimd_live, url) is None


def test_a2_11_secret_at_token_endpoint_refused_for_cimd_client(cimd_live, docs):
    """A.2 item 11: a request carrying client_secret for a CIMD client is refused."""
    url = docs.url("/p.json")
    docs.serve_json("/p.json", docs.document("/p.json"))
    resp = requests.post(cimd_live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT, "code_verifier": "v" * 43,
        "client_id": url, "client_secret": "guess"}, timeout=10)
    oauth_error(resp, 401, "invalid_client")


# --- private_key_jwt (RFC 7523) -------------------------------------------

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
        oauth_error(resp, 401, "invalid_client")
    # Signed by a key the document does not publish.
    resp = requests.post(token_url, data={**base, "client_assertion": _assertion(other, url, token_url)}, timeout=10)
    oauth_error(resp, 400, "invalid_client")
    good = _assertion(key, url, token_url)
    resp = requests.post(token_url, data={**base, "client_assertion": good}, timeout=10)
    assert resp.status_code == 200, resp.text
    row = _rows(cimd_live, url)
    assert row.token_endpoint_auth_method == "private_key_jwt" and row.client_type == "third_party"
    # RFC 7523 §3 item 7: the same jti is not accepted twice.
    resp = requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": resp.json()["refresh_token"],
                                          "client_id": url, "client_assertion_type": base["client_assertion_type"],
                                          "client_assertion": good}, timeout=10)
    oauth_error(resp, 400, "invalid_client")


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


# --- private_key_jwt with jwks_uri (RFC 7591 §2, RFC 7523 §2.2) ------------

def _public_set(*keys):
    return {"keys": [k.as_dict(private=False) for k in keys]}


def _jwks_uri_client(docs, path, jwks_path, **overrides):
    """A private_key_jwt document at ``path`` whose keys are at ``jwks_path``."""
    docs.serve_json(path, docs.document(path, token_endpoint_auth_method="private_key_jwt",
                                        jwks_uri=docs.url(jwks_path), **overrides))
    return docs.url(path)


def _post_with_assertion(live, client_id, key, **data):
    token_url = live.url + "/oauth/token"
    return requests.post(token_url, data={**data, "client_id": client_id, "client_assertion_type": ASSERTION_TYPE,
                                          "client_assertion": _assertion(key, client_id, token_url)}, timeout=10)


def _refresh_with(live, client_id, key, refresh_token):
    return _post_with_assertion(live, client_id, key, grant_type="refresh_token", refresh_token=refresh_token)


def _invalid_client(resp):
    oauth_error(resp, 400, "invalid_client")


def test_a2_11_private_key_jwt_with_jwks_uri(cimd_live, docs):
    """A.2 item 11 / B.4 item 7: a CIMD client publishing its keys at jwks_uri
    redeems a code with an assertion (Authlib's private_key_jwt client) whose
    key is served by URL; the key set is fetched once and cached; a key the set
    does not hold is refused."""
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    key, other = _ec("k1"), _ec("k1")
    docs.serve_json("/keys/jwks.json", _public_set(key), {"Cache-Control": "max-age=600"})
    url = _jwks_uri_client(docs, "/jwks-client.json", "/keys/jwks.json")
    code, verifier = _code(cimd_live, url)
    assert docs.hits["/keys/jwks.json"] == 1  # checked before the client was accepted
    token_url = cimd_live.url + "/oauth/token"
    # Same kid, another key: the signature does not verify.
    _invalid_client(_post_with_assertion(cimd_live, url, other, grant_type="authorization_code", code=code,
                                         redirect_uri=REDIRECT, code_verifier=verifier))
    session = OAuth2Session(client_id=url, client_secret=key, token_endpoint_auth_method="private_key_jwt",
                            redirect_uri=REDIRECT)
    session.register_client_auth_method(PrivateKeyJWT(token_url, headers={"kid": "k1"}, alg="ES256"))
    token = session.fetch_token(token_url, grant_type="authorization_code", code=code, code_verifier=verifier)
    assert token["access_token"] and token["refresh_token"]
    refreshed = session.refresh_token(token_url)
    assert refreshed["access_token"] != token["access_token"]
    assert docs.hits["/keys/jwks.json"] == 1  # served from the cache (max-age=600)
    row = _rows(cimd_live, url)
    assert row.token_endpoint_auth_method == "private_key_jwt" and row.client_type == "third_party"
    assert row.client_secret_hash is None


def test_a2_11_jwks_uri_kid_rotation_refetches_once(cimd_live, docs):
    """An assertion whose kid the cached set lacks refetches the jwks_uri once,
    at most once per JWKS_REFETCH_SECONDS per client: right after a fetch an
    unknown kid costs no fetch (anyone can send one), later it finds the
    rotated key, and a further unknown kid again costs nothing."""
    import datetime as dt

    import time_machine

    from authz_server.oauth.registration import cimd

    k1, k2, k3 = _ec("k1"), _ec("k2"), _ec("k3")
    docs.serve_json("/rot/jwks.json", _public_set(k1), {"Cache-Control": "max-age=3600"})
    url = _jwks_uri_client(docs, "/rot.json", "/rot/jwks.json")
    # The whole flow on one frozen clock: the caches stamp entries with it.
    with time_machine.travel(dt.datetime.now(dt.timezone.utc), tick=False) as clock:
        code, verifier = _code(cimd_live, url)
        resp = _post_with_assertion(cimd_live, url, k1, grant_type="authorization_code", code=code,
                                    redirect_uri=REDIRECT, code_verifier=verifier)
        assert resp.status_code == 200, resp.text
        refresh = resp.json()["refresh_token"]
        assert docs.hits["/rot/jwks.json"] == 1
        # The client rotates k1 -> k2.
        docs.serve_json("/rot/jwks.json", _public_set(k2), {"Cache-Control": "max-age=3600"})
        _invalid_client(_refresh_with(cimd_live, url, k2, refresh))
        assert docs.hits["/rot/jwks.json"] == 1  # rate-limited: the last fetch is too recent
        clock.shift(cimd.JWKS_REFETCH_SECONDS + 1)
        resp = _refresh_with(cimd_live, url, k2, refresh)
        assert resp.status_code == 200, resp.text
        refresh = resp.json()["refresh_token"]
        assert docs.hits["/rot/jwks.json"] == 2  # one refetch, not a cache expiry (max-age=3600)
        # The retired key and a never-published one: refused, no further fetch.
        _invalid_client(_refresh_with(cimd_live, url, k1, refresh))
        _invalid_client(_refresh_with(cimd_live, url, k3, refresh))
        assert _refresh_with(cimd_live, url, k2, refresh).status_code == 200
        assert docs.hits["/rot/jwks.json"] == 2
        assert docs.hits["/rot.json"] == 1  # the document itself was not refetched


def _assert_jwks_uri_refused(live, url, key, caplog, reason):
    """The client is refused at /authorize (error page, no redirect) and at
    /token (invalid_client), nothing is stored, and the log says why."""
    caplog.set_level(logging.INFO, logger="authz_server.oauth.registration.cimd")
    page = _assert_refused_at_authorize(live, url)
    assert "error: invalid_client" in page.text
    _invalid_client(_post_with_assertion(live, url, key, grant_type="authorization_code", code="x",
                                         redirect_uri=REDIRECT, code_verifier="v" * 43))
    assert _rows(live, url) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any(reason in m for m in messages), messages


def test_b4_3_jwks_uri_redirect_is_not_followed(cimd_live, docs, caplog):
    """B.4 item 3 for the key set: a redirect is an error, never followed."""
    key = _ec("k1")
    docs.serve_json("/real/jwks.json", _public_set(key))
    docs.routes["/moved/jwks.json"] = (302, {"Location": docs.url("/real/jwks.json")}, b"")
    url = _jwks_uri_client(docs, "/moved.json", "/moved/jwks.json")
    _assert_jwks_uri_refused(cimd_live, url, key, caplog, "jwks_uri answered 302")
    assert "/real/jwks.json" not in docs.hits


@pytest.mark.parametrize("jwks_uri,reason", [
    ("https://10.0.0.1/jwks.json", "refused address"),
    ("https://169.254.169.254/latest/jwks.json", "refused address"),
    ("https://[fd00::1]/jwks.json", "refused address"),
    ("https://100.64.0.1/jwks.json", "refused address"),
    ("http://keys.example/jwks.json", "jwks_uri must use https"),
    ("https://keys.example/jwks.json#k", "jwks_uri must not have a fragment"),
])
def test_b4_3_jwks_uri_private_addresses_refused(cimd_live, docs, caplog, jwks_uri, reason):
    """B.4 item 3 for the key set: https only, and special-use/private ranges
    refused on the address, before connecting (even with the loopback switch)."""
    docs.serve_json("/priv-keys.json", docs.document("/priv-keys.json", token_endpoint_auth_method="private_key_jwt",
                                                     jwks_uri=jwks_uri))
    _assert_jwks_uri_refused(cimd_live, docs.url("/priv-keys.json"), _ec("k1"), caplog, reason)


def test_b4_3_jwks_uri_on_loopback_refused_without_dev_switch(docs):
    """Without AUTHZ_CIMD_ALLOW_LOOPBACK a jwks_uri on loopback is refused: http
    by its scheme, a name resolving to loopback on its address, before any
    connection (the document fetcher's guards, reused)."""
    from authz_server.oauth.registration import cimd

    key = _ec("k1")
    docs.serve_json("/local/jwks.json", _public_set(key))
    doc = json.dumps(docs.document("/c.json", token_endpoint_auth_method="private_key_jwt",
                                   jwks_uri=docs.url("/local/jwks.json"))).encode()
    with pytest.raises(cimd.CimdError, match="jwks_uri must use https"):
        cimd.validate(docs.url("/c.json"), doc, allow_loopback=False)
    assert cimd.validate(docs.url("/c.json"), doc, allow_loopback=True).jwks_uri == docs.url("/local/jwks.json")
    with pytest.raises(cimd.CimdError, match="jwks_uri host resolves to a refused address"):
        cimd.fetch(f"https://localhost:{docs.port}/local/jwks.json", allow_loopback=False,
                   max_body=cimd.MAX_JWKS_BODY, what="jwks_uri")
    assert docs.hits == {}


def test_b4_3_jwks_uri_body_cap(cimd_live, docs, caplog):
    """B.4 item 3 for the key set: a 10 MB stream is refused without being read
    to the end; a declared Content-Length over the cap is refused too."""
    from authz_server.oauth.registration import cimd

    key = _ec("k1")
    written = []
    docs.routes["/huge/jwks.json"] = (200, {"Content-Type": "application/json"}, _ten_megabytes(written))
    url = _jwks_uri_client(docs, "/huge-keys.json", "/huge/jwks.json")
    _assert_jwks_uri_refused(cimd_live, url, key, caplog, "jwks_uri serves a body that is too large")
    assert sum(written) < 10 * 1024 * 1024
    # Padding a valid set past the cap (whitespace keeps it valid JSON).
    padded = json.dumps(_public_set(key)).encode() + b" " * cimd.MAX_JWKS_BODY
    docs.routes["/big/jwks.json"] = (200, {"Content-Type": "application/json"}, padded)
    url = _jwks_uri_client(docs, "/big-keys.json", "/big/jwks.json")
    caplog.clear()
    _assert_jwks_uri_refused(cimd_live, url, key, caplog, "jwks_uri serves a body that is too large")


def test_a2_11_jwks_uri_with_private_key_refused(cimd_live, docs, caplog):
    """A key set holding private key material (``d``) is no public key set:
    the whole client is refused, even when other keys are public."""
    public, leaked = _ec("k1"), _ec("k2")
    docs.serve_json("/leak/jwks.json", {"keys": [public.as_dict(private=False), leaked.as_dict(private=True)]})
    url = _jwks_uri_client(docs, "/leak.json", "/leak/jwks.json")
    _assert_jwks_uri_refused(cimd_live, url, public, caplog, "must hold public keys only")


def test_a2_11_jwks_and_jwks_uri_together_refused(cimd_live, docs, caplog):
    """RFC 7591 §2: jwks and jwks_uri MUST NOT both be present; the jwks_uri is
    not even fetched."""
    key = _ec("k1")
    docs.serve_json("/both/jwks.json", _public_set(key))
    url = _jwks_uri_client(docs, "/both.json", "/both/jwks.json", jwks=_public_set(key))
    _assert_jwks_uri_refused(cimd_live, url, key, caplog, "jwks and jwks_uri must not both be present")
    assert "/both/jwks.json" not in docs.hits


def test_b4_5_failed_jwks_fetch_is_not_cached(cimd_live, docs):
    """B.4 item 5 for the key set: a failed fetch refuses the client for that
    request only (one fetch per request) and is not remembered: once the set is
    served, the next request fetches it again and the client works. The same
    when the cached set expires (its own max-age, the document still fresh) and
    the refetch fails."""
    import datetime as dt

    import time_machine

    key = _ec("k1")
    docs.routes["/flaky/jwks.json"] = (500, {}, b"oops")
    url = _jwks_uri_client(docs, "/flaky.json", "/flaky/jwks.json")
    with time_machine.travel(dt.datetime.now(dt.timezone.utc), tick=False) as clock:
        _assert_refused_at_authorize(cimd_live, url)
        assert docs.hits["/flaky/jwks.json"] == 1
        docs.serve_json("/flaky/jwks.json", _public_set(key), {"Cache-Control": "max-age=60"})
        code, verifier = _code(cimd_live, url)
        assert docs.hits["/flaky/jwks.json"] == 2
        resp = _post_with_assertion(cimd_live, url, key, grant_type="authorization_code", code=code,
                                    redirect_uri=REDIRECT, code_verifier=verifier)
        assert resp.status_code == 200, resp.text
        refresh = resp.json()["refresh_token"]
        # The set expires (60 s) before the document (300 s by default); its refetch fails.
        docs.routes["/flaky/jwks.json"] = (503, {}, b"down")
        clock.shift(61)
        _invalid_client(_refresh_with(cimd_live, url, key, refresh))
        assert docs.hits["/flaky/jwks.json"] == 3
        docs.serve_json("/flaky/jwks.json", _public_set(key), {"Cache-Control": "max-age=60"})
        resp = _refresh_with(cimd_live, url, key, refresh)
        assert resp.status_code == 200, resp.text
        assert docs.hits["/flaky/jwks.json"] == 4


# --- One deadline per fetch; first fetches limited; garbage collection ---

def _drip(data: bytes, every: float = 0.5):
    """A raw response writer sending ``data`` one byte per ``every`` seconds:
    each receive gets a byte long before any socket timeout."""
    import time

    def write(wfile):
        for i in range(len(data)):
            wfile.write(data[i:i + 1])
            wfile.flush()
            time.sleep(every)

    return write


DRIPPED_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n{}"


def test_cimd_slow_document_server_is_cut_at_one_deadline(cimd_live, docs, caplog):
    """A document server that drips its header bytes one per
    0.5 s (every receive succeeds, so a per-operation timeout never fires)
    holds /oauth/authorize no longer than the one 3 s deadline of the fetch:
    an error page within ~3.5 s, nothing stored, the log says why."""
    import time

    caplog.set_level(logging.INFO, logger="authz_server.oauth.registration.cimd")
    docs.routes["/drip.json"] = _drip(DRIPPED_HEADERS)
    url = docs.url("/drip.json")
    started = time.monotonic()
    _assert_refused_at_authorize(cimd_live, url)
    elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 3.5, elapsed
    assert docs.hits["/drip.json"] == 1
    assert any("took too long" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_cimd_slow_jwks_uri_is_cut_at_the_same_deadline(cimd_live, docs, caplog):
    """The jwks_uri fetch shares the deadline with the document:
    a key set dripped byte by byte refuses the client within ~3.5 s in all."""
    import time

    caplog.set_level(logging.INFO, logger="authz_server.oauth.registration.cimd")
    docs.routes["/drip/jwks.json"] = _drip(DRIPPED_HEADERS)
    url = _jwks_uri_client(docs, "/drip-keys.json", "/drip/jwks.json")
    started = time.monotonic()
    _assert_refused_at_authorize(cimd_live, url)
    assert time.monotonic() - started < 3.5
    assert docs.hits["/drip/jwks.json"] == 1
    assert any("jwks_uri took too long" in r.getMessage() for r in caplog.records)


class NameServer:
    """A DNS server on 127.0.0.1 (UDP) for the names of a test: A records from
    ``records`` (no AAAA), NXDOMAIN for other names, and no answer at all for
    names starting with "hang" (an attacker's name server that never answers).
    ``asked`` lists the names queried."""

    def __init__(self):
        self.records: dict[str, str] = {}
        self.asked: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import dns.exception
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
                query = dns.message.from_wire(data)
            except (OSError, ValueError, dns.exception.DNSException):
                continue
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            self.asked.append(name)
            if name.startswith("hang"):
                continue
            response = dns.message.make_response(query)
            if name not in self.records:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", self.records[name]))
            self.sock.sendto(response.to_wire(), peer)

    def resolver(self):
        import dns.asyncresolver

        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        return resolver

    def getaddrinfo(self, host, port, *args, **kwargs):
        """The C library's lookup of ``host`` through this server: it waits
        (10 s, "timeout:5 attempts:2") for an answer that never comes."""
        import dns.exception
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        try:
            answer = resolver.resolve(host, "A", lifetime=10, search=False)
        except dns.resolver.NXDOMAIN:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        except dns.exception.Timeout:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution") from None
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (r.address, port)) for r in answer]


@pytest.fixture
def name_server(monkeypatch):
    """The fetcher asks a NameServer instead of the system's; so does the
    system resolver (getaddrinfo) for names under .test, so a fetcher that
    went back to it would wait as it would in production."""
    from authz_server.oauth.registration import cimd

    server = NameServer()
    monkeypatch.setattr(cimd, "_dns_resolver", server.resolver)
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.rstrip(".").endswith(".test"):
            return server.getaddrinfo(host, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield server
    server.stopped.set()
    server.sock.close()


def test_cimd_dns_lookup_is_inside_the_deadline(name_server):
    """The host name lookup counts against the deadline too: a name
    server that never answers is given up at the deadline."""
    import time

    from authz_server.oauth.registration import cimd

    started = time.monotonic()
    with pytest.raises(cimd.CimdError, match="did not resolve in time"):
        cimd.fetch("https://hang.test/client.json", allow_loopback=False, timeout=1)
    assert time.monotonic() - started < 1.2
    assert "hang.test" in name_server.asked
    name_server.records["nowhere.test"] = "10.0.0.1"
    with pytest.raises(cimd.CimdError, match=r"refused address \(10.0.0.1\)"):
        cimd.fetch("https://nowhere.test/client.json", allow_loopback=False, timeout=1)
    with pytest.raises(cimd.CimdError, match="host does not resolve"):
        cimd.fetch("https://unknown.test/client.json", allow_loopback=False, timeout=1)


def test_cimd_hanging_dns_lookups_do_not_starve_other_clients_lookups(make_server_with, name_server, tmp_path,
                                                                       monkeypatch):
    """Twelve /oauth/authorize requests whose client_id hosts an attacker's
    name server never answers are in flight, each held to the 3 s deadline;
    meanwhile a client whose name resolves is fetched at once (no shared pool
    of lookup threads for the hanging ones to fill)."""
    import ssl
    import time

    live = make_server_with(cimd_allow_loopback=True, cimd_fetch_rate=0)
    cert_file, key_file = _tls_files(tmp_path, "good.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    good = DocServer("127.0.0.1", context)
    name_server.records["good.test"] = "127.0.0.1"
    try:
        url = f"https://good.test:{good.port}/client.json"
        good.serve_json("/client.json", dict(good.document("/client.json"), client_id=url))
        hanging = [f"hang-{i}.test" for i in range(12)]
        results = {}

        def authorize(host):
            _, challenge = pkce_pair()
            started = time.monotonic()
            resp = requests.get(live.url + "/oauth/authorize", params=_params(f"https://{host}/client.json", challenge),
                                allow_redirects=False, timeout=20)
            results[host] = (resp.status_code, time.monotonic() - started)

        threads = [threading.Thread(target=authorize, args=(host,)) for host in hanging]
        for t in threads:
            t.start()
        waited = time.monotonic()
        while not set(hanging) <= set(name_server.asked) and time.monotonic() - waited < 2:
            time.sleep(0.05)
        _, challenge = pkce_pair()
        started = time.monotonic()
        resp = requests.get(live.url + "/oauth/authorize", params=_params(url, challenge), allow_redirects=False,
                            timeout=20)
        elapsed = time.monotonic() - started
        assert resp.status_code in (302, 303) and resp.headers["Location"].startswith("/login"), \
            (resp.status_code, resp.text[:300])
        assert elapsed < 1.5, elapsed
        assert good.hits == {"/client.json": 1}
        for t in threads:
            t.join(10)
        assert set(hanging) <= set(name_server.asked)
        for host in hanging:
            status, took = results[host]
            assert status == 400 and 2.5 < took < 3.5, (host, status, took)
    finally:
        good.httpd.shutdown()
        good.httpd.server_close()


def test_cimd_hosts_file_names_and_ip_literals_are_not_asked_of_dns(name_server, tmp_path, monkeypatch):
    """Names the hosts file lists are answered from it (all their addresses
    checked), localhost names are loopback even when it does not list them
    (RFC 6761 §6.3), IP literals are taken as they are: none is asked of DNS."""
    from authz_server.oauth.registration import cimd

    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n127.0.0.1 docs.internal  # trailing\n"
                     "8.8.8.8 mixed.internal\n10.1.2.3 mixed.internal\n")
    monkeypatch.setattr(cimd, "HOSTS_FILE", str(hosts))
    assert cimd.resolve("docs.internal", 443, allow_loopback=True) == "127.0.0.1"
    assert cimd.resolve("DOCS.internal.", 443, allow_loopback=True) == "127.0.0.1"
    with pytest.raises(cimd.CimdError, match="refused address"):
        cimd.resolve("docs.internal", 443, allow_loopback=False)
    with pytest.raises(cimd.CimdError, match=r"refused address \(10.1.2.3\)"):
        cimd.resolve("mixed.internal", 443, allow_loopback=True)
    assert cimd.resolve("localhost", 443, allow_loopback=True) in ("127.0.0.1", "::1")
    assert cimd.resolve("app.localhost", 443, allow_loopback=True) in ("127.0.0.1", "::1")
    assert cimd.resolve("127.0.0.1", 443, allow_loopback=True) == "127.0.0.1"
    assert cimd.resolve("::1", 443, allow_loopback=True) == "::1"
    assert name_server.asked == []
    # The file is read again when it changes.
    hosts.write_text("127.0.0.2 docs.internal other.internal\n")
    assert cimd.resolve("other.internal", 443, allow_loopback=True) == "127.0.0.2"
    assert name_server.asked == []


def _tls_files(tmp_path, name):
    """A self-signed certificate for ``name`` and its key, as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_cimd_fetch_pins_the_checked_address_and_verifies_tls_for_the_host_name(tmp_path, monkeypatch):
    """The fetcher connects to the address it checked, while TLS sends the URL's
    host name (SNI) and verifies the certificate against it: a document served
    with a certificate for the name is fetched, one for another name is not."""
    import ssl

    from authz_server.oauth.registration import cimd

    ip = cimd.resolve("localhost", 443, allow_loopback=True)
    seen_sni = []

    def serve(cert_name):
        cert_file, key_file = _tls_files(tmp_path, cert_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
        return DocServer(ip, context), cert_file

    good, cert_file = serve("localhost")
    other, other_cert = serve("other.example")
    try:
        port = good.httpd.server_address[1]
        url = f"https://localhost:{port}/client.json"
        good.serve_json("/client.json", {"client_id": url})
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        body, _ = cimd.fetch(url, allow_loopback=True)
        assert json.loads(body) == {"client_id": url}
        assert seen_sni == ["localhost"]
        # Trusted, but issued for another name: refused before any request.
        monkeypatch.setenv("SSL_CERT_FILE", str(other_cert))
        with pytest.raises(cimd.CimdError, match="could not be fetched"):
            cimd.fetch(f"https://localhost:{other.httpd.server_address[1]}/client.json", allow_loopback=True)
        assert other.hits == {}
    finally:
        for docs in (good, other):
            docs.httpd.shutdown()
            docs.httpd.server_close()


@pytest.mark.parametrize("drips", ["tls_handshake", "headers"])
def test_cimd_deadline_holds_when_the_connection_is_made_late_and_the_server_drips(tmp_path, monkeypatch, drips):
    """The deadline holds whichever phase it runs out in. The server's accept
    queue is full, so the fetcher's connection is only made when its kernel
    retries (after about 1 s), close to the 1.5 s deadline; then the server
    drips its TLS handshake a byte at a time, or completes the handshake just
    after the deadline and drips its headers. The fetch fails "took too long"
    within the deadline and a little slack."""
    import ssl
    import time

    from authz_server.oauth.registration import cimd

    timeout = 1.5
    cert_file, key_file = _tls_files(tmp_path, "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    ip = cimd.resolve("localhost", 443, allow_loopback=True)
    listener = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    listener.bind((ip, 0))
    listener.listen(0)  # room for one waiting connection: the next SYN is dropped
    port = listener.getsockname()[1]
    queued = socket.create_connection((ip, port), timeout=5)
    seen = {}

    def serve():
        time.sleep(0.5)
        listener.accept()[0].close()  # room again, for the fetcher's retried SYN
        conn, _ = listener.accept()
        seen["connected"] = time.monotonic() - started
        try:
            if drips == "tls_handshake":
                data = b"\x16\x03\x03\x40\x00" + b"\x02" * 100  # a 16 KiB handshake record, slowly
            else:
                time.sleep(max(0.0, started + timeout + 0.1 - time.monotonic()))
                conn = context.wrap_socket(conn, server_side=True)
                data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 40 + b"\r\n\r\n{}"
            for i in range(len(data)):
                conn.sendall(data[i:i + 1])
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    server = threading.Thread(target=serve, daemon=True)
    started = time.monotonic()
    server.start()
    try:
        with pytest.raises(cimd.CimdError, match="took too long"):
            cimd.fetch(f"https://localhost:{port}/client.json", allow_loopback=True, timeout=timeout)
        elapsed = time.monotonic() - started
        assert elapsed < timeout + 0.3, elapsed
        assert 0.8 < seen["connected"] < timeout, seen  # the connection was made late
    finally:
        server.join(15)
        queued.close()
        listener.close()


def _assert_429_page(resp):
    assert resp.status_code == 429, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("text/html") and "Location" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Too many requests" in resp.text and f"Wait {resp.headers['Retry-After']} seconds" in resp.text
    return int(resp.headers["Retry-After"])


def test_cimd_first_fetches_are_rate_limited_per_source(make_server_with, docs):
    """Fetching a document not cached yet costs the caller's
    source one of AUTHZ_CIMD_FETCH_RATE a minute (a failed document is never
    cached, so each try costs one). Past it: a 429 page at /oauth/authorize
    and 429 JSON at the token endpoint, with Retry-After, and no fetch. A
    cached document costs nothing, another source has its own budget, and the
    budget refills (frozen clock)."""
    import datetime as dt

    import time_machine

    live = make_server_with(cimd_allow_loopback=True, cimd_fetch_rate=2, trusted_proxies=1)
    for name in ("a", "b", "c"):
        docs.serve_json(f"/{name}.json", docs.document(f"/{name}.json"))
    _, challenge = pkce_pair()

    def authorize(name, source="203.0.113.1"):
        return requests.get(live.url + "/oauth/authorize", params=_params(docs.url(f"/{name}.json"), challenge),
                            headers={"X-Forwarded-For": source}, allow_redirects=False, timeout=10)

    with time_machine.travel(dt.datetime.now(dt.timezone.utc), tick=False) as clock:
        docs.routes["/broken.json"] = (500, {}, b"oops")
        assert authorize("broken").status_code == 400
        assert authorize("a").headers["Location"].startswith("/login")  # fetched and cached
        assert _assert_429_page(authorize("b")) == 30
        assert "/b.json" not in docs.hits
        # Cached: no fetch, no cost.
        assert authorize("a").headers["Location"].startswith("/login")
        assert docs.hits["/a.json"] == 1
        # The token endpoint looks clients up too: the same budget, as JSON.
        resp = requests.post(live.url + "/oauth/token", headers={"X-Forwarded-For": "203.0.113.1"}, timeout=10,
                             data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
                                   "code_verifier": "v" * 43, "client_id": docs.url("/c.json")})
        assert resp.status_code == 429 and resp.json()["error"] == "temporarily_unavailable", resp.text
        assert resp.headers["Retry-After"] == "30" and resp.headers["Cache-Control"] == "no-store"
        assert "/c.json" not in docs.hits
        # Another source is not held back by the first one's budget.
        assert authorize("b", source="198.51.100.7").headers["Location"].startswith("/login")
        clock.shift(31)
        assert authorize("c").headers["Location"].startswith("/login")
    assert docs.hits == {"/broken.json": 1, "/a.json": 1, "/b.json": 1, "/c.json": 1}


def _gc_cli(live, *args):
    from click.testing import CliRunner

    from authz_server.cli import main as cli

    env = {"DATABASE_URL": live.settings.database_url, "AUTHZ_ENV": "development", "AUTHZ_ISSUER": None,
           "AUTHZ_SECRET_KEY": None, "AUTHZ_KEY_ENCRYPTION_KEY": None, "AUTHZ_CIMD_CLIENT_TTL_DAYS": None}
    res = CliRunner().invoke(cli, ["clients", "gc", *args], env=env)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_cimd_clients_without_grants_are_garbage_collected(cimd_live, docs):
    """Anyone can make the server store a CIMD row (one per URL
    they publish). `clients gc` deletes the rows that never got a grant once
    their document was not fetched for AUTHZ_CIMD_CLIENT_TTL_DAYS (7; frozen
    clock), in one statement, audited; rows with a grant, with a code waiting
    to be redeemed, or fetched lately stay. A deleted client that comes back
    is fetched and stored again."""
    import datetime as dt

    import time_machine
    from sqlalchemy import select, update

    from authz_server.models import AuditEvent

    start = dt.datetime.now(dt.timezone.utc)
    for name in ("drive-by", "approved", "pending", "recent"):
        docs.serve_json(f"/{name}.json", docs.document(f"/{name}.json"))
    _, challenge = pkce_pair()
    drive_by = docs.url("/drive-by.json")
    page = requests.get(cimd_live.url + "/oauth/authorize", params=_params(drive_by, challenge),
                        allow_redirects=False, timeout=10)
    assert page.status_code == 302 and _rows(cimd_live, drive_by) is not None  # stored, never approved
    approved = docs.url("/approved.json")
    assert _tokens(cimd_live, approved).status_code == 200
    pending = docs.url("/pending.json")
    _code(cimd_live, pending)  # approved just now, the code not redeemed yet
    with cimd_live.app.app_context():
        s = cimd_live.db.session
        s.execute(update(Client).where(Client.client_id.in_([drive_by, approved, pending]))
                  .values(updated_at=start - dt.timedelta(days=8)))
        s.commit()
        s.remove()
    with time_machine.travel(start + dt.timedelta(days=1), tick=True):
        docs.serve_json("/recent.json", docs.document("/recent.json"))
        recent = docs.url("/recent.json")
        requests.get(cimd_live.url + "/oauth/authorize", params=_params(recent, challenge),
                     allow_redirects=False, timeout=10)
    assert _rows(cimd_live, recent) is not None

    out = _gc_cli(cimd_live, "--dry-run")
    assert f"would delete {drive_by}" in out and "1 client metadata document client(s)" in out, out
    assert _rows(cimd_live, drive_by) is not None
    out = _gc_cli(cimd_live)
    assert f"deleted {drive_by}" in out and "1 client metadata document client(s) without grants" in out, out
    assert _rows(cimd_live, drive_by) is None
    assert all(_rows(cimd_live, cid) is not None for cid in (approved, pending, recent))
    with cimd_live.app.app_context():
        events = cimd_live.db.session.scalars(select(AuditEvent).where(AuditEvent.event == "client_deleted")).all()
        cimd_live.db.session.remove()
    assert [(e.client_id, e.actor, e.details["rule"]) for e in events] == [(drive_by, "gc", "cimd_unused")]

    # The code expires (60 s) and the recent row ages: both go 8 days on.
    with time_machine.travel(start + dt.timedelta(days=9), tick=True):
        out = _gc_cli(cimd_live)
        assert "2 client metadata document client(s)" in out, out
        assert _rows(cimd_live, approved) is not None
        # The drive-by client comes back: its document is fetched (the cached
        # copy expired long ago) and its row stored again.
        assert requests.get(cimd_live.url + "/oauth/authorize", params=_params(drive_by, challenge),
                            allow_redirects=False, timeout=10).status_code == 302
        assert _rows(cimd_live, drive_by) is not None


def test_cimd_gc_keeps_rows_an_operator_disabled_or_gave_rights(cimd_live, docs):
    """A CIMD row an operator disabled stays through `clients gc`: deleting it
    would lift the block (the next request fetches the document and stores the
    client anew, enabled). Rows given resources or introspection rights stay
    too; an untouched row of the same age goes."""
    import datetime as dt

    from sqlalchemy import update

    from authz_server.storage import clients as store

    _, challenge = pkce_pair()
    ids = {}
    for name in ("blocked", "granted", "untouched"):
        docs.serve_json(f"/{name}.json", docs.document(f"/{name}.json"))
        ids[name] = docs.url(f"/{name}.json")
        assert requests.get(cimd_live.url + "/oauth/authorize", params=_params(ids[name], challenge),
                            allow_redirects=False, timeout=10).status_code == 302
    with cimd_live.app.app_context():
        s = cimd_live.db.session
        store.set_disabled(s, s.get(Client, ids["blocked"]), True)
        s.execute(update(Client).where(Client.client_id == ids["granted"])
                  .values(introspection_resources=[cimd_live.settings.audience]))
        s.execute(update(Client).where(Client.client_id.in_(list(ids.values())))
                  .values(updated_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)))
        s.commit()
        s.remove()
    out = _gc_cli(cimd_live)
    assert "1 client metadata document client(s)" in out, out
    assert _rows(cimd_live, ids["untouched"]) is None
    assert _rows(cimd_live, ids["granted"]) is not None
    assert _rows(cimd_live, ids["blocked"]).disabled_at is not None


# --- Address guard: IPv6 forms that carry an IPv4 address ---

EMBEDDING = [
    "2002:a00:1::1",                         # 6to4 (RFC 3056) of 10.0.0.1
    "2002:a9fe:a9fe::1",                     # 6to4 of 169.254.169.254
    "2002:7f00:1::1",                        # 6to4 of 127.0.0.1
    "fec0::1",                               # site-local (RFC 3879)
    "fec0:0:0:ffff::1",
    "64:ff9b::a00:1",                        # NAT64 (RFC 6052) of 10.0.0.1
    "64:ff9b::a9fe:a9fe",                    # NAT64 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo (RFC 4380), client 10.0.0.1 (obfuscated)
]


@pytest.mark.parametrize("address", EMBEDDING)
def test_cimd_address_guard_refuses_6to4_site_local_teredo_and_nat64_with_private_ipv4(cimd_live, caplog, address):
    """Site-local addresses, 6to4 and Teredo addresses, and NAT64 addresses
    whose embedded IPv4 address is private (or loopback, even with the
    development switch), are refused by the address guard, before any
    connection, for the document and for its jwks_uri alike."""
    from authz_server.oauth.registration import cimd

    with pytest.raises(cimd.CimdError, match="refused address"):
        cimd.resolve(address, 443, allow_loopback=True)
    caplog.set_level(logging.INFO, logger="authz_server.oauth.registration.cimd")
    _assert_refused_at_authorize(cimd_live, f"https://[{address}]/client.json")
    assert any("refused address" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    with pytest.raises(cimd.CimdError, match="jwks_uri host resolves to a refused address"):
        cimd.fetch(f"https://[{address}]/jwks.json", allow_loopback=True, what="jwks_uri")


def test_cimd_address_guard_refuses_all_6to4_and_teredo_but_lets_nat64_of_a_public_address_through():
    """6to4 and Teredo are tunnels no metadata host needs: refused whatever the
    IPv4 address inside. NAT64 is how IPv6-only networks reach IPv4 hosts: the
    embedded address decides."""
    from authz_server.oauth.registration import cimd

    for tunnelled in ("2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"):
        with pytest.raises(cimd.CimdError, match="refused address"):
            cimd.resolve(tunnelled, 443, allow_loopback=False)
    assert cimd.resolve("64:ff9b::808:808", 443, allow_loopback=False) == "64:ff9b::808:808"
