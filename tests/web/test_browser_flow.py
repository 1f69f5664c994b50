"""A real browser (Debian's chromium, driven by Playwright) through login and consent.

The other tests speak HTTP with ``requests``; these check what only a browser
checks: that the pages' forms, links, cookies, CSP and redirects work together
when a person clicks through them (docs/architecture.md#page-hooks: provider link, the
emulator's identity-provider form, organization picker, step-up form, consent
form). The consent page is screenshotted (desktop and a 390 px phone) into
``test-artifacts/`` for a look by eye.

Skipped, with the reason, when ``/usr/bin/chromium`` or the ``playwright``
package is missing. Never run ``playwright install``: the browser is Debian's.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from tests.helpers import auth_params, pkce_pair

CHROMIUM = "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed "
                                                             "(pip install -e '.[test]')")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REDIRECT_URI = "https://app.example/cb"
CLIENT_NAME = "Ledgerline Reports"
# The plain words the consent page must show for each scope (authz_server/oauth/scopes.py).
SCOPE_WORDS = {
    "openid": "Confirm who you are",
    "profile": "See your name and your roles in the organization",
    "email": "See your email address",
}
REDIRECT_HOST = urlsplit(REDIRECT_URI).hostname
CLIENT_ORIGIN = "{0.scheme}://{0.netloc}/".format(urlsplit(REDIRECT_URI))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               # The client's host never reaches DNS, even where interception does not apply.
               f"--host-resolver-rules=MAP {REDIRECT_HOST} ~NOTFOUND"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def chromium():
    """One headless chromium for the module; each test gets its own context (cookie jar)."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _client_endpoint(route):
    """Stands in for the client's redirect endpoint, so the browser lands on a page."""
    route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>client</title><p>back at the client")


def _new_page(chromium, live, **context_options):
    context = chromium.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    # Nothing but our server, the emulator and the (intercepted) client: any other
    # request would mean a page pulls an external asset.
    allowed = (live.url, live.stytch_url)
    strays: list[str] = []

    def guard(route):
        strays.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(allowed) and not url.startswith(CLIENT_ORIGIN), guard)
    # Playwright does not promise to route the target of a redirect (it does for a
    # click, not for a tap), so the test reads the URL from the request event
    # (_allow) and this route only gives the browser a page to land on.
    context.route(CLIENT_ORIGIN + "**", _client_endpoint)
    return context, context.new_page(), strays


def _sign_in(page, live, email: str):
    """From our login page: the provider link, the emulator's identity-provider
    form, then the organization picker (Acme)."""
    assert page.url.startswith(live.url + "/login"), page.url
    page.click('a[data-provider="google"]')
    page.wait_for_url(live.stytch_url + "/**")
    page.fill('input[name="email"]', email)
    with page.expect_navigation(url=lambda u: u.startswith(live.url + "/login/organizations")):
        page.locator('input[name="email"]').press("Enter")
    page.click('button[name="organization_id"][data-organization-slug="acme"]')


def _consent_text_checks(page, live):
    assert page.url.startswith(live.url + "/oauth/authorize"), page.url
    text = page.locator("main").inner_text()
    assert CLIENT_NAME in page.locator("h1").inner_text()
    assert "Acme" in text
    for scope, words in SCOPE_WORDS.items():
        assert words in text, (scope, text)
    assert f"you will be sent to {REDIRECT_HOST}" in text
    assert page.locator("[data-redirect-host]").inner_text() == REDIRECT_HOST
    # The consent form and its hooks.
    form = page.locator('form[method="post"]').filter(has=page.locator('button[name="decision"]'))
    assert form.locator('input[type="hidden"][name="csrf_token"]').count() == 1
    assert form.locator('button[name="decision"][value="allow"]').count() == 1
    assert form.locator('button[name="decision"][value="deny"]').count() == 1
    return text


