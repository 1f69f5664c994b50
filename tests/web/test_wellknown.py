"""Discovery documents and the JWKS, fetched over HTTP the way clients and
resource servers fetch them (docs/requirements.md: A13-69, A13-72, A.24 items
112–115, A.26 items 120 and 122; the rotation drill of item 121 is in
tests/oauth/test_keys.py).

CORS on these documents (item 72's preflight, item 122's
Access-Control-Allow-Origin) belongs to a later issue and is not tested here."""
from __future__ import annotations


import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.serving import make_server

from authz_server import create_app
from authz_server.config import Settings
from authz_server.db import Database
from tests.helpers import auth_params, free_port, pkce_pair, redirect_params, serve_in_thread

AS_PATH = "/.well-known/oauth-authorization-server"
OIDC_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"

# RFC 7517 §6.2.2 / §6.3.2 / §6.4: members that only a private key has.
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _get(url):
    return requests.get(url, allow_redirects=False, timeout=10)


def _nulls_and_empties(value, where="$"):
    """Every null member and every empty array or object, anywhere in the document."""
    found = []
    if value is None:
        found.append(where)
    elif isinstance(value, dict):
        if not value:
            found.append(where)
        for k, v in value.items():
            found.extend(_nulls_and_empties(v, f"{where}.{k}"))
    elif isinstance(value, list):
        if not value:
            found.append(where)
        for i, v in enumerate(value):
            found.extend(_nulls_and_empties(v, f"{where}[{i}]"))
    return found


