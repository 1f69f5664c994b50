"""The device-code grant (RFC 8628 §3.4–3.5, docs/requirements.md: A17-86, A17-87):
the device polls while the member approves on the verification page, gets
authorization_pending / slow_down / access_denied / expired_token, and exactly
one token response per device code."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.browser import Browser
from tests.helpers import (
    DEVICE_GRANT,
    audit_rows,
    device_confirm_page,
    device_decide,
    device_poll,
    device_start,
    frozen,
    introspect,
    jwt_claims,
    oauth_error,
    refresh_token_active,
)

CLI_GRANTS = (DEVICE_GRANT, "refresh_token")


def _cli(make_client, grant_types=CLI_GRANTS, **kw):
    """A public CLI client: no redirect URI, the device grant."""
    return make_client(client_type="third_party_public", redirect_uris=(), grant_types=grant_types, **kw)


def _started(live, client, **params):
    resp = device_start(live, client, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _approve(live, started, decision="allow", email="alice@acme.test"):
    browser = Browser(live, email=email)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    assert page.status_code == 200, page.text[:500]
    done = device_decide(browser, page, decision)
    assert done.status_code == 200, done.text[:500]
    return done


def test_a17_86_device_flow_from_start_to_tokens(live, make_client):
    """Start → pending → the member approves in the browser → tokens (with
    Authlib's OAuth2Session as the polling client) → refresh → introspect."""
    cli = _cli(make_client, name="Acme CLI")
    started = _started(live, cli, scope="openid profile offline_access")
    assert device_poll(live, cli, started["device_code"]).json()["error"] == "authorization_pending"

    browser = Browser(live)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    # RFC 8628 §5.4: the page names the client and shows the code to compare.
    assert "Acme CLI" in page.text and started["user_code"] in page.text
    assert "Never enter a code someone sent you" in page.text
    assert device_decide(browser, page).status_code == 200

    session = OAuth2Session(client_id=cli.client_id, token_endpoint_auth_method="none")
    with frozen(live, started["interval"] + 1):
        token = session.fetch_token(live.url + "/oauth/token", grant_type=DEVICE_GRANT,
                                    device_code=started["device_code"])
    claims = jwt_claims(token["access_token"])
    members = {r.subject for r in audit_rows(live, "consent_granted")}
    assert claims["sub"] in members and claims["client_id"] == cli.client_id
    assert claims["scope"] == "openid profile offline_access"
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    id_claims = jwt_claims(token["id_token"])
    assert id_claims["aud"] == cli.client_id and "nonce" not in id_claims
    assert "refresh_token" in token

    refreshed = session.refresh_token(live.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    rs = make_client(client_type="first_party", redirect_uris=(), grant_types=("client_credentials",),
                     introspection_resources=(live.url,))
    assert introspect(live, rs, refreshed["access_token"])["active"] is True
    assert audit_rows(live, "token_issued")[0].details["grant_type"] == DEVICE_GRANT


def test_a17_86_device_code_is_single_use_and_a_replay_revokes(live, make_client):
    cli = _cli(make_client)
    started = _started(live, cli)
    _approve(live, started)
    with frozen(live, 10):
        first = device_poll(live, cli, started["device_code"])
        assert first.status_code == 200, first.text
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "invalid_grant")
    # OAuth 2.1 §4.1.3 applied to device codes: what the first redemption
    # produced is revoked once the code is replayed.
    rs = make_client(client_type="first_party", redirect_uris=(), grant_types=("client_credentials",),
                     introspection_resources=(live.url,))
    assert introspect(live, rs, first.json()["access_token"])["active"] is False
    assert not refresh_token_active(live, first.json()["refresh_token"])
    assert len(audit_rows(live, "device_code_replayed")) == 1


def test_a17_86_polling_faster_than_interval_gets_slow_down(live, make_client):
    """§3.5: slow_down, and the interval grows by 5 s for all later polls."""
    cli = _cli(make_client)
    started = _started(live, cli)
    assert started["interval"] == 5
    t0 = dt.datetime.now(dt.timezone.utc)
    with frozen(live, 0, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "authorization_pending")
    with frozen(live, 1, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "slow_down")  # interval now 10 s
    with frozen(live, 8, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "slow_down")  # 7 s < 10 s; now 15 s
    with frozen(live, 24, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "authorization_pending")  # 16 s ≥ 15 s
    with frozen(live, 40, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "authorization_pending")


def test_a17_86_denied_request_gets_access_denied(live, make_client):
    cli = _cli(make_client)
    started = _started(live, cli)
    done = _approve(live, started, "deny")
    assert "not connected" in done.text
    for seconds in (10, 30):
        with frozen(live, seconds):
            oauth_error(device_poll(live, cli, started["device_code"]), 400, "access_denied")
    assert len(audit_rows(live, "consent_denied")) == 1


def test_a17_86_expired_device_code_gets_expired_token(live, make_client):
    cli = _cli(make_client)
    started = _started(live, cli)
    assert started["expires_in"] == 600
    t0 = dt.datetime.now(dt.timezone.utc)
    with frozen(live, 601, t0):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "expired_token")
        # and the member can no longer approve it
        page = device_confirm_page(Browser(live), started["verification_uri_complete"])
        assert page.status_code == 400 and "not valid or has expired" in page.text


