"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592),
driven over HTTP the way MCP clients do it (docs/requirements.md: A14-73, A14-78,
A.15 items 79-81, B.5, C-2, C-9, C-10, C-13, C-14, C-19).

The request bodies are the ones the SDKs really send (B.5): the MCP Python SDK
2.x body (no ``token_endpoint_auth_method``, ``application_type: native``), the
TypeScript SDK 1.x example client (``client_secret_post``), a public browser
client (the MCP Inspector) and a hosted public client (Claude.ai). Every
registered client then runs the flow it registered for, so what /register
accepts is what /authorize and /token honour (C-19).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select, update

from authz_server.cli import main as cli
from authz_server.models import AuditEvent, AuthorizationCode, Client, Consent, Grant, RefreshToken
from tests.browser import Browser
from tests.helpers import RegisteredClient, auth_params, oauth_error, pkce_pair, redirect_params, register_resources

MCP = "http://127.0.0.1:9/mcp"

# B.5: what the MCP Python SDK 2.3 POSTs (observed with a probe). The scope is
# the one the resource server challenged with, plus offline_access.
PYTHON_SDK = {
    "response_types": ["code"],
    "scope": "mcp:read offline_access",
    "client_name": "MCP Python SDK client",
    "redirect_uris": ["http://127.0.0.1:3030/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}
# B.5/B.8: the TypeScript SDK 1.x example client's clientMetadata plus scope.
TS_SDK_1X = {
    "client_name": "Simple OAuth MCP Client",
    "redirect_uris": ["http://localhost:8090/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_post",
    "scope": "mcp:read",
}
# B.9: a browser client (MCP Inspector) and a hosted one (Claude.ai), both public.
INSPECTOR = {
    "redirect_uris": ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "MCP Inspector",
    "client_uri": "https://github.com/modelcontextprotocol/inspector",
    "scope": "mcp:read",
}
CLAUDE = {
    "client_name": "Claude",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}


# --- helpers ------------------------------------------------------------------


@pytest.fixture
def mcp(live):
    """A registered MCP server whose scopes the SDKs ask for; every test starts
    with a fresh registration budget for this source."""
    live.server.registration_limiter.reset()
    register_resources(live, {MCP: ["mcp:read", "mcp:write"]})
    return live


def offer_client_credentials(live, monkeypatch, resources=(MCP,)):
    """Set the registration policy AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES
    of the running server (restored after the test)."""
    monkeypatch.setattr(live.server, "settings",
                        live.server.settings.with_overrides(registration_client_credentials_resources=tuple(resources)))


@pytest.fixture
def mcp_cc(mcp, monkeypatch):
    """``mcp`` whose registration policy offers client_credentials for MCP."""
    offer_client_credentials(mcp, monkeypatch)
    return mcp


def register(live, body=None, *, raw=None, content_type="application/json", token=None):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body)
    return requests.post(live.url + "/oauth/register", data=data, headers=headers, timeout=10)


def manage(live, method, client_id, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{live.url}/oauth/register/{client_id}", json=body, headers=headers,
                            timeout=10)


def assert_no_null(value, path="$"):
    """Spec-checklist item 6 / C-9: no null anywhere (TS SDK 1.x zod rejects it)."""
    assert value is not None, f"null at {path}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_null(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_null(v, f"{path}[{i}]")


def created(resp) -> dict:
    """A successful registration: RFC 7591 §3.2.1 201, JSON, no-store, no null."""
    assert resp.status_code == 201, (resp.status_code, resp.text[:500])
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json()
    assert_no_null(body)
    assert isinstance(body["client_id"], str) and body["client_id"]
    assert isinstance(body["client_id_issued_at"], int)
    assert body["token_endpoint_auth_method"] in ("none", "client_secret_basic", "client_secret_post")
    assert isinstance(body["redirect_uris"], list)
    return body


def refused(resp, error, status=400):
    """An RFC 7591 §3.2.2 error: JSON with the code, no-store, nothing issued."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description", ""), str)
    assert all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in body.get("error_description", ""))
    assert "client_id" not in body and "client_secret" not in body
    return body


def counts(live):
    """(client rows, audit rows): refused registrations must leave both alone."""
    s = live.db.session
    try:
        return (s.scalar(select(func.count()).select_from(Client)),
                s.scalar(select(func.count()).select_from(AuditEvent)))
    finally:
        s.remove()


def row(live, client_id) -> Client | None:
    s = live.db.session
    try:
        return s.get(Client, client_id)
    finally:
        s.remove()


def audit_events(live, event, client_id=None):
    s = live.db.session
    try:
        q = select(AuditEvent).where(AuditEvent.event == event)
        if client_id:
            q = q.where(AuditEvent.client_id == client_id)
        return list(s.scalars(q.order_by(AuditEvent.id)).all())
    finally:
        s.remove()


def as_client(info, redirect_uri=None) -> RegisteredClient:
    return RegisteredClient(info["client_id"], info.get("client_secret"), redirect_uri or info["redirect_uris"][0],
                            info["redirect_uris"])


def run_code_flow(browser, token_post, info, *, redirect_uri=None, auth="basic", scope="mcp:read offline_access",
                  **extra):
    """Authorize (login + consent) and redeem the code as the SDKs do; returns
    (token response, the consent page seen on the way)."""
    client = as_client(info, redirect_uri)
    verifier, challenge = pkce_pair()
    params = auth_params(client, challenge, scope=scope, **extra)
    page = browser.authorize(params, decision=None)
    assert page.status_code == 200 and 'name="decision"' in page.text, (page.status_code, page.text[:300])
    resp = browser.authorize(params)
    got = redirect_params(resp)
    assert got["state"] == params["state"] and "code" in got, got
    data = {"grant_type": "authorization_code", "code": got["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, "client_id": client.client_id}
    if "resource" in extra:
        data["resource"] = extra["resource"]
    return token_request(token_post, info, data, auth), page


def token_request(token_post, info, data, auth):
    if auth == "basic":
        return token_post(data, auth=(info["client_id"], info["client_secret"]))
    if auth == "post":
        return token_post({**data, "client_secret": info["client_secret"]})
    return token_post(data)


# --- A.14 item 73: the endpoint -------------------------------------------------


def test_a14_73_registration_endpoint_is_advertised_and_answers_201(mcp):
    """RFC 7591 §3 / RFC 8414 §2: registration_endpoint in both metadata documents;
    a valid POST gets 201 with a JSON body."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        doc = requests.get(mcp.url + path, timeout=10).json()
        assert doc["registration_endpoint"] == mcp.url + "/oauth/register"
    body = created(register(mcp, CLAUDE))
    assert row(mcp, body["client_id"]).registered_via == "dcr"


# --- B.5: the bodies the SDKs send ---------------------------------------------------------


def test_b5_python_sdk_body_without_auth_method_gets_client_secret_basic(mcp, browser, token_post):
    """RFC 7591 §2 (A.14 item 75, C-10): an omitted token_endpoint_auth_method
    means client_secret_basic; the effective method is echoed with a secret and
    client_secret_expires_at, so the Python SDK authenticates with Basic. The
    client then completes the flow from another loopback port (RFC 8252 §7.3),
    with resource and offline_access, and refreshes."""
    info = created(register(mcp, PYTHON_SDK))
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    assert isinstance(info["client_secret"], str) and len(info["client_secret"]) >= 32
    assert info["client_secret_expires_at"] == 0
    assert info["application_type"] == "native"
    assert info["redirect_uris"] == PYTHON_SDK["redirect_uris"]
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["response_types"] == ["code"]
    assert info["scope"] == "mcp:read offline_access"
    assert info["client_name"] == "MCP Python SDK client"
    stored = row(mcp, info["client_id"])
    assert stored.client_type == "third_party" and stored.client_secret_hash != info["client_secret"]

    resp, page = run_code_flow(browser, token_post, info, redirect_uri="http://127.0.0.1:51234/callback",
                               resource=MCP, prompt="consent")
    assert "MCP Python SDK client" in page.text
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["token_type"] == "Bearer" and "refresh_token" in tokens
    refreshed = token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                            "client_id": info["client_id"], "resource": MCP},
                           auth=(info["client_id"], info["client_secret"]))
    assert refreshed.status_code == 200, refreshed.text
    # Without the secret (what the SDK does when the method is not echoed) it fails.
    bare = token_post({"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"],
                       "client_id": info["client_id"]})
    oauth_error(bare, 401, "invalid_client")