@pytest.fixture
def docs(live):
    """Both discovery documents, as a client receives them."""
    out = {}
    for path in (AS_PATH, OIDC_PATH):
        r = _get(live.url + path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        out[path] = r.json()
    return out


# --- A.13 RFC 8414 --------------------------------------------------------------

def test_a13_69_as_metadata_served_at_well_known(live):
    """RFC 8414 §3: GET /.well-known/oauth-authorization-server returns 200 JSON."""
    r = _get(live.url + AS_PATH)
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert isinstance(r.json(), dict)


def test_a13_69_no_path_suffix_for_a_bare_origin_issuer(live):
    """RFC 8414 §3.1: the path-inserted URL is the issuer's path; for a bare-origin
    issuer any suffix names another issuer, which is not ours."""
    for path in (AS_PATH + "/tenant", OIDC_PATH + "/tenant"):
        r = _get(live.url + path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"


def _start_with_issuer_path(database_url, path):
    port = free_port()
    settings = Settings(issuer=f"http://127.0.0.1:{port}{path}", database_url=database_url, environment="test")
    db = Database(database_url)
    app = create_app(settings, db)
    srv = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(srv)
    return f"http://127.0.0.1:{port}", settings.issuer, srv, db


def test_a13_69_path_inserted_metadata_for_an_issuer_with_a_path(live, database_url):
    """RFC 8414 §3.1: for issuer https://h/p the document is at
    https://h/.well-known/oauth-authorization-server/p, and its issuer is https://h/p."""
    origin, issuer, srv, db = _start_with_issuer_path(database_url, "/tenant-a")
    try:
        r = _get(origin + AS_PATH + "/tenant-a")
        assert r.status_code == 200, r.text[:300]
        assert r.json()["issuer"] == issuer
        # The bare-origin URL and another tenant's URL describe other issuers.
        assert _get(origin + AS_PATH).status_code == 404
        assert _get(origin + AS_PATH + "/tenant-b").status_code == 404
        # The insertion form MCP clients also try for OIDC (checklist B.3).
        r = _get(origin + OIDC_PATH + "/tenant-a")
        assert r.status_code == 200
        assert r.json()["issuer"] == issuer
    finally:
        srv.shutdown()
        db.dispose()


def test_a13_70_issuer_is_byte_identical_to_the_configured_issuer(live, docs):
    """RFC 8414 §3.3: `issuer` equals the configured value exactly, no trailing slash added."""
    for doc in docs.values():
        assert doc["issuer"] == live.url == live.server.settings.issuer
        assert not doc["issuer"].endswith("/")


def test_a13_70_issuer_equals_iss_in_redirects_and_tokens(live, docs, make_client, browser, token_post):
    """RFC 8414 §3.3 / RFC 9207 / OIDC Discovery §4.3: the same issuer string in the
    authorization response, the access token and the id token."""
    issuer = docs[AS_PATH]["issuer"]
    c = make_client()
    verifier, challenge = pkce_pair()
    p = redirect_params(browser.authorize(auth_params(c, challenge, nonce="n-1")))
    assert p["iss"] == issuer
    r = token_post({"grant_type": "authorization_code", "code": p["code"], "redirect_uri": c.redirect_uri,
                    "code_verifier": verifier}, auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text
    keys = KeySet.import_key_set(_get(docs[AS_PATH]["jwks_uri"]).json())
    for name in ("access_token", "id_token"):
        tok = jwt.decode(r.json()[name], keys, algorithms=["ES256", "RS256"])
        assert tok.claims["iss"] == issuer, name


def test_a13_71_required_and_recommended_members(live, docs):
    """RFC 8414 §2: issuer, authorization_endpoint, token_endpoint,
    response_types_supported ["code"]; plus jwks_uri, scopes, grant types, auth
    methods (none, basic, post), code_challenge_methods_supported ["S256"],
    revocation/introspection with their auth methods, response_modes ["query"], RFC 9207 flag."""
    doc = docs[AS_PATH]
    iss = live.url
    assert doc["authorization_endpoint"] == iss + "/oauth/authorize"
    assert doc["token_endpoint"] == iss + "/oauth/token"
    assert doc["jwks_uri"] == iss + JWKS_PATH
    assert doc["revocation_endpoint"] == iss + "/oauth/revoke"
    assert doc["introspection_endpoint"] == iss + "/oauth/introspect"
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"none", "client_secret_basic", "client_secret_post",
                                                                 "private_key_jwt"}
    assert set(doc["revocation_endpoint_auth_methods_supported"]) >= {"client_secret_basic", "client_secret_post"}
    # Introspection is for authenticated resource servers only (RFC 7662 §2.1).
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]
    assert set(doc["introspection_endpoint_auth_methods_supported"]) >= {"client_secret_basic"}
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials",
                                                 "urn:ietf:params:oauth:grant-type:device_code"}
    # RFC 8628 §4.
    assert doc["device_authorization_endpoint"] == iss + "/oauth/device_authorization"
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    assert doc["authorization_response_iss_parameter_supported"] is True
    # Dynamic registration is open by default (RFC 7591 §3, C-2); AUTHZ_REGISTRATION=off
    # removes it (tests/oauth/test_registration.py).
    assert doc["registration_endpoint"] == iss + "/oauth/register"
    # Not built yet: advertising them would send clients to a 404 (checklist C-2).
    for absent in ("pushed_authorization_request_endpoint", "dpop_signing_alg_values_supported"):
        assert absent not in doc


def test_a13_71_ts_sdk_schema_fields_have_the_right_types(docs):
    """RFC 8414 §2 (and the TS SDK 1.x zod schema): URLs are strings, lists are string arrays."""
    for doc in docs.values():
        for k, v in doc.items():
            if k.endswith("_endpoint") or k in ("issuer", "jwks_uri"):
                assert isinstance(v, str) and v.startswith("http"), k
            elif k.endswith("_parameter_supported") or k == "client_id_metadata_document_supported":
                # also authorization_response_iss_parameter_supported; CIMD's flag is a boolean too
                assert isinstance(v, bool), k
            elif k.endswith("_supported"):
                assert isinstance(v, list) and all(isinstance(x, str) for x in v), k


