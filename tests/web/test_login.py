"""Member login through Stytch B2B (issue 4), over HTTP against the live server and
the project's Stytch emulator (the real ``stytch`` SDK talks to it).

Each flow is driven the way a browser drives it: /oauth/authorize → our login page
→ the emulator's identity-provider page → /login/callback → the organization picker
(or the organization flow) → step-up when Stytch asks → consent → code → tokens.

Covers the login through Stytch B2B and its page hooks (docs/architecture.md), and
docs/requirements.md A21-95 and #97 (``sub`` is the Stytch member id, ``auth_time`` the real Stytch
authentication time), A.22 #102, #103, #105 (prompt=none, prompt=login, max_age
with a Stytch session), A.3 #45 (a member removed in Stytch cannot refresh) and
A.25 #119 (logout ends the Stytch session), and bad input (a clear
HTML page, never a stack trace, never a partial write).

The emulator is shared by the whole test session: tests never reset it, never
delete the seeded members (they make their own JIT members), and put back any
step-up domain they change.
"""
from __future__ import annotations

import re
import secrets
import socket
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from authz_server.models import Grant
from tests.browser import CSRF, ORG_BUTTON, Browser
from tests.helpers import (audit_rows as audit_events, auth_params, closed_port, form_fields, jwt_claims, pkce_pair,
                           refresh_token_active, step_up_required)
from tests.login import (ALICE, BOB, JWT_LIFETIME, stytch_client, emulator_state, organization, member,
                         live_session_ids, outbox_code, jit_email, fresh_domain_email,
                         cookie_session, stytch_session, stytch_auth_time, provider_links, stytch_start, idp_sign_in,
                         callback_params, authorize, login_location, to_callback, pick, follow_to_client,
                         client_params, redeem, signed_in, prompt_none, counts, assert_page, later)

# --- Discovery: an existing member --------------------------------------------------------


def test_discovery_existing_member_authorize_to_tokens(live, make_client):
    """Discovery, the page hooks; A21-95/A21-97: alice signs in through the whole
    flow; the id token's ``sub`` is her Stytch member id, the organization claims are
    Acme's, and ``auth_time`` is Stytch's authentication time."""
    c = make_client()
    b = Browser(live, ALICE)
    v, ch = pkce_pair()
    resp = authorize(b, auth_params(c, ch, state="st-disc", nonce="n-disc"))
    loc = login_location(resp)

    page = b.get(loc)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    links = provider_links(page)
    assert set(links) == {"google", "microsoft"}
    for provider, href in links.items():
        href = stytch_start(b, href)
        parts = urlsplit(href)
        q = callback_params(href)
        assert f"{parts.scheme}://{parts.netloc}" == live.stytch_url
        assert parts.path == f"/v1/b2b/public/oauth/{provider}/discovery/start"
        assert q["public_token"] == live.settings.stytch_public_token
        assert q["discovery_redirect_url"] == live.url + "/login/callback"
        assert "slug" not in q and "organization_id" not in q

    t0 = int(time.time())
    back = idp_sign_in(b, links["google"], ALICE)
    t1 = int(time.time()) + 1
    assert callback_params(back)["stytch_token_type"] == "discovery_oauth"
    cb = b.get(back)
    assert cb.status_code == 303 and cb.headers["Location"] == "/login/organizations"

    picker = b.get("/login/organizations")
    assert picker.status_code == 200
    acme = organization(live, "acme")
    assert ORG_BUTTON.findall(picker.text) == [(acme["organization_id"], "acme")]
    assert re.search(r'data-organization-slug="acme">Acme</button>\s*</p>', picker.text)  # a member: no "join"
    assert ALICE in picker.text
    assert 'name="create_organization"' in picker.text
    assert counts(live)["authorization_codes"] == 0

    done = pick(b, picker, acme["organization_id"])
    assert done.status_code == 303 and done.headers["Location"].startswith("/oauth/authorize?pending=")
    consent = b.get(done.headers["Location"])
    assert consent.status_code == 200 and 'name="decision"' in consent.text
    assert "Acme" in consent.text and ALICE in consent.text
    p = client_params(follow_to_client(b, consent), c)
    assert p["state"] == "st-disc" and p["iss"] == live.url and "code" in p
    tokens = redeem(live, c, p["code"], v)

    idt = jwt_claims(tokens["id_token"])
    alice = member(live, ALICE, "acme")
    assert idt["sub"] == alice["member_id"]
    assert (idt["organization_id"], idt["organization_slug"], idt["organization_name"]) == (
        acme["organization_id"], "acme", "Acme")
    assert idt["email"] == ALICE and idt["email_verified"] is True
    assert idt["name"] == "Alice Admin"
    assert set(idt["roles"]) == {"stytch_member", "stytch_admin"}
    assert idt["nonce"] == "n-disc"
    _, session_claims = stytch_session(b)
    assert session_claims["sub"] == alice["member_id"]
    assert idt["auth_time"] == stytch_auth_time(session_claims)
    assert t0 <= idt["auth_time"] <= t1
    at = jwt_claims(tokens["access_token"])
    assert at["sub"] == alice["member_id"] and at["organization_id"] == acme["organization_id"]


def test_discovery_claims_follow_the_scope(live, make_client, browser, tokens_for):
    """OIDC Core §5.4: without ``profile`` the id token has no name and no roles; the
    organization claims ride with ``openid`` alone."""
    c = make_client(client_type="first_party")
    idt = jwt_claims(tokens_for(c, scope="openid")["id_token"])
    assert idt["organization_slug"] == "acme" and idt["organization_name"] == "Acme"
    assert not {"name", "roles", "email"} & set(idt)
    idt = jwt_claims(tokens_for(c, scope="openid email")["id_token"])
    assert idt["email"] == ALICE and not {"name", "roles"} & set(idt)
    idt = jwt_claims(tokens_for(c, scope="openid profile")["id_token"])
    assert idt["name"] == "Alice Admin" and "stytch_admin" in idt["roles"] and "email" not in idt


