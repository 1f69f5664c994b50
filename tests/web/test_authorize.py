"""/oauth/authorize, the login hand-off and the consent step, tested the way a
browser and a client use them: over HTTP against the live server.

Covers docs/requirements.md: A1-3 and 6 (as they apply to /authorize), A.3
(12-23), A.4 (24-30), A.5 (31-37), A.8 (49-51), A.22 (101-108) and the
/authorize rows of the A.27 table. A.1 item 1 (the issuer check at start) is in
tests/test_config.py; the registration-time redirect URI rules of A.4 items 26
and 28 are in tests/oauth/test_redirect_uris.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
import time_machine
from sqlalchemy import func, select

from authz_server.models import AuthorizationCode, Consent, Resource
from tests.browser import CSRF, PENDING, Browser
from tests.helpers import auth_params, jwt_claims, pkce_pair

ALICE = "alice@acme.test"
CLIENT_ERRORS = {  # RFC 6749 §4.1.2.1 plus OIDC Core §3.1.2.6
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
    "request_not_supported", "request_uri_not_supported", "registration_not_supported", "invalid_target",
}


# --- helpers ------------------------------------------------------------------


def authorize(browser: Browser, params):
    """One GET /oauth/authorize; ``params`` is a dict or a list of pairs (to repeat a name)."""
    return browser.get("/oauth/authorize?" + urlencode(params, doseq=True))


def signed_in(live, email=ALICE) -> Browser:
    b = Browser(live, email)
    resp = b.login(email)
    assert resp.status_code == 303, resp.text[:300]
    return b


def query_pairs(location: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


def client_redirect(resp, redirect_uri: str, statuses=(302,)) -> dict:
    """Assert ``resp`` sends the browser to ``redirect_uri`` and return its parameters
    (each sent once; RFC 6749 §3.1 holds for responses too)."""
    assert resp.status_code in statuses, (resp.status_code, resp.headers.get("Location"), resp.text[:300])
    loc = resp.headers["Location"]
    base = redirect_uri.split("?")[0]
    assert loc.split("?")[0] == base, (loc, redirect_uri)
    assert "#" not in loc  # query response mode only: nothing travels in a fragment
    pairs = query_pairs(loc)
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), pairs
    return dict(pairs)


def assert_error_redirect(live, resp, redirect_uri, error, state=None, statuses=(302,)):
    p = client_redirect(resp, redirect_uri, statuses)
    assert p.get("error") == error, p
    assert error in CLIENT_ERRORS
    assert "code" not in p
    assert p["iss"] == live.url  # RFC 9207 §2, on errors too (A.8 item 49)
    if state is not None:
        assert p.get("state") == state, p
    return p


def assert_error_page(resp, status=400):
    """An HTML page for the person, never a redirect (RFC 6749 §4.1.2.1)."""
    assert resp.status_code == status, (resp.status_code, resp.headers.get("Location"), resp.text[:300])
    assert "Location" not in resp.headers
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "http-equiv" not in resp.text.lower()  # no meta refresh either
    assert 'href="https://evil' not in resp.text
    assert_frame_and_referrer_headers(resp)


def assert_frame_and_referrer_headers(resp):
    csp = [d.strip() for d in resp.headers.get("Content-Security-Policy", "").split(";")]
    assert "frame-ancestors 'none'" in csp, resp.headers.get("Content-Security-Policy")
    assert resp.headers.get("X-Frame-Options") == "DENY"
    assert resp.headers.get("Referrer-Policy") == "no-referrer"


def is_login_redirect(resp) -> bool:
    return resp.status_code in (302, 303) and urlsplit(resp.headers.get("Location", "")).path == "/login"


def pending_of(resp) -> str:
    return dict(query_pairs(resp.headers["Location"]))["pending"]


def is_consent_page(resp) -> bool:
    return resp.status_code == 200 and 'name="decision"' in resp.text


def answer_consent(browser: Browser, page, decision="allow", csrf_token=None):
    return browser.post("/oauth/authorize/consent", {
        "csrf_token": CSRF.search(page.text).group(1) if csrf_token is None else csrf_token,
        "pending": PENDING.search(page.text).group(1),
        "decision": decision,
    })




def redeem(token_post, client, code, verifier, redirect_uri="default", **extra):
    data = {"grant_type": "authorization_code", "code": code, "client_id": client.client_id, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    if redirect_uri == "default":
        redirect_uri = client.redirect_uri
    if redirect_uri is not None:
        data["redirect_uri"] = redirect_uri
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    return token_post(data, auth=auth)


def count(live, model) -> int:
    s = live.db.session
    try:
        return s.scalar(select(func.count()).select_from(model))
    finally:
        s.remove()


def later(seconds):
    return time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=seconds), tick=True)


# --- A.1 General HTTP behaviour (as it applies to /authorize) -----------------------


def test_a1_3_empty_parameter_counts_as_absent(live, make_client, browser, token_post):
    """A.1 #3: a parameter sent with an empty value is treated as omitted (RFC 6749 §3.1)."""
    c = make_client(scopes=("openid", "email"))
    v, ch = pkce_pair()
    params = auth_params(c, ch, state="", scope="", nonce="", prompt="", max_age="", login_hint="", resource="")
    resp = browser.authorize(params)
    p = client_redirect(resp, c.redirect_uri, (302, 303))
    assert "code" in p and "state" not in p, p  # no state sent, none echoed (not "state=")
    tok = redeem(token_post, c, p["code"], v)
    assert tok.status_code == 200, tok.text
    assert tok.json()["scope"] == "openid email"  # empty scope = omitted = the registered default
    assert "nonce" not in jwt_claims(tok.json()["id_token"])


def test_a1_3_empty_code_challenge_counts_as_missing(live, make_client):
    """A.1 #3 with A.5 #31: ``code_challenge=`` is an absent challenge, so PKCE is missing."""
    c = make_client()
    member = signed_in(live)
    params = auth_params(c, "", state="s-empty")
    resp = authorize(member, params)
    p = assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-empty")
    assert "code_challenge" in p["error_description"]


def test_a1_3_unknown_parameter_is_ignored(live, make_client, browser):
    """A.1 #3: unknown parameters are ignored (RFC 6749 §3.1)."""
    c = make_client()
    _, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch, foo="bar", ui_locales="fr", claims_locales="de"))
    p = client_redirect(resp, c.redirect_uri, (302, 303))
    assert "code" in p and "foo" not in p