def test_a13_71_every_advertised_endpoint_is_served(live, docs):
    """RFC 8414 §2: each advertised endpoint exists on this server (no 404/405 for its method)."""
    doc = docs[AS_PATH]
    assert _get(doc["jwks_uri"]).status_code == 200
    # An empty authorization request gets the HTML error page, not a 404.
    assert _get(doc["authorization_endpoint"]).status_code == 400
    for name, status in (("token_endpoint", 400), ("revocation_endpoint", 401), ("introspection_endpoint", 401),
                         ("registration_endpoint", 400)):
        r = requests.post(doc[name], data={}, timeout=10, allow_redirects=False)
        assert r.status_code == status, (name, r.status_code, r.text[:200])
        assert "error" in r.json(), name
    r = _get(doc["userinfo_endpoint"])
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a13_71_no_null_members_and_no_empty_arrays(docs):
    """Checklist A.1 #6: no member is null and no list is empty (clients' schemas reject both)."""
    for path, doc in docs.items():
        assert _nulls_and_empties(doc) == [], path


def test_a13_72_json_200_without_redirect(live):
    """RFC 8414 §3.2: 200 with Content-Type application/json, served directly (no redirect)."""
    for path in (AS_PATH, OIDC_PATH, JWKS_PATH):
        r = _get(live.url + path)
        assert r.status_code == 200, path
        assert "Location" not in r.headers
        assert r.headers["Content-Type"].split(";")[0].strip() == "application/json", path
        r.json()


# --- A.24 OIDC Discovery ----------------------------------------------------------

def test_a24_112_openid_configuration_at_issuer_plus_well_known(live):
    """OIDC Discovery §4: 200 JSON at issuer + /.well-known/openid-configuration."""
    r = _get(live.server.settings.issuer + OIDC_PATH)
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert r.json()["issuer"] == live.url


def test_a24_113_required_oidc_members(live, docs):
    """OIDC Discovery §3: issuer, authorization/token endpoints, jwks_uri,
    response_types_supported, subject_types_supported, id_token_signing_alg_values_supported
    (with RS256); recommended userinfo_endpoint, scopes_supported (with openid), claims_supported."""
    doc = docs[OIDC_PATH]
    for member in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
                   "subject_types_supported", "id_token_signing_alg_values_supported",
                   "userinfo_endpoint", "scopes_supported", "claims_supported",
                   "code_challenge_methods_supported", "token_endpoint_auth_methods_supported",
                   "grant_types_supported", "authorization_response_iss_parameter_supported",
                   "revocation_endpoint", "introspection_endpoint"):
        assert member in doc, member
    assert "public" in doc["subject_types_supported"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert "none" not in [a.lower() for a in doc["id_token_signing_alg_values_supported"]]
    assert "openid" in doc["scopes_supported"]
    assert {"sub", "iss", "aud", "exp", "iat"} <= set(doc["claims_supported"])
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["userinfo_endpoint"] == live.url + "/oauth/userinfo"


def test_a24_114_both_documents_agree_on_every_shared_member(docs):
    """OIDC Discovery §4.3: the RFC 8414 and OIDC documents carry the same value for every shared member."""
    a, o = docs[AS_PATH], docs[OIDC_PATH]
    shared = set(a) & set(o)
    assert {"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"} <= shared
    assert {k: a[k] for k in shared} == {k: o[k] for k in shared}


def test_a24_114_scopes_supported_follow_registered_resources(live):
    """OIDC Discovery §4.3 (both documents stay in step): a resource's scopes appear in both."""
    from authz_server.models import Resource

    s = live.db.session
    s.add(Resource(identifier="https://mcp.example/mcp", name="MCP", scopes=["tools:read"]))
    s.commit()
    s.remove()
    for path in (AS_PATH, OIDC_PATH):
        assert "tools:read" in _get(live.url + path).json()["scopes_supported"], path


def test_a24_115_only_the_code_response_type(docs):
    """OIDC Discovery §3 note / OAuth 2.1 §10.1: only `code`; no implicit or hybrid types, no implicit grant."""
    for doc in docs.values():
        assert doc["response_types_supported"] == ["code"]
        assert not {"implicit", "password"} & set(doc["grant_types_supported"])
        assert "fragment" not in doc["response_modes_supported"]


# --- A.26 JWKS --------------------------------------------------------------------

def test_a26_120_jwks_has_public_members_only(live):
    """RFC 7517 §5 / RFC 8414 §2: no d, p, q, dp, dq, qi, oth or k in any key."""
    r = _get(live.url + JWKS_PATH)
    assert r.status_code == 200
    jwks = r.json()
    assert set(jwks) == {"keys"}
    assert jwks["keys"], "the JWKS is empty"
    for key in jwks["keys"]:
        leaked = PRIVATE_MEMBERS & set(key)
        assert not leaked, (key.get("kid"), leaked)


def test_a26_120_every_key_has_kid_kty_alg_and_use_sig(live):
    """RFC 7517 §4 / OIDC Discovery §3: each key has kid, kty, alg and use "sig"; kids are unique."""
    keys = _get(live.url + JWKS_PATH).json()["keys"]
    for key in keys:
        assert isinstance(key.get("kid"), str) and key["kid"], key
        assert key["use"] == "sig", key
        assert (key["kty"], key["alg"]) in {("EC", "ES256"), ("RSA", "RS256")}, key
        if key["kty"] == "EC":
            assert key["crv"] == "P-256" and key["x"] and key["y"]
        else:
            assert key["n"] and key["e"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids))
    # Every advertised id-token algorithm has a key to verify it with.
    algs = {k["alg"] for k in keys}
    assert set(live.metadata()["id_token_signing_alg_values_supported"]) <= algs
    # The set imports as public keys.
    KeySet.import_key_set({"keys": keys})


