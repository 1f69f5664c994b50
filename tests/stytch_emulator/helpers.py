"""Helpers for the emulator's own tests: the real SDK pointed at an emulator,
the public start URL of a login, and a sign-in through its identity-provider page."""
from __future__ import annotations

import warnings
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
import stytch

from tests.helpers import parse_form

APP = "http://app.test"  # redirect URLs only: nothing listens there, the tests read Location


def sdk_client(emu, secret: str | None = None) -> stytch.B2BClient:
    """The real SDK pointed at the emulator (environment= takes a plain http URL, §1.1)."""
    with warnings.catch_warnings():
        # stytch 15.3 builds an aiohttp.BasicAuth, deprecated in aiohttp 3.12+; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        return stytch.B2BClient(emu.project_id, secret or emu.secret, environment=emu.url, suppress_warnings=True)


def start_url(emu, provider: str = "google", *, slug: str | None = None, **params) -> str:
    """The public start URL the login page would link to (policy)."""
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