@pytest.mark.parametrize("name,extra", [
    ("state", "another-state"),
    ("scope", "openid"),
    ("response_type", "code"),
    ("nonce", "n-2"),
    ("code_challenge", None),
    ("code_challenge_method", "S256"),
    ("prompt", "login"),
    ("max_age", "60"),
    ("login_hint", "bob@acme.test"),
])
def test_a1_3_repeated_parameter_is_invalid_request(live, make_client, name, extra):
    """A.1 #3: request parameters MUST NOT be sent twice (RFC 6749 §3.1); with a valid
    client and redirect URI the error goes back to the client."""
    c = make_client()
    member = signed_in(live)
    _, ch = pkce_pair()
    params = list(auth_params(c, ch, state="s-dup", nonce="n-1", prompt="consent", max_age="3600",
                              login_hint=ALICE).items())
    params.append((name, ch if extra is None else extra))
    resp = authorize(member, params)
    p = assert_error_redirect(live, resp, c.redirect_uri, "invalid_request",
                              state=None if name == "state" else "s-dup")
    assert name in p.get("error_description", ""), p
    assert count(live, AuthorizationCode) == 0


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_a1_3_repeated_client_id_or_redirect_uri_gets_error_page(live, make_client, name):
    """A.1 #3 with A.3 #16: a repeated client_id or redirect_uri cannot be validated, so
    the error is an HTML page and nothing redirects (RFC 6749 §4.1.2.1)."""
    c = make_client(redirect_uris=("https://app.example/cb", "https://app.example/cb2"))
    member = signed_in(live)
    _, ch = pkce_pair()
    value = c.client_id if name == "client_id" else "https://app.example/cb2"
    params = list(auth_params(c, ch).items()) + [(name, value)]
    assert_error_page(authorize(member, params))


def test_a1_3_resource_may_repeat(live, make_client, browser):
    """A.1 #3: ``resource`` is the one parameter that may repeat (RFC 8707 §2)."""
    s = live.db.session
    s.add_all([Resource(identifier="https://mcp.example/a", name="A", scopes=["a:read"]),
               Resource(identifier="https://mcp.example/b", name="B", scopes=["b:read"])])
    s.commit()
    s.remove()
    c = make_client()
    _, ch = pkce_pair()
    params = auth_params(c, ch, scope="openid a:read b:read",
                         resource=["https://mcp.example/a", "https://mcp.example/b"])
    resp = browser.authorize(params)
    p = client_redirect(resp, c.redirect_uri, (302, 303))
    assert "code" in p, p


def test_a1_6_authorization_responses_carry_no_empty_or_null_values(live, make_client, browser):
    """A.1 #6 (policy): no optional member is sent empty or as null, here in the
    authorization response parameters, success and error."""
    c = make_client()
    _, ch = pkce_pair()
    ok = browser.authorize(auth_params(c, ch))
    denied = Browser(live, "bob@acme.test").authorize(auth_params(c, ch), decision="deny")
    bad = authorize(browser, auth_params(c, ch, scope="no-such-scope"))
    assert "code" in client_redirect(ok, c.redirect_uri, (303,))
    assert client_redirect(denied, c.redirect_uri, (303,))["error"] == "access_denied"
    assert client_redirect(bad, c.redirect_uri)["error"] == "invalid_scope"
    for resp in (ok, denied, bad):
        for k, v in query_pairs(resp.headers["Location"]):
            assert v not in ("", "None", "null"), (k, v)


# --- A.3 Authorization endpoint ------------------------------------------------------


def test_a3_12_unknown_response_type_redirects_unsupported_response_type(live, make_client):
    """A.3 #12: an unknown response_type from a valid client gets unsupported_response_type,
    redirected (RFC 6749 §4.1.2.1)."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, response_type="foo", state="s-12"))
    assert_error_redirect(live, resp, c.redirect_uri, "unsupported_response_type", "s-12")


def test_a3_12_missing_response_type_redirects_unsupported_response_type(live, make_client):
    """A.3 #12: a missing response_type gets unsupported_response_type once the client
    and redirect URI are valid."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, response_type=None, state="s-12b"))
    assert_error_redirect(live, resp, c.redirect_uri, "unsupported_response_type", "s-12b")


def test_a3_12_unknown_response_type_from_unknown_client_shows_error_page(live, make_client, browser):
    """A.3 #12: from an unknown client the same error is an HTML page, never a redirect."""
    c = make_client()
    _, ch = pkce_pair()
    params = auth_params(c, ch, response_type="foo", client_id="client-does-not-exist")
    assert_error_page(authorize(browser, params))
    assert_error_page(authorize(signed_in(live), params))


def test_a3_12_client_without_code_grant_is_unauthorized_client(live, make_client):
    """A.3 #12/#15: a client not registered for the code grant gets unauthorized_client."""
    c = make_client(grant_types=("client_credentials",), redirect_uris=("https://app.example/cb",))
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, state="s-uc"))
    assert_error_redirect(live, resp, c.redirect_uri, "unauthorized_client", "s-uc")


@pytest.mark.parametrize("response_type", [
    "token", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none",
])
def test_a3_13_no_implicit_or_hybrid_response_types(live, make_client, response_type):
    """A.3 #13 / A.27: no implicit grant and no front-channel tokens (OAuth 2.1 §10.1)."""
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, response_type=response_type, state="s-13"))
    p = assert_error_redirect(live, resp, c.redirect_uri, "unsupported_response_type", "s-13")
    assert not {"access_token", "id_token", "code", "token_type"} & set(p)


def test_a3_13_metadata_lists_only_the_code_response_type(live):
    """A.3 #13 / A.27: metadata lists only ``code``; no implicit or password grant."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        md = requests.get(live.url + path, timeout=10).json()
        assert md["response_types_supported"] == ["code"]
        assert not {"password", "implicit"} & set(md["grant_types_supported"])
        assert set(md.get("response_modes_supported", ["query"])) <= {"query"}


def test_a27_password_grant_is_not_supported(live, make_client, token_post):
    """A.3 #13 / A.27: the resource-owner password grant does not exist (RFC 9700 §2.4)."""
    c = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    resp = token_post({"grant_type": "password", "username": ALICE, "password": "x"},
                      auth=(c.client_id, c.client_secret))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "unsupported_grant_type"
    assert "access_token" not in resp.json()


def test_a3_14_state_is_echoed_byte_for_byte(live, make_client, browser):
    """A.3 #14: ``state`` comes back exactly as sent (RFC 6749 §4.1.2)."""
    c = make_client()
    _, ch = pkce_pair()
    state = "a b&c=d+e%2F/\u00e9?#~" + secrets.token_urlsafe(8)
    ok = client_redirect(browser.authorize(auth_params(c, ch, state=state)), c.redirect_uri, (302, 303))
    assert ok["state"] == state
    denied = client_redirect(Browser(live, "bob@acme.test").authorize(auth_params(c, ch, state=state), decision="deny"),
                             c.redirect_uri, (303,))
    assert denied["state"] == state


def test_a3_14_code_expires(live, make_client, get_code, token_post):
    """A.3 #14: the code is short-lived (≤ 10 minutes; 60 s here); an expired one gets invalid_grant."""
    assert live.settings.code_ttl <= 600
    c = make_client()
    code, verifier, _ = get_code(c)
    with later(live.settings.code_ttl + 1):
        resp = redeem(token_post, c, code, verifier)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_grant"


def test_a3_14_code_is_bound_to_its_client(live, make_client, get_code, token_post):
    """A.3 #14: the code is bound to the client it was issued to."""
    c = make_client()
    other = make_client(redirect_uris=(c.redirect_uri,))
    code, verifier, _ = get_code(c)
    resp = redeem(token_post, other, code, verifier)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text
    assert redeem(token_post, c, code, verifier).status_code == 200