def test_b5_typescript_sdk_1x_body_with_client_secret_post(mcp, browser, token_post):
    """B.5/B.8: the TS SDK 1.x example asks for client_secret_post; it is echoed,
    with a secret, and the secret in the form body works at /token."""
    info = created(register(mcp, TS_SDK_1X))
    assert info["token_endpoint_auth_method"] == "client_secret_post"
    assert info["client_secret"] and info["client_secret_expires_at"] == 0
    # No application_type sent, loopback redirect: inferred native (OIDC Registration §2).
    assert info["application_type"] == "native"
    resp, _ = run_code_flow(browser, token_post, info, redirect_uri="http://localhost:41999/callback",
                            auth="post", scope="mcp:read")
    assert resp.status_code == 200, resp.text
    assert "refresh_token" in resp.json()


def test_b5_public_registration_gets_no_secret_and_completes_the_flow(mcp, browser, token_post):
    """A.14 item 75 [POLICY]: method none → no client_secret and no
    client_secret_expires_at; the client redeems its code and refreshes with
    only its client_id (item 8)."""
    info = created(register(mcp, INSPECTOR))
    assert info["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in info and "client_secret_expires_at" not in info
    assert info["client_uri"] == INSPECTOR["client_uri"]
    assert row(mcp, info["client_id"]).client_type == "third_party_public"
    resp, _ = run_code_flow(browser, token_post, info, auth="none", scope="mcp:read")
    assert resp.status_code == 200, resp.text
    refreshed = token_post({"grant_type": "refresh_token", "refresh_token": resp.json()["refresh_token"],
                            "client_id": info["client_id"]})
    assert refreshed.status_code == 200, refreshed.text


def test_b6_dynamic_client_may_step_up_beyond_its_registered_scope(mcp, browser, token_post):
    """B.6 / C-16: the scope sent at registration is not a limit; a later
    authorization may ask for more catalog scopes (and gets consent)."""
    info = created(register(mcp, {**INSPECTOR, "scope": "mcp:read"}))
    resp, page = run_code_flow(browser, token_post, info, auth="none", scope="mcp:read mcp:write openid")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()["scope"].split()) == {"mcp:read", "mcp:write", "openid"}
    assert "mcp:write" in page.text


def test_a14_75_confidential_client_credentials_registration_works_at_token(mcp_cc, token_post):
    """Where the registration policy offers it, a confidential registration for
    client_credentials needs no redirect URI; its secret works at /oauth/token
    (RFC 6749 §4.4)."""
    mcp = mcp_cc
    info = created(register(mcp, {"client_name": "Nightly agent", "grant_types": ["client_credentials"],
                                  "token_endpoint_auth_method": "client_secret_basic", "scope": "mcp:read"}))
    assert info["grant_types"] == ["client_credentials"]
    assert "response_types" not in info and info["redirect_uris"] == []
    resp = token_post({"grant_type": "client_credentials", "scope": "mcp:read", "resource": MCP},
                      auth=(info["client_id"], info["client_secret"]))
    assert resp.status_code == 200, resp.text
    wrong = token_post({"grant_type": "client_credentials"}, auth=(info["client_id"], info["client_secret"] + "x"))
    assert wrong.status_code == 401


# --- A.14 item 74: ignore unknown, trim unsupported ------------------------------------------


def test_a14_74_unknown_members_ignored_and_unsupported_values_trimmed(mcp):
    """RFC 7591 §2 and §3.2.1 (C-2): unknown members are ignored, unsupported
    grant types, response types, scopes and methods are trimmed or replaced,
    and the response says what was really registered."""
    body = {
        **PYTHON_SDK,
        "resource": MCP,
        "software_id": "x", "contacts": ["ops@app.example"], "x-vendor": {"nested": [1, 2]},
        "grant_types": ["authorization_code", "implicit", "password", "refresh_token",
                        "urn:ietf:params:oauth:grant-type:token-exchange"],
        "response_types": ["code", "token", "id_token"],
        "scope": "openid unknown:scope mcp:read admin",
        "token_endpoint_auth_method": "private_key_jwt",
        "logo_uri": "http://insecure.example/logo.png",
        "client_uri": "javascript:alert(1)",
        "id_token_signed_response_alg": "none",
        "application_type": "desktop",
    }
    info = created(register(mcp, body))
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["response_types"] == ["code"]
    assert info["scope"] == "openid mcp:read"
    assert info["token_endpoint_auth_method"] == "client_secret_basic" and info["client_secret"]
    assert info["application_type"] == "native"
    for absent in ("resource", "software_id", "contacts", "x-vendor", "logo_uri", "client_uri",
                   "id_token_signed_response_alg"):
        assert absent not in info


