"""The browser side over plain HTTP: start pages, the identity-provider form and
its redirect, the /emulator/* helpers, auth and error shapes, the live-project
guard, and token consumption under concurrent requests."""
from __future__ import annotations

import base64
import datetime as dt
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from stytch.core.response_base import StytchError

from authz_server.stytch_emulator import (DEFAULT_PROJECT_ID, DEFAULT_PUBLIC_TOKEN, DEFAULT_SECRET,
                                         LiveProjectRefused, create_emulator, refuse_live)
from authz_server.stytch_emulator.__main__ import main as emulator_main

from tests.helpers import parse_form, pkce_pair
from tests.stytch_emulator.helpers import APP, outbox, set_step_up, sign_in, start_url


def test_discovery_start_renders_the_identity_provider_form(emu):
    _, challenge = pkce_pair()
    page = requests.get(start_url(emu, "google", pkce_code_challenge=challenge), timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "Sign in with Google" in page.text
    form = parse_form(page.text)
    assert form.form["method"] == "post"
    assert "email" in form.fields
    assert form.fields["discovery_redirect_url"] == f"{APP}/discovery"
    assert form.fields["public_token"] == emu.public_token
    assert form.fields["pkce_code_challenge"] == challenge


def test_discovery_start_post_redirects_with_a_discovery_token(emu):
    result = sign_in(emu, "alice@acme.test", "microsoft")
    assert result["location"].startswith(f"{APP}/discovery?")
    assert result["stytch_token_type"] == "discovery_oauth"
    assert len(result["token"]) == 44


def test_redirect_url_query_is_kept(emu):
    result = sign_in(emu, "alice@acme.test", discovery_redirect_url=f"{APP}/cb?next=%2Fhome")
    query = parse_qs(urlsplit(result["location"]).query)
    assert query["next"] == ["/home"] and query["stytch_token_type"] == ["discovery_oauth"]


def test_organization_start_sends_members_to_login_and_newcomers_to_signup(emu):
    member = sign_in(emu, "bob@acme.test", slug="acme")
    assert member["location"].startswith(f"{APP}/login?") and member["stytch_token_type"] == "oauth"
    newcomer = sign_in(emu, "carol@acme.test", slug="acme")
    assert newcomer["location"].startswith(f"{APP}/signup?") and newcomer["stytch_token_type"] == "oauth"
    org_id = emu.emulator.store.organization("acme").organization_id
    # organization_id works in place of slug; without signup_redirect_url newcomers use the login URL.
    url = (f"{emu.url}/v1/b2b/public/oauth/google/start?public_token={emu.public_token}"
           f"&organization_id={org_id}&login_redirect_url={APP}/login")
    for email in ("bob@acme.test", "dora@acme.test"):
        resp = requests.post(url, data={"email": email}, allow_redirects=False, timeout=10)
        assert resp.status_code == 302 and resp.headers["Location"].startswith(f"{APP}/login?stytch_token_type=oauth")


def test_posting_to_the_bare_path_with_hidden_fields_only(emu):
    page = requests.get(start_url(emu, slug="acme"), timeout=10)
    form = parse_form(page.text)
    assert form.form["action"] == "/v1/b2b/public/oauth/google/start"
    assert form.fields["slug"] == "acme"
    resp = requests.post(emu.url + form.form["action"], data={**form.fields, "email": "Bob@Acme.test"},
                         allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"].startswith(f"{APP}/login?")


def test_login_hint_prefills_the_email(emu):
    page = requests.get(start_url(emu, provider_login_hint="alice@acme.test"), timeout=10)
    assert parse_form(page.text).fields["email"] == "alice@acme.test"
    assert parse_form(page.text).fields["provider_login_hint"] == "alice@acme.test"


def test_bad_email_rerenders_the_form(emu):
    resp = requests.post(start_url(emu), data={"email": "not-an-email"}, allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and "Enter an email address" in resp.text
    assert "email" in parse_form(resp.text).fields


@pytest.mark.parametrize("mutate, status, error_type", [
    (lambda u: u.replace("public_token=", "public_token=wrong"), 404, "public_token_not_found"),
    (lambda u: u.replace("/google/", "/github/"), 400, "invalid_oauth_provider"),
    (lambda u: u.replace("slug=acme", "slug=nope"), 404, "organization_not_found"),
    (lambda u: u.replace("slug=acme", "x=1"), 400, "missing_oauth_organization_locator"),
    (lambda u: u.replace("login_redirect_url=http", "login_redirect_url=javascript"), 400,
     "invalid_login_redirect_url"),
])
def test_start_errors_are_stytch_json(emu, mutate, status, error_type):
    resp = requests.get(mutate(start_url(emu, slug="acme")), timeout=10)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body["error_type"] == error_type and body["status_code"] == status
    assert body["request_id"].startswith("request-id-test-") and body["error_message"]


def test_oauth_tokens_expire_after_ten_minutes(emu, client, clock):
    token = sign_in(emu, "alice@acme.test")["token"]
    clock.advance(601)
    with pytest.raises(StytchError) as info:
        client.oauth.discovery.authenticate(discovery_oauth_token=token)
    assert info.value.details.error_type == "oauth_token_not_found"


def test_ist_expires_after_ten_minutes(emu, client, clock):
    ist = client.oauth.discovery.authenticate(
        discovery_oauth_token=sign_in(emu, "alice@acme.test")["token"]).intermediate_session_token
    clock.advance(601)
    with pytest.raises(StytchError) as info:
        client.discovery.intermediate_sessions.exchange(intermediate_session_token=ist, organization_id="acme")
    assert info.value.details.error_type == "intermediate_session_not_found"


def test_sessions_end_after_their_duration(emu, client, clock):
    disc = client.oauth.discovery.authenticate(discovery_oauth_token=sign_in(emu, "bob@acme.test")["token"])
    login = client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=disc.intermediate_session_token, organization_id="acme")
    clock.advance(59 * 60)
    client.sessions.authenticate(session_token=login.session_token)
    clock.advance(2 * 60)
    with pytest.raises(StytchError) as info:
        client.sessions.authenticate(session_token=login.session_token)
    assert info.value.details.error_type == "session_not_found"


def test_outbox_shape(emu, client):
    assert outbox(emu, "nobody@acme.test") == {"email": "nobody@acme.test", "code": None, "messages": []}
    client.otps.email.login_or_signup(organization_id="acme", email_address="alice@acme.test")
    client.magic_links.email.login_or_signup(organization_id="acme", email_address="alice@acme.test",
                                             login_redirect_url=f"{APP}/ml")
    box = outbox(emu, "Alice@Acme.test")
    assert box["email"] == "alice@acme.test"
    otp, link = box["messages"]
    assert otp["type"] == "otp" and otp["code"] == box["code"] and otp["sent_at"].endswith("Z")
    assert link["type"] == "magic_link" and link["link"].startswith(f"{APP}/ml?stytch_token_type=")
    assert requests.get(f"{emu.url}/emulator/outbox", timeout=10).status_code == 400


def test_step_up_domains_switch_on_and_off(emu, client):
    set_step_up(emu, "acme.test")
    listed = requests.get(f"{emu.url}/emulator/step-up-domains", timeout=10).json()
    assert listed == {"step_up_domains": ["acme.test"]}
    token = sign_in(emu, "bob@acme.test", slug="acme")["token"]
    assert client.oauth.authenticate(oauth_token=token).member_authenticated is False
    set_step_up(emu, "acme.test", required=False)
    token = sign_in(emu, "bob@acme.test", slug="acme")["token"]
    assert client.oauth.authenticate(oauth_token=token).member_authenticated is True
    bad = requests.post(f"{emu.url}/emulator/step-up-domains", json={"required": True}, timeout=10)
    assert bad.status_code == 400


def test_reset_restores_the_seed_with_stable_ids(emu, client):
    alice_id = client.organizations.members.get(organization_id="acme", email_address="alice@acme.test").member_id
    disc = client.oauth.discovery.authenticate(discovery_oauth_token=sign_in(emu, "zed@new.test")["token"])
    client.discovery.organizations.create(intermediate_session_token=disc.intermediate_session_token,
                                          organization_name="Newco")
    assert client.organizations.get(organization_id="newco").organization.organization_name == "Newco"
    assert requests.post(f"{emu.url}/emulator/reset", timeout=10).json() == {"reset": True}
    with pytest.raises(StytchError):
        client.organizations.get(organization_id="newco")
    again = client.organizations.members.get(organization_id="acme", email_address="alice@acme.test")
    assert again.member_id == alice_id


def test_state_dump_leaves_out_token_values(emu, client):
    disc = client.oauth.discovery.authenticate(discovery_oauth_token=sign_in(emu, "alice@acme.test")["token"])
    login = client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=disc.intermediate_session_token, organization_id="acme")
    resp = requests.get(f"{emu.url}/emulator/state", timeout=10)
    assert resp.status_code == 200
    state = resp.json()
    assert {o["organization_slug"] for o in state["organizations"]} == {"acme", "globex"}
    assert state["sessions"][0]["member_session_id"] == login.member_session.member_session_id
    assert login.session_token not in resp.text and disc.intermediate_session_token not in resp.text


def test_api_needs_basic_auth_but_jwks_does_not(emu):
    org = requests.get(f"{emu.url}/v1/b2b/organizations/acme", timeout=10)
    assert org.status_code == 401 and org.headers["Content-Type"] == "application/json"
    assert org.json()["error_type"] == "unauthorized_credentials"
    wrong = requests.get(f"{emu.url}/v1/b2b/organizations/acme", auth=(emu.project_id, "nope"), timeout=10)
    assert wrong.status_code == 401
    jwks = requests.get(f"{emu.url}/v1/b2b/sessions/jwks/{emu.project_id}", timeout=10)
    assert jwks.status_code == 200 and jwks.json()["keys"][0]["kid"]
    assert jwks.json()["status_code"] == 200


def test_unknown_routes_and_methods_answer_json(emu):
    auth = (emu.project_id, emu.secret)
    missing = requests.get(f"{emu.url}/v1/b2b/nothing", auth=auth, timeout=10)
    assert missing.status_code == 404 and missing.json()["error_type"] == "route_not_found"
    wrong = requests.get(f"{emu.url}/v1/b2b/sessions/authenticate", auth=auth, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error_type"] == "method_not_allowed"
    garbage = requests.post(f"{emu.url}/v1/b2b/sessions/authenticate", auth=auth, data="{",
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert garbage.status_code == 400 and garbage.json()["error_message"]


def test_a_token_is_consumed_once_under_concurrent_use(emu, client):
    token = sign_in(emu, "alice@acme.test")["token"]
    outcomes: list[str] = []

    def use():
        try:
            client.oauth.discovery.authenticate(discovery_oauth_token=token)
            outcomes.append("ok")
        except StytchError as exc:
            outcomes.append(exc.details.error_type)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted(["ok"] + ["oauth_token_not_found"] * 7)


@pytest.mark.parametrize("project_id, environment, secret", [
    ("project-live-1234", None, None),
    ("project-test-1234", "live", None),
    ("project-test-1234", "test", None),
    ("project-test-1234", "https://api.stytch.com", None),
    ("project-test-1234", "https://login.example.com.stytch.com/", None),
    ("project-test-1234", None, "secret-live-abc"),
])
def test_refuse_live(project_id, environment, secret):
    with pytest.raises(LiveProjectRefused):
        refuse_live(project_id, environment, secret=secret)


def test_refuse_live_allows_test_projects_and_local_urls():
    refuse_live("project-test-1234", None)
    refuse_live("project-test-1234", "http://127.0.0.1:8787")
    refuse_live(None, "")


def test_default_clock_follows_time_machine():
    app = create_emulator()
    http = app.test_client()
    headers = {"Authorization": "Basic " + base64.b64encode(
        f"{DEFAULT_PROJECT_ID}:{DEFAULT_SECRET}".encode()).decode()}
    with time_machine.travel(dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc), tick=False) as traveller:
        start = (f"/v1/b2b/public/oauth/google/discovery/start?public_token={DEFAULT_PUBLIC_TOKEN}"
                 f"&discovery_redirect_url={APP}/d")
        location = http.post(start, data={"email": "alice@acme.test"}).headers["Location"]
        token = parse_qs(urlsplit(location).query)["token"][0]
        traveller.shift(601)
        resp = http.post("/v1/b2b/oauth/discovery/authenticate", json={"discovery_oauth_token": token},
                         headers=headers)
    assert resp.status_code == 404 and resp.json["error_type"] == "oauth_token_not_found"


def test_live_projects_refuse_to_start(capsys):
    with pytest.raises(LiveProjectRefused, match="live Stytch project"):
        create_emulator(project_id="project-live-1234")
    assert emulator_main(["--project-id", "project-live-1234", "--port", "0"]) == 2
    assert "live Stytch project" in capsys.readouterr().err