def test_a3_14_code_carries_scope_nonce_and_auth_time(live, make_client, get_code, token_post):
    """A.3 #14: the code binds scope, nonce and the real auth_time of the member."""
    c = make_client()
    before = int(datetime.now(timezone.utc).timestamp())
    code, verifier, _ = get_code(c, scope="openid email", nonce="n-14")
    resp = redeem(token_post, c, code, verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "openid email"
    idt = jwt_claims(body["id_token"])
    assert idt["nonce"] == "n-14"
    assert before - 1 <= idt["auth_time"] <= idt["iat"]


def test_a3_15_deny_redirects_access_denied_with_state_and_iss(live, make_client, browser):
    """A.3 #15: Deny lands on redirect_uri?error=access_denied&state=…&iss=…"""
    c = make_client()
    _, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch, state="s-deny"), decision="deny")
    assert_error_redirect(live, resp, c.redirect_uri, "access_denied", "s-deny", statuses=(303,))
    assert count(live, AuthorizationCode) == 0
    assert count(live, Consent) == 0


def test_a3_15_invalid_scope_redirects_with_description(live, make_client):
    """A.3 #15: an unknown scope gets invalid_scope with state, iss and a description."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, scope="openid bogus", state="s-15"))
    p = assert_error_redirect(live, resp, c.redirect_uri, "invalid_scope", "s-15")
    assert p["error_description"]


@pytest.mark.parametrize("case", [
    "unregistered_redirect_uri", "missing_client_id", "unknown_client_id", "disabled_client",
    "missing_redirect_uri_with_two_registered",
])
@pytest.mark.parametrize("who", ["anonymous", "member", "prompt_none"])
@pytest.mark.parametrize("also_wrong", ["scope", "response_type"])
def test_a3_16_never_redirects_to_an_unvalidated_uri(live, make_client, case, who, also_wrong):
    """A.3 #16: no redirect when client_id is missing/unknown or redirect_uri is
    missing/unregistered; an HTML 400 with no Location instead (RFC 6749 §4.1.2.1),
    whatever else is wrong with the request."""
    c = make_client(redirect_uris=("https://app.example/cb", "https://app.example/cb2"))
    _, ch = pkce_pair()
    params = auth_params(c, ch, **{also_wrong: "bogus"})  # an error that would otherwise redirect
    if case == "unregistered_redirect_uri":
        params["redirect_uri"] = "https://evil.example/cb"
    elif case == "missing_client_id":
        params.pop("client_id")
    elif case == "unknown_client_id":
        params["client_id"] = "client-" + secrets.token_hex(8)
    elif case == "disabled_client":
        from authz_server.storage import clients as store

        s = live.db.session
        store.set_disabled(s, store.get(s, c.client_id), True)
        s.commit()
        s.remove()
        live.server.clients.invalidate()
    else:
        params.pop("redirect_uri")
    if who == "prompt_none":
        params["prompt"] = "none"
    b = signed_in(live) if who == "member" else Browser(live)
    assert_error_page(authorize(b, params))


def test_a3_17_error_redirect_waits_for_login(live, make_client, browser):
    """A.3 #17: the member is authenticated before any redirect, errors included
    (OAuth 2.1 §7.12.2). The server's policy: an anonymous browser sending a bad
    request from a valid client first sees the login page; the error goes to the
    client only after sign-in."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/cb",))
    _, ch = pkce_pair()
    params = auth_params(c, ch, scope="bogus", state="s-17", redirect_uri="http://127.0.0.1:5599/cb")
    resp = authorize(browser, params)
    assert is_login_redirect(resp), (resp.status_code, resp.headers.get("Location"))
    after = browser.login(pending=pending_of(resp))
    assert after.status_code == 303
    resp = browser.get(after.headers["Location"])
    assert_error_redirect(live, resp, "http://127.0.0.1:5599/cb", "invalid_scope", "s-17")


def test_a3_17_prompt_none_error_is_immediate(live, make_client, browser):
    """A.3 #17: the silent prompt=none request is the exception: its error comes back at once."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(browser, auth_params(c, ch, scope="bogus", state="s-17n", prompt="none"))
    assert_error_redirect(live, resp, c.redirect_uri, "invalid_scope", "s-17n")


def test_a3_18_omitted_scope_gets_the_registered_default(live, make_client, tokens_for):
    """A.3 #18: no ``scope`` means the documented default: the client's registered scopes,
    and the token response says which scope was granted."""
    c = make_client(scopes=("openid", "email"))
    body = tokens_for(c, scope=None)
    assert body["scope"] == "openid email"
    assert "id_token" in body


def test_a3_18_omitted_scope_without_registered_scopes_gets_openid(live, make_client, tokens_for):
    """A.3 #18: a client registered with no scope list gets ``openid`` by default."""
    c = make_client()
    body = tokens_for(c, scope=None)
    assert body["scope"] == "openid"


def test_a3_18_scope_outside_the_registration_is_invalid_scope(live, make_client):
    """A.3 #18 / D-7: a scope the client did not register is refused, never silently dropped."""
    c = make_client(scopes=("openid",))
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, scope="openid email", state="s-18"))
    assert_error_redirect(live, resp, c.redirect_uri, "invalid_scope", "s-18")


def test_a3_19_remembered_consent_skips_the_page_for_a_confidential_client(live, make_client, browser):
    """A.3 #19: a remembered consent covering the scopes skips the page for a client whose
    identity is proven (confidential, https redirect)."""
    c = make_client()
    _, ch = pkce_pair()
    first = browser.authorize(auth_params(c, ch, scope="openid email"))
    assert "code" in client_redirect(first, c.redirect_uri, (303,))
    again = browser.authorize(auth_params(c, ch, scope="openid"), decision=None)
    assert "code" in client_redirect(again, c.redirect_uri, (302,))


def test_a3_19_wider_scope_asks_again(live, make_client, browser):
    """A.3 #19: a remembered consent only covers the scopes that were approved."""
    c = make_client()
    _, ch = pkce_pair()
    browser.authorize(auth_params(c, ch, scope="openid"))
    page = browser.authorize(auth_params(c, ch, scope="openid email"), decision=None)
    assert is_consent_page(page)
    assert "email" in page.text


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1/cb", "http://localhost:8976/cb"])
def test_a3_19_loopback_public_client_is_asked_every_time(live, make_client, browser, redirect_uri):
    """A.3 #19: a public client on a loopback redirect cannot prove who it is, so an
    earlier consent is not reused (RFC 8252 §8.6, OIDC Core §3.1.2.4)."""
    c = make_client(client_type="third_party_public", redirect_uris=(redirect_uri,))
    _, ch = pkce_pair()
    first = browser.authorize(auth_params(c, ch))
    assert "code" in client_redirect(first, redirect_uri, (303,))
    again = browser.authorize(auth_params(c, ch), decision=None)
    assert is_consent_page(again), (again.status_code, again.headers.get("Location"))
    silent = authorize(browser, auth_params(c, ch, prompt="none", state="s-19"))
    assert_error_redirect(live, silent, redirect_uri, "consent_required", "s-19")


