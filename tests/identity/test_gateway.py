"""The Stytch gateway (authz_server/identity/gateway.py) against the project's
Stytch emulator, through the real ``stytch`` SDK: what each Stytch answer becomes
(the only module that imports the SDK, docs/architecture.md#rules), the local session-JWT
check, renewal through sessions.authenticate, and the membership check behind
the refresh grant and introspection (docs/requirements.md: A7-45).

Failures a person cannot fix (Stytch down, slow, answering garbage, or our own
credentials refused) must come out as ``IdentityUnavailable`` (a 503 page);
failures of the sign-in itself as an ``IdentityError`` with a title, message and
hint a person can act on.
"""
from __future__ import annotations

import http.server
import json
import secrets
import socket
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine

from authz_server.identity import gateway as gateway_module
from authz_server.identity.gateway import (Discovery, IdentityError, IdentityUnavailable, MemberSession,
                                           StepUp, StytchGateway, WrongCode, new_pkce_pair, pkce_challenge)
from authz_server.identity.membership import MembershipCache
from tests.helpers import serve_in_thread, step_up_required

APP = "http://app.test/cb"  # nothing listens there: the tests read Location
# Every login the gateway starts carries a PKCE challenge; these tests start theirs
# with this pair, as the login page would with a pair of its own.
VERIFIER, CHALLENGE = new_pkce_pair()


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gw(stytch_emulator) -> StytchGateway:
    return StytchGateway(stytch_emulator.project_id, stytch_emulator.secret, stytch_emulator.public_token,
                         stytch_emulator.url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def down(stytch_emulator) -> StytchGateway:
    """A gateway whose Stytch refuses connections."""
    return StytchGateway(stytch_emulator.project_id, stytch_emulator.secret, stytch_emulator.public_token,
                         f"http://127.0.0.1:{_closed_port()}")


def idp_token(emu, email, *, slug=None, provider="google") -> str:
    """Sign in on the emulator's identity-provider page; the token it sends back."""
    if slug:
        url = (f"{emu.url}/v1/b2b/public/oauth/{provider}/start?public_token={emu.public_token}"
               f"&slug={slug}&login_redirect_url={APP}&pkce_code_challenge={CHALLENGE}")
    else:
        url = f"{emu.url}/v1/b2b/public/oauth/{provider}/discovery/start?public_token={emu.public_token}" \
              f"&discovery_redirect_url={APP}&pkce_code_challenge={CHALLENGE}"
    resp = requests.post(url, data={"email": email}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return parse_qs(urlsplit(resp.headers["Location"]).query)["token"][0]


def org_id(emu, slug) -> str:
    return emu.emulator.store.organization(slug).organization_id


def alice_session(gw, emu) -> MemberSession:
    found = gw.discovery_authenticate(idp_token(emu, "alice@acme.test"), pkce_code_verifier=VERIFIER)
    result = gw.exchange(found.intermediate_session_token, org_id(emu, "acme"))
    assert isinstance(result, MemberSession)
    return result


def jit_session(gw, emu) -> MemberSession:
    """A new Globex member (never delete the seeded ones: the emulator is shared)."""
    email = f"gw-{secrets.token_hex(4)}@globex.test"
    found = gw.discovery_authenticate(idp_token(emu, email), pkce_code_verifier=VERIFIER)
    result = gw.exchange(found.intermediate_session_token, org_id(emu, "globex"))
    assert isinstance(result, MemberSession)
    return result


def outbox_code(emu, email) -> str:
    return requests.get(emu.url + "/emulator/outbox", params={"email": email}, timeout=10).json()["code"]


class FakeStytch:
    """A stand-in Stytch that answers every request with one canned response: what a
    failing Stytch, or a proxy in front of it, sends back."""

    def __init__(self):
        self.status, self.body, self.content_type = 200, b"{}", "application/json"
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(fake.status)
                self.send_header("Content-Type", fake.content_type)
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        serve_in_thread(self.server)

    def answer(self, status, body, content_type="application/json"):
        self.status, self.content_type = status, content_type
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake(stytch_emulator):
    f = FakeStytch()
    yield f
    f.close()


@pytest.fixture(scope="module")
def fake_gw(fake, stytch_emulator) -> StytchGateway:
    return StytchGateway(stytch_emulator.project_id, stytch_emulator.secret, stytch_emulator.public_token, fake.url)


def stytch_error(status, error_type, message="Something happened."):
    return {"status_code": status, "request_id": "request-id-test-1", "error_type": error_type,
            "error_message": message, "error_url": f"https://stytch.com/docs/api/errors/{status}"}


# --- start URLs ------------------------------------------------------------------------------


def test_start_urls(gw, stytch_emulator):
    """The public start URLs on Stytch's host, with the public token and our
    callback; the organization flow by slug or id; login_hint as provider_login_hint."""
    cb = "http://127.0.0.1:1/login/callback"
    url = gw.discovery_start_url("google", cb, pkce_code_challenge=CHALLENGE, login_hint="a@b.test")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == \
        f"{stytch_emulator.url}/v1/b2b/public/oauth/google/discovery/start"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "public_token": stytch_emulator.public_token, "discovery_redirect_url": cb, "provider_login_hint": "a@b.test",
        "pkce_code_challenge": CHALLENGE}
    q = parse_qs(urlsplit(gw.organization_start_url("microsoft", cb, pkce_code_challenge=CHALLENGE,
                                                    slug="acme")).query)
    assert q["slug"] == ["acme"] and "organization_id" not in q and q["login_redirect_url"] == [cb]
    assert q["pkce_code_challenge"] == [CHALLENGE]
    q = parse_qs(urlsplit(gw.organization_start_url("google", cb, pkce_code_challenge=CHALLENGE,
                                                    organization_id="org-1")).query)
    assert q["organization_id"] == ["org-1"] and "slug" not in q and q["pkce_code_challenge"] == [CHALLENGE]
    assert "/v1/b2b/public/oauth/microsoft/start?" in gw.organization_start_url(
        "microsoft", cb, pkce_code_challenge=CHALLENGE, slug="acme")


def test_pkce_pair_is_s256_of_a_fresh_verifier():
    """RFC 7636 §4.1/§4.2 (Stytch's PKCE is S256 only): a 43-character verifier of
    unreserved characters, its challenge base64url(SHA-256(verifier)) unpadded,
    and a new pair each time."""
    import base64
    import hashlib
    import re

    verifier, challenge = new_pkce_pair()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", verifier)
    assert challenge == pkce_challenge(verifier) == base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert new_pkce_pair()[0] != verifier


@pytest.mark.parametrize("flow", ["discovery", "organization"])
def test_token_minted_with_another_challenge_is_pkce_mismatch(gw, stytch_emulator, flow):
    """A Stytch token minted for a login started with another browser's challenge:
    the authenticate call with this browser's verifier is refused (pkce_mismatch),
    and the page says to start again here; the right verifier still works."""
    other_verifier, other_challenge = new_pkce_pair()
    slug = "acme" if flow == "organization" else None
    url = (f"{stytch_emulator.url}/v1/b2b/public/oauth/google/"
           + ("start?slug=acme&login_redirect_url=" if slug else "discovery/start?discovery_redirect_url=")
           + f"{APP}&public_token={stytch_emulator.public_token}&pkce_code_challenge={other_challenge}")
    resp = requests.post(url, data={"email": "bob@acme.test"}, allow_redirects=False, timeout=10)
    token = parse_qs(urlsplit(resp.headers["Location"]).query)["token"][0]
    call = gw.oauth_authenticate if slug else gw.discovery_authenticate
    with pytest.raises(IdentityError) as e:
        call(token, pkce_code_verifier=VERIFIER)
    assert type(e.value) is IdentityError and e.value.status == 400
    assert (e.value.error_type, e.value.title, e.value.hint) == (
        "pkce_mismatch", "This sign-in was started elsewhere", "Start the sign-in again in this browser.")
    assert call(token, pkce_code_verifier=other_verifier)


# --- the login calls ---------------------------------------------------------------------------


def test_discovery_then_exchange_gives_a_member_session(gw, stytch_emulator):
    """Discovery finds Acme for alice (an active member); the exchange gives a full
    session whose member carries Stytch's ids, roles and authentication time."""
    found = gw.discovery_authenticate(idp_token(stytch_emulator, "alice@acme.test"), pkce_code_verifier=VERIFIER)
    assert isinstance(found, Discovery) and found.email == "alice@acme.test"
    assert [(d.organization.slug, d.membership, d.member_authenticated) for d in found.organizations] == [
        ("acme", "active_member", True)]
    before = int(datetime.now(timezone.utc).timestamp())
    result = gw.exchange(found.intermediate_session_token, org_id(stytch_emulator, "acme"))
    assert isinstance(result, MemberSession) and result.session_token and result.session_jwt
    m = result.member
    store = stytch_emulator.emulator.store
    alice = store.find_member(store.organization("acme"), email="alice@acme.test")
    assert (m.member_id, m.organization_id, m.organization_slug, m.organization_name) == (
        alice.member_id, org_id(stytch_emulator, "acme"), "acme", "Acme")
    assert m.email == "alice@acme.test" and m.email_verified and m.name == "Alice Admin"
    assert set(m.roles) == {"stytch_member", "stytch_admin"}
    assert before - 2 <= m.auth_time <= before + 2


def test_organization_flow_and_create(gw, stytch_emulator):
    """oauth.authenticate (slug flow) signs bob in; discovery.organizations.create makes
    the creator an admin of the new organization."""
    result = gw.oauth_authenticate(idp_token(stytch_emulator, "bob@acme.test", slug="acme"),
                                   pkce_code_verifier=VERIFIER)
    assert isinstance(result, MemberSession) and result.member.organization_slug == "acme"
    assert "stytch_admin" not in result.member.roles
    email = f"founder@gwcorp-{secrets.token_hex(3)}.test"
    found = gw.discovery_authenticate(idp_token(stytch_emulator, email), pkce_code_verifier=VERIFIER)
    assert found.organizations == []
    created = gw.create_organization(found.intermediate_session_token, "GW Corp " + secrets.token_hex(2))
    assert isinstance(created, MemberSession) and "stytch_admin" in created.member.roles
    assert gw.organization(created.member.organization_slug).organization_id == created.member.organization_id


def test_step_up_and_email_passcode(gw, stytch_emulator):
    """member_authenticated=false → StepUp listing email_otp; a wrong passcode is
    WrongCode (retry allowed); five wrong ones lock it ("This code has expired"); a
    new passcode completes the session."""
    emu = stytch_emulator
    domain = f"gwstep-{secrets.token_hex(3)}.test"
    email = f"pat@{domain}"
    with step_up_required(emu.url, domain):
        found = gw.discovery_authenticate(idp_token(emu, email), pkce_code_verifier=VERIFIER)
        step = gw.create_organization(found.intermediate_session_token, "Step " + secrets.token_hex(2))
        assert isinstance(step, StepUp) and step.methods == ("email_otp",) and step.email == email
        org = step.organization.organization_id
        with pytest.raises(WrongCode) as e:  # nothing sent yet
            gw.authenticate_email_otp(org, email, "123456", step.intermediate_session_token)
        gw.send_email_otp(org, email)
        code = outbox_code(emu, email)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            with pytest.raises(WrongCode) as e:
                gw.authenticate_email_otp(org, email, wrong, step.intermediate_session_token)
            assert (e.value.title, e.value.status, e.value.error_type) == ("Wrong code", 400, "otp_code_not_found")
        with pytest.raises(IdentityError) as e:
            gw.authenticate_email_otp(org, email, code, step.intermediate_session_token)
        assert not isinstance(e.value, (WrongCode, IdentityUnavailable))
        assert (e.value.title, e.value.error_type, e.value.hint) == (
            "This code has expired", "unable_to_auth_otp_code", "Send a new code.")
        gw.send_email_otp(org, email)
        done = gw.authenticate_email_otp(org, email, outbox_code(emu, email), step.intermediate_session_token)
    assert isinstance(done, MemberSession) and done.member.email == email


# --- error mapping -----------------------------------------------------------------------------


def _unknown_token():
    return secrets.token_urlsafe(33)  # well formed, never issued


ERROR_CASES = {
    "discovery token unknown": (lambda gw, emu: gw.discovery_authenticate(_unknown_token(),
                                                                          pkce_code_verifier=VERIFIER),
                                "oauth_token_not_found", "This sign-in link was already used"),
    "oauth token unknown": (lambda gw, emu: gw.oauth_authenticate(_unknown_token(), pkce_code_verifier=VERIFIER),
                            "oauth_token_not_found", "This sign-in link was already used"),
    "discovery token used as oauth": (lambda gw, emu: gw.oauth_authenticate(idp_token(emu, "alice@acme.test"),
                                                                            pkce_code_verifier=VERIFIER),
                                      "oauth_token_not_found", "This sign-in link was already used"),
    "intermediate session unknown": (lambda gw, emu: gw.exchange(_unknown_token(), org_id(emu, "acme")),
                                     "intermediate_session_not_found", "Your sign-in has expired"),
    "organization unknown": (lambda gw, emu: gw.organization("nope"), "organization_not_found",
                             "Unknown organization"),
    "otp to unknown organization": (lambda gw, emu: gw.send_email_otp("organization-test-nope", "a@acme.test"),
                                    "organization_not_found", "Unknown organization"),
    "malformed intermediate session": (lambda gw, emu: gw.exchange("short", org_id(emu, "acme")),
                                       "invalid_session_token", "Sign-in failed"),
    "exchange into an organization without JIT": (
        lambda gw, emu: gw.exchange(gw.discovery_authenticate(idp_token(emu, "alice@acme.test"),
                                                              pkce_code_verifier=VERIFIER)
                                    .intermediate_session_token, org_id(emu, "globex")),
        "invalid_email_for_jit_provisioning", "Sign-in failed"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_stytch_errors_become_identity_errors(gw, stytch_emulator, case):
    """Each Stytch error type becomes an IdentityError (400) with a title, message
    and hint for the person; never IdentityUnavailable, never the SDK's exception."""
    call, error_type, title = ERROR_CASES[case]
    with pytest.raises(IdentityError) as e:
        call(gw, stytch_emulator)
    err = e.value
    assert type(err) is IdentityError, type(err)
    assert (err.error_type, err.title, err.status) == (error_type, title, 400)
    assert err.message and err.hint


def test_expired_intermediate_session(gw, stytch_emulator):
    """An intermediate session older than 10 minutes: "Your sign-in has expired"."""
    found = gw.discovery_authenticate(idp_token(stytch_emulator, "alice@acme.test"), pkce_code_verifier=VERIFIER)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=11), tick=True):
        with pytest.raises(IdentityError) as e:
            gw.exchange(found.intermediate_session_token, org_id(stytch_emulator, "acme"))
    assert e.value.error_type == "intermediate_session_not_found" and e.value.title == "Your sign-in has expired"


def test_wrong_project_secret_is_unavailable_not_the_members_fault(stytch_emulator):
    """Stytch refusing our own credentials (unauthorized_credentials) is a server
    misconfiguration: "Sign-in is unavailable" (503), not "start again"."""
    bad = StytchGateway(stytch_emulator.project_id, "secret-test-wrong-wrong-wrong", stytch_emulator.public_token,
                        stytch_emulator.url)
    with pytest.raises(IdentityUnavailable) as e:
        bad.discovery_authenticate(_unknown_token(), pkce_code_verifier=VERIFIER)
    assert e.value.status == 503 and e.value.error_type == "unauthorized_credentials"


METHODS = {
    "discovery_authenticate": lambda g: g.discovery_authenticate(_unknown_token(), pkce_code_verifier=VERIFIER),
    "oauth_authenticate": lambda g: g.oauth_authenticate(_unknown_token(), pkce_code_verifier=VERIFIER),
    "exchange": lambda g: g.exchange(_unknown_token(), "organization-test-x"),
    "create_organization": lambda g: g.create_organization(_unknown_token(), "Initech"),
    "organization": lambda g: g.organization("acme"),
    "send_email_otp": lambda g: g.send_email_otp("organization-test-x", "a@b.test"),
    "authenticate_email_otp": lambda g: g.authenticate_email_otp("organization-test-x", "a@b.test", "123456",
                                                                 _unknown_token()),
    "refresh_session": lambda g: g.refresh_session(_unknown_token()),
    "revoke_session": lambda g: g.revoke_session(_unknown_token()),
    "member_is_active": lambda g: g.member_is_active("organization-test-x", "member-test-x"),
}


@pytest.mark.parametrize("method", METHODS)
def test_connection_refused_is_identity_unavailable(down, method):
    """Stytch unreachable: every call raises IdentityUnavailable (503, "Sign-in is
    unavailable"), which the pages show as a 503 and the refresh grant as
    temporarily_unavailable."""
    with pytest.raises(IdentityUnavailable) as e:
        METHODS[method](down)
    assert e.value.status == 503 and e.value.title == "Sign-in is unavailable"
    assert "could not reach" in e.value.message and e.value.hint


def test_timeout_is_identity_unavailable(stytch_emulator, monkeypatch):
    """Stytch accepting the connection and never answering: the gateway's timeout
    (the SDK sets none) ends the call with IdentityUnavailable (timeout shortened)."""
    monkeypatch.setattr(gateway_module, "TIMEOUT_SECONDS", 0.3)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        g = StytchGateway(stytch_emulator.project_id, stytch_emulator.secret, stytch_emulator.public_token,
                          f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(IdentityUnavailable):
            g.organization("acme")
    finally:
        silent.close()


@pytest.mark.parametrize("status,body,content_type", [
    (500, stytch_error(500, "internal_server_error"), "application/json"),
    (503, stytch_error(503, "service_unavailable"), "application/json"),
    (429, stytch_error(429, "too_many_requests"), "application/json"),
    (502, b"<html><body>Bad Gateway</body></html>", "text/html"),
    (200, b"<html><body>Captive portal</body></html>", "text/html"),
    (200, {"status_code": 200, "request_id": "r"}, "application/json"),
])
def test_stytch_failing_or_garbled_is_identity_unavailable(fake, fake_gw, status, body, content_type):
    """A 5xx, a rate limit, an HTML error page from a proxy, or a 200 that is not
    Stytch's JSON: IdentityUnavailable ("wait a moment"), never an exception that
    would end as a 500."""
    fake.answer(status, body, content_type)
    for call in (lambda: fake_gw.organization("acme"),
                 lambda: fake_gw.discovery_authenticate(_unknown_token(), pkce_code_verifier=VERIFIER),
                 lambda: fake_gw.refresh_session(_unknown_token())):
        with pytest.raises(IdentityUnavailable) as e:
            call()
        assert e.value.status == 503


# --- member sessions ------------------------------------------------------------------------------


def test_verify_session_jwt(gw, stytch_emulator):
    """The local check: True for a fresh JWT from Stytch; False for garbage, a
    tampered signature, a JWT signed by another key, and once the JWT is stale."""
    from authz_server.stytch_emulator import start_emulator

    jwt = alice_session(gw, stytch_emulator).session_jwt
    assert gw.verify_session_jwt(jwt) is True
    head, body, sig = jwt.split(".")
    assert gw.verify_session_jwt("not-a-jwt") is False
    assert gw.verify_session_jwt("a.b.c") is False
    assert gw.verify_session_jwt(f"{head}.{body}.{sig[:-4]}AAAA" if not sig.endswith("AAAA")
                                 else f"{head}.{body}.{sig[:-4]}BBBB") is False
    other = start_emulator()  # same project id, its own signing key
    try:
        g2 = StytchGateway(other.project_id, other.secret, other.public_token, other.url)
        stranger = alice_session(g2, other).session_jwt
        assert g2.verify_session_jwt(stranger) is True
        assert gw.verify_session_jwt(stranger) is False
    finally:
        other.stop()
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=360), tick=True):
        assert gw.verify_session_jwt(jwt) is False


