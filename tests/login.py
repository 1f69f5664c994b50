"""A member's login through our pages and the Stytch emulator, step by step,
for the tests that look at each hop (tests/browser.py drives the whole way)."""
from __future__ import annotations

import base64
import html as htmllib
import json
import re
import secrets
import warnings
import zlib
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import time_machine
from sqlalchemy import func, select

from authz_server.models import AuthorizationCode, Consent, Grant, PendingAuthorization
from tests.browser import CSRF, PENDING, PROVIDER_LINK, Browser
from tests.helpers import auth_params, form_fields, jwt_claims, pkce_pair

ALICE = "alice@acme.test"
BOB = "bob@acme.test"
JWT_LIFETIME = 300  # Stytch session JWTs live 5 minutes


# --- helpers: the emulator -----------------------------------------------------------


def stytch_client(live):
    """The real SDK, as an administrator's script would use it."""
    import stytch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return stytch.B2BClient(live.settings.stytch_project_id, live.settings.stytch_secret,
                                environment=live.stytch_url, suppress_warnings=True)


def emulator_state(live) -> dict:
    resp = requests.get(live.stytch_url + "/emulator/state", timeout=10)
    assert resp.status_code == 200
    return resp.json()


def organization(live, slug) -> dict:
    return next(o for o in emulator_state(live)["organizations"] if o["organization_slug"] == slug)


def member(live, email, slug) -> dict:
    org_id = organization(live, slug)["organization_id"]
    return next(m for m in emulator_state(live)["members"]
                if m["email_address"] == email and m["organization_id"] == org_id)


def live_session_ids(live) -> set:
    return {s["member_session_id"] for s in emulator_state(live)["sessions"]}


def outbox_code(live, email) -> str | None:
    return requests.get(live.stytch_url + "/emulator/outbox", params={"email": email}, timeout=10).json()["code"]


def jit_email() -> str:
    """A new person at globex.test: Globex provisions them just in time."""
    return f"jit-{secrets.token_hex(4)}@globex.test"


def fresh_domain_email() -> str:
    """A person whose domain no organization knows."""
    return f"someone@initech-{secrets.token_hex(4)}.test"


# --- helpers: the browser side ----------------------------------------------------------


def cookie_session(browser: Browser) -> dict:
    """Our session cookie's payload: signed, not encrypted, so the browser can read it."""
    raw = browser.http.cookies.get("authz_session")
    assert raw, "no session cookie"
    payload = raw.lstrip(".").split(".")[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if raw.startswith("."):
        data = zlib.decompress(data)
    return json.loads(data)


def stytch_session(browser: Browser) -> tuple[str, dict]:
    """(session_token, claims of the session JWT) the browser holds."""
    tokens = cookie_session(browser)["stytch"]
    return tokens["session_token"], jwt_claims(tokens["session_jwt"])


def stytch_auth_time(claims: dict) -> int:
    """The newest factor's authentication time in a Stytch session JWT."""
    factors = claims["https://stytch.com/session"]["authentication_factors"]
    return max(int(datetime.fromisoformat(f["last_authenticated_at"].replace("Z", "+00:00")).timestamp())
               for f in factors)


def provider_links(page) -> dict:
    return {p: htmllib.unescape(h) for p, h in PROVIDER_LINK.findall(page.text)}


def stytch_start(browser: Browser, href: str) -> str:
    """Where a provider link of our login page sends the browser: the Stytch start
    URL of that login (the link itself is ours, /login/start/...)."""
    assert href.startswith(browser.live.url + "/login/start/"), href
    resp = browser.get(href)
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    return resp.headers["Location"]


def idp_sign_in(browser: Browser, href: str, email: str) -> str:
    """The emulator's identity-provider page: a POST form with an email field.
    Returns where it sends the browser back to (our /login/callback)."""
    page = browser.http.get(href, timeout=10)
    assert page.status_code == 200, page.text[:300]
    assert '<form method="post"' in page.text and 'name="email"' in page.text
    back = browser.http.post(page.url, data={**form_fields(page.text), "email": email},
                             allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text[:300]
    return back.headers["Location"]


def callback_params(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(browser: Browser, params: dict):
    return browser.get("/oauth/authorize?" + urlencode(params))


def login_location(resp) -> str:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
    loc = resp.headers["Location"]
    assert urlsplit(loc).path == "/login", loc
    return loc


def to_callback(browser: Browser, authorize_resp, email: str, provider="google") -> tuple[str, object]:
    """From the authorize redirect through our login page and the identity-provider
    page; returns (pending id, the response of /login/callback)."""
    loc = login_location(authorize_resp)
    pending = parse_qs(urlsplit(loc).query)["pending"][0]
    page = browser.get(loc)
    assert page.status_code == 200
    back = idp_sign_in(browser, provider_links(page)[provider], email)
    assert back.startswith(browser.live.url + "/login/callback?"), back
    return pending, browser.get(back)


def pick(browser: Browser, picker, organization_id):
    return browser.post("/login/organizations", {"csrf_token": CSRF.search(picker.text).group(1),
                                                 "organization_id": organization_id})


def follow_to_client(browser: Browser, resp, decision="allow"):
    """After login: back to /oauth/authorize, answer consent, stop at the client."""
    for _ in range(5):
        loc = resp.headers.get("Location", "")
        if resp.status_code in (302, 303) and loc.startswith("/oauth/authorize"):
            resp = browser.get(loc)
            continue
        if resp.status_code == 200 and 'name="decision"' in resp.text:
            resp = browser.post("/oauth/authorize/consent", {"csrf_token": CSRF.search(resp.text).group(1),
                                                            "pending": PENDING.search(resp.text).group(1),
                                                            "decision": decision})
            continue
        return resp
    raise AssertionError("too many hops")


def client_params(resp, client) -> dict:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
    loc = resp.headers["Location"]
    assert loc.startswith(client.redirect_uri + "?"), loc
    return callback_params(loc)


def redeem(live, client, code, verifier) -> dict:
    resp = requests.post(live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
        "code_verifier": verifier, "client_id": client.client_id,
    }, auth=(client.client_id, client.client_secret) if client.client_secret else None, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def signed_in(live, email=ALICE, organization_slug=None) -> Browser:
    b = Browser(live, email)
    resp = b.login(email, organization_slug=organization_slug)
    assert resp.status_code == 303 and resp.headers["Location"] == "/login/done", resp.text[:300]
    return b


def prompt_none(browser: Browser, client, state="s-none") -> dict:
    _, ch = pkce_pair()
    resp = authorize(browser, auth_params(client, ch, prompt="none", state=state))
    return client_params(resp, client)


def counts(live) -> dict:
    s = live.db.session
    try:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (AuthorizationCode, Grant, Consent, PendingAuthorization)}
    finally:
        s.remove()


def assert_page(resp, status, title: str | None = None):
    """A page for the person: HTML, the status, a title, a message and a hint, no
    stack trace, no redirect."""
    assert resp.status_code == status, (resp.status_code, resp.headers.get("Location"), resp.text[:400])
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "Location" not in resp.headers
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    assert re.search(r'<p class="error" role="alert">[^<]{10,}</p>', resp.text), resp.text[:600]
    assert re.search(r'<p class="muted">[^<]{10,}</p>', resp.text), resp.text[:600]  # what to do next
    if title:
        assert f"<h1>{title}</h1>" in resp.text, resp.text[:600]
    return resp


def later(seconds):
    return time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=seconds), tick=True)