@pytest.mark.parametrize("client_type", ["first_party", "first_party_public"])
def test_a3_19_first_party_client_skips_consent(live, make_client, browser, client_type):
    """A.3 #19 (policy): first-party clients are approved by the organization."""
    c = make_client(client_type=client_type)
    _, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch), decision=None)
    assert "code" in client_redirect(resp, c.redirect_uri, (302,))
    assert count(live, Consent) == 0


def _authorize_pages(live, make_client):
    """Every kind of response a browser meets under /authorize and /login."""
    c = make_client()
    _, ch = pkce_pair()
    b = Browser(live)
    out = {}
    out["error page"] = authorize(b, auth_params(c, ch, client_id="client-nope"))
    out["login redirect"] = authorize(b, auth_params(c, ch))
    pending = pending_of(out["login redirect"])
    out["login page"] = b.get(out["login redirect"].headers["Location"])
    out["login post"] = b.login(pending=pending)
    out["consent page"] = b.get(out["login post"].headers["Location"])
    assert is_consent_page(out["consent page"])
    out["consent csrf error"] = answer_consent(b, out["consent page"], csrf_token="forged")
    out["consent post"] = answer_consent(b, out["consent page"])
    out["expired pending"] = b.get("/oauth/authorize?pending=p-gone")
    out["client redirect"] = authorize(b, auth_params(c, ch))
    out["login done"] = b.get("/login/done")
    return out


def test_a3_20_clickjacking_headers_on_every_authorize_page(live, make_client):
    """A.3 #20 / A.27: CSP frame-ancestors 'none' and X-Frame-Options DENY on the login,
    consent and error pages and on every redirect under /authorize."""
    for name, resp in _authorize_pages(live, make_client).items():
        csp = [d.strip() for d in resp.headers.get("Content-Security-Policy", "").split(";")]
        assert "frame-ancestors 'none'" in csp, name
        assert resp.headers.get("X-Frame-Options") == "DENY", name


@pytest.mark.parametrize("token", ["missing", "empty", "forged", "other_session"])
def test_a3_21_consent_post_without_valid_csrf_token_is_refused(live, make_client, browser, token):
    """A.3 #21: a consent POST without a valid CSRF token gets 400 and issues no code."""
    c = make_client()
    _, ch = pkce_pair()
    page = browser.authorize(auth_params(c, ch), decision=None)
    assert is_consent_page(page)
    data = {"pending": PENDING.search(page.text).group(1), "decision": "allow"}
    if token == "empty":
        data["csrf_token"] = ""
    elif token == "forged":
        data["csrf_token"] = secrets.token_urlsafe(24)
    elif token == "other_session":
        other = signed_in(live)
        other_page = other.authorize(auth_params(c, ch), decision=None)
        data["csrf_token"] = CSRF.search(other_page.text).group(1)
    resp = browser.post("/oauth/authorize/consent", data)
    assert_error_page(resp, 400)
    assert count(live, AuthorizationCode) == 0
    assert count(live, Consent) == 0
    # The real form still works afterwards: nothing was consumed.
    assert "code" in client_redirect(answer_consent(browser, page), c.redirect_uri, (303,))


def test_a3_21_login_post_without_csrf_token_is_refused(live, make_client, browser):
    """A.3 #21: the login form POSTs (organization picker, step-up) are CSRF-protected
    too (no login CSRF): without the token nothing is exchanged and nobody is signed in."""
    import html as htmllib
    import re

    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    pending = pending_of(authorize(browser, auth_params(c, ch)))
    page = browser.get(f"/login?pending={pending}")
    href = htmllib.unescape(re.search(r'data-provider="google" href="([^"]+)"', page.text).group(1))
    idp = browser.http.get(href, timeout=10)
    from tests.helpers import form_fields

    fields = {**form_fields(idp.text), "email": ALICE}
    back = browser.http.post(idp.url, data=fields, allow_redirects=False, timeout=10)
    picker = browser.get(browser.get(back.headers["Location"]).headers["Location"])
    org_id = re.search(r'name="organization_id" value="([^"]+)"', picker.text).group(1)
    resp = browser.post("/login/organizations", {"organization_id": org_id})
    assert_error_page(resp, 400)
    resp = browser.post("/login/organizations", {"organization_id": org_id, "csrf_token": "forged"})
    assert_error_page(resp, 400)
    assert is_login_redirect(authorize(browser, auth_params(c, ch)))  # still signed out


def test_parked_request_cannot_be_resumed_by_another_browser(live, make_client):
    """A parked authorization request (``?pending=…``) belongs to the browser that
    parked it. Another member's browser using its id (the resume URL, GET or POST,
    the login hand-off, or the consent form with its own valid CSRF token) gets the
    "expired" page or ends on "You are signed in": no code, no consent, nothing
    resumed. The browser that parked it still finishes."""
    c = make_client()
    owner = Browser(live, ALICE)
    v, ch = pkce_pair()
    pending = pending_of(authorize(owner, auth_params(c, ch, state="st-owner")))
    other = signed_in(live, "bob@acme.test")

    def refused():
        other_csrf = CSRF.search(other.get("/logout").text).group(1)
        for resp in (other.get(f"/oauth/authorize?pending={pending}"),
                     other.post("/oauth/authorize", {"pending": pending}),
                     other.post("/oauth/authorize/consent", {"csrf_token": other_csrf, "pending": pending,
                                                             "decision": "allow"})):
            assert_error_page(resp, 400)
            assert "This sign-in has expired" in resp.text and "another browser" in resp.text
        assert count(live, AuthorizationCode) == 0 and count(live, Consent) == 0

    refused()
    done = other.login("bob@acme.test", pending)
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"

    resume = owner.login(ALICE, pending)  # the owner signs in: back to its own request
    assert resume.headers["Location"] == f"/oauth/authorize?pending={pending}"
    page = owner.get(resume.headers["Location"])
    assert is_consent_page(page) and PENDING.search(page.text).group(1) == pending
    refused()
    p = client_redirect(answer_consent(owner, page), c.redirect_uri, (303,))
    assert p["state"] == "st-owner" and "code" in p


def test_a3_22_consent_post_answers_303(live, make_client, browser):
    """A.3 #22 / A.27: the consent POST answer is 303, never 307 (RFC 9700 §4.12)."""
    c = make_client()
    _, ch = pkce_pair()
    allow = browser.authorize(auth_params(c, ch, scope="openid"))
    assert allow.status_code == 303 and "code" in client_redirect(allow, c.redirect_uri, (303,))
    deny = browser.authorize(auth_params(c, ch, scope="openid email"), decision="deny")
    assert deny.status_code == 303