def test_a14_74_defaults_when_members_are_omitted(mcp):
    """Documented defaults: grant_types authorization_code + refresh_token (C-7a),
    response_types code, client_secret_basic, application_type from the URIs,
    client_name from the redirect host, no scope member when none was asked."""
    info = created(register(mcp, {"redirect_uris": ["https://app.example/cb"]}))
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["response_types"] == ["code"]
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    assert info["application_type"] == "web"
    assert info["client_name"] == "app.example"
    assert "scope" not in info


def test_a14_74_public_client_cannot_keep_client_credentials(mcp):
    """A public client cannot authenticate, so client_credentials is trimmed;
    refresh_token without authorization_code too; nothing workable → refused."""
    info = created(register(mcp, {**CLAUDE, "grant_types": ["authorization_code", "client_credentials"]}))
    assert info["grant_types"] == ["authorization_code"]
    before = counts(mcp)
    refused(register(mcp, {**CLAUDE, "grant_types": ["client_credentials", "refresh_token"]}),
            "invalid_client_metadata")
    refused(register(mcp, {**CLAUDE, "grant_types": ["implicit"]}), "invalid_client_metadata")
    assert counts(mcp) == before


def test_open_registration_does_not_reach_client_credentials_for_any_resource(mcp, token_post):
    """By default an anonymous registration gets no
    client_credentials grant (anyone may register, and nobody consents to a
    client acting as itself): the grant is trimmed from the effective metadata
    echoed back (RFC 7591 §3.2.1), a registration asking for nothing else is
    refused, and no token for a resource is issued."""
    info = created(register(mcp, {"client_name": "Agent", "redirect_uris": ["https://agent.example/cb"],
                                  "grant_types": ["authorization_code", "client_credentials"]}))
    assert info["grant_types"] == ["authorization_code"] and info["client_secret"]
    resp = token_post({"grant_type": "client_credentials", "scope": "mcp:read", "resource": MCP},
                      auth=(info["client_id"], info["client_secret"]))
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client", resp.text
    before = counts(mcp)
    body = refused(register(mcp, {"client_name": "Nightly agent", "grant_types": ["client_credentials"],
                                  "scope": "mcp:read"}), "invalid_client_metadata")
    assert "client_credentials" in body["error_description"]
    assert counts(mcp) == before


def test_registration_policy_offers_client_credentials_for_its_resources_only(mcp, token_post, monkeypatch):
    """AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES lets
    registrations keep client_credentials, for the listed resources (and their
    scopes) only: another resource is invalid_target (RFC 8707 §2), its scopes
    invalid_scope. Emptying the policy takes the grant back from clients that
    registered while it was offered."""
    other = "https://other.example/api"
    register_resources(mcp, {other: ["other:admin"]})
    offer_client_credentials(mcp, monkeypatch, [MCP])
    info = created(register(mcp, {"client_name": "Agent", "grant_types": ["client_credentials"]}))
    assert info["grant_types"] == ["client_credentials"]
    auth = (info["client_id"], info["client_secret"])
    ok = token_post({"grant_type": "client_credentials", "scope": "mcp:read", "resource": MCP}, auth=auth)
    assert ok.status_code == 200, ok.text
    for data, error in (({"resource": other}, "invalid_target"), ({"scope": "other:admin"}, "invalid_scope"),
                        ({"scope": "other:admin", "resource": MCP}, "invalid_scope")):
        resp = token_post({"grant_type": "client_credentials", **data}, auth=auth)
        assert resp.status_code == 400 and resp.json()["error"] == error, (data, resp.text)
    offer_client_credentials(mcp, monkeypatch, [])
    resp = token_post({"grant_type": "client_credentials", "resource": MCP}, auth=auth)
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client", resp.text


@pytest.mark.parametrize("sent, uris, expected", [
    (None, ["http://127.0.0.1/cb"], "native"),
    (None, ["https://app.example/cb"], "web"),
    (None, ["https://app.example/cb", "http://127.0.0.1/cb"], "web"),
    ("web", ["http://localhost:5173/cb"], "web"),
    ("native", ["https://app.example/cb"], "native"),
    ("web", ["cursor://anysphere.cursor-retrieval/oauth/user-callback"], "native"),
    (None, ["com.example.app:/oauth2redirect"], "native"),
])
def test_a14_74_application_type_is_honoured(mcp, sent, uris, expected):
    """OIDC Registration §2: application_type as sent (web or native), inferred
    when omitted, and native for private-use schemes (RFC 8252 §7.1, C-13)."""
    body = {**CLAUDE, "redirect_uris": uris}
    if sent:
        body["application_type"] = sent
    info = created(register(mcp, body))
    assert info["application_type"] == expected
    assert row(mcp, info["client_id"]).application_type == expected


def test_c9_null_members_count_as_absent(mcp):
    """C-9: a member sent as null is treated as absent, and no null comes back."""
    info = created(register(mcp, {**INSPECTOR, "client_name": None, "logo_uri": None, "scope": None,
                                  "grant_types": None, "response_types": None, "application_type": None}))
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["client_name"] == "localhost" and "scope" not in info and "logo_uri" not in info


def test_a14_78_private_use_and_loopback_redirects_allowed(mcp):
    """A.4 item 28 / C-13: loopback http (any of the three hosts) and private-use
    schemes are allowed; https anywhere."""
    uris = ["http://127.0.0.1/callback", "http://[::1]:8080/cb", "http://localhost:6274/oauth/callback",
            "cursor://anysphere.cursor-retrieval/oauth/user-callback", "com.example.app:/cb",
            "https://vscode.dev/redirect"]
    info = created(register(mcp, {**CLAUDE, "redirect_uris": uris}))
    assert info["redirect_uris"] == uris


# --- A.14 items 76 and 28: hostile input, refused, nothing stored -----------------------------

