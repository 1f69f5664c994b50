"""Fixtures: one emulator per module on a free port, reset before each test,
with a clock the tests can move; the real SDK pointed at it; and a tiny
"browser" that drives the identity-provider page to get OAuth tokens."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import stytch

from authz_server.stytch_emulator import start_emulator

APP = "http://app.test"  # redirect URLs only: nothing listens there, the tests read Location


class Clock:
    """Real time plus an offset, so fresh JWTs still verify with PyJWT's own clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def _running(clock):
    handle = start_emulator(clock=clock)
    yield handle
    handle.stop()


@pytest.fixture
def emu(_running, clock):
    clock.offset = 0.0
    _running.emulator.store.reset()
    return _running


def sdk_client(emu, secret: str | None = None) -> stytch.B2BClient:
    """The real SDK pointed at the emulator (environment= takes a plain http URL, §1.1)."""
    with warnings.catch_warnings():
        # stytch 15.3 builds an aiohttp.BasicAuth, deprecated in aiohttp 3.12+; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        return stytch.B2BClient(emu.project_id, secret or emu.secret, environment=emu.url, suppress_warnings=True)


@pytest.fixture
def client(emu):
    return sdk_client(emu)


class FormParser(HTMLParser):
    """Collects the first <form>: its method, action and named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.form: dict | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.form is None:
            self.form = attrs
        elif tag == "input" and self.form is not None and not self._done and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._done = True


def parse_form(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def start_url(emu, provider: str = "google", *, slug: str | None = None, **params) -> str:
    """The public start URL the login page would link to (DESIGN §7)."""
    query = {"public_token": emu.public_token}
    if slug is None:
        query["discovery_redirect_url"] = f"{APP}/discovery"
        path = f"/v1/b2b/public/oauth/{provider}/discovery/start"
    else:
        query.update(slug=slug, login_redirect_url=f"{APP}/login", signup_redirect_url=f"{APP}/signup")
        path = f"/v1/b2b/public/oauth/{provider}/start"
    query.update(params)
    return f"{emu.url}{path}?{urlencode(query)}"


def sign_in(emu, email: str, provider: str = "google", *, slug: str | None = None, **params) -> dict:
    """GET the start page, submit its form with ``email``; the redirect's query as a dict."""
    url = start_url(emu, provider, slug=slug, **params)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    form = parse_form(page.text)
    assert form.form["method"] == "post"
    fields = {**form.fields, "email": email}
    resp = requests.post(urljoin(url, form.form["action"]), data=fields, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    result = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    result["location"] = location
    return result


def outbox(emu, email: str) -> dict:
    resp = requests.get(f"{emu.url}/emulator/outbox", params={"email": email}, timeout=10)
    assert resp.status_code == 200
    return resp.json()


def set_step_up(emu, domain: str, required: bool = True) -> None:
    resp = requests.post(f"{emu.url}/emulator/step-up-domains", json={"domain": domain, "required": required},
                         timeout=10)
    assert resp.status_code == 200