def test_a3_22_login_post_answers_303(live, make_client, browser):
    """A.3 #22: the credentials POST answers 303 as well."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(browser, auth_params(c, ch))
    after = browser.login(pending=pending_of(resp))
    assert after.status_code == 303
    assert urlsplit(after.headers["Location"]).path == "/oauth/authorize"


def test_a3_22_post_to_authorize_answers_303(live, make_client):
    """A.3 #22: an authorization request sent as a form POST (OIDC Core §3.1.2.1) is
    answered with 303 to the client, for a code and for an error."""
    c = make_client(client_type="first_party")
    member = signed_in(live)
    _, ch = pkce_pair()
    ok = member.post("/oauth/authorize", auth_params(c, ch, state="s-p"))
    p = client_redirect(ok, c.redirect_uri, (303,))
    assert "code" in p and p["state"] == "s-p" and p["iss"] == live.url
    bad = member.post("/oauth/authorize", auth_params(c, ch, scope="bogus", state="s-p2"))
    assert_error_redirect(live, bad, c.redirect_uri, "invalid_scope", "s-p2", statuses=(303,))


def test_a3_23_referrer_policy_no_referrer(live, make_client):
    """A.3 #23: pages under /authorize and the post-login landing pages send
    Referrer-Policy: no-referrer (RFC 9700 §4.2)."""
    for name, resp in _authorize_pages(live, make_client).items():
        assert resp.headers.get("Referrer-Policy") == "no-referrer", name


# --- A.4 Redirect URI rules -------------------------------------------------------------


@pytest.mark.parametrize("requested", [
    "https://app.example/cb/",
    "https://APP.example/cb",
    "https://app.example/CB",
    "https://app.example/cb?x=1",
    "https://app.example:443/cb",
    "http://app.example/cb",
    "https://app.example/cb#frag",
    "https://app.example/c%62",
    "https://app.example/cb/../cb",
    "https://app.example.evil.example/cb",
    "https://user@app.example/cb",
    "https://app.example/cb ",
])
def test_a4_24_redirect_uri_is_compared_as_an_exact_string(live, make_client, requested):
    """A.4 #24 / A.27: the request value must equal a registered URI by simple string
    comparison (RFC 3986 §6.2.1); near misses get the error page."""
    c = make_client(redirect_uris=("https://app.example/cb",))
    _, ch = pkce_pair()
    assert_error_page(authorize(signed_in(live), auth_params(c, ch, redirect_uri=requested)))


@pytest.mark.parametrize("registered,requested", [
    ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"),
    ("http://127.0.0.1:8080/callback", "http://127.0.0.1:51234/callback"),
    ("http://127.0.0.1:8080/callback", "http://127.0.0.1/callback"),
    ("http://127.0.0.1/callback", "http://127.0.0.1/callback"),
    ("http://[::1]/callback", "http://[::1]:51234/callback"),
    ("http://localhost/callback", "http://localhost:51234/callback"),
    ("http://127.0.0.1/callback?x=1", "http://127.0.0.1:51234/callback?x=1"),
])
def test_a4_25_loopback_redirect_accepts_any_port(live, make_client, registered, requested):
    """A.4 #25 / A.27: for loopback http redirect URIs any port is accepted at request
    time, whether or not the registered URI has one (RFC 8252 §7.3)."""
    c = make_client(client_type="first_party_public", redirect_uris=(registered,))
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, redirect_uri=requested))
    p = client_redirect(resp, requested)
    assert resp.headers["Location"].startswith(requested.split("?")[0] + "?")
    assert "code" in p


@pytest.mark.parametrize("requested", [
    "http://127.0.0.1:51234/other",
    "http://127.0.0.1:51234/callback/",
    "http://evil:51234/callback",
    "http://localhost:51234/callback",
    "http://[::1]:51234/callback",
    "https://127.0.0.1:51234/callback",
    "http://127.0.0.1:51234/callback?x=1",
    "http://127.0.0.2:51234/callback",
    "http://127.0.0.1:99999/callback",
    "http://user@127.0.0.1:51234/callback",
    "http://127.0.0.1.evil.example:51234/callback",
])
def test_a4_25_loopback_exception_keeps_scheme_host_path_and_query(live, make_client, requested):
    """A.4 #25: only the port may vary; scheme, host, path and query still match exactly."""
    c = make_client(client_type="first_party_public", redirect_uris=("http://127.0.0.1/callback",))
    _, ch = pkce_pair()
    assert_error_page(authorize(signed_in(live), auth_params(c, ch, redirect_uri=requested)))


def test_a4_25_port_exception_is_only_for_loopback_http(live, make_client):
    """A.4 #25: an https redirect URI on any host keeps its exact port."""
    c = make_client(redirect_uris=("https://app.example:8443/cb",))
    _, ch = pkce_pair()
    for requested in ("https://app.example:9443/cb", "https://app.example/cb"):
        assert_error_page(authorize(signed_in(live), auth_params(c, ch, redirect_uri=requested)))


def test_a4_26_query_of_the_registered_uri_is_kept(live, make_client, browser):
    """A.4 #26: a registered redirect URI's own query is kept when the response
    parameters are added (RFC 6749 §3.1.2)."""
    c = make_client(redirect_uris=("https://app.example/cb?t=1",))
    _, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch, state="s-26", scope="openid"))
    assert resp.headers["Location"].startswith("https://app.example/cb?t=1&")
    p = client_redirect(resp, c.redirect_uri, (303,))
    assert p["t"] == "1" and "code" in p and p["state"] == "s-26"
    denied = browser.authorize(auth_params(c, ch, scope="openid email"), decision="deny")
    assert denied.headers["Location"].startswith("https://app.example/cb?t=1&")


def test_a4_27_several_registered_uris_require_redirect_uri(live, make_client):
    """A.4 #27: with several registered URIs the request must name one (OAuth 2.1 §2.3.2)."""
    c = make_client(redirect_uris=("https://app.example/cb", "https://app.example/other"))
    _, ch = pkce_pair()
    assert_error_page(authorize(signed_in(live), auth_params(c, ch, redirect_uri=None, scope="email")))


def test_a4_27_openid_request_requires_redirect_uri(live, make_client):
    """A.4 #27 / A.22 #101: an OpenID request always names its redirect_uri (OIDC Core §3.1.2.1)."""
    c = make_client()
    _, ch = pkce_pair()
    assert_error_page(authorize(signed_in(live), auth_params(c, ch, redirect_uri=None, scope="openid email")))


def test_a4_27_default_openid_scope_requires_redirect_uri(live, make_client):
    """A.4 #27: a request without ``scope`` whose default scope has ``openid`` gets an id
    token, so it is an OpenID request and must name its redirect_uri too."""
    _, ch = pkce_pair()
    member = signed_in(live)
    c = make_client()  # no registered scopes: the default is "openid"
    assert_error_page(authorize(member, auth_params(c, ch, redirect_uri=None, scope=None)))
    c = make_client(client_type="first_party", scopes=("email",))
    p = client_redirect(authorize(member, auth_params(c, ch, redirect_uri=None, scope=None)), c.redirect_uri)
    assert "code" in p