LONG = "https://app.example/" + "a" * 3000
HOSTILE = [
    ("1000 redirect URIs", {**CLAUDE, "redirect_uris": [f"https://app.example/cb/{i}" for i in range(1000)]},
     "invalid_redirect_uri"),
    ("javascript:", {**CLAUDE, "redirect_uris": ["javascript:alert(document.cookie)"]}, "invalid_redirect_uri"),
    ("JavaScript: mixed case", {**CLAUDE, "redirect_uris": ["JavaScript:alert(1)//"]}, "invalid_redirect_uri"),
    ("data:", {**CLAUDE, "redirect_uris": ["data:text/html,<script>alert(1)</script>"]}, "invalid_redirect_uri"),
    ("vbscript:", {**CLAUDE, "redirect_uris": ["vbscript:msgbox(1)"]}, "invalid_redirect_uri"),
    ("file:", {**CLAUDE, "redirect_uris": ["file:///etc/passwd"]}, "invalid_redirect_uri"),
    ("http non-loopback", {**CLAUDE, "redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
    ("http lookalike of localhost", {**CLAUDE, "redirect_uris": ["http://localhost.evil.example/cb"]},
     "invalid_redirect_uri"),
    ("one bad among good", {**CLAUDE, "redirect_uris": ["https://app.example/cb", "http://evil.example/cb"]},
     "invalid_redirect_uri"),
    ("fragment", {**CLAUDE, "redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
    ("relative", {**CLAUDE, "redirect_uris": ["/cb"]}, "invalid_redirect_uri"),
    ("NUL byte", {**CLAUDE, "redirect_uris": ["https://app.example/cb\u0000x"]}, "invalid_redirect_uri"),
    ("over-long URI", {**CLAUDE, "redirect_uris": [LONG]}, "invalid_redirect_uri"),
    ("redirect_uris a string", {**CLAUDE, "redirect_uris": "https://app.example/cb"}, "invalid_redirect_uri"),
    ("redirect_uris null", {**CLAUDE, "redirect_uris": None}, "invalid_redirect_uri"),
    ("redirect_uris missing", {k: v for k, v in CLAUDE.items() if k != "redirect_uris"}, "invalid_redirect_uri"),
    ("redirect_uris empty", {**CLAUDE, "redirect_uris": []}, "invalid_redirect_uri"),
    ("null in redirect_uris", {**CLAUDE, "redirect_uris": ["https://app.example/cb", None]},
     "invalid_redirect_uri"),
    ("null in grant_types", {**CLAUDE, "grant_types": [None]}, "invalid_client_metadata"),
    ("grant_types an object", {**CLAUDE, "grant_types": {"authorization_code": True}}, "invalid_client_metadata"),
    ("client_name a number", {**CLAUDE, "client_name": 42}, "invalid_client_metadata"),
    ("client_name an object", {**CLAUDE, "client_name": {"en": "x"}}, "invalid_client_metadata"),
    ("huge client_name", {**CLAUDE, "client_name": "A" * 10_000}, "invalid_client_metadata"),
    ("client_name with a NUL", {**CLAUDE, "client_name": "Claude\u0000"}, "invalid_client_metadata"),
    ("client_name with a bidi override", {**CLAUDE, "client_name": "Good App\u202egnp.exe"},
     "invalid_client_metadata"),
    ("huge scope", {**CLAUDE, "scope": "openid " * 2000}, "invalid_client_metadata"),
    ("scope a list", {**CLAUDE, "scope": ["openid"]}, "invalid_client_metadata"),
    ("auth method a list", {**CLAUDE, "token_endpoint_auth_method": ["none"]}, "invalid_client_metadata"),
    ("bad post-logout URI", {**CLAUDE, "post_logout_redirect_uris": ["javascript:x"]}, "invalid_client_metadata"),
]


@pytest.mark.parametrize("label, body, error", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a14_76_hostile_metadata_refused_and_nothing_stored(mcp, label, body, error):
    """RFC 7591 §3.2.2 / A.4 item 28: a dangerous or malformed registration gets
    400 with the right error code, and no client row and no audit row appear."""
    before = counts(mcp)
    refused(register(mcp, body), error)
    assert counts(mcp) == before


RAW = [
    ("not JSON", b"redirect_uris=https://app.example/cb", "application/json"),
    ("a JSON array", b'[{"redirect_uris": ["https://app.example/cb"]}]', "application/json"),
    ("a JSON string", b'"hello"', "application/json"),
    ("JSON null", b"null", "application/json"),
    ("empty body", b"", "application/json"),
    ("not UTF-8", b'{"client_name": "\xff\xfe"}', "application/json"),
    ("deep nesting", b"[" * 50_000, "application/json"),
    ("form encoded", b"redirect_uris=https%3A%2F%2Fapp.example%2Fcb", "application/x-www-form-urlencoded"),
    ("JSON sent as text/plain", b'{"redirect_uris": ["https://app.example/cb"]}', "text/plain"),
]


@pytest.mark.parametrize("label, raw, content_type", RAW, ids=[r[0] for r in RAW])
def test_a14_73_non_json_bodies_refused_and_nothing_stored(mcp, label, raw, content_type):
    """RFC 7591 §3.1: the request is a JSON object sent as application/json."""
    before = counts(mcp)
    refused(register(mcp, raw=raw, content_type=content_type), "invalid_client_metadata")
    assert counts(mcp) == before


def test_c14_body_size_cap_is_a_json_413(mcp):
    """C-14: the body is capped (64 KiB); the answer is JSON, and nothing is stored."""
    before = counts(mcp)
    body = {**CLAUDE, "padding": "x" * 70_000}
    refused(register(mcp, body), "invalid_client_metadata", status=413)
    assert counts(mcp) == before


# --- C-14: deduplication, rate limit, garbage collection --------------------------------------


def test_c14_identical_public_registrations_from_one_source_share_one_client(mcp):
    """Dedup: the same public metadata from the same address gets the same
    client_id back (one row). The second answer carries no registration access
    token; the first one keeps working for reading the client (see
    test_deduplicated_registration_keeps_the_first_token_and_refuses_updates)."""
    first = created(register(mcp, CLAUDE))
    second = created(register(mcp, CLAUDE))
    assert second["client_id"] == first["client_id"]
    assert second["client_id_issued_at"] == first["client_id_issued_at"]
    assert "registration_access_token" not in second and "registration_client_uri" not in second
    assert {k: v for k, v in second.items()} == {k: v for k, v in first.items()
                                                 if k not in ("registration_access_token", "registration_client_uri")}
    s = mcp.db.session
    try:
        assert s.scalar(select(func.count()).select_from(Client)) == 1
    finally:
        s.remove()
    events = audit_events(mcp, "client_registered", first["client_id"])
    assert [e.details.get("deduplicated", False) for e in events] == [False, True]

    # Any difference in the effective metadata is another client.
    other = created(register(mcp, {**CLAUDE, "client_name": "Claude (beta)"}))
    assert other["client_id"] != first["client_id"]
    # Confidential registrations are never shared: each gets its own secret.
    a = created(register(mcp, TS_SDK_1X))
    b = created(register(mcp, TS_SDK_1X))
    assert a["client_id"] != b["client_id"] and a["client_secret"] != b["client_secret"]


def test_deduplicated_registration_keeps_the_first_token_and_refuses_updates(mcp):
    """A deduplicated registration no longer revokes the
    first registrant's registration access token: it still reads the client
    (RFC 7592 §2.1). But the client is now shared, so nobody may rewrite or
    delete it under the others: PUT and DELETE get 403 invalid_client_metadata
    saying so (RFC 7592 §2.2, §2.3), and the client stays as it was."""
    first = created(register(mcp, CLAUDE))
    created(register(mcp, CLAUDE))  # an identical registration: the same client, shared
    read = manage(mcp, "GET", first["client_id"], first["registration_access_token"])
    assert read.status_code == 200, read.text
    token = read.json()["registration_access_token"]
    assert read.json()["redirect_uris"] == CLAUDE["redirect_uris"]

    evil = {**CLAUDE, "client_id": first["client_id"], "redirect_uris": ["https://evil.example/cb"]}
    before = counts(mcp)
    for method, body in (("PUT", evil), ("DELETE", None)):
        body = refused(manage(mcp, method, first["client_id"], token, body), "invalid_client_metadata", 403)
        assert "shared" in body["error_description"]
    assert counts(mcp) == before
    stored = row(mcp, first["client_id"])
    assert stored.redirect_uris == CLAUDE["redirect_uris"] and stored.registration_shared
    assert manage(mcp, "GET", first["client_id"], token).status_code == 200


def test_c14_update_before_a_duplicate_unshares_it(mcp):
    """A client its registrant updated is no longer an anonymous registration:
    an identical registration afterwards gets a client of its own, and the
    updated one stays manageable."""
    first = created(register(mcp, CLAUDE))
    upd = manage(mcp, "PUT", first["client_id"], first["registration_access_token"],
                 {**CLAUDE, "client_id": first["client_id"]})
    assert upd.status_code == 200, upd.text
    again = created(register(mcp, CLAUDE))
    assert again["client_id"] != first["client_id"]
    assert manage(mcp, "DELETE", first["client_id"], upd.json()["registration_access_token"]).status_code == 204


def test_c14_trimmed_duplicates_are_identical_too(mcp):
    """Dedup compares the effective metadata: unknown members and trimmed values
    do not make two registrations different."""
    first = created(register(mcp, CLAUDE))
    again = created(register(mcp, {**CLAUDE, "resource": MCP, "grant_types": [*CLAUDE["grant_types"], "implicit"]}))
    assert again["client_id"] == first["client_id"]


def test_a14_77_registration_rate_limited_per_source(make_server_with):
    """A.14 item 77 / C-15: past the per-source budget a new registration gets
    429 with Retry-After and nothing is stored; a duplicate still goes through
    (shared egress re-registering the same client); the budget refills."""
    live = make_server_with(registration_rate=3)
    for i in range(3):
        created(register(live, {**CLAUDE, "client_name": f"App {i}"}))
    before = counts(live)
    resp = register(live, {**CLAUDE, "client_name": "App 3"})
    refused(resp, "temporarily_unavailable", 429)
    assert int(resp.headers["Retry-After"]) == 20  # 3 a minute: one every 20 s
    assert counts(live) == before
    dup = created(register(live, {**CLAUDE, "client_name": "App 0"}))
    assert row(live, dup["client_id"]).client_id == dup["client_id"]
    # (The refill arithmetic itself is checked with a stepped clock in tests/test_ratelimit.py.)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=21), tick=True):
        created(register(live, {**CLAUDE, "client_name": "App 3"}))


def _gc(live, *args, **env_overrides):
    runner = CliRunner()
    env = {"DATABASE_URL": live.settings.database_url, "AUTHZ_ENV": "development", "AUTHZ_ISSUER": None,
           "AUTHZ_SECRET_KEY": None, "AUTHZ_KEY_ENCRYPTION_KEY": None, "AUTHZ_DCR_CLIENT_TTL_DAYS": None,
           "AUTHZ_DCR_CLIENT_IDLE_DAYS": None, **env_overrides}
    res = runner.invoke(cli, ["clients", "gc", *args], env=env)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_c14_gc_removes_only_never_used_old_dynamic_clients(mcp_cc, make_client, token_post):
    """A.14 item 77 / C-14: `authz-server clients gc` deletes dynamically
    registered clients that never got a token once AUTHZ_DCR_CLIENT_TTL_DAYS (7)
    have passed; used DCR clients, admin clients and recent registrations stay.
    --dry-run deletes nothing."""
    mcp = mcp_cc
    unused = created(register(mcp, CLAUDE))
    used = created(register(mcp, {"client_name": "Agent", "grant_types": ["client_credentials"]}))
    assert token_post({"grant_type": "client_credentials"},
                      auth=(used["client_id"], used["client_secret"])).status_code == 200
    assert row(mcp, used["client_id"]).last_used_at is not None
    admin = make_client()
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=6), tick=True):
        assert "0 never-used" in _gc(mcp)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=8), tick=True):
        recent = created(register(mcp, {**CLAUDE, "client_name": "Newcomer"}))
        out = _gc(mcp, "--dry-run")
        assert f"would delete {unused['client_id']}" in out and "1 never-used" in out
        assert row(mcp, unused["client_id"]) is not None
        out = _gc(mcp)
        assert f"deleted {unused['client_id']}" in out
    assert row(mcp, unused["client_id"]) is None
    for kept in (used["client_id"], admin.client_id, recent["client_id"]):
        assert row(mcp, kept) is not None
    [event] = audit_events(mcp, "client_deleted", unused["client_id"])
    assert event.actor == "gc"


def test_c14_reregistration_restarts_the_gc_clock(mcp):
    """A duplicate registration hands the client out again, so the GC waits
    another full period before it may delete it."""
    first = created(register(mcp, CLAUDE))
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=5), tick=True):
        created(register(mcp, CLAUDE))
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=9), tick=True):
        assert "0 never-used" in _gc(mcp)
    assert row(mcp, first["client_id"]) is not None


