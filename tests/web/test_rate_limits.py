"""Rate limits over HTTP (rate limits on the token, registration, login and
introspection endpoints, backed by Redis when configured; docs/requirements.md:
C-15): 429 with Retry-After (RFC 6585 §4), JSON for the APIs and a
page for people; budgets per client and grant type, per caller, per source;
shared through Redis across servers, open when Redis is down; the source taken
from X-Forwarded-For only behind AUTHZ_TRUSTED_PROXIES.

Each test runs its own server (make_server_with) with small limits; the shared
test server runs with these limits off (tests/conftest.py)."""
from __future__ import annotations

import logging

import requests

from tests.browser import Browser
from tests.helpers import audit_rows, auth_params, closed_port, pkce_pair, redirect_params, REDIS_URL

CC = {"grant_type": "client_credentials"}


def post(srv, path, data, client=None, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    auth = (client.client_id, client.client_secret) if client is not None and client.client_secret else None
    if client is not None and not client.client_secret:
        data = {**data, "client_id": client.client_id}
    return requests.post(srv.url + path, data=data, auth=auth, headers=headers, timeout=10)


def get(srv, path, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.get(srv.url + path, headers=headers, allow_redirects=False, timeout=10)


def assert_429_json(resp, retry_after: int):
    """RFC 6585 §4: 429 with Retry-After; an OAuth-shaped JSON error, not cached."""
    assert resp.status_code == 429, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == "temporarily_unavailable" and body["error_description"]
    assert "access_token" not in body and "active" not in body
    assert int(resp.headers["Retry-After"]) == retry_after
    assert resp.headers["Cache-Control"] == "no-store"


def assert_429_page(resp, retry_after: int):
    assert resp.status_code == 429, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "Location" not in resp.headers
    assert int(resp.headers["Retry-After"]) == retry_after
    assert "Too many sign-in attempts" in resp.text and f"Wait {retry_after} seconds" in resp.text
    assert resp.headers["Cache-Control"] == "no-store"


def _code(srv, client, forwarded_for=None):
    verifier, challenge = pkce_pair()
    params = redirect_params(Browser(srv).authorize(auth_params(client, challenge)))
    return {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier}


# --- token endpoint ----------------------------------------------------------


def test_c15_token_endpoint_429_with_retry_after_past_a_clients_budget(live, make_server_with, make_client):
    """AUTHZ_TOKEN_RATE tokens a minute per client and grant type: past it 429 with
    Retry-After and no token; another client, and the same client's other grant
    types (C-15: its code exchange), keep their own budgets."""
    srv = make_server_with(token_rate=2)
    c = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    other = make_client(grant_types=("client_credentials",))
    assert [post(srv, "/oauth/token", CC, c).status_code for _ in range(2)] == [200, 200]
    assert_429_json(post(srv, "/oauth/token", CC, c), 30)  # 2 a minute: one every 30 s
    assert post(srv, "/oauth/token", CC, other).status_code == 200
    resp = post(srv, "/oauth/token", _code(srv, c), c)
    assert resp.status_code == 200, resp.text
    assert resp.json()["access_token"]


def test_c15_invalid_grant_is_never_turned_into_429(live, make_server_with, make_client):
    """A client looping on a dead refresh token keeps getting the terminal
    invalid_grant, never 429: only issued tokens spend the budget (C-15)."""
    srv = make_server_with(token_rate=1)
    c = make_client()
    for _ in range(5):
        resp = post(srv, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": "x" * 43}, c)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text


def test_c15_a_public_clients_budget_is_per_source(live, make_server_with, make_client):
    """A public client's id is no secret, so its budget is per source: one caller
    using it up does not lock the client out elsewhere."""
    srv = make_server_with(token_rate=1, trusted_proxies=1)
    pub = make_client(client_type="third_party_public")
    assert post(srv, "/oauth/token", _code(srv, pub), pub, forwarded_for="203.0.113.1").status_code == 200
    assert_429_json(post(srv, "/oauth/token", _code(srv, pub), pub, forwarded_for="203.0.113.1"), 60)
    assert post(srv, "/oauth/token", _code(srv, pub), pub, forwarded_for="203.0.113.2").status_code == 200


def test_failed_client_authentication_is_limited_per_source_and_client(live, make_server_with, make_client):
    """AUTHZ_CLIENT_AUTH_FAILURE_RATE failed authentications a minute per source and
    client_id, at the token and introspection endpoints together: then 429, even
    with the right secret (secret guessing is slowed); another client from the same
    address is not affected (shared egress, C-15)."""
    srv = make_server_with(client_auth_failure_rate=3)
    c = make_client(grant_types=("client_credentials",))
    other = make_client(grant_types=("client_credentials",))
    wrong = type(c)(c.client_id, c.client_secret + "x", c.redirect_uri, c.redirect_uris)
    for _ in range(2):
        resp = post(srv, "/oauth/token", CC, wrong)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert post(srv, "/oauth/introspect", {"token": "t"}, wrong).status_code == 401
    assert_429_json(post(srv, "/oauth/token", CC, c), 20)
    assert_429_json(post(srv, "/oauth/introspect", {"token": "t"}, c), 20)
    assert post(srv, "/oauth/token", CC, other).status_code == 200


# --- introspection -----------------------------------------------------------


def test_introspection_is_limited_per_caller(live, make_server_with, make_client):
    """AUTHZ_INTROSPECTION_RATE requests a minute per authenticated resource server."""
    srv = make_server_with(introspection_rate=2)
    rs = make_client(grant_types=("client_credentials",))
    rs2 = make_client(grant_types=("client_credentials",))
    for _ in range(2):
        resp = post(srv, "/oauth/introspect", {"token": "unknown"}, rs)
        assert resp.status_code == 200 and resp.json() == {"active": False}
    assert_429_json(post(srv, "/oauth/introspect", {"token": "unknown"}, rs), 30)
    assert post(srv, "/oauth/introspect", {"token": "unknown"}, rs2).json() == {"active": False}


# --- login pages -------------------------------------------------------------


def test_login_pages_answer_a_429_page_with_retry_after(live, make_server_with):
    """AUTHZ_LOGIN_RATE login page requests a minute per source: then a 429 HTML
    page saying how long to wait, with Retry-After. Logout is not a login page."""
    srv = make_server_with(login_rate=2)
    assert get(srv, "/login").status_code == 200
    assert get(srv, "/login").status_code == 200
    assert_429_page(get(srv, "/login/callback?stytch_token_type=oauth&token=" + "A" * 44), 30)
    assert_429_page(get(srv, "/org/acme/login"), 30)
    assert get(srv, "/logout").status_code == 200


# --- Redis -------------------------------------------------------------------


def test_redis_budget_is_shared_between_two_servers(live, make_server_with, make_client, redis_prefix):
    """With REDIS_URL two servers (two nodes) spend one budget per client."""
    a = make_server_with(redis_url=REDIS_URL, rate_limit_prefix=redis_prefix, token_rate=3)
    b = make_server_with(redis_url=REDIS_URL, rate_limit_prefix=redis_prefix, token_rate=3)
    c = make_client(grant_types=("client_credentials",))
    assert [post(srv, "/oauth/token", CC, c).status_code for srv in (a, b, a)] == [200, 200, 200]
    resp = post(b, "/oauth/token", CC, c)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) in (19, 20)
    assert post(a, "/oauth/token", CC, c).status_code == 429
    import redis

    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=redis_prefix + "*"))
    assert keys and all(k.decode().startswith(redis_prefix + "token:") for k in keys)