def test_a4_27_single_uri_oauth_request_may_omit_redirect_uri(live, make_client, browser, token_post):
    """A.4 #27: a plain OAuth request from a client with one URI may omit redirect_uri;
    the code then goes to that URI, and the token request may omit it too."""
    c = make_client(client_type="first_party")
    v, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch, redirect_uri=None, scope="email"))
    p = client_redirect(resp, c.redirect_uri, (302, 303))
    tok = redeem(token_post, c, p["code"], v, redirect_uri=None)
    assert tok.status_code == 200, tok.text
    assert "id_token" not in tok.json()


def test_a4_29_token_redirect_uri_must_match_the_authorization_request(live, make_client, get_code, token_post):
    """A.4 #29: a redirect_uri at the token endpoint must be identical to the one used."""
    c = make_client(redirect_uris=("https://app.example/cb", "https://app.example/cb2"))
    code, verifier, _ = get_code(c)
    resp = redeem(token_post, c, code, verifier, redirect_uri="https://app.example/cb2")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_grant"


def test_a4_29_token_redirect_uri_may_be_omitted(live, make_client, get_code, token_post):
    """A.4 #29 / A.27 (policy): a PKCE code can be redeemed without redirect_uri (OAuth 2.1 §10.2)."""
    c = make_client()
    code, verifier, _ = get_code(c)
    resp = redeem(token_post, c, code, verifier, redirect_uri=None)
    assert resp.status_code == 200, resp.text


def test_a4_29_loopback_port_must_match_at_the_token_endpoint(live, make_client, get_code, token_post):
    """A.4 #29: the port variation is per request; the token request repeats the same one."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/cb",))
    code, verifier, _ = get_code(c, redirect_uri="http://127.0.0.1:5123/cb")
    bad = redeem(token_post, c, code, verifier, redirect_uri="http://127.0.0.1:5124/cb")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant", bad.text
    code, verifier, _ = get_code(c, redirect_uri="http://127.0.0.1:5123/cb")
    good = redeem(token_post, c, code, verifier, redirect_uri="http://127.0.0.1:5123/cb")
    assert good.status_code == 200, good.text


def test_a4_30_consent_page_shows_the_redirect_host(live, make_client, browser):
    """A.4 #30: the consent page shows where the browser will be sent, and no
    localhost warning for a client with an https redirect."""
    c = make_client(name="Shiny App", redirect_uris=("https://app.example/cb",))
    _, ch = pkce_pair()
    page = browser.authorize(auth_params(c, ch), decision=None)
    assert is_consent_page(page)
    assert "<strong data-redirect-host>app.example</strong>" in page.text
    assert "Shiny App" in page.text and "third-party" in page.text.lower()
    assert "your own computer" not in page.text


def test_a4_30_loopback_only_client_gets_a_warning(live, make_client, browser):
    """A.4 #30: when every redirect URI is localhost the consent page warns."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/cb", "http://localhost/cb"))
    _, ch = pkce_pair()
    page = browser.authorize(auth_params(c, ch, redirect_uri="http://127.0.0.1:7777/cb"), decision=None)
    assert is_consent_page(page)
    assert "<strong data-redirect-host>127.0.0.1:7777</strong>" in page.text
    assert 'class="warn"' in page.text and "your own computer" in page.text


# --- A.5 PKCE ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_type", ["third_party", "third_party_public", "first_party"])
def test_a5_31_code_challenge_is_required(live, make_client, client_type):
    """A.5 #31 / A.27: every authorization request carries code_challenge, confidential
    clients included; without it, invalid_request with a description (RFC 7636 §4.4.1)."""
    c = make_client(client_type=client_type)
    resp = authorize(signed_in(live), auth_params(c, None, code_challenge_method=None, state="s-31"))
    p = assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-31")
    assert "code_challenge" in p["error_description"]


@pytest.mark.parametrize("method", ["plain", None, "s256", "S512", "sha256"])
def test_a5_32_only_s256_is_accepted(live, make_client, method):
    """A.5 #32: only S256; ``plain`` and an omitted method (which means plain) are refused."""
    c = make_client()
    verifier = secrets.token_urlsafe(48)
    resp = authorize(signed_in(live), auth_params(c, verifier, code_challenge_method=method, state="s-32"))
    p = assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-32")
    assert "code_challenge_method" in p["error_description"]


@pytest.mark.parametrize("challenge", [
    "a" * 42,
    "a" * 129,
    "a" * 42 + "+",
    "a" * 42 + "/",
    "a" * 42 + "=",
    "a" * 42 + " ",
    "\u00e9" * 43,
])
def test_a5_33_malformed_code_challenge_is_refused(live, make_client, challenge):
    """A.5 #33: the challenge matches [A-Za-z0-9-._~]{43,128} (RFC 7636 §4.2)."""
    c = make_client()
    resp = authorize(signed_in(live), auth_params(c, challenge, state="s-33"))
    assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-33")


@pytest.mark.parametrize("length", [43, 128])
def test_a5_33_verifier_of_43_to_128_unreserved_characters_works(live, make_client, browser, token_post, length):
    """A.5 #33: verifiers of 43 and 128 characters using ``~`` and ``.`` work (the
    Python SDK generates 128-character ones)."""
    alphabet = string.ascii_letters + string.digits + "-._~"
    verifier = ("~." + "".join(secrets.choice(alphabet) for _ in range(length)))[:length]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    c = make_client(client_type="third_party_public")
    p = client_redirect(browser.authorize(auth_params(c, challenge)), c.redirect_uri, (303,))
    resp = redeem(token_post, c, p["code"], verifier)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + "+"])
def test_a5_33_malformed_verifier_is_refused(live, make_client, get_code, token_post, verifier):
    """A.5 #33: a verifier outside [A-Za-z0-9-._~]{43,128} is refused."""
    c = make_client(client_type="third_party_public")
    code, _, _ = get_code(c)
    resp = redeem(token_post, c, code, verifier)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] in ("invalid_request", "invalid_grant")


@pytest.mark.parametrize("client_type", ["third_party", "third_party_public"])
def test_a5_34_wrong_verifier_is_invalid_grant(live, make_client, get_code, token_post, client_type):
    """A.5 #34: BASE64URL(SHA256(verifier)) must equal the stored challenge; otherwise 400 invalid_grant."""
    c = make_client(client_type=client_type)
    code, verifier, _ = get_code(c)
    wrong, _ = pkce_pair()
    resp = redeem(token_post, c, code, wrong)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_grant"
    # The challenge itself is not a verifier (a leaked challenge must not work).
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    resp = redeem(token_post, c, code, challenge)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("client_type", ["third_party", "third_party_public"])
def test_a5_35_stored_challenge_without_verifier_is_refused(live, make_client, get_code, token_post, client_type):
    """A.5 #35: a code issued with a challenge cannot be redeemed without a verifier
    (RFC 9700 §4.8), for confidential clients too."""
    c = make_client(client_type=client_type)
    code, verifier, _ = get_code(c)
    resp = redeem(token_post, c, code, None)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"
    assert "code_verifier" in resp.json()["error_description"]