DAY = timedelta(days=1)


def _authorized(live, info_or_client, *, scope="openid offline_access", redeem=True):
    """Login + consent on ``live`` for a client (a registration answer or a
    RegisteredClient); returns the token response, or the unredeemed code."""
    client = info_or_client if isinstance(info_or_client, RegisteredClient) else as_client(info_or_client)
    verifier, challenge = pkce_pair()
    got = redirect_params(Browser(live).authorize(auth_params(client, challenge, scope=scope, prompt="consent")))
    assert "code" in got, got
    if not redeem:
        return got["code"]
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    resp = requests.post(live.url + "/oauth/token", auth=auth, timeout=10, data={
        "grant_type": "authorization_code", "code": got["code"], "code_verifier": verifier,
        "redirect_uri": client.redirect_uri, "client_id": client.client_id})
    assert resp.status_code == 200 and resp.json()["refresh_token"], resp.text
    return resp.json()


def _revoke(live, client: RegisteredClient, refresh_token):
    """RFC 7009 revocation of the refresh token: its whole grant is revoked."""
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    data = {"token": refresh_token, "token_type_hint": "refresh_token"}
    if auth is None:
        data["client_id"] = client.client_id
    assert requests.post(live.url + "/oauth/revoke", data=data, auth=auth, timeout=10).status_code == 200