def test_the_same_member_gets_the_same_sub_twice(live, make_client, tokens_for):
    """A.21 #95: the same person logging in twice gets the same ``sub``."""
    c = make_client(client_type="first_party")
    first = jwt_claims(tokens_for(c)["id_token"])["sub"]
    again = Browser(live, ALICE)
    v, ch = pkce_pair()
    p = client_params(again.authorize(auth_params(c, ch)), c)
    assert jwt_claims(redeem(live, c, p["code"], v)["id_token"])["sub"] == first


# --- Discovery: JIT and creating an organization ----------------------------------------


def test_discovery_jit_into_globex(live, make_client):
    """A new address at globex.test is offered Globex ("you can join"),
    and picking it provisions the member in Stytch."""
    email = jit_email()
    c = make_client(client_type="first_party")
    b = Browser(live, email)
    v, ch = pkce_pair()
    _, cb = to_callback(b, authorize(b, auth_params(c, ch)), email)
    picker = b.get(cb.headers["Location"])
    globex = organization(live, "globex")
    assert ORG_BUTTON.findall(picker.text) == [(globex["organization_id"], "globex")]
    assert re.search(r'data-organization-slug="globex">Globex</button>\s*<span class="muted">you can join</span>',
                     picker.text), picker.text
    assert not [m for m in emulator_state(live)["members"] if m["email_address"] == email]

    p = client_params(follow_to_client(b, pick(b, picker, globex["organization_id"])), c)
    idt = jwt_claims(redeem(live, c, p["code"], v)["id_token"])
    provisioned = member(live, email, "globex")
    assert provisioned["status"] == "active"
    assert idt["sub"] == provisioned["member_id"]
    assert (idt["organization_id"], idt["organization_slug"]) == (globex["organization_id"], "globex")
    assert idt["email"] == email and idt["roles"] == ["stytch_member"]


def test_discovery_create_organization(live, make_client):
    """An address no organization knows gets only the create form; the
    creator is the new organization's admin (``stytch_admin``)."""
    email = fresh_domain_email()
    name = f"Initech {secrets.token_hex(3)}"
    c = make_client(client_type="first_party")
    b = Browser(live, email)
    v, ch = pkce_pair()
    _, cb = to_callback(b, authorize(b, auth_params(c, ch)), email)
    picker = b.get(cb.headers["Location"])
    assert ORG_BUTTON.findall(picker.text) == []
    assert 'name="organization_name"' in picker.text and 'name="create_organization"' in picker.text
    resp = b.post("/login/organizations", {"csrf_token": CSRF.search(picker.text).group(1),
                                           "create_organization": "1", "organization_name": name})
    p = client_params(follow_to_client(b, resp), c)
    idt = jwt_claims(redeem(live, c, p["code"], v)["id_token"])
    org = next(o for o in emulator_state(live)["organizations"] if o["organization_name"] == name)
    assert idt["organization_id"] == org["organization_id"]
    assert idt["organization_name"] == name and idt["organization_slug"] == org["organization_slug"]
    assert idt["sub"] == member(live, email, org["organization_slug"])["member_id"]
    assert "stytch_admin" in idt["roles"]


def test_create_organization_needs_a_name_and_may_be_turned_off(live, make_server_with):
    """The picker refuses a one-letter name (the page stays, with an error), and a
    server that does not allow creating organizations offers no create form and
    refuses a forged create."""
    email = fresh_domain_email()
    b = Browser(live, email)
    page = b.get("/login")
    b.get(idp_sign_in(b, provider_links(page)["google"], email))
    picker = b.get("/login/organizations")
    before = len(emulator_state(live)["organizations"])
    resp = b.post("/login/organizations", {"csrf_token": CSRF.search(picker.text).group(1),
                                           "create_organization": "1", "organization_name": "x"})
    assert resp.status_code == 400 and "2 to 128 characters" in resp.text and 'name="organization_name"' in resp.text
    assert len(emulator_state(live)["organizations"]) == before

    closed = make_server_with(allow_organization_creation=False)
    b = Browser(closed, email)
    page = b.get("/login")
    b.get(idp_sign_in(b, provider_links(page)["google"], email))
    picker = b.get("/login/organizations")
    assert picker.status_code == 200 and 'name="create_organization"' not in picker.text
    assert "No organization is available" in picker.text
    token = CSRF.search(b.get("/logout").text).group(1)  # the session's token, from another form
    resp = b.post("/login/organizations", {"csrf_token": token,
                                           "create_organization": "1", "organization_name": "Initech"})
    assert_page(resp, 400, "Creating organizations is turned off")
    assert len(emulator_state(live)["organizations"]) == before


# --- The organization flow ------------------------------------------------------------------


def test_org_login_page_uses_the_organization_flow(live):
    """The organization flow: /org/acme/login links to Stytch's organization
    start URL with slug=acme; the callback says stytch_token_type=oauth and signs the
    member in without a picker."""
    b = Browser(live, BOB)
    page = b.get("/org/acme/login")
    assert page.status_code == 200 and "Sign in to Acme" in page.text
    links = provider_links(page)
    for provider, href in links.items():
        href = stytch_start(b, href)
        parts = urlsplit(href)
        q = callback_params(href)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{live.stytch_url}/v1/b2b/public/oauth/{provider}/start"
        assert q["slug"] == "acme" and "organization_id" not in q
        assert q["public_token"] == live.settings.stytch_public_token
        assert q["login_redirect_url"] == live.url + "/login/callback"
    back = idp_sign_in(b, links["microsoft"], BOB)
    assert callback_params(back)["stytch_token_type"] == "oauth"
    done = b.get(back)
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"
    assert cookie_session(b)["member"]["member_id"] == member(live, BOB, "acme")["member_id"]