def test_verify_session_jwt_with_stytch_unreachable(down, gw, stytch_emulator):
    """No JWKS to check against: False (the caller then tries a renewal)."""
    jwt = alice_session(gw, stytch_emulator).session_jwt
    assert down.verify_session_jwt(jwt) is False


def test_refresh_session(gw, stytch_emulator):
    """sessions.authenticate renews the JWT of a live session (same session token and
    member); a revoked, unknown or malformed session token gives None."""
    s = alice_session(gw, stytch_emulator)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=360), tick=True):
        assert gw.verify_session_jwt(s.session_jwt) is False
        renewed = gw.refresh_session(s.session_token)
        assert isinstance(renewed, MemberSession)
        assert renewed.session_token == s.session_token and renewed.session_jwt != s.session_jwt
        assert gw.verify_session_jwt(renewed.session_jwt) is True
        assert renewed.member.member_id == s.member.member_id
        assert renewed.member.auth_time == s.member.auth_time  # a renewal is not a new login
    gw.revoke_session(s.session_token)
    assert gw.refresh_session(s.session_token) is None
    gw.revoke_session(s.session_token)  # already gone: no error
    assert gw.refresh_session(_unknown_token()) is None
    assert gw.refresh_session("malformed") is None
    assert gw.refresh_session("") is None