def _rows_of(live, client_id) -> dict:
    s = live.db.session
    try:
        out = {}
        for model in (Grant, RefreshToken, AuthorizationCode, Consent):
            out[model.__tablename__] = s.scalar(select(func.count()).select_from(model)
                                                .where(model.client_id == client_id))
        return out
    finally:
        s.remove()


def test_c14_gc_removes_idle_dynamic_clients_whose_grants_all_lapsed(make_server_with, make_client):
    """C-14: `authz-server clients gc`, run by an admin, also deletes a dynamically
    registered client that did get tokens once but whose grants have all expired
    or been revoked, once neither a token nor its registration was touched for
    AUTHZ_DCR_CLIENT_IDLE_DAYS (90; frozen clock), with its grants, refresh
    tokens, codes and consents (cascade), audited. A client with one live grant,
    one that read its registration lately (RFC 7592), one with a code waiting to
    be redeemed, and admin and CIMD clients in the same state, stay."""
    from tests.cimd_docs import REDIRECT as CIMD_REDIRECT, DocServer

    # Grants live 180 days here, so one can outlast the 90 idle days.
    live = make_server_with(refresh_token_absolute_ttl=180 * 86400, cimd_allow_loopback=True)
    docs = DocServer()
    start = datetime.now(timezone.utc)
    try:
        names = ("keeps a live grant", "lapsed", "read its registration", "code pending")
        infos = {n: created(register(live, {**CLAUDE, "client_name": n, "scope": "openid",
                                            "redirect_uris": ["http://127.0.0.1:4040/callback"]})) for n in names}
        tokens = {n: _authorized(live, info) for n, info in infos.items()}
        for n in ("lapsed", "read its registration", "code pending"):
            _revoke(live, as_client(infos[n]), tokens[n]["refresh_token"])
        admin = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/cb",))
        _revoke(live, admin, _authorized(live, admin)["refresh_token"])
        docs.serve_json("/agent.json", docs.document("/agent.json"))
        cimd = RegisteredClient(docs.url("/agent.json"), None, CIMD_REDIRECT, [CIMD_REDIRECT])
        _revoke(live, cimd, _authorized(live, cimd)["refresh_token"])
        # Only DCR clients get last_used_at stamped (mark_used); stamp the admin and
        # CIMD rows too, so registered_via alone is what keeps them.
        s = live.db.session
        try:
            s.execute(update(Client).where(Client.client_id.in_([admin.client_id, cimd.client_id]))
                      .values(last_used_at=start))
            s.commit()
        finally:
            s.remove()
        lapsed = infos["lapsed"]["client_id"]
        assert _rows_of(live, lapsed) == {"grants": 1, "refresh_tokens": 1, "authorization_codes": 1, "consents": 1}

        with time_machine.travel(start + 60 * DAY, tick=True):
            info = infos["read its registration"]
            assert manage(live, "GET", info["client_id"], info["registration_access_token"]).status_code == 200
        with time_machine.travel(start + 89 * DAY, tick=True):
            assert "0 dynamically registered client(s) with every grant lapsed, idle for 90 day(s)" in _gc(live)
        with time_machine.travel(start + 91 * DAY, tick=True):
            live.server.clients.invalidate()
            _authorized(live, infos["code pending"], redeem=False)  # the member is approving it right now
            out = _gc(live, "--dry-run")
            assert f"would delete {lapsed}" in out and "1 dynamically registered" in out, out
            assert row(live, lapsed) is not None
            out = _gc(live)
            assert f"deleted {lapsed}" in out and "1 dynamically registered" in out, out
        assert row(live, lapsed) is None
        assert _rows_of(live, lapsed) == {"grants": 0, "refresh_tokens": 0, "authorization_codes": 0, "consents": 0}
        [event] = audit_events(live, "client_deleted", lapsed)
        assert event.actor == "gc" and event.details["rule"] == "idle"
        survivors = [infos[n]["client_id"] for n in names if n != "lapsed"] + [admin.client_id, cimd.client_id]
        assert all(row(live, cid) is not None for cid in survivors)

        # Past the 180 days the last grant has expired, the registration read and
        # the pending code are long gone by then: only admin and CIMD clients stay.
        with time_machine.travel(start + 200 * DAY, tick=True):
            out = _gc(live)
            assert "3 dynamically registered client(s) with every grant lapsed" in out, out
        assert [cid for cid in survivors if row(live, cid) is not None] == [admin.client_id, cimd.client_id]
        assert len(audit_events(live, "client_deleted")) == 4
    finally:
        live.server.clients.invalidate()
        live.server.keys.invalidate()
        docs.httpd.shutdown()
        docs.httpd.server_close()