def test_a5_35_a_code_without_challenge_cannot_exist():
    """A.5 #35, other half: a verifier without a stored challenge cannot occur, because
    every code is stored with its challenge (A.5 #31 refuses requests without one and
    the column is NOT NULL)."""
    assert AuthorizationCode.__table__.c.code_challenge.nullable is False
    assert AuthorizationCode.__table__.c.code_challenge_method.nullable is False


def test_a5_36_challenge_is_never_exposed(live, make_client, browser, token_post):
    """A.5 #36: the code is opaque (it does not carry the challenge) and no response
    hands the challenge back."""
    c = make_client()
    v, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch))
    p = client_redirect(resp, c.redirect_uri, (303,))
    code = p["code"]
    assert ch not in resp.headers["Location"] and ch not in code
    assert code.count(".") == 0 and len(code) >= 43  # random, not a JWT carrying claims
    tok = redeem(token_post, c, code, v)
    assert tok.status_code == 200
    assert ch not in tok.text
    for t in (tok.json()["access_token"], tok.json()["id_token"]):
        assert ch not in json.dumps(jwt_claims(t))
    s = live.db.session
    row = s.scalars(select(AuthorizationCode)).one()
    s.remove()
    assert code not in (row.code_hash, row.code_challenge)  # the code itself is stored only as a digest


def test_a5_37_metadata_publishes_s256_only(live):
    """A.5 #37: both metadata documents list code_challenge_methods_supported = ["S256"]."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        md = requests.get(live.url + path, timeout=10).json()
        assert md["code_challenge_methods_supported"] == ["S256"], path


# --- A.8 RFC 9207 iss ----------------------------------------------------------------------


def _response_for(kind, live, make_client, browser):
    _, ch = pkce_pair()
    if kind == "success":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, state="s-49"))
    if kind == "access_denied":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, state="s-49"), decision="deny")
    if kind == "login_required":
        c = make_client(client_type="first_party")
        return c, authorize(browser, auth_params(c, ch, prompt="none", state="s-49"))
    if kind == "consent_required":
        c = make_client()
        return c, authorize(signed_in(live), auth_params(c, ch, prompt="none", state="s-49"))
    if kind == "invalid_scope":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, scope="bogus", state="s-49"))
    if kind == "unsupported_response_type":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, response_type="token", state="s-49"))
    if kind == "invalid_request":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, code_challenge_method="plain", state="s-49"))
    if kind == "request_not_supported":
        c = make_client()
        return c, browser.authorize(auth_params(c, ch, request="eyJhbGciOiJub25lIn0.e30.", state="s-49"))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "success", "access_denied", "login_required", "consent_required", "invalid_scope",
    "unsupported_response_type", "invalid_request", "request_not_supported",
])
def test_a8_49_every_authorization_response_carries_iss(live, make_client, browser, kind):
    """A.8 #49 / A.27: success and every error redirect carry ``iss`` (RFC 9207 §2)."""
    c, resp = _response_for(kind, live, make_client, browser)
    p = client_redirect(resp, c.redirect_uri, (302, 303))
    assert p["iss"] == live.url
    assert p["state"] == "s-49"
    assert ("code" in p) == (kind == "success")
    if kind != "success":
        assert p["error"] == kind


def test_a8_50_metadata_flag_matches_behaviour(live, make_client, browser):
    """A.8 #50: ``authorization_response_iss_parameter_supported`` is true in both documents,
    and the responses do carry ``iss``."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        md = requests.get(live.url + path, timeout=10).json()
        assert md["authorization_response_iss_parameter_supported"] is True
    c = make_client()
    _, ch = pkce_pair()
    assert "iss" in client_redirect(browser.authorize(auth_params(c, ch)), c.redirect_uri, (303,))


def test_a8_51_iss_is_byte_identical_to_metadata_issuer(live, make_client, browser, token_post):
    """A.8 #51: ``iss`` equals the metadata ``issuer`` exactly (no normalization), and
    the id token's ``iss`` too."""
    issuers = {requests.get(live.url + p, timeout=10).json()["issuer"]
               for p in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")}
    assert issuers == {live.settings.issuer}
    c = make_client()
    v, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch))
    p = dict(query_pairs(resp.headers["Location"]))
    raw = p["iss"]
    assert raw == live.settings.issuer
    assert "iss=" + urlencode({"x": raw})[2:] in resp.headers["Location"]
    tok = redeem(token_post, c, p["code"], v)
    assert jwt_claims(tok.json()["id_token"])["iss"] == raw


def test_a8_51_iss_does_not_follow_the_host_header(live, make_client):
    """A.8 #51: ``iss`` is the configured issuer string, not rebuilt from the request
    (a browser reaching the server as ``localhost`` still gets the canonical issuer)."""
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    port = urlsplit(live.url).port
    resp = requests.get(f"http://localhost:{port}/oauth/authorize?"
                        + urlencode(auth_params(c, ch, prompt="none", state="s-51")),
                        allow_redirects=False, timeout=10)
    p = assert_error_redirect(live, resp, c.redirect_uri, "login_required", "s-51")
    assert p["iss"] == live.settings.issuer == f"http://127.0.0.1:{port}"


# --- A.22 OIDC authentication request --------------------------------------------------------


def test_a22_101_without_openid_no_id_token(live, make_client, tokens_for):
    """A.22 #101: without ``openid`` the request is plain OAuth: no id token."""
    c = make_client()
    body = tokens_for(c, scope="email")
    assert "id_token" not in body and body["scope"] == "email"
    body = tokens_for(c, scope="openid email")
    assert "id_token" in body


def test_a22_102_prompt_none_without_session_is_login_required(live, make_client, browser):
    """A.22 #102: prompt=none with no session redirects with login_required, without UI."""
    for client_type in ("first_party", "third_party"):
        c = make_client(client_type=client_type)
        _, ch = pkce_pair()
        resp = authorize(browser, auth_params(c, ch, prompt="none", state="s-102"))
        assert_error_redirect(live, resp, c.redirect_uri, "login_required", "s-102")


def test_a22_102_prompt_none_without_consent_is_consent_required(live, make_client):
    """A.22 #102: prompt=none with a session but no stored consent gets consent_required."""
    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, prompt="none", state="s-102c"))
    assert_error_redirect(live, resp, c.redirect_uri, "consent_required", "s-102c")
    assert count(live, AuthorizationCode) == 0


def test_a22_102_prompt_none_with_session_and_consent_issues_a_code(live, make_client, browser):
    """A.22 #102: with a session and a remembered consent, prompt=none returns a code silently."""
    c = make_client()
    _, ch = pkce_pair()
    browser.authorize(auth_params(c, ch))
    resp = authorize(browser, auth_params(c, ch, prompt="none", state="s-102ok"))
    p = client_redirect(resp, c.redirect_uri)
    assert "code" in p and p["state"] == "s-102ok" and p["iss"] == live.url


@pytest.mark.parametrize("prompt", ["none login", "none consent", "consent none", "bogus"])
def test_a22_102_prompt_none_with_another_value_is_invalid_request(live, make_client, prompt):
    """A.22 #102: ``none`` with any other prompt value (or an unknown value) is invalid_request."""
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, prompt=prompt, state="s-102i"))
    assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-102i")