def _allow(page, live, press):
    """Press Allow; return the query of the URL the browser is sent to. The hop
    before it must be the consent POST answered with 303 (A.4 item 22)."""
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI + "?")) as sent:
        press('button[name="decision"][value="allow"]')
    request = sent.value
    hop = request.redirected_from
    assert hop is not None and hop.method == "POST", hop
    assert hop.url == live.url + "/oauth/authorize/consent"
    assert hop.response().status == 303
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def _no_horizontal_overflow(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _redeem(live, client, params, verifier):
    resp = requests.post(live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}, auth=(client.client_id, client.client_secret), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.json()


def _id_token_claims(live, id_token, client):
    jwks = jwt.PyJWKClient(live.metadata()["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(id_token).key
    return jwt.decode(id_token, key, algorithms=["RS256", "ES256", "PS256", "EdDSA"],
                      audience=client.client_id, issuer=live.url)


def _authorize_url(live, client, state):
    verifier, challenge = pkce_pair()
    params = auth_params(client, challenge, state=state, nonce="n-" + state)
    return live.url + "/oauth/authorize?" + urlencode(params), verifier


def test_a4_browser_login_consent_and_code(live, make_client, chromium):
    """The whole sign-in and its page hooks in a real browser: login through the emulator,
    organization picker, consent showing the client, organization, scopes in plain
    words and redirect host (A.4 item 30); Allow → code, state, iss (RFC 9207) → tokens."""
    started = time.monotonic()
    client = make_client(client_type="third_party", name=CLIENT_NAME, redirect_uris=[REDIRECT_URI])
    url, verifier = _authorize_url(live, client, "st-browser-1")
    context, page, strays = _new_page(chromium, live, viewport={"width": 1280, "height": 800})
    try:
        page.goto(url)
        _sign_in(page, live, "alice@acme.test")
        page.wait_for_selector('button[name="decision"][value="allow"]')
        _consent_text_checks(page, live)
        assert "alice@acme.test" in page.locator("main").inner_text()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "consent.png"), full_page=True)
        assert _no_horizontal_overflow(page)
        page.set_viewport_size({"width": 390, "height": 844})
        assert _no_horizontal_overflow(page), "the consent page scrolls sideways at 390 px"
        allow = page.locator('button[name="decision"][value="allow"]').bounding_box()
        deny = page.locator('button[name="decision"][value="deny"]').bounding_box()
        assert allow["x"] >= 0 and allow["x"] + allow["width"] <= 390
        assert deny["x"] >= 0 and deny["x"] + deny["width"] <= 390
        page.screenshot(path=str(ARTIFACTS / "consent-mobile.png"), full_page=True)

        params = _allow(page, live, page.click)
    finally:
        context.close()

    assert strays == []
    assert params["state"] == "st-browser-1"
    assert params["iss"] == live.url
    assert params["code"]
    tokens = _redeem(live, client, params, verifier)
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    assert set(tokens["scope"].split()) == {"openid", "profile", "email"}
    claims = _id_token_claims(live, tokens["id_token"], client)
    assert claims["email"] == "alice@acme.test"
    assert claims["nonce"] == "n-st-browser-1"
    assert time.monotonic() - started < 30


def test_a4_browser_step_up_then_consent(live, make_client, chromium):
    """Step-up in a real browser on a phone-sized screen: Stytch wants an
    email factor for acme.test, so after the organization picker the member gets a
    page explaining, in plain words, that the organization asks to confirm the email;
    the passcode from the emulator's outbox completes the login, then consent → code."""
    started = time.monotonic()
    stytch = live.stytch_url
    client = make_client(client_type="third_party", name=CLIENT_NAME, redirect_uris=[REDIRECT_URI])
    url, verifier = _authorize_url(live, client, "st-browser-2")
    context = None
    try:
        resp = requests.post(stytch + "/emulator/step-up-domains", json={"domain": "acme.test", "required": True},
                             timeout=10)
        assert resp.status_code == 200 and "acme.test" in resp.json()["step_up_domains"], resp.text
        context, page, strays = _new_page(
            chromium, live, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
            device_scale_factor=2)
        page.goto(url)
        _sign_in(page, live, "bob@acme.test")

        page.wait_for_url(live.url + "/login/step-up")
        ARTIFACTS.mkdir(exist_ok=True)
        explanation = page.locator("main").inner_text()
        assert "Acme" in explanation and "bob@acme.test" in explanation, explanation
        assert "code" in explanation.lower()
        assert _no_horizontal_overflow(page), "the step-up page scrolls sideways at 390 px"
        page.screenshot(path=str(ARTIFACTS / "step-up-mobile.png"), full_page=True)
        outbox = requests.get(stytch + "/emulator/outbox", params={"email": "bob@acme.test"}, timeout=10)
        assert outbox.status_code == 200, outbox.text
        code = outbox.json()["code"]
        assert code and len(code) == 6 and code.isdigit(), outbox.text
        page.locator('input[name="code"]').press_sequentially(code)
        with page.expect_navigation(url=lambda u: u.startswith(live.url + "/oauth/authorize")):
            page.locator('input[name="code"]').press("Enter")

        page.wait_for_selector('button[name="decision"][value="allow"]')
        _consent_text_checks(page, live)
        assert "bob@acme.test" in page.locator("main").inner_text()
        assert _no_horizontal_overflow(page)
        params = _allow(page, live, page.tap)
    finally:
        if context is not None:
            context.close()
        requests.post(stytch + "/emulator/step-up-domains", json={"domain": "acme.test", "required": False},
                      timeout=10)

    assert strays == []
    assert params["state"] == "st-browser-2"
    assert params["iss"] == live.url
    tokens = _redeem(live, client, params, verifier)
    claims = _id_token_claims(live, tokens["id_token"], client)
    assert claims["email"] == "bob@acme.test"
    assert time.monotonic() - started < 30


def test_a17_87_browser_device_verification(live, make_client, chromium):
    """RFC 8628 §3.3 in a real browser: the member opens the bare verification
    URI, signs in, types the code the device shows (lower case, no dash), sees
    the client and the code to compare, allows; the device's next poll gets
    tokens. Screenshot of the confirmation page: test-artifacts/device.png."""
    from tests.helpers import DEVICE_GRANT, device_poll, device_start, frozen

    cli = make_client(client_type="third_party_public", redirect_uris=(), name=CLIENT_NAME,
                      grant_types=(DEVICE_GRANT, "refresh_token"))
    started = device_start(live, cli, scope="openid profile email").json()
    context, page, strays = _new_page(chromium, live)
    try:
        page.goto(started["verification_uri"])
        _sign_in(page, live, "alice@acme.test")
        page.wait_for_url(live.url + "/device")
        page.fill('input[name="user_code"]', started["user_code"].replace("-", "").lower())
        page.locator('input[name="user_code"]').press("Enter")
        page.wait_for_selector("[data-user-code]")
        assert page.locator("[data-user-code]").inner_text() == started["user_code"]
        assert CLIENT_NAME in page.locator("h1").inner_text()
        text = page.locator("main").inner_text()
        for words in SCOPE_WORDS.values():
            assert words in text
        assert "Never enter a code someone sent you" in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "device.png"), full_page=True)
        page.click('button[name="decision"][value="allow"]')
        page.wait_for_selector("text=Device connected")
        assert not strays, strays
    finally:
        context.close()
    with frozen(live, started["interval"] + 1):
        resp = device_poll(live, cli, started["device_code"])
    assert resp.status_code == 200, resp.text
    assert {"access_token", "id_token", "refresh_token"} <= set(resp.json())