def test_c14_idle_rule_follows_its_setting_and_option(make_server_with):
    """AUTHZ_DCR_CLIENT_IDLE_DAYS sets the idle time (0 switches the rule off);
    --idle-days overrides it for one run. A client whose only grant is revoked
    goes once idle that long, and not before."""
    live = make_server_with()
    start = datetime.now(timezone.utc)
    info = created(register(live, {**CLAUDE, "scope": "openid", "redirect_uris": ["http://127.0.0.1:4040/callback"]}))
    _revoke(live, as_client(info), _authorized(live, info)["refresh_token"])
    with time_machine.travel(start + 31 * DAY, tick=True):
        assert "idle clients are kept" in _gc(live, AUTHZ_DCR_CLIENT_IDLE_DAYS="0")
        assert "0 dynamically registered" in _gc(live)  # the default, 90 days
        assert "0 dynamically registered" in _gc(live, AUTHZ_DCR_CLIENT_IDLE_DAYS="45")
        assert "0 dynamically registered" in _gc(live, "--idle-days", "32")
        assert row(live, info["client_id"]) is not None
        out = _gc(live, "--idle-days", "30", AUTHZ_DCR_CLIENT_IDLE_DAYS="0")
        assert f"deleted {info['client_id']}" in out, out
    assert row(live, info["client_id"]) is None
    bad = CliRunner().invoke(cli, ["clients", "gc"], env={"DATABASE_URL": live.settings.database_url,
                                                          "AUTHZ_ENV": "development",
                                                          "AUTHZ_DCR_CLIENT_IDLE_DAYS": "-1"})
    assert bad.exit_code != 0 and "AUTHZ_DCR_CLIENT_IDLE_DAYS must not be negative" in bad.output


# --- policy: token and off --------------------------------------------------------------------

INITIAL = "initial-" + "k" * 24


