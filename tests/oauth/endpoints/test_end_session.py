"""OIDC RP-Initiated Logout 1.0 at /oauth/logout (docs/requirements.md:
A25-116 to A25-119), over HTTP with a member signed in through the Stytch emulator.

Logging out ends our session and revokes the member's Stytch session; a redirect
goes only to an exactly registered ``post_logout_redirect_uri`` and only with a
valid ``id_token_hint`` of the signed-in member; without one (or with another
member's) the member confirms first (CSRF-protected) and is not redirected.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.browser import CSRF, Browser
from tests.helpers import auth_params, form_fields, pkce_pair
from tests.login import (assert_page, client_params, later, live_session_ids, prompt_none, redeem,
                         stytch_session)

LOGGED_OUT = "https://app.example/logged-out"
BOB = "bob@acme.test"


@pytest.fixture
def rp(live, make_client):
    """A client with a registered post-logout redirect URI."""
    return make_client(client_type="first_party", post_logout_redirect_uris=[LOGGED_OUT])


def sign_in(live, client, email=BOB):
    """A browser signed in through Stytch, and the id token the client got."""
    b = Browser(live, email)
    v, ch = pkce_pair()
    p = client_params(b.authorize(auth_params(client, ch)), client)
    return b, redeem(live, client, p["code"], v)


def stytch_session_id(b) -> str:
    return stytch_session(b)[1]["https://stytch.com/session"]["id"]


def assert_signed_in(live, b, client, session_id):
    assert "code" in prompt_none(b, client), "the member should still be signed in"
    assert session_id in live_session_ids(live)


def assert_signed_out(live, b, client, session_id):
    assert prompt_none(b, client)["error"] == "login_required"
    assert session_id not in live_session_ids(live)


def logout_get(b, **params):
    return b.get("/oauth/logout?" + urlencode(params))


def _header(token) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- item 116: advertised, GET and POST ----------------------------------------------------


def test_a25_116_end_session_endpoint_is_advertised(live):
    """A.25 #116: ``end_session_endpoint`` appears in both discovery documents."""
    for doc in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        assert requests.get(live.url + doc, timeout=10).json()["end_session_endpoint"] == live.url + "/oauth/logout"


def test_a25_116_get_with_id_token_hint_logs_out_and_redirects(live, rp):
    """A.25 #116/#118/#119: GET with a valid hint and a registered URI: 302 to it with
    ``state``; our session and the Stytch session are gone."""
    b, tokens = sign_in(live, rp)
    sid = stytch_session_id(b)
    resp = logout_get(b, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT,
                      state="bye-1", client_id=rp.client_id)
    assert resp.status_code == 302, resp.text[:300]
    assert resp.headers["Location"] == LOGGED_OUT + "?state=bye-1"
    assert_signed_out(live, b, rp, sid)


def test_a25_116_post_with_id_token_hint_logs_out_and_redirects_303(live, rp):
    """A.25 #116: the form-POST variant answers 303 (RFC 9700 §4.12)."""
    b, tokens = sign_in(live, rp)
    sid = stytch_session_id(b)
    resp = b.post("/oauth/logout", {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGGED_OUT,
                                    "state": "bye-2"})
    assert resp.status_code == 303, resp.text[:300]
    assert resp.headers["Location"] == LOGGED_OUT + "?state=bye-2"
    assert_signed_out(live, b, rp, sid)


def test_a25_116_without_state_no_state_is_added(live, rp):
    """§3: ``state`` is appended only when the RP sent one."""
    b, tokens = sign_in(live, rp)
    resp = logout_get(b, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT)
    assert resp.status_code == 302 and resp.headers["Location"] == LOGGED_OUT


# --- item 117: the hint is checked ---------------------------------------------------------


def test_a25_117_expired_id_token_hint_is_accepted(make_server_with, make_client):
    """A.25 #117: an expired id token still identifies the RP (RP-Initiated §2).
    (Short id-token lifetime: the Stytch session itself lasts an hour.)"""
    srv = make_server_with(id_token_ttl=60)
    rp = make_client(client_type="first_party", post_logout_redirect_uris=[LOGGED_OUT])
    b, tokens = sign_in(srv, rp)
    sid = stytch_session_id(b)
    with later(180):
        resp = logout_get(b, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="late")
        assert resp.status_code == 302 and resp.headers["Location"] == LOGGED_OUT + "?state=late"
        assert prompt_none(b, rp)["error"] == "login_required"
        assert sid not in live_session_ids(srv)