def test_authorize_naming_an_organization_uses_its_login(live, make_client):
    """An authorization request with ``organization_slug=acme`` sends the browser to
    the organization login of Acme; the code's member is in Acme."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    v, ch = pkce_pair()
    resp = authorize(b, auth_params(c, ch, organization_slug="acme"))
    page = b.get(login_location(resp))
    assert "Sign in to Acme" in page.text
    href = stytch_start(b, provider_links(page)["google"])
    assert urlsplit(href).path == "/v1/b2b/public/oauth/google/start" and callback_params(href)["slug"] == "acme"
    back = idp_sign_in(b, href, ALICE)
    assert callback_params(back)["stytch_token_type"] == "oauth"
    p = client_params(follow_to_client(b, b.get(back)), c)
    idt = jwt_claims(redeem(live, c, p["code"], v)["id_token"])
    assert idt["organization_slug"] == "acme" and idt["sub"] == member(live, ALICE, "acme")["member_id"]


def test_authorize_naming_an_organization_id(live, make_client):
    """``organization_id=…`` names the organization too: the start URL carries it."""
    c = make_client(client_type="first_party")
    acme_id = organization(live, "acme")["organization_id"]
    b = Browser(live, ALICE)
    _, ch = pkce_pair()
    page = b.get(login_location(authorize(b, auth_params(c, ch, organization_id=acme_id))))
    q = callback_params(stytch_start(b, provider_links(page)["google"]))
    assert q["organization_id"] == acme_id and "slug" not in q
    assert "Sign in to Acme" in page.text


def test_member_of_another_organization_must_log_in_again(live, make_client):
    """A member signed in to Globex, sent to an ``organization_slug=acme`` request,
    logs in again (prompt=none: login_required), this time to Acme."""
    email = jit_email()
    c = make_client(client_type="first_party")
    b = signed_in(live, email)
    assert cookie_session(b)["member"]["organization_slug"] == "globex"
    v, ch = pkce_pair()
    p = client_params(authorize(b, auth_params(c, ch, organization_slug="acme", prompt="none", state="s-o")), c)
    assert p["error"] == "login_required" and p["state"] == "s-o" and p["iss"] == live.url
    resp = authorize(b, auth_params(c, ch, organization_slug="acme"))
    page = b.get(login_location(resp))
    assert callback_params(stytch_start(b, provider_links(page)["google"]))["slug"] == "acme"
    p = client_params(follow_to_client(b, b.get(idp_sign_in(b, provider_links(page)["google"], ALICE))), c)
    assert jwt_claims(redeem(live, c, p["code"], v)["id_token"])["organization_slug"] == "acme"


# --- Step-up: email one-time passcode ------------------------------------------------------


def test_step_up_by_email_passcode(live, make_client):
    """Step-up: Stytch says member_authenticated=false; the page
    explains in plain words; a wrong code keeps the page with an error; "send a new
    code" sends one; the right code leads on to consent and a code."""
    c = make_client()
    b = Browser(live, BOB)
    v, ch = pkce_pair()
    with step_up_required(live.stytch_url, "acme.test"):
        _, cb = to_callback(b, authorize(b, auth_params(c, ch, state="s-step")), BOB)
        picker = b.get(cb.headers["Location"])
        sent = pick(b, picker, organization(live, "acme")["organization_id"])
        assert sent.status_code == 303 and sent.headers["Location"] == "/login/step-up"
        assert "member" not in cookie_session(b)  # no full session yet
        page = b.get("/login/step-up")
        assert page.status_code == 200
        assert "Confirm your email" in page.text
        assert re.search(r"Acme asks you to confirm that <strong>bob@acme\.test</strong> is yours", page.text)
        assert "We sent a 6-digit code" in page.text and 'name="code"' in page.text
        first = outbox_code(live, BOB)
        assert first and len(first) == 6

        wrong = "000000" if first != "000000" else "111111"
        resp = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": wrong})
        assert resp.status_code == 400 and 'role="alert"' in resp.text and "not right" in resp.text
        assert 'name="code"' in resp.text and 'name="resend"' in resp.text
        resp = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": "12ab"})
        assert resp.status_code == 400 and "6-digit code" in resp.text and 'name="code"' in resp.text

        resp = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "resend": "1"})
        assert resp.status_code == 200 and "We sent a new code." in resp.text
        second = outbox_code(live, BOB)
        messages = requests.get(live.stytch_url + "/emulator/outbox", params={"email": BOB}, timeout=10).json()
        assert messages["messages"][-1]["code"] == second
        if second != first:  # only the newest code is valid
            old = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": first})
            assert old.status_code == 400 and 'name="code"' in old.text

        assert counts(live)["authorization_codes"] == 0
        ok = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": second})
        assert ok.status_code == 303 and ok.headers["Location"].startswith("/oauth/authorize?pending=")
    p = client_params(follow_to_client(b, ok), c)
    assert p["state"] == "s-step"
    tokens = redeem(live, c, p["code"], v)
    _, claims = stytch_session(b)
    methods = {f["type"] for f in claims["https://stytch.com/session"]["authentication_factors"]}
    assert methods == {"oauth", "email_otp"}
    assert jwt_claims(tokens["id_token"])["auth_time"] == stytch_auth_time(claims)


def test_step_up_after_too_many_wrong_codes_a_new_code_works(live):
    """Stytch locks a passcode after five wrong tries: the member stays on the
    step-up page, told to send a new code, and the new code signs them in."""
    email = jit_email()
    b = Browser(live, email)
    with step_up_required(live.stytch_url, "globex.test"):
        page = b.get("/login")
        b.get(idp_sign_in(b, provider_links(page)["google"], email))
        picker = b.get("/login/organizations")
        assert pick(b, picker, organization(live, "globex")["organization_id"]).status_code == 303
        page = b.get("/login/step-up")
        token = CSRF.search(page.text).group(1)
        code = outbox_code(live, email)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            assert b.post("/login/step-up", {"csrf_token": token, "code": wrong}).status_code == 400
        locked = b.post("/login/step-up", {"csrf_token": token, "code": code})
        assert locked.status_code == 400, locked.text[:300]
        assert 'name="resend"' in locked.text and "new code" in locked.text
        assert b.post("/login/step-up", {"csrf_token": token, "resend": "1"}).status_code == 200
        ok = b.post("/login/step-up", {"csrf_token": token, "code": outbox_code(live, email)})
    assert ok.status_code == 303 and ok.headers["Location"] == "/login/done"
    assert cookie_session(b)["member"]["email"] == email