def test_a26_120_jwks_verifies_the_tokens_and_names_their_kid(live, tokens_for, make_client):
    """RFC 7517 / OIDC Core §10.1: every token header has a kid present in the JWKS, and verifies against it."""
    t = tokens_for(make_client(), nonce="n-2")
    jwks = _get(live.url + JWKS_PATH).json()
    kids = {k["kid"] for k in jwks["keys"]}
    keys = KeySet.import_key_set(jwks)
    for name in ("access_token", "id_token"):
        tok = jwt.decode(t[name], keys, algorithms=["ES256", "RS256"])
        assert tok.header["kid"] in kids, name


def test_a26_122_jwks_has_cache_control_max_age(live):
    """RFC 9068 §4 (SHOULD): the JWKS is cacheable for a modest max-age."""
    r = _get(live.url + JWKS_PATH)
    directives = {d.strip().split("=")[0]: (d.strip().split("=") + [None])[1]
                  for d in r.headers["Cache-Control"].split(",")}
    assert "no-store" not in directives and "private" not in directives
    assert 60 <= int(directives["max-age"]) <= 3600


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
                                  "/.well-known/jwks.json"])
def test_a13_72_a26_122_cors_on_public_documents(live, path):
    """A.13 #72 / A.26 #122: CORS "*" on the metadata documents and the JWKS, and a
    preflight asking for mcp-protocol-version answers 204 allowing it."""
    r = requests.get(live.url + path, headers={"Origin": "https://app.example"}, timeout=10)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    p = requests.options(live.url + path, timeout=10, headers={
        "Origin": "https://inspector.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "mcp-protocol-version"})
    assert p.status_code == 204
    assert p.headers["Access-Control-Allow-Origin"] == "*"
    assert "mcp-protocol-version" in p.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/userinfo"])
def test_c3_cors_preflight_on_browser_called_endpoints(live, path):
    """C-3: token, revocation and userinfo answer CORS preflights (204, "*",
    MCP-Protocol-Version allowed) and expose WWW-Authenticate on errors."""
    p = requests.options(live.url + path, timeout=10, headers={
        "Origin": "https://inspector.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version"})
    assert p.status_code == 204, p.text
    assert p.headers["Access-Control-Allow-Origin"] == "*"
    allowed = p.headers["Access-Control-Allow-Headers"].lower()
    assert "mcp-protocol-version" in allowed and "authorization" in allowed
    r = requests.get(live.url + "/oauth/userinfo", headers={"Origin": "https://x.example"}, timeout=10)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers["Access-Control-Expose-Headers"]


def test_c3_no_cors_on_authorize(live):
    """C-3: the authorization endpoint is a top-level navigation: no CORS."""
    r = requests.get(live.url + "/oauth/authorize", headers={"Origin": "https://x.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in r.headers