def test_a25_117_client_id_not_in_the_hint_audience_is_an_error_page(live, rp, make_client):
    """A.25 #117: ``client_id`` must be the hint's ``aud``: otherwise an error page,
    no redirect, and the member stays signed in (also in Stytch)."""
    other = make_client(client_type="first_party", post_logout_redirect_uris=[LOGGED_OUT])
    b, tokens = sign_in(live, rp)
    sid = stytch_session_id(b)
    for method in ("get", "post"):
        params = {"id_token_hint": tokens["id_token"], "client_id": other.client_id,
                  "post_logout_redirect_uri": LOGGED_OUT, "state": "x"}
        resp = logout_get(b, **params) if method == "get" else b.post("/oauth/logout", params)
        assert_page(resp, 400, "This sign-out link is not valid")
    assert_signed_in(live, b, rp, sid)


def _foreign_token(claims, kid) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.mark.parametrize("case", ["garbage", "tampered", "foreign_key", "access_token", "none_alg"])
def test_a25_117_a_hint_not_issued_here_is_an_error_page(live, rp, case):
    """A.25 #117: the OP verifies it issued the hint. A garbled, tampered or
    foreign-signed token, an unsigned one, or an access token (not an ID token):
    an error page; nobody is logged out."""
    b, tokens = sign_in(live, rp)
    sid = stytch_session_id(b)
    idt = tokens["id_token"]
    claims = json.loads(base64.urlsafe_b64decode(idt.split(".")[1] + "=" * (-len(idt.split(".")[1]) % 4)))
    hint = {
        "garbage": "not-a-jwt",
        "tampered": idt[:-6] + ("AAAAAA" if not idt.endswith("AAAAAA") else "BBBBBB"),
        "foreign_key": _foreign_token(claims, _header(idt)["kid"]),
        "access_token": tokens["access_token"],
        "none_alg": jwt.encode(claims, None, algorithm="none"),
    }[case]
    resp = logout_get(b, id_token_hint=hint, post_logout_redirect_uri=LOGGED_OUT, state="s")
    assert_page(resp, 400, "This sign-out link is not valid")
    assert_signed_in(live, b, rp, sid)


# --- item 118: where the browser may go, and confirmation ------------------------------------


@pytest.mark.parametrize("uri", [
    "https://evil.example/logged-out",
    LOGGED_OUT + "/",
    LOGGED_OUT + "?x=1",
    "https://app.example/cb",  # a registered *login* redirect URI is not a logout one
])
def test_a25_118_unregistered_post_logout_redirect_uri_gets_no_redirect(live, rp, uri):
    """A.25 #118: only an exactly registered post_logout_redirect_uri is followed;
    otherwise the member is logged out and sees our signed-out page."""
    b, tokens = sign_in(live, rp)
    sid = stytch_session_id(b)
    resp = logout_get(b, id_token_hint=tokens["id_token"], post_logout_redirect_uri=uri, state="s")
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert resp.headers["Content-Type"].startswith("text/html") and "You are signed out" in resp.text
    assert "evil.example" not in resp.text
    assert_signed_out(live, b, rp, sid)


def test_a25_118_another_clients_uri_gets_no_redirect(live, rp, make_client):
    """The URI must be registered by the hint's client, not by any client."""
    make_client(client_type="first_party", post_logout_redirect_uris=["https://other.example/bye"])
    b, tokens = sign_in(live, rp)
    resp = logout_get(b, id_token_hint=tokens["id_token"], post_logout_redirect_uri="https://other.example/bye")
    assert resp.status_code == 200 and "Location" not in resp.headers


def test_a25_118_without_hint_the_member_confirms_first(live, rp):
    """A.25 #118 (RP-Initiated §6): without an id_token_hint the member confirms on a
    CSRF-protected page; until then nothing happens, and afterwards there is no
    redirect (its legitimacy cannot be checked)."""
    b, _ = sign_in(live, rp)
    sid = stytch_session_id(b)
    page = logout_get(b, client_id=rp.client_id, post_logout_redirect_uri=LOGGED_OUT, state="c")
    assert page.status_code == 200 and "Sign out?" in page.text and "Location" not in page.headers
    assert "Test App asks to sign you out" in page.text
    fields = form_fields(page.text)
    assert fields["csrf_token"] and fields["confirm"] == "1"
    assert fields["client_id"] == rp.client_id and fields["post_logout_redirect_uri"] == LOGGED_OUT
    assert_signed_in(live, b, rp, sid)

    for forged in ({k: v for k, v in fields.items() if k != "csrf_token"}, {**fields, "csrf_token": "forged"}):
        assert_page(b.post("/oauth/logout", forged), 400, "This form has expired")
    assert_signed_in(live, b, rp, sid)

    done = b.post("/oauth/logout", fields)
    assert done.status_code == 200 and "Location" not in done.headers and "You are signed out" in done.text
    assert_signed_out(live, b, rp, sid)


