"""The registration endpoint as a browser-based client and a person see it
(docs/requirements.md: A14-78, C-3, C-13; A.1 items 4 and 6): CORS for the
Inspector, the HTTP surface (405, no-store), and what the consent page says
about a client that registered itself."""
from __future__ import annotations

import pytest
import requests
from markupsafe import escape

from tests.helpers import RegisteredClient, auth_params, pkce_pair

PUBLIC = {"redirect_uris": ["http://localhost:6274/oauth/callback"], "token_endpoint_auth_method": "none",
          "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
          "client_name": "MCP Inspector"}


@pytest.fixture
def reg(live):
    live.server.registration_limiter.reset()
    return live


def _register(live, body, **headers):
    resp = requests.post(live.url + "/oauth/register", json=body, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp


def _consent_page(browser, info, redirect_uri=None):
    client = RegisteredClient(info["client_id"], None, redirect_uri or info["redirect_uris"][0], info["redirect_uris"])
    _, challenge = pkce_pair()
    page = browser.authorize(auth_params(client, challenge, scope="openid"), decision=None)
    assert page.status_code == 200 and 'name="decision"' in page.text, (page.status_code, page.text[:300])
    return page.text


def test_c3_cors_preflight_and_answer_on_register(reg):
    """C-3: the Inspector registers from a browser: the preflight allows
    Content-Type, Authorization and MCP-Protocol-Version, and the 201 carries
    Access-Control-Allow-Origin."""
    p = requests.options(reg.url + "/oauth/register", timeout=10, headers={
        "Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, mcp-protocol-version"})
    assert p.status_code == 204
    assert p.headers["Access-Control-Allow-Origin"] == "*"
    allowed = p.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "mcp-protocol-version" in allowed and "authorization" in allowed
    r = _register(reg, PUBLIC, Origin="http://localhost:6274")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    err = requests.post(reg.url + "/oauth/register", json={"redirect_uris": ["javascript:x"]},
                        headers={"Origin": "http://localhost:6274"}, timeout=10)
    assert err.status_code == 400 and err.headers["Access-Control-Allow-Origin"] == "*"


def test_a1_4_register_answers_are_no_store_and_other_methods_405(reg):
    """A.1 item 4 (the answer holds a secret and a registration access token):
    Cache-Control no-store; GET on the registration endpoint is 405 with Allow, as JSON."""
    r = _register(reg, {**PUBLIC, "token_endpoint_auth_method": "client_secret_basic"})
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    g = requests.get(reg.url + "/oauth/register", timeout=10)
    assert g.status_code == 405 and "POST" in g.headers["Allow"]
    assert g.json()["error"] == "invalid_request"


def test_a14_78_client_name_is_escaped_and_marked_self_asserted(reg, browser):
    """RFC 7591 §5 (A.14 item 78): the self-asserted name is escaped on the
    consent page, which says the application registered itself and shows the
    redirect host."""
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    info = _register(reg, {**PUBLIC, "client_name": name, "redirect_uris": ["https://app.example/cb"]}).json()
    page = _consent_page(browser, info)
    assert name not in page and "<script>alert" not in page
    assert str(escape(name)) in page
    assert "data-self-registered" in page and "registered itself" in page
    assert 'data-redirect-host>app.example<' in page


def test_c13_private_use_scheme_redirect_gets_a_warning(reg, browser):
    """C-13 / RFC 8252 §7.1: a client returning to a private-use scheme (Cursor)
    is allowed, and the consent page warns that any app can claim the scheme."""
    info = _register(reg, {**PUBLIC, "client_name": "Cursor",
                           "redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/user-callback"]}).json()
    page = _consent_page(browser, info)
    assert "data-private-scheme" in page and "cursor:" in page


def test_admin_clients_get_no_self_registered_note(reg, make_client, browser):
    """Only dynamically registered clients are marked as self-described."""
    c = make_client(name="Acme CRM")
    _, challenge = pkce_pair()
    page = browser.authorize(auth_params(c, challenge, scope="openid"), decision=None)
    assert page.status_code == 200 and "Acme CRM" in page.text
    assert "data-self-registered" not in page.text and "data-private-scheme" not in page.text