def test_a17_86_approved_but_expired_before_the_poll_is_expired(live, make_client):
    cli = _cli(make_client)
    started = _started(live, cli)
    _approve(live, started)
    with frozen(live, 601):
        oauth_error(device_poll(live, cli, started["device_code"]), 400, "expired_token")


def test_a17_86_device_code_of_another_client_is_invalid_grant(live, make_client):
    cli, other = _cli(make_client), _cli(make_client)
    started = _started(live, cli)
    _approve(live, started)
    with frozen(live, 10):
        oauth_error(device_poll(live, other, started["device_code"]), 400, "invalid_grant")
        oauth_error(device_poll(live, other, "x" * 43), 400, "invalid_grant")
        # the rightful client still gets its tokens
        assert device_poll(live, cli, started["device_code"]).status_code == 200


@pytest.mark.parametrize("data, error", [
    ({}, "invalid_request"),
    ({"device_code": ""}, "invalid_request"),
    ({"device_code": "a" * 5000}, "invalid_grant"),
    ({"device_code": "\u00e9\u0000"}, "invalid_grant"),
])
def test_a17_86_bad_device_code_requests(live, make_client, data, error):
    cli = _cli(make_client)
    resp = requests.post(live.url + "/oauth/token", data={"grant_type": DEVICE_GRANT, "client_id": cli.client_id,
                                                         **data}, timeout=10)
    oauth_error(resp, 400, error)


def test_a17_86_client_without_the_grant_is_unauthorized(live, make_client):
    cli = _cli(make_client)
    started = _started(live, cli)
    web = make_client(client_type="third_party")  # code + refresh only
    oauth_error(device_poll(live, web, started["device_code"]), 400, "unauthorized_client")


def test_a17_86_confidential_client_must_authenticate_to_poll(live, make_client):
    cli = make_client(client_type="third_party", redirect_uris=(), grant_types=CLI_GRANTS)
    started = _started(live, cli)
    _approve(live, started)
    resp = requests.post(live.url + "/oauth/token", data={"grant_type": DEVICE_GRANT, "client_id": cli.client_id,
                                                         "device_code": started["device_code"]}, timeout=10)
    oauth_error(resp, 401, "invalid_client")
    resp = requests.post(live.url + "/oauth/token", data={"grant_type": DEVICE_GRANT,
                                                         "device_code": started["device_code"]},
                         auth=(cli.client_id, "wrong"), timeout=10)
    oauth_error(resp, 401, "invalid_client")
    with frozen(live, 10):
        assert device_poll(live, cli, started["device_code"]).status_code == 200


def test_a7_47_refresh_token_only_with_the_refresh_grant(live, make_client):
    cli = _cli(make_client, grant_types=(DEVICE_GRANT,))
    started = _started(live, cli, scope="openid offline_access")
    _approve(live, started)
    with frozen(live, 10):
        body = device_poll(live, cli, started["device_code"]).json()
    assert "access_token" in body and "refresh_token" not in body


def test_a16_81_resource_becomes_the_audience(live, make_client):
    from authz_server.storage import resources as resource_store

    s = live.db.session
    resource_store.add(s, "https://mcp.example.com/mcp", name="MCP", scopes=["tools:read"])
    s.commit()
    s.remove()
    cli = _cli(make_client)
    started = _started(live, cli, scope="tools:read", resource="https://mcp.example.com/mcp")
    _approve(live, started)
    with frozen(live, 10):
        body = device_poll(live, cli, started["device_code"]).json()
    claims = jwt_claims(body["access_token"])
    assert claims["aud"] == "https://mcp.example.com/mcp" and claims["scope"] == "tools:read"


def test_a14_75_dynamic_registration_of_a_device_client(live):
    """RFC 7591 with the device grant: no redirect URIs needed, native by
    default, refresh_token kept next to the device grant; the client then runs
    the whole flow."""
    resp = requests.post(live.url + "/oauth/register", json={
        "client_name": "agent-cli", "grant_types": [DEVICE_GRANT, "refresh_token"],
        "token_endpoint_auth_method": "none",
    }, timeout=10)
    assert resp.status_code == 201, resp.text
    info = resp.json()
    assert info["grant_types"] == [DEVICE_GRANT, "refresh_token"]
    assert info["application_type"] == "native" and info["redirect_uris"] == []
    assert "client_secret" not in info

    class Cli:
        client_id, client_secret = info["client_id"], None

    started = _started(live, Cli, scope="openid")
    _approve(live, started)
    with frozen(live, 10):
        body = device_poll(live, Cli, started["device_code"]).json()
    assert "access_token" in body and "refresh_token" in body