# --- prompt=none, prompt=login, max_age with the Stytch session -----------------------------


def test_prompt_none_without_session_is_login_required(live, make_client, browser):
    """A.22 #102: no Stytch session → login_required, with iss and state, no UI."""
    for client_type in ("first_party", "third_party"):
        c = make_client(client_type=client_type)
        p = prompt_none(browser, c, state="s-102")
        assert (p["error"], p["state"], p["iss"]) == ("login_required", "s-102", live.url) and "code" not in p
    assert counts(live)["pending_authorizations"] == 0


def test_prompt_none_with_session_needs_consent_then_issues_code(live, make_client):
    """A.22 #102: a session but no consent → consent_required (iss, state); once
    consent is remembered, prompt=none issues a code silently."""
    c = make_client()
    b = signed_in(live, BOB)
    p = prompt_none(b, c, state="s-cr")
    assert (p["error"], p["state"], p["iss"]) == ("consent_required", "s-cr", live.url)
    assert counts(live)["authorization_codes"] == 0
    v, ch = pkce_pair()
    client_params(b.authorize(auth_params(c, ch)), c)
    p = prompt_none(b, c, state="s-ok")
    assert "code" in p and p["state"] == "s-ok" and p["iss"] == live.url


def test_prompt_login_and_max_age_force_a_new_stytch_login(live, make_client):
    """A.22 #103/#105, A.21 #97: prompt=login and an exceeded max_age send the member
    through Stytch again, and the id token's auth_time moves forward to the new
    Stytch authentication."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    v, ch = pkce_pair()
    p = client_params(b.authorize(auth_params(c, ch)), c)
    first = jwt_claims(redeem(live, c, p["code"], v)["id_token"])["auth_time"]

    with later(120):
        resp = authorize(b, auth_params(c, ch, prompt="login"))
        login_location(resp)  # a live session, yet the login page
        p = client_params(b.authorize(auth_params(c, ch, prompt="login")), c)
        second = jwt_claims(redeem(live, c, p["code"], v)["id_token"])["auth_time"]
        assert second == stytch_auth_time(stytch_session(b)[1])
        assert second >= first + 119
        # Within max_age the session is used as it is.
        p = client_params(authorize(b, auth_params(c, ch, max_age="600")), c)
        assert jwt_claims(redeem(live, c, p["code"], v)["id_token"])["auth_time"] == second

    with later(400):
        login_location(authorize(b, auth_params(c, ch, max_age="200")))
        p = client_params(b.authorize(auth_params(c, ch, max_age="200")), c)
        third = jwt_claims(redeem(live, c, p["code"], v)["id_token"])["auth_time"]
        assert third == stytch_auth_time(stytch_session(b)[1])
        assert third >= second + 270


# --- Logout ------------------------------------------------------------------------------


def test_logout_revokes_the_stytch_session(live, make_client):
    """A.25 #119: POST /logout (with CSRF) ends our session and revokes the Stytch
    session; afterwards prompt=none gets login_required."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    session_id = stytch_session(b)[1]["https://stytch.com/session"]["id"]
    assert session_id in live_session_ids(live)
    assert "code" in prompt_none(b, c)

    page = b.get("/logout")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    refused = b.post("/logout", {})
    assert_page(refused, 400, "This form has expired")
    assert session_id in live_session_ids(live) and "code" in prompt_none(b, c)

    out = b.post("/logout", {"csrf_token": CSRF.search(page.text).group(1)})
    assert out.status_code == 200 and "You are signed out" in out.text
    assert session_id not in live_session_ids(live)
    assert prompt_none(b, c)["error"] == "login_required"


def test_pages_that_read_or_write_the_session_are_not_cached(live):
    """RFC 9111 §5.2.2.5: a page that read or wrote the session cookie belongs to
    one browser (a CSRF token, a login in progress and its verifier, a Set-Cookie),
    so it answers Cache-Control: no-store and no shared cache hands it to another
    browser. The public documents keep their own caching headers."""
    anonymous = Browser(live, ALICE)
    for path, status in (("/org/acme/login", 200), ("/device", 302), ("/oauth/logout", 200)):
        resp = anonymous.get(path)
        assert resp.status_code == status, (path, resp.status_code)
        assert resp.headers.get("Cache-Control") == "no-store", (path, dict(resp.headers))
    member = signed_in(live, ALICE)
    for path in ("/org/acme/login", "/device", "/logout", "/oauth/logout"):
        resp = member.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        assert path == "/org/acme/login" or 'name="csrf_token"' in resp.text, path
        assert resp.headers.get("Cache-Control") == "no-store", (path, dict(resp.headers))
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        resp = member.get(path)
        assert resp.status_code == 200 and resp.headers["Cache-Control"].startswith("public, max-age="), path


# --- A member removed in Stytch -------------------------------------------------------------