def test_a22_102_org_bound_client_with_other_org_member_prompt_none(live, make_client):
    """A.22 #102: when the session cannot serve the request (member of another
    organization) and no UI is allowed, the answer is login_required."""
    c = make_client(client_type="first_party", organization_id="organization-other")
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, prompt="none", state="s-org"))
    assert_error_redirect(live, resp, c.redirect_uri, "login_required", "s-org")


def test_a22_103_prompt_login_forces_a_new_login(live, make_client, token_post):
    """A.22 #103: prompt=login shows the login page even with a live session, and the
    new login's time becomes auth_time."""
    c = make_client(client_type="first_party")
    member = signed_in(live)
    v, ch = pkce_pair()
    with later(30):
        t0 = int(datetime.now(timezone.utc).timestamp())
        resp = authorize(member, auth_params(c, ch, prompt="login"))
        assert is_login_redirect(resp), (resp.status_code, resp.headers.get("Location"))
        page = member.get(resp.headers["Location"])
        assert page.status_code == 200 and 'data-provider="google"' in page.text
        final = member.authorize(auth_params(c, ch, prompt="login"))
        p = client_redirect(final, c.redirect_uri)
        tok = redeem(token_post, c, p["code"], v)
    assert tok.status_code == 200, tok.text
    assert jwt_claims(tok.json()["id_token"])["auth_time"] >= t0 - 1


def test_a22_104_prompt_consent_shows_consent_again(live, make_client, browser, token_post):
    """A.22 #104: prompt=consent renders the consent page although consent was given."""
    c = make_client()
    v, ch = pkce_pair()
    browser.authorize(auth_params(c, ch))
    page = browser.authorize(auth_params(c, ch, prompt="consent"), decision=None)
    assert is_consent_page(page)
    p = client_redirect(answer_consent(browser, page), c.redirect_uri, (303,))
    assert redeem(token_post, c, p["code"], v).status_code == 200


def test_a22_105_max_age_0_forces_login_and_sets_auth_time(live, make_client, token_post):
    """A.22 #105: max_age=0 is prompt=login, and the id token carries auth_time."""
    c = make_client(client_type="first_party")
    member = signed_in(live)
    v, ch = pkce_pair()
    with later(5):
        t0 = int(datetime.now(timezone.utc).timestamp())
        resp = authorize(member, auth_params(c, ch, max_age="0"))
        assert is_login_redirect(resp)
        p = client_redirect(member.authorize(auth_params(c, ch, max_age="0")), c.redirect_uri)
        tok = redeem(token_post, c, p["code"], v)
    idt = jwt_claims(tok.json()["id_token"])
    assert t0 - 1 <= idt["auth_time"] <= idt["iat"]


def test_a22_105_max_age_0_forces_login_within_the_same_second(live, make_client):
    """A.22 #105: max_age=0 forces login even when the session is not a second old."""
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    instant = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
    with time_machine.travel(instant, tick=False):
        member = signed_in(live)
        resp = authorize(member, auth_params(c, ch, max_age="0"))
    assert is_login_redirect(resp), (resp.status_code, resp.headers.get("Location"))


def test_a22_105_max_age_decides_by_the_real_authentication_time(live, make_client, token_post):
    """A.22 #105 / A.21 #97: within max_age the session is reused and auth_time is the
    original login time; beyond it the member must log in again."""
    c = make_client(client_type="first_party")
    t_login = int(datetime.now(timezone.utc).timestamp())
    member = signed_in(live)
    v, ch = pkce_pair()
    with later(30):
        resp = authorize(member, auth_params(c, ch, max_age="600"))
        p = client_redirect(resp, c.redirect_uri)
        tok = redeem(token_post, c, p["code"], v)
        idt = jwt_claims(tok.json()["id_token"])
        assert t_login - 1 <= idt["auth_time"] <= t_login + 1
        assert idt["iat"] - idt["auth_time"] >= 25
    with later(120):
        assert is_login_redirect(authorize(member, auth_params(c, ch, max_age="60")))


@pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "99999999999"])
def test_a22_105_malformed_max_age_is_invalid_request(live, make_client, max_age):
    """A.22 #105: max_age is a non-negative integer number of seconds."""
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    resp = authorize(signed_in(live), auth_params(c, ch, max_age=max_age, state="s-ma"))
    assert_error_redirect(live, resp, c.redirect_uri, "invalid_request", "s-ma")


def test_a22_106_login_hint_prefills_the_email_field(live, make_client, browser):
    """A.22 #106: login_hint steers the Stytch login: it rides to the identity
    provider as provider_login_hint and pre-fills the email field there (escaped)."""
    import html as htmllib
    import re

    c = make_client()
    _, ch = pkce_pair()
    resp = authorize(browser, auth_params(c, ch, login_hint="a@b.com"))
    assert is_login_redirect(resp)
    page = browser.get(resp.headers["Location"])
    href = htmllib.unescape(re.search(r'data-provider="google" href="([^"]+)"', page.text).group(1))
    start = browser.get(href)  # our start link: on to Stytch with the login's PKCE challenge
    assert start.status_code == 303 and "provider_login_hint=a%40b.com" in start.headers["Location"]
    idp = browser.http.get(href, timeout=10)
    assert 'name="email"' in idp.text and 'value="a@b.com"' in idp.text
    resp = authorize(browser, auth_params(c, ch, login_hint='"><script>x</script>'))
    page = browser.get(resp.headers["Location"])
    assert "<script>x" not in page.text


@pytest.mark.parametrize("name,error", [
    ("request", "request_not_supported"),
    ("request_uri", "request_uri_not_supported"),
])
def test_a22_107_request_objects_are_not_supported(live, make_client, name, error):
    """A.22 #107: ``request`` gets request_not_supported, ``request_uri`` request_uri_not_supported."""
    c = make_client()
    _, ch = pkce_pair()
    value = "eyJhbGciOiJub25lIn0.e30." if name == "request" else "urn:ietf:params:oauth:request_uri:abc"
    resp = authorize(signed_in(live), auth_params(c, ch, state="s-107", **{name: value}))
    assert_error_redirect(live, resp, c.redirect_uri, error, "s-107")
    md = live.metadata()
    assert md["request_parameter_supported"] is False and md["request_uri_parameter_supported"] is False


def test_a22_108_offline_access_with_prompt_consent_yields_a_refresh_token(live, make_client, browser, token_post):
    """A.22 #108: ``openid offline_access`` with prompt=consent, after explicit consent
    that names offline access, yields a refresh token."""
    c = make_client()
    v, ch = pkce_pair()
    page = browser.authorize(auth_params(c, ch, scope="openid offline_access", prompt="consent"), decision=None)
    assert is_consent_page(page)
    assert "offline_access" in page.text
    p = client_redirect(answer_consent(browser, page), c.redirect_uri, (303,))
    tok = redeem(token_post, c, p["code"], v)
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["refresh_token"] and "offline_access" in body["scope"].split()