def test_redis_unreachable_fails_open(live, make_server_with, make_client, caplog):
    """Redis down: the limits let every request through (a warning is logged)
    rather than turning a Redis outage into a sign-in and token outage."""
    srv = make_server_with(redis_url=f"redis://127.0.0.1:{closed_port()}/5", token_rate=1, login_rate=1,
                           client_auth_failure_rate=1, introspection_rate=1)
    c = make_client(grant_types=("client_credentials",))
    with caplog.at_level(logging.WARNING, logger="authz_server.ratelimit"):
        assert [post(srv, "/oauth/token", CC, c).status_code for _ in range(3)] == [200, 200, 200]
        assert [post(srv, "/oauth/introspect", {"token": "t"}, c).status_code for _ in range(3)] == [200] * 3
        assert [get(srv, "/login").status_code for _ in range(3)] == [200, 200, 200]
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)


# --- the source address behind proxies ---------------------------------------


def test_trusted_proxy_takes_the_source_from_x_forwarded_for(live, make_server_with, make_client):
    """AUTHZ_TRUSTED_PROXIES=1: the address the proxy appended to X-Forwarded-For is
    the source (login budget, audit log); what a client put before it is not."""
    srv = make_server_with(trusted_proxies=1, login_rate=1)
    assert get(srv, "/login", forwarded_for="203.0.113.7").status_code == 200
    assert_429_page(get(srv, "/login", forwarded_for="203.0.113.7"), 60)
    assert get(srv, "/login", forwarded_for="203.0.113.8").status_code == 200
    # A client-sent entry before the proxy's own is ignored: the source is .8 again.
    assert_429_page(get(srv, "/login", forwarded_for="198.51.100.1, 203.0.113.8"), 60)
    c = make_client(grant_types=("client_credentials",))
    assert post(srv, "/oauth/token", CC, c, forwarded_for="198.51.100.1, 203.0.113.20").status_code == 200
    assert [r.ip for r in audit_rows(live, "token_issued")] == ["203.0.113.20"]


def test_an_ipv6_source_is_its_64_so_one_host_cannot_mint_sources(live, make_server_with):
    """A host is routinely given a whole IPv6 /64 (RFC 4291 §2.5.4): counted per
    address it could mint a fresh source, and a fresh budget, per request. The
    /64 is the source; another /64 has a budget of its own; the audit log still
    shows the address."""
    srv = make_server_with(trusted_proxies=1, login_rate=1)
    assert get(srv, "/login", forwarded_for="2001:db8:0:7::1").status_code == 200
    assert_429_page(get(srv, "/login", forwarded_for="2001:db8:0:7:ffff:1:2:3"), 60)
    assert get(srv, "/login", forwarded_for="2001:db8:0:8::1").status_code == 200
    assert get(srv, "/login", forwarded_for="203.0.113.9").status_code == 200


def test_without_trusted_proxies_x_forwarded_for_is_ignored(live, make_server_with, make_client):
    """The default (0 proxies): X-Forwarded-For is whatever the caller says, so it
    neither picks the rate-limit bucket nor lands in the audit log."""
    srv = make_server_with(login_rate=1)
    assert get(srv, "/login", forwarded_for="203.0.113.7").status_code == 200
    assert_429_page(get(srv, "/login", forwarded_for="203.0.113.8"), 60)
    c = make_client(grant_types=("client_credentials",))
    assert post(srv, "/oauth/token", CC, c, forwarded_for="203.0.113.20").status_code == 200
    assert [r.ip for r in audit_rows(live, "token_issued")] == ["127.0.0.1"]