def test_member_removed_in_stytch_cannot_refresh(live, make_server_with, make_client):
    """A.3 #45 / checklist "Org membership": once Stytch deletes the member, the
    refresh grant answers invalid_grant, revokes the grant (audit grant_revoked), and
    introspection reports the member's tokens inactive."""
    srv = make_server_with(member_check_seconds=0)
    c = make_client()
    rs = make_client(grant_types=("client_credentials",), redirect_uris=(), default_audience=srv.url,
                     introspection_resources=(srv.url,))
    email = jit_email()
    b = Browser(srv, email)
    v, ch = pkce_pair()
    p = client_params(b.authorize(auth_params(c, ch, scope="openid email")), c)
    tokens = redeem(srv, c, p["code"], v)
    m = member(live, email, "globex")

    def refresh(token):
        return requests.post(srv.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token},
                             auth=(c.client_id, c.client_secret), timeout=10)

    def active(token):
        r = requests.post(srv.url + "/oauth/introspect", data={"token": token},
                          auth=(rs.client_id, rs.client_secret), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["active"]

    ok = refresh(tokens["refresh_token"])
    assert ok.status_code == 200, ok.text
    tokens = ok.json()
    assert active(tokens["access_token"]) and refresh_token_active(srv, tokens["refresh_token"])

    stytch_client(live).organizations.members.delete(organization_id=m["organization_id"], member_id=m["member_id"])

    assert active(tokens["access_token"]) is False
    assert refresh_token_active(srv, tokens["refresh_token"]) is False
    resp = refresh(tokens["refresh_token"])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text
    revoked = audit_events(srv, "grant_revoked")
    assert [(e.subject, e.details.get("reason")) for e in revoked] == [(m["member_id"], "member_inactive")]
    s = srv.db.session
    try:
        grant = s.get(Grant, revoked[0].grant_id)
        assert grant.revoked_at is not None and grant.revoked_reason == "member_inactive"
    finally:
        s.remove()
    # The member's browser session went with it (Stytch revoked every session).
    assert m["member_id"] not in {x["member_id"] for x in emulator_state(live)["sessions"]}


# --- The Stytch session JWT: local check, renewal, revocation --------------------------------


def test_stale_session_jwt_is_renewed_through_stytch(live, make_client):
    """The session JWT lives 5 minutes; past that, the next request renews
    it with sessions.authenticate and the member stays signed in (and keeps the
    original auth_time)."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    old_token, old = stytch_session(b)
    auth_time = cookie_session(b)["member"]["auth_time"]
    with later(JWT_LIFETIME + 60):
        p = prompt_none(b, c)
        assert "code" in p, p
        token, new = stytch_session(b)
        assert new["jti"] != old["jti"] and new["exp"] > old["exp"] + JWT_LIFETIME
        assert new["https://stytch.com/session"]["id"] == old["https://stytch.com/session"]["id"]
        assert token == old_token
        assert cookie_session(b)["member"]["auth_time"] == auth_time
        # A fresh JWT is checked locally: no renewal on the next request.
        assert "code" in prompt_none(b, c)
        assert stytch_session(b)[1]["jti"] == new["jti"]


def _session_expiry(live, b) -> datetime:
    _, claims = stytch_session(b)
    sid = claims["https://stytch.com/session"]["id"]
    row = next(x for x in emulator_state(live)["sessions"] if x["member_session_id"] == sid)
    return datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00"))


def test_member_session_outlives_stytchs_default_hour_and_slides(live, make_client):
    """AUTHZ_MEMBER_SESSION_MINUTES (7 days): the Stytch session is created with it
    (Stytch's own default is 60 minutes, never extended), every renewal extends it
    again, and a member idle longer than that signs in again."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    week = timedelta(minutes=live.settings.member_session_minutes)
    assert abs(_session_expiry(live, b) - (datetime.now(timezone.utc) + week)) < timedelta(minutes=5)
    with later(2 * 3600):
        assert "code" in prompt_none(b, c)  # past Stytch's default hour: still signed in
        assert abs(_session_expiry(live, b) - (datetime.now(timezone.utc) + week)) < timedelta(minutes=5)
    with later(2 * 3600 + week.total_seconds() + 600):
        p = prompt_none(b, c, state="s-idle")
        assert p["error"] == "login_required" and p["state"] == "s-idle"


def test_session_revoked_in_stytch_is_noticed_once_the_jwt_is_stale(live, make_client):
    """A session revoked in Stytch keeps working only while its JWT is
    fresh (local check); once stale, the renewal fails and the member logs in again."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    token, claims = stytch_session(b)
    stytch_client(live).sessions.revoke(session_token=token)
    assert claims["https://stytch.com/session"]["id"] not in live_session_ids(live)
    assert "code" in prompt_none(b, c)  # the JWT is still fresh
    with later(JWT_LIFETIME + 60):
        p = prompt_none(b, c, state="s-rev")
        assert p["error"] == "login_required" and p["state"] == "s-rev"
        _, ch = pkce_pair()
        login_location(authorize(b, auth_params(c, ch)))


# --- Login CSRF: a Stytch login belongs to the browser that started it ----------------------


@pytest.mark.parametrize("start", ["/login", "/org/acme/login"])
def test_login_csrf_callback_from_another_browser_is_refused(live, make_client, start):
    """RFC 9700 §4.7.1 / RFC 6749 §10.12: an attacker starts a login in their own
    browser (discovery or organization flow) and signs in at the identity provider.
    The callback URL they get back, opened in the victim's browser while the victim
    is in the middle of an authorization, is refused: Stytch finds that the token's
    PKCE challenge is not the victim's, nobody is signed in, nothing is stored, and
    the victim's own login still completes as the victim. In a browser with no
    login in progress the callback is refused before Stytch is asked."""
    c = make_client(client_type="first_party")
    attacker = Browser(live, BOB)
    page = attacker.get(start)
    assert page.status_code == 200
    back = idp_sign_in(attacker, provider_links(page)["google"], BOB)
    assert back.startswith(live.url + "/login/callback?"), back

    victim = Browser(live, ALICE)
    v, ch = pkce_pair()
    victim_page = victim.get(login_location(authorize(victim, auth_params(c, ch, state="st-victim"))))
    assert victim_page.status_code == 200
    sessions, before = live_session_ids(live), counts(live)
    resp = assert_page(victim.get(back), 400, "This sign-in was started elsewhere")
    assert "Start the sign-in again in this browser" in resp.text
    assert "member" not in cookie_session(victim)
    assert live_session_ids(live) == sessions and counts(live) == before

    bystander = Browser(live, ALICE)
    resp = assert_page(bystander.get(back), 400, "This sign-in was not started here")
    assert "no sign-in in progress" in resp.text
    assert bystander.http.cookies.get("authz_session") is None or "member" not in cookie_session(bystander)
    assert live_session_ids(live) == sessions and counts(live) == before

    # The victim's own login is still in progress and ends as the victim.
    done = victim.finish_login(victim.get(idp_sign_in(victim, provider_links(victim_page)["google"], ALICE)), ALICE)
    p = client_params(follow_to_client(victim, done), c)
    assert p["state"] == "st-victim"
    claims = jwt_claims(redeem(live, c, p["code"], v)["id_token"])
    assert (claims["sub"], claims["email"]) == (member(live, ALICE, "acme")["member_id"], ALICE)


def test_login_page_starts_a_new_login_each_time(live, browser):
    """Each login page starts a login of its own: a new PKCE challenge, the same
    on every provider link of the page. The last three stay usable in one
    browser (tabs, reloads); the link of an older one says its page expired."""
    pages = [browser.get("/login") for _ in range(4)]
    challenges = [{callback_params(stytch_start(browser, h))["pkce_code_challenge"] for h in provider_links(p).values()}
                  for p in pages[1:]]
    assert all(len(c) == 1 for c in challenges) and len(set.union(*challenges)) == 3
    resp = assert_page(browser.get(provider_links(pages[0])["google"]), 400, "This sign-in page has expired")
    assert "Start the sign-in again" in resp.text
    done = browser.finish_login(browser.get(idp_sign_in(browser, provider_links(pages[1])["google"], ALICE)), ALICE)
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"


def _at_idp(browser: Browser, href: str):
    """Follow a provider link to the emulator's identity-provider page and stop there."""
    page = browser.http.get(href, timeout=10)
    assert page.status_code == 200 and 'name="email"' in page.text, page.text[:300]
    return page


def _back_from_idp(browser: Browser, idp_page, email: str):
    """Sign in on an identity-provider page opened earlier; the callback's response."""
    back = browser.http.post(idp_page.url, data={**form_fields(idp_page.text), "email": email},
                             allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text[:300]
    return browser.get(back.headers["Location"])


@pytest.mark.parametrize("bad", ["/org/no-such-organization/login", "/login/start/not-a-login/google"])
def test_a_mistyped_login_page_does_not_disturb_the_login_in_progress(live, make_client, bad):
    """A login page that fails (an unknown organization in the address, a stale
    or made-up start link) writes nothing: the login this browser started, now
    at the identity provider, still comes back and completes the parked
    authorization request."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    v, ch = pkce_pair()
    page = b.get(login_location(authorize(b, auth_params(c, ch, state="st-kept"))))
    idp = _at_idp(b, provider_links(page)["google"])
    assert b.get(bad).status_code == 400
    p = client_params(follow_to_client(b, b.finish_login(_back_from_idp(b, idp, ALICE), ALICE)), c)
    assert p["state"] == "st-kept"
    assert jwt_claims(redeem(live, c, p["code"], v)["id_token"])["email"] == ALICE


def test_two_login_tabs_in_one_browser_both_complete(live, make_client):
    """Two tabs of one browser each start an authorization and land on a login
    page. The first tab's login comes back after the second tab opened its page,
    and completes its own request; then the second tab's login completes its own."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    v1, ch1 = pkce_pair()
    v2, ch2 = pkce_pair()
    page1 = b.get(login_location(authorize(b, auth_params(c, ch1, state="st-tab1"))))
    idp1 = _at_idp(b, provider_links(page1)["google"])
    page2 = b.get(login_location(authorize(b, auth_params(c, ch2, state="st-tab2"))))
    assert page2.status_code == 200

    p1 = client_params(follow_to_client(b, b.finish_login(_back_from_idp(b, idp1, ALICE), ALICE)), c)
    assert p1["state"] == "st-tab1"
    assert jwt_claims(redeem(live, c, p1["code"], v1)["id_token"])["email"] == ALICE

    back2 = b.get(idp_sign_in(b, provider_links(page2)["google"], ALICE))
    p2 = client_params(follow_to_client(b, b.finish_login(back2, ALICE)), c)
    assert p2["state"] == "st-tab2"
    assert jwt_claims(redeem(live, c, p2["code"], v2)["id_token"])["email"] == ALICE


def test_a_login_overtaken_by_one_started_later_in_another_tab_says_so(live, make_client):
    """The callback finishes the login this browser sent to Stytch last. When two
    tabs both went on to the identity provider and the earlier one comes back
    first, Stytch refuses its token (PKCE); the page says what happened and signs
    nobody in, and the later tab's login still completes."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    _, ch1 = pkce_pair()
    v2, ch2 = pkce_pair()
    page1 = b.get(login_location(authorize(b, auth_params(c, ch1, state="st-tab1"))))
    page2 = b.get(login_location(authorize(b, auth_params(c, ch2, state="st-tab2"))))
    idp1 = _at_idp(b, provider_links(page1)["google"])
    idp2 = _at_idp(b, provider_links(page2)["google"])
    resp = assert_page(_back_from_idp(b, idp1, ALICE), 400, "This sign-in was started elsewhere")
    assert "started later in another tab" in resp.text and "member" not in cookie_session(b)
    p2 = client_params(follow_to_client(b, b.finish_login(_back_from_idp(b, idp2, ALICE), ALICE)), c)
    assert p2["state"] == "st-tab2" and "code" in p2


# --- Bad and hostile input at the login routes ----------------------------------------------


@pytest.mark.parametrize("query", [
    "",
    "stytch_token_type=discovery_oauth",
    "stytch_token_type=discovery_oauth&token=",
    "token=abc",
    "stytch_token_type=sso&token=" + "A" * 44,
    "stytch_token_type=multi_tenant_magic_links&token=" + "A" * 44,
    "stytch_token_type=discovery_oauth&token=" + "A" * 600,
])
def test_callback_without_a_usable_token(live, browser, query):
    """/login/callback with no token, an empty or over-long one, or a token type we
    do not handle: an error page, nothing stored."""
    resp = browser.get("/login/callback?" + query)
    assert_page(resp, 400, "This sign-in link is not valid")
    assert "Start the sign-in again" in resp.text
    assert browser.http.cookies.get("authz_session") is None or "member" not in cookie_session(browser)
    assert set(counts(live).values()) == {0}


@pytest.mark.parametrize("token_type", ["discovery_oauth", "oauth"])
def test_callback_with_an_unknown_token(live, browser, token_type):
    """A token Stytch never issued, in a browser with a login in progress: Stytch's
    oauth_token_not_found becomes a page."""
    assert browser.get("/login").status_code == 200
    resp = browser.get(f"/login/callback?stytch_token_type={token_type}&token={secrets.token_urlsafe(33)}")
    assert_page(resp, 400, "This sign-in link was already used")


def test_callback_token_reused(live, make_client):
    """A Stytch token is single use: replaying the callback URL gets a page, signs
    nobody in, stores nothing. The login it belonged to is over, so the same
    browser (and another one) is told no sign-in is in progress; with a new login
    in progress, Stytch refuses the used token."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    _, ch = pkce_pair()
    resp = authorize(b, auth_params(c, ch))
    page = b.get(login_location(resp))
    back = idp_sign_in(b, provider_links(page)["google"], ALICE)
    assert b.get(back).status_code == 303
    before = counts(live)
    assert_page(b.get(back), 400, "This sign-in was not started here")
    assert b.get("/login").status_code == 200
    assert_page(b.get(back), 400, "This sign-in link was already used")
    thief = Browser(live)
    assert_page(thief.get(back), 400, "This sign-in was not started here")
    assert thief.http.cookies.get("authz_session") is None or "member" not in cookie_session(thief)
    assert counts(live) == before


def test_callback_with_token_of_the_other_flow(live, browser):
    """A discovery token sent as an organization-flow token (type swapped) is
    refused by Stytch: a page, not a 500."""
    page = browser.get("/login")
    back = idp_sign_in(browser, provider_links(page)["google"], ALICE)
    swapped = back.replace("stytch_token_type=discovery_oauth", "stytch_token_type=oauth")
    assert_page(browser.get(swapped), 400)
    assert "member" not in cookie_session(browser)


def test_picker_refuses_an_organization_not_discovered(live, make_client):
    """A forged ``organization_id`` (Globex, which alice was not offered, or junk)
    in the picker POST: a page; no Stytch session, no code, nothing stored."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    _, ch = pkce_pair()
    _, cb = to_callback(b, authorize(b, auth_params(c, ch)), ALICE)
    picker = b.get(cb.headers["Location"])
    sessions_before = live_session_ids(live)
    before = counts(live)
    for forged in (organization(live, "globex")["organization_id"], "organization-test-forged", "", "x" * 5000):
        resp = pick(b, picker, forged)
        assert_page(resp, 400, "You cannot join that organization")
    assert live_session_ids(live) == sessions_before
    assert counts(live) == before and "member" not in cookie_session(b)
    # The real choice still works afterwards.
    assert pick(b, picker, organization(live, "acme")["organization_id"]).status_code == 303


def test_tampered_session_cookie_is_treated_as_signed_out(live, make_client):
    """A session cookie with one character changed fails its signature: the member
    is signed out (login page, login_required), the picker has nothing in progress,
    and nothing answers 500."""
    c = make_client(client_type="first_party")
    b = signed_in(live, ALICE)
    raw = b.http.cookies.get("authz_session")
    i = len(raw) // 2
    flipped = raw[:i] + ("A" if raw[i] != "A" else "B") + raw[i + 1:]
    for cookie in b.http.cookies:
        if cookie.name == "authz_session":
            cookie.value = flipped
    assert b.http.cookies.get("authz_session") == flipped
    assert prompt_none(b, c)["error"] == "login_required"
    _, ch = pkce_pair()
    login_location(authorize(b, auth_params(c, ch)))
    assert_page(b.get("/login/organizations"), 400, "Your sign-in has expired")
    assert_page(b.get("/login/step-up"), 400, "Your sign-in has expired")
    assert_page(b.post("/logout", {"csrf_token": "x"}), 400, "This form has expired")


def test_expired_intermediate_session(live, make_client):
    """Stytch's intermediate session lives 10 minutes: picking an organization later
    gets "Your sign-in has expired", and nothing is stored."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    _, ch = pkce_pair()
    _, cb = to_callback(b, authorize(b, auth_params(c, ch)), ALICE)
    picker = b.get(cb.headers["Location"])
    before = counts(live)
    with later(11 * 60):
        resp = pick(b, picker, organization(live, "acme")["organization_id"])
        assert_page(resp, 400, "Your sign-in has expired")
        assert "Start the sign-in again" in resp.text
        assert "member" not in cookie_session(b)
    assert counts(live) == before


def test_unknown_organization_slug(live, make_client, browser):
    """A Stytch error (organization_not_found) at /org/nope/login and for an
    authorization request naming an unknown organization: a page that says so."""
    resp = assert_page(browser.get("/org/nope/login"), 400, "Unknown organization")
    assert "does not exist" in resp.text
    c = make_client(client_type="first_party")
    _, ch = pkce_pair()
    resp = authorize(browser, auth_params(c, ch, organization_slug="nope"))
    assert_page(browser.get(login_location(resp)), 400, "Unknown organization")
    assert counts(live)["authorization_codes"] == 0


def test_stytch_unreachable_shows_a_503_page(live, make_server_with, make_client):
    """Stytch refusing connections: the organization login page and the callback
    answer a 503 page that says what happened and what to do; nothing stored."""
    down = make_server_with(stytch_environment=f"http://127.0.0.1:{closed_port()}")
    c = make_client(client_type="first_party")
    b = Browser(down, ALICE)
    for path in ("/org/acme/login", "/login/callback?stytch_token_type=discovery_oauth&token=" + "A" * 44,
                 "/login/callback?stytch_token_type=oauth&token=" + "A" * 44):
        assert b.get("/login").status_code == 200  # a login in progress (this page asks Stytch nothing)
        resp = assert_page(b.get(path), 503, "Sign-in is unavailable")
        assert "could not reach our sign-in provider" in resp.text and "Wait a moment and try again" in resp.text
    _, ch = pkce_pair()
    resp = authorize(b, auth_params(c, ch, organization_slug="acme"))
    assert_page(b.get(login_location(resp)), 503, "Sign-in is unavailable")
    assert counts(down)["authorization_codes"] == 0


def test_stytch_unreachable_with_a_session_shows_a_503_page(live, make_server_with, make_client):
    """A member whose Stytch session must be checked while Stytch is down gets the
    503 page (or, with prompt=none, an error redirect), never a 500."""
    b = signed_in(live, BOB)
    down = make_server_with(stytch_environment=f"http://127.0.0.1:{closed_port()}")  # empties the tables
    c = make_client(client_type="first_party")
    other = Browser(down, BOB)
    other.http.cookies = b.http.cookies  # the same cookie: same signing key
    _, ch = pkce_pair()
    resp = authorize(other, auth_params(c, ch))
    assert_page(resp, 503, "Sign-in is unavailable")
    assert counts(down)["authorization_codes"] == 0


def test_a22_prompt_none_while_stytch_is_unreachable_redirects_temporarily_unavailable(
        live, make_server_with, make_client):
    """OIDC Core §3.1.2.6 / RFC 6749 §4.1.2.1: a silent request (prompt=none) whose
    member session cannot be checked goes back to the client with
    temporarily_unavailable, state and iss, so it can retry; nothing stored."""
    b = signed_in(live, BOB)
    down = make_server_with(stytch_environment=f"http://127.0.0.1:{closed_port()}")  # empties the tables
    c = make_client(client_type="first_party")
    other = Browser(down, BOB)
    other.http.cookies = b.http.cookies
    _, ch = pkce_pair()
    params = auth_params(c, ch, prompt="none")
    resp = other.get("/oauth/authorize?" + urlencode(params))
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    assert resp.headers["Location"].startswith(c.redirect_uri + "?")
    got = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    assert got["error"] == "temporarily_unavailable" and got["state"] == params["state"]
    assert got["iss"] == down.url and "code" not in got
    assert counts(down)["authorization_codes"] == 0


def test_stytch_timeout_shows_a_503_page(live, make_server_with, monkeypatch):
    """Stytch accepting the connection but never answering: the gateway's timeout
    turns it into the 503 page (the timeout is shortened for the test)."""
    from authz_server.identity import gateway

    monkeypatch.setattr(gateway, "TIMEOUT_SECONDS", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        down = make_server_with(stytch_environment=f"http://127.0.0.1:{silent.getsockname()[1]}")
        b = Browser(down, ALICE)
        assert b.get("/login").status_code == 200
        started = time.monotonic()
        resp = b.get("/login/callback?stytch_token_type=discovery_oauth&token=" + "A" * 44)
        assert_page(resp, 503, "Sign-in is unavailable")
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_missing_or_unknown_pending_request(live, make_client, browser):
    """An unknown pending id at /oauth/authorize is a page; a login whose pending
    request vanished ends signed in on "You are signed in", with no code stored."""
    assert_page(browser.get("/oauth/authorize?pending=p-unknown"), 400, "This sign-in has expired")
    assert_page(browser.get("/oauth/authorize?pending=" + "x" * 500), 400, "This sign-in has expired")
    resp = browser.post("/oauth/authorize/consent", {"csrf_token": "x", "pending": "p-unknown", "decision": "allow"})
    assert_page(resp, 400)
    page = browser.get("/login?pending=p-unknown")
    assert page.status_code == 200
    done = browser.finish_login(browser.get(idp_sign_in(browser, provider_links(page)["google"], ALICE)), ALICE)
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"
    assert browser.get("/login/done").status_code == 200
    assert counts(live)["authorization_codes"] == 0 and counts(live)["pending_authorizations"] == 0


def test_picker_and_step_up_posts_need_csrf(live, make_client):
    """The picker and step-up forms change state: without the CSRF token they are
    refused with a page and nothing happens (the sign-in can go on afterwards)."""
    c = make_client(client_type="first_party")
    b = Browser(live, BOB)
    _, ch = pkce_pair()
    with step_up_required(live.stytch_url, "acme.test"):
        _, cb = to_callback(b, authorize(b, auth_params(c, ch)), BOB)
        picker = b.get(cb.headers["Location"])
        acme_id = organization(live, "acme")["organization_id"]
        sessions = live_session_ids(live)
        for data in ({"organization_id": acme_id}, {"organization_id": acme_id, "csrf_token": "forged"},
                     {"create_organization": "1", "organization_name": "Evil Corp"}):
            assert_page(b.post("/login/organizations", data), 400, "This form has expired")
        assert live_session_ids(live) == sessions
        assert not [o for o in emulator_state(live)["organizations"] if o["organization_name"] == "Evil Corp"]

        assert pick(b, picker, acme_id).headers["Location"] == "/login/step-up"
        page = b.get("/login/step-up")
        code = outbox_code(live, BOB)
        sent = len(requests.get(live.stytch_url + "/emulator/outbox", params={"email": BOB}, timeout=10)
                   .json()["messages"])
        assert_page(b.post("/login/step-up", {"code": code}), 400, "This form has expired")
        assert_page(b.post("/login/step-up", {"resend": "1"}), 400, "This form has expired")
        assert len(requests.get(live.stytch_url + "/emulator/outbox", params={"email": BOB}, timeout=10)
                   .json()["messages"]) == sent
        assert "member" not in cookie_session(b) and counts(live)["authorization_codes"] == 0
        ok = b.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": code})
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/oauth/authorize?pending=")


def test_login_pages_without_a_sign_in_in_progress(live, browser):
    """The picker and the step-up page opened directly (no sign-in in progress):
    a page that says to start again."""
    for method in ("get", "post"):
        call = getattr(browser, method)
        args = ({"organization_id": "x", "csrf_token": "x"},) if method == "post" else ()
        assert_page(call("/login/organizations", *args), 400, "Your sign-in has expired")
        assert_page(call("/login/step-up", *args), 400, "Your sign-in has expired")


def test_login_page_offers_only_enabled_providers(make_server_with):
    """Issue 4: the login page has one data-provider link per enabled provider."""
    import requests as _requests

    live = make_server_with(login_providers=("microsoft",))
    page = _requests.get(live.url + "/login", timeout=10).text
    assert 'data-provider="microsoft"' in page and 'data-provider="google"' not in page