def test_a14_73_policy_token_requires_an_initial_access_token(make_server_with):
    """RFC 7591 §3: with AUTHZ_REGISTRATION=token a registration needs a
    configured initial access token as a Bearer token; without one, or with a
    wrong one, 401 invalid_token (RFC 6750 §3.1) and nothing is stored."""
    live = make_server_with(registration_policy="token", registration_initial_tokens=("other-" + "x" * 20, INITIAL))
    assert live.metadata()["registration_endpoint"] == live.url + "/oauth/register"
    before = counts(live)
    missing = register(live, CLAUDE)
    refused(missing, "invalid_token", 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = register(live, CLAUDE, token=INITIAL + "x")
    refused(wrong, "invalid_token", 401)
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = requests.post(live.url + "/oauth/register", json=CLAUDE, auth=("x", INITIAL), timeout=10)
    refused(basic, "invalid_token", 401)
    assert counts(live) == before
    info = created(register(live, CLAUDE, token=INITIAL))
    # The registration access token then manages it (the initial token does not).
    assert manage(live, "GET", info["client_id"], info["registration_access_token"]).status_code == 200
    refused(manage(live, "GET", info["client_id"], INITIAL), "invalid_token", 401)


def test_a14_73_policy_off_removes_the_endpoint(make_server_with):
    """AUTHZ_REGISTRATION=off: /oauth/register answers 404 (JSON) and neither
    metadata document advertises it (C-2: never advertise a dead endpoint)."""
    live = make_server_with(registration_policy="off")
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        assert "registration_endpoint" not in requests.get(live.url + path, timeout=10).json()
    before = counts(live)
    refused(register(live, CLAUDE), "not_found", 404)
    refused(manage(live, "GET", "dcr-anything", "token"), "not_found", 404)
    assert counts(live) == before


# --- A.15: RFC 7592 management ----------------------------------------------------------------


def test_a15_79_registration_response_carries_the_management_pair(mcp):
    """RFC 7592 §3: registration_access_token and registration_client_uri are in
    the 201 answer; the token is stored only as a digest (policy)."""
    info = created(register(mcp, PYTHON_SDK))
    assert info["registration_client_uri"] == f"{mcp.url}/oauth/register/{info['client_id']}"
    assert len(info["registration_access_token"]) >= 32
    stored = row(mcp, info["client_id"])
    assert stored.registration_access_token_hash and info["registration_access_token"] not in (
        stored.registration_access_token_hash, stored.client_secret_hash)


def test_a15_80_read_with_the_registration_access_token(mcp):
    """RFC 7592 §2.1: GET returns the registered metadata (no secret) with a new
    registration access token (§3 requires one in every answer, and only digests
    are kept); the previous token then gets 401 (A.15 item 81)."""
    info = created(register(mcp, PYTHON_SDK))
    # HEAD cannot carry a new token, so it rotates nothing.
    assert manage(mcp, "HEAD", info["client_id"], info["registration_access_token"]).status_code == 200
    resp = manage(mcp, "GET", info["client_id"], info["registration_access_token"])
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    read = resp.json()
    assert_no_null(read)
    assert "client_secret" not in read
    same = ("client_id", "client_id_issued_at", "client_name", "redirect_uris", "grant_types", "response_types",
            "token_endpoint_auth_method", "application_type", "scope", "registration_client_uri")
    assert {k: read[k] for k in same} == {k: info[k] for k in same}
    assert read["registration_access_token"] != info["registration_access_token"]
    refused(manage(mcp, "GET", info["client_id"], info["registration_access_token"]), "invalid_token", 401)
    assert manage(mcp, "GET", info["client_id"], read["registration_access_token"]).status_code == 200


def test_a15_80_wrong_token_unknown_client_or_admin_client_get_401(mcp, make_client):
    """RFC 7592 §2: a missing or wrong token, another client's token, an unknown
    client id and a client registered by an admin (no token) all get 401 with a
    Bearer challenge, and nothing changes."""
    a = created(register(mcp, PYTHON_SDK))
    b = created(register(mcp, TS_SDK_1X))
    admin = make_client()
    cases = [
        (a["client_id"], None),
        (a["client_id"], "not-the-token"),
        (a["client_id"], b["registration_access_token"]),
        ("dcr-unknown", a["registration_access_token"]),
        (admin.client_id, a["registration_access_token"]),
        ("x" * 300, a["registration_access_token"]),
    ]
    before = counts(mcp)
    for client_id, token in cases:
        for method in ("GET", "PUT", "DELETE"):
            resp = manage(mcp, method, client_id, token, body={**PYTHON_SDK, "client_id": client_id})
            refused(resp, "invalid_token", 401)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(mcp) == before
    assert manage(mcp, "GET", a["client_id"], a["registration_access_token"]).status_code == 200


def test_a15_80_update_replaces_the_metadata(mcp, browser, token_post):
    """RFC 7592 §2.2: PUT replaces the metadata (omitted members take their
    defaults), echoes it with a new registration access token, and the new
    redirect URI is the one /authorize accepts (C-19)."""
    info = created(register(mcp, INSPECTOR))
    update = {"client_id": info["client_id"], "client_name": "Inspector v2",
              "redirect_uris": ["http://localhost:6275/oauth/callback"], "token_endpoint_auth_method": "none"}
    resp = manage(mcp, "PUT", info["client_id"], info["registration_access_token"], update)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    new = resp.json()
    assert_no_null(new)
    assert new["client_name"] == "Inspector v2"
    assert new["redirect_uris"] == ["http://localhost:6275/oauth/callback"]
    assert new["grant_types"] == ["authorization_code", "refresh_token"]
    assert "scope" not in new and "client_uri" not in new  # omitted → cleared
    assert new["token_endpoint_auth_method"] == "none"
    assert new["registration_access_token"] != info["registration_access_token"]
    [event] = audit_events(mcp, "client_updated", info["client_id"])
    assert event.actor == "dcr"

    client = as_client(new)
    _, challenge = pkce_pair()
    old = browser.get("/oauth/authorize", params=auth_params(client, challenge,
                                                              redirect_uri="https://app.example/other"))
    assert old.status_code == 400  # an unregistered URI: an error page, no redirect
    resp, _ = run_code_flow(browser, token_post, new, auth="none", scope="mcp:read")
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("change, error", [
    ({"redirect_uris": None}, "invalid_redirect_uri"),
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
    ({"client_id": "dcr-someone-else"}, "invalid_client_metadata"),
    ({"client_id": None}, "invalid_client_metadata"),
    ({"registration_access_token": "x"}, "invalid_client_metadata"),
    ({"registration_client_uri": "https://x.example/"}, "invalid_client_metadata"),
    ({"client_secret_expires_at": 0}, "invalid_client_metadata"),
    ({"client_id_issued_at": 1}, "invalid_client_metadata"),
    ({"client_secret": "not-the-secret"}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
])
def test_a15_80_bad_updates_refused_and_nothing_changes(mcp, change, error):
    """RFC 7592 §2.2: the body names the client's own id, carries none of the
    server-set members, a client_secret only if it matches, and cannot turn a
    confidential client public; the refusal leaves the client as it was (and
    its registration access token still valid)."""
    info = created(register(mcp, PYTHON_SDK))
    body = {**PYTHON_SDK, "client_id": info["client_id"], **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = counts(mcp)
    refused(manage(mcp, "PUT", info["client_id"], info["registration_access_token"], body), error)
    assert counts(mcp) == before
    stored = row(mcp, info["client_id"])
    assert stored.redirect_uris == PYTHON_SDK["redirect_uris"]
    assert stored.token_endpoint_auth_method == "client_secret_basic"
    assert manage(mcp, "GET", info["client_id"], info["registration_access_token"]).status_code == 200


def test_a15_80_update_may_switch_secret_methods_and_keeps_the_secret(mcp_cc, token_post):
    """A matching client_secret is accepted; basic ↔ post is allowed and the
    same secret keeps working with the new method."""
    mcp = mcp_cc
    info = created(register(mcp, {"client_name": "Agent", "grant_types": ["client_credentials"]}))
    body = {"client_id": info["client_id"], "client_secret": info["client_secret"], "client_name": "Agent",
            "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}
    resp = manage(mcp, "PUT", info["client_id"], info["registration_access_token"], body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_endpoint_auth_method"] == "client_secret_post" and "client_secret" not in resp.json()
    ok = token_post({"grant_type": "client_credentials", "client_id": info["client_id"],
                     "client_secret": info["client_secret"]})
    assert ok.status_code == 200, ok.text


def test_a15_80_delete_removes_the_client_and_revokes_its_grants(mcp, browser, token_post, make_client):
    """RFC 7592 §2.3: DELETE → 204; the client is gone (GET → 401), its refresh
    tokens no longer work, its access token introspects inactive, and the
    deletion is audited."""
    info = created(register(mcp, INSPECTOR))
    resp, _ = run_code_flow(browser, token_post, info, auth="none", scope="mcp:read")
    tokens = resp.json()
    rs = make_client(redirect_uris=(), grant_types=("client_credentials",), introspection_resources=(mcp.url,))

    def introspect():
        return requests.post(mcp.url + "/oauth/introspect", data={"token": tokens["access_token"]},
                             auth=(rs.client_id, rs.client_secret), timeout=10).json()

    assert introspect()["active"] is True

    gone = manage(mcp, "DELETE", info["client_id"], info["registration_access_token"])
    assert gone.status_code == 204 and gone.content == b""
    assert row(mcp, info["client_id"]) is None
    refused(manage(mcp, "GET", info["client_id"], info["registration_access_token"]), "invalid_token", 401)
    refresh = token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                          "client_id": info["client_id"]})
    oauth_error(refresh, 400, "invalid_client")  # the client is gone: it does not authenticate
    assert introspect() == {"active": False}
    s = mcp.db.session
    try:
        assert s.scalar(select(func.count()).select_from(Grant).where(Grant.client_id == info["client_id"])) == 0
        assert s.scalar(select(func.count()).select_from(RefreshToken)
                        .where(RefreshToken.client_id == info["client_id"])) == 0
    finally:
        s.remove()
    [event] = audit_events(mcp, "client_deleted", info["client_id"])
    assert event.actor == "dcr"


def test_a15_audit_rows_for_the_client_lifecycle(mcp):
    """Registration, update and deletion land in the audit log, with
    the caller's address, and no secret in the details."""
    info = created(register(mcp, TS_SDK_1X))
    token = info["registration_access_token"]
    upd = manage(mcp, "PUT", info["client_id"], token, {**TS_SDK_1X, "client_id": info["client_id"]}).json()
    assert manage(mcp, "DELETE", info["client_id"], upd["registration_access_token"]).status_code == 204
    events = [e for name in ("client_registered", "client_updated", "client_deleted")
              for e in audit_events(mcp, name, info["client_id"])]
    assert [e.event for e in events] == ["client_registered", "client_updated", "client_deleted"]
    for e in events:
        assert e.ip == "127.0.0.1"
        text = repr(e.details)
        assert info["client_secret"] not in text and token not in text