def test_a25_118_post_without_hint_or_confirmation_asks(live, rp):
    """A bare POST (no hint, no confirmation) shows the confirmation page too."""
    b, _ = sign_in(live, rp)
    sid = stytch_session_id(b)
    page = b.post("/oauth/logout", {"client_id": rp.client_id})
    assert page.status_code == 200 and "Sign out?" in page.text and CSRF.search(page.text)
    assert_signed_in(live, b, rp, sid)


def test_a25_118_signed_out_browser_can_still_follow_a_valid_logout(live, rp):
    """A valid hint from a browser with no session (already signed out): the RP is
    still sent back, no error."""
    _, tokens = sign_in(live, rp)
    stranger = Browser(live)
    resp = logout_get(stranger, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="z")
    assert resp.status_code == 302 and resp.headers["Location"] == LOGGED_OUT + "?state=z"


@pytest.mark.parametrize("method", ["get", "post"])
def test_rp_logout_with_another_members_hint_asks_and_never_redirects(live, rp, method):
    """RP-Initiated Logout §2/§6: a valid id_token_hint of *another* member (here the
    attacker's own id token for the same client) does not sign the victim out
    silently: the victim is asked first, and after confirming sees our signed-out
    page, never the post_logout_redirect_uri."""
    _, attackers = sign_in(live, rp, "alice@acme.test")
    victim, _ = sign_in(live, rp, BOB)
    sid = stytch_session_id(victim)
    params = {"id_token_hint": attackers["id_token"], "post_logout_redirect_uri": LOGGED_OUT, "state": "evil",
              "client_id": rp.client_id}
    page = logout_get(victim, **params) if method == "get" else victim.post("/oauth/logout", params)
    assert page.status_code == 200 and "Location" not in page.headers and "Sign out?" in page.text
    assert_signed_in(live, victim, rp, sid)

    done = victim.post("/oauth/logout", form_fields(page.text))
    assert done.status_code == 200 and "Location" not in done.headers and "You are signed out" in done.text
    assert LOGGED_OUT not in done.text
    assert_signed_out(live, victim, rp, sid)


def test_hint_must_name_the_member_and_the_organization():
    """The hint belongs to the session only if both its ``sub`` and its
    ``organization_id`` are the signed-in member's."""
    from authz_server.identity.session import Member
    from authz_server.oauth.endpoints.end_session import hint_matches_member

    m = Member(member_id="member-1", organization_id="organization-1")
    assert hint_matches_member({"sub": "member-1", "organization_id": "organization-1"}, m)
    assert not hint_matches_member({"sub": "member-1", "organization_id": "organization-2"}, m)
    assert not hint_matches_member({"sub": "member-1"}, m)
    assert not hint_matches_member({"sub": "member-2", "organization_id": "organization-1"}, m)
    assert not hint_matches_member(None, m) and not hint_matches_member({"sub": "member-1"}, None)


# --- item 119: logout ends the Stytch session -------------------------------------------------


def test_a25_119_after_logout_prompt_none_is_login_required(live, rp):
    """A.25 #119: after RP-initiated logout, prompt=none answers login_required
    (with iss and state), and the Stytch session is revoked in Stytch."""
    b, tokens = sign_in(live, rp)
    token, _ = stytch_session(b)
    sid = stytch_session_id(b)
    assert logout_get(b, id_token_hint=tokens["id_token"]).status_code == 200
    p = prompt_none(b, rp, state="after")
    assert (p["error"], p["state"], p["iss"]) == ("login_required", "after", live.url)
    assert sid not in live_session_ids(live)
    # Stytch itself refuses the old session token now.
    r = requests.post(live.stytch_url + "/v1/b2b/sessions/authenticate", json={"session_token": token},
                      auth=(live.settings.stytch_project_id, live.settings.stytch_secret), timeout=10)
    assert r.status_code == 404 and r.json()["error_type"] == "session_not_found"
