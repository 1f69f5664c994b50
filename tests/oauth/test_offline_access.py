"""``offline_access`` and refresh tokens as MCP 2026-07-28 "Refresh Tokens"
(SEP-2207) and the spec checklist want them (item 48, A.22 item 108, B.6, C-7,
C-11), driven over HTTP.

The policy: refresh tokens go by grant type (a client registered for
``refresh_token`` gets one, with or without ``offline_access``); the server
lists ``offline_access`` in ``scopes_supported`` and so never refuses it, for
any client (admin with a scope list, dynamic, CIMD); the SDKs then add it on
their own together with ``prompt=consent``, which always shows the consent page.
The grant-type rule itself is in tests/oauth/grants/test_refresh_token.py
(test_a7_48_*), the metadata in tests/web/test_wellknown.py.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from tests.browser import CSRF, PENDING, Browser
from tests.helpers import auth_params, jwt_claims, pkce_pair, redirect_params, refresh, RegisteredClient


def _consent_page(resp) -> bool:
    return resp.status_code == 200 and 'name="decision"' in resp.text


def _allow(browser: Browser, page):
    return browser.post("/oauth/authorize/consent", {
        "csrf_token": CSRF.search(page.text).group(1),
        "pending": PENDING.search(page.text).group(1),
        "decision": "allow",
    })


def _authorize(browser: Browser, client: RegisteredClient, scope: str, *, expect_consent: bool, **extra):
    """The browser part: returns (code, verifier). ``expect_consent`` says whether
    the consent page must be shown on the way (and it is then answered)."""
    verifier, challenge = pkce_pair()
    resp = browser.authorize(auth_params(client, challenge, scope=scope, **extra), decision=None)
    assert _consent_page(resp) is expect_consent, (resp.status_code, resp.headers.get("Location"), resp.text[:300])
    if expect_consent:
        if "offline_access" in scope.split():
            assert "<code>offline_access</code>" in resp.text  # the member sees what is asked
        resp = _allow(browser, resp)
    params = redirect_params(resp)
    assert "code" in params, params
    return params["code"], verifier


def _redeem(live, client: RegisteredClient, code, verifier, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, "client_id": client.client_id, **extra}
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    return requests.post(live.url + "/oauth/token", data=data, auth=auth, timeout=10)


def _ok(resp) -> dict:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return resp.json()


def _assert_refresh_works(live, client, body):
    assert isinstance(body.get("refresh_token"), str) and body["refresh_token"]
    again = _ok(refresh(live, client, body["refresh_token"]))
    assert again["refresh_token"] != body["refresh_token"] and again["scope"] == body["scope"]


# --- C-11: never refused, whoever the client is -----------------------------------


def test_c11_offline_access_allowed_beside_a_registered_scope_list(live, make_client, browser):
    """C-11: an admin client registered with ``openid profile`` may still ask for
    offline_access (the SDKs append it because scopes_supported lists it), and
    gets a refresh token. Its list still binds every other scope."""
    assert "offline_access" in live.metadata()["scopes_supported"]
    c = make_client(scopes=("openid", "profile"))
    code, verifier = _authorize(browser, c, "openid profile offline_access", expect_consent=True, prompt="consent")
    body = _ok(_redeem(live, c, code, verifier))
    assert body["scope"].split() == ["openid", "profile", "offline_access"]
    _assert_refresh_works(live, c, body)
    _, challenge = pkce_pair()
    refused = redirect_params(browser.authorize(auth_params(c, challenge, scope="openid email offline_access")))
    assert refused["error"] == "invalid_scope"


def test_c11_dynamic_client_registered_without_offline_access_may_ask_for_it(live, browser):
    """C-11 / B.6: a DCR client whose registered ``scope`` lacks offline_access asks
    for it later with prompt=consent (as the SDKs do): consent is shown, naming
    it, and the client gets a refresh token."""
    live.server.registration_limiter.reset()
    reg = requests.post(live.url + "/oauth/register", timeout=10, json={
        "client_name": "Agent", "redirect_uris": ["http://127.0.0.1:3030/callback"], "scope": "openid",
        "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"})
    assert reg.status_code == 201, reg.text
    info = reg.json()
    assert info["scope"] == "openid"
    c = RegisteredClient(info["client_id"], None, info["redirect_uris"][0], info["redirect_uris"])
    code, verifier = _authorize(browser, c, "openid offline_access", expect_consent=True, prompt="consent")
    body = _ok(_redeem(live, c, code, verifier))
    assert body["scope"].split() == ["openid", "offline_access"]
    _assert_refresh_works(live, c, body)


def test_c11_cimd_client_may_ask_for_offline_access(make_server_with):
    """C-11 / B.4: a client-ID-metadata-document client asks for offline_access with
    prompt=consent: consent is shown and a refresh token is issued (its document
    lists the refresh_token grant)."""
    from tests.cimd_docs import REDIRECT, DocServer

    live = make_server_with(cimd_allow_loopback=True)
    docs = DocServer()
    try:
        url = docs.url("/agent.json")
        docs.serve_json("/agent.json", docs.document("/agent.json"))
        c = RegisteredClient(url, None, REDIRECT, [REDIRECT])
        code, verifier = _authorize(Browser(live), c, "openid offline_access", expect_consent=True,
                                    prompt="consent")
        body = _ok(_redeem(live, c, code, verifier))
        assert body["scope"].split() == ["openid", "offline_access"]
        _assert_refresh_works(live, c, body)
    finally:
        docs.httpd.shutdown()
        docs.httpd.server_close()


# --- A.22 item 108 / item 104: consent -------------------------------------------------


def test_a22_108_offline_access_without_prompt_consent_is_not_refused(live, make_client, browser):
    """A.22 #108 [POLICY]: offline_access without prompt=consent is no
    invalid_scope. The first time the consent page is shown anyway (nothing
    remembered); once the member approved a consent naming offline_access, that
    consent covers the next request, which needs no page. Both yield a refresh token."""
    c = make_client()
    code, verifier = _authorize(browser, c, "openid offline_access", expect_consent=True)
    _assert_refresh_works(live, c, _ok(_redeem(live, c, code, verifier)))
    code, verifier = _authorize(browser, c, "openid offline_access", expect_consent=False)
    _assert_refresh_works(live, c, _ok(_redeem(live, c, code, verifier)))
    # A remembered consent without offline_access does not cover it: the page again.
    d = make_client()
    _authorize(browser, d, "openid", expect_consent=True)
    _authorize(browser, d, "openid offline_access", expect_consent=True)


def test_a22_104_prompt_consent_with_offline_access_always_shows_the_page(live, make_client, browser):
    """A.22 #104 / B.6: the SDKs send prompt=consent on every authorization once
    offline_access is in scope; the page is shown each time although the same
    consent is remembered, and each answer yields a refresh token."""
    c = make_client()
    for _ in range(2):
        code, verifier = _authorize(browser, c, "openid offline_access", expect_consent=True, prompt="consent")
        assert _ok(_redeem(live, c, code, verifier))["refresh_token"]


# --- item 48 / SEP-2207: the grant type decides -------------------------------------------


def test_a7_48_offline_access_without_the_refresh_grant_is_accepted_but_gives_none(live, make_client, browser):
    """SEP-2207 (the AS SHOULD NOT issue a refresh token to a client not registered
    for the grant; clients MUST NOT assume one): offline_access from such a client
    is not refused, and the response carries no refresh_token member at all. The
    scope is dropped from what is granted (OIDC Core §11 lets the server ignore
    it): the consent page does not promise a refresh token, the token response
    names the narrower scope (RFC 6749 §3.3)."""
    c = make_client(grant_types=("authorization_code",))
    verifier, challenge = pkce_pair()
    resp = browser.authorize(auth_params(c, challenge, scope="openid offline_access", prompt="consent"),
                             decision=None)
    assert _consent_page(resp) and "offline_access" not in resp.text and "Stay connected" not in resp.text
    code = redirect_params(_allow(browser, resp))["code"]
    body = _ok(_redeem(live, c, code, verifier))
    assert "refresh_token" not in body and None not in body.values()
    assert body["access_token"] and body["id_token"]
    assert body["scope"] == "openid" and jwt_claims(body["access_token"])["scope"] == "openid"


def test_sep2207_offline_access_in_the_token_requests(live, make_client, browser):
    """MCP 2026-07-28 "Refresh Tokens": clients MAY add offline_access to the scope
    of the token requests too. At the code exchange the parameter changes nothing
    (the code's scope is granted); at a refresh it is within the grant and accepted."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/callback",))
    code, verifier = _authorize(browser, c, "openid profile offline_access", expect_consent=True, prompt="consent")
    body = _ok(_redeem(live, c, code, verifier, scope="openid offline_access"))
    assert body["scope"] == "openid profile offline_access"
    again = _ok(refresh(live, c, body["refresh_token"], scope="openid profile offline_access"))
    assert again["scope"] == "openid profile offline_access"
    assert again["refresh_token"] and again["refresh_token"] != body["refresh_token"]


# --- B.6 / B.10: the mcp SDK's own offline_access and prompt=consent, headless -------------


def test_b6_mcp_sdk_adds_offline_access_and_prompt_consent_and_gets_a_refresh_token(live):
    """B.6 / B.10 with the official mcp SDK (OAuthClientProvider) against the
    example MCP server: the server's challenge names only ``mcp:tools``; the SDK
    appends offline_access (our metadata lists it, its grant_types include
    refresh_token) at registration and authorization and sends prompt=consent;
    the consent page is shown and answered headlessly, and the token response has
    a refresh token. A second authorization (stored client, no tokens) shows the
    consent page again although consent is remembered."""
    pytest.importorskip("mcp", reason="the official mcp SDK is not installed (pip install -e '.[test]')")
    pytest.importorskip("uvicorn", reason="uvicorn (an mcp dependency) is not installed")
    import httpx2
    from mcp import Client
    from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import OAuthClientMetadata
    from pydantic import AnyUrl

    from tests.examples.mcp_runner import MemoryStorage, example_mcp_server

    callback = "http://127.0.0.1:53682/callback"  # nothing listens: the handler stops at the redirect
    browser = Browser(live)
    seen = {"authorization_urls": [], "consent_pages": [], "registrations": [], "token_forms": []}
    box = {}

    def member_answers(authorization_url: str):
        """The member's browser: log in, see the consent page, allow."""
        seen["authorization_urls"].append(authorization_url)
        resp = browser.authorize(dict(parse_qsl(urlsplit(authorization_url).query)), decision=None)
        if _consent_page(resp):
            seen["consent_pages"].append(resp.text)
            resp = _allow(browser, resp)
        assert resp.status_code in (302, 303) and resp.headers["Location"].startswith(callback + "?"), resp.text[:300]
        return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}

    async def redirect_handler(authorization_url: str) -> None:
        q = await asyncio.to_thread(member_answers, authorization_url)
        assert "error" not in q, q
        box["result"] = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    async def callback_handler() -> AuthorizationCodeResult:
        return box.pop("result")

    async def record(request):
        if request.url.path == "/oauth/register":
            seen["registrations"].append(json.loads(request.content))
        elif request.url.path == "/oauth/token":
            seen["token_forms"].append(dict(parse_qsl(request.content.decode())))

    async def connect(mcp_url, storage):
        provider = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=OAuthClientMetadata(client_name="offline_access probe", redirect_uris=[AnyUrl(callback)],
                                                grant_types=["authorization_code", "refresh_token"]),
            storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler)
        async with httpx2.AsyncClient(auth=provider, event_hooks={"request": [record]}, timeout=30) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                result = await client.call_tool("whoami", {})
                assert not result.is_error, result

    storage = MemoryStorage()
    with example_mcp_server(live, ("mcp:tools",)) as mcp_url:
        asyncio.run(connect(mcp_url, storage))
        first_tokens = storage.tokens
        storage.tokens = None  # a host restarted without its tokens: authorizes again
        asyncio.run(connect(mcp_url, storage))

    [registration] = seen["registrations"]
    assert registration["scope"].split() == ["mcp:tools", "offline_access"]
    assert len(seen["authorization_urls"]) == 2
    for url in seen["authorization_urls"]:
        q = dict(parse_qsl(urlsplit(url).query))
        assert q["prompt"] == "consent"
        assert q["scope"].split() == ["mcp:tools", "offline_access"]
    assert len(seen["consent_pages"]) == 2  # the second one despite the remembered consent
    assert all("<code>offline_access</code>" in page for page in seen["consent_pages"])
    assert [f["grant_type"] for f in seen["token_forms"]] == ["authorization_code", "authorization_code"]
    assert first_tokens.refresh_token and storage.tokens.refresh_token
    assert first_tokens.scope.split() == ["mcp:tools", "offline_access"]