def test_member_is_active(gw, stytch_emulator):
    """organizations.members.get: an active member is active; an unknown member or
    organization is not; a member deleted in Stytch is not."""
    emu = stytch_emulator
    store = emu.emulator.store
    alice = store.find_member(store.organization("acme"), email="alice@acme.test")
    assert gw.member_is_active(org_id(emu, "acme"), alice.member_id) is True
    assert gw.member_is_active(org_id(emu, "globex"), alice.member_id) is False
    assert gw.member_is_active(org_id(emu, "acme"), "member-test-unknown") is False
    assert gw.member_is_active("organization-test-unknown", alice.member_id) is False
    m = jit_session(gw, emu).member
    assert gw.member_is_active(m.organization_id, m.member_id) is True
    gw.client.organizations.members.delete(organization_id=m.organization_id, member_id=m.member_id)
    assert gw.member_is_active(m.organization_id, m.member_id) is False


def test_membership_cache(gw, down, stytch_emulator):
    """identity.membership: an answer is trusted for the TTL; ``forget`` drops it;
    with Stytch unreachable a cached answer is used even when stale, and without one
    the caller gets IdentityUnavailable."""
    m = jit_session(gw, stytch_emulator).member
    cache = MembershipCache(gw, ttl=60)
    assert cache.is_active(m.organization_id, m.member_id) is True
    gw.client.organizations.members.delete(organization_id=m.organization_id, member_id=m.member_id)
    assert cache.is_active(m.organization_id, m.member_id) is True  # cached
    cache.forget(m.organization_id, m.member_id)
    assert cache.is_active(m.organization_id, m.member_id) is False

    stale = MembershipCache(gw, ttl=0)
    alice = alice_session(gw, stytch_emulator).member
    assert stale.is_active(alice.organization_id, alice.member_id) is True
    stale.gateway = down
    assert stale.is_active(alice.organization_id, alice.member_id) is True  # stale-if-error
    with pytest.raises(IdentityUnavailable):
        stale.is_active(alice.organization_id, "member-test-never-seen")
