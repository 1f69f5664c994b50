"""The device authorization endpoint (RFC 8628 §3.1–3.2;
docs/requirements.md: A17-85, A17-87, and A1-1 for the transport)."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import func, select

from authz_server.models import DeviceAuthorization
from tests.helpers import DEVICE_GRANT, device_start, oauth_error, register_resources

USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


def _cli(make_client, **kw):
    return make_client(client_type="third_party_public", redirect_uris=(),
                       grant_types=kw.pop("grant_types", (DEVICE_GRANT, "refresh_token")), **kw)


def _rows(live) -> int:
    s = live.db.session
    try:
        return s.scalar(select(func.count()).select_from(DeviceAuthorization))
    finally:
        s.remove()


def test_a17_85_response_has_the_rfc_members(live, make_client):
    cli = _cli(make_client)
    resp = device_start(live, cli, scope="openid profile")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json()
    assert set(body) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                         "expires_in", "interval"}
    assert body["verification_uri"] == live.url + "/device"
    assert body["verification_uri_complete"] == f"{live.url}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert USER_CODE.match(body["user_code"])
    s = live.db.session
    try:
        row = s.scalars(select(DeviceAuthorization)).one()
        # Only digests are stored (docs/architecture.md#secrets-at-rest).
        assert body["device_code"] not in (row.device_code_hash, row.user_code_hash)
        assert row.scope == "openid profile" and row.status == "pending"
    finally:
        s.remove()


def test_a17_87_codes_have_enough_entropy(live, make_client):
    """§5.1/§6.1: user codes from 20 consonants, 8 of them (34.5 bits); device
    codes 256-bit random."""
    cli = _cli(make_client)
    bodies = [device_start(live, cli).json() for _ in range(40)]
    user_codes = [b["user_code"] for b in bodies]
    assert all(USER_CODE.match(c) for c in user_codes)
    assert len(set(user_codes)) == 40
    letters = set("".join(user_codes).replace("-", ""))
    assert len(letters) >= 15  # drawn from the whole alphabet, not a few letters
    assert all(len(b["device_code"]) >= 43 for b in bodies)
    assert len({b["device_code"] for b in bodies}) == 40


def test_a17_85_default_scope_is_the_clients(live, make_client):
    cli = _cli(make_client, scopes=("openid", "email"))
    assert device_start(live, cli).status_code == 200
    s = live.db.session
    try:
        assert s.scalars(select(DeviceAuthorization)).one().scope == "openid email"
    finally:
        s.remove()


def test_a17_85_confidential_client_authenticates(live, make_client):
    cli = make_client(client_type="third_party", redirect_uris=(), grant_types=(DEVICE_GRANT,))
    assert device_start(live, cli).status_code == 200
    resp = requests.post(live.url + "/oauth/device_authorization", auth=(cli.client_id, "wrong"), timeout=10)
    oauth_error(resp, 401, "invalid_client")
    resp = requests.post(live.url + "/oauth/device_authorization", data={"client_id": cli.client_id}, timeout=10)
    oauth_error(resp, 401, "invalid_client")
    assert _rows(live) == 1


@pytest.mark.parametrize("data, status", [
    ({}, 401),
    ({"client_id": "no-such-client"}, 400),
])
def test_a17_85_unknown_client(live, data, status):
    resp = requests.post(live.url + "/oauth/device_authorization", data=data, timeout=10)
    oauth_error(resp, status, "invalid_client")
    resp = requests.post(live.url + "/oauth/device_authorization", data=data, auth=("no-such-client", "x"),
                         timeout=10)
    oauth_error(resp, 401, "invalid_client")
    assert _rows(live) == 0


def test_a17_85_client_without_the_device_grant(live, make_client):
    web = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/cb",))
    resp = requests.post(live.url + "/oauth/device_authorization", data={"client_id": web.client_id}, timeout=10)
    oauth_error(resp, 400, "unauthorized_client")
    assert _rows(live) == 0


def test_a17_85_scope_and_resource_are_checked(live, make_client):
    cli = _cli(make_client)
    oauth_error(device_start(live, cli, scope="openid no-such-scope"), 400, "invalid_scope")
    oauth_error(device_start(live, cli, resource="https://unregistered.example/mcp"), 400, "invalid_target")
    oauth_error(device_start(live, cli, resource="not a uri"), 400, "invalid_target")
    assert _rows(live) == 0


def test_a1_1_form_posts_only(live, make_client):
    cli = _cli(make_client)
    url = live.url + "/oauth/device_authorization"
    assert requests.get(url, params={"client_id": cli.client_id}, timeout=10).status_code == 405
    oauth_error(requests.post(url, json={"client_id": cli.client_id}, timeout=10), 400, "invalid_request")
    oauth_error(requests.post(url, data=[("client_id", cli.client_id), ("scope", "openid"), ("scope", "email")],
                         timeout=10), 400, "invalid_request")
    assert _rows(live) == 0


def test_expired_rows_are_removed_in_passing(live, make_client):
    from tests.helpers import frozen

    cli = _cli(make_client)
    device_start(live, cli)
    with frozen(live, 601):
        device_start(live, cli)
    assert _rows(live) == 1


def test_client_with_a_resource_allow_list_is_limited_at_device_authorization(live, make_client):
    """A device client an operator limited to some resources
    may name only those (invalid_target, RFC 8707 §2) and ask only for their
    scopes (invalid_scope); nothing is stored for a refused request."""
    files, mail = "https://files.example/mcp", "https://mail.example/mcp"
    register_resources(live, {files: ["files:read"], mail: ["mail:send"]})
    cli = _cli(make_client, allowed_resources=(files,))
    oauth_error(device_start(live, cli, resource=mail), 400, "invalid_target")
    oauth_error(device_start(live, cli, scope="openid mail:send"), 400, "invalid_scope")
    assert _rows(live) == 0
    assert device_start(live, cli, scope="openid files:read", resource=files).status_code == 200
