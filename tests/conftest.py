"""Shared fixtures: a real database (SQLite, or Postgres with TEST_DATABASE_URL),
a real HTTP server in a thread, clients registered through the storage layer,
and a browser-like session that logs in and answers the consent page."""
from __future__ import annotations

import pytest
import requests

from authz_server import migrate
from authz_server.db import Base, Database
from tests.browser import Browser
from tests.helpers import (REDIS_URL, TEST_DATABASE_URL, RegisteredClient, auth_params, pkce_pair,
                           redirect_params, start_server)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DATABASE_URL:
        url = TEST_DATABASE_URL
        migrate.downgrade(url, "base")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'authz.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def stytch_emulator():
    """The project's Stytch emulator on a free port: the real SDK talks to it."""
    from authz_server.stytch_emulator import start_emulator

    handle = start_emulator()
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def is_postgres(database_url):
    return database_url.startswith("postgresql")


def _wipe(db: Database):
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "signing_keys":
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def _shared_server(database_url, stytch_emulator):
    # The whole session's requests come from 127.0.0.1 and fuzzers hammer one
    # client: the rate limits (oauth/limits.py) are off here, and tested on
    # servers of their own (tests/web/test_rate_limits.py). Registration keeps its
    # limit (tests reset it).
    live, srv = start_server(database_url, stytch_emulator, token_rate=0, client_auth_failure_rate=0,
                             introspection_rate=0, login_rate=0, cimd_fetch_rate=0)
    yield live
    srv.shutdown()
    live.db.dispose()


@pytest.fixture
def live(_shared_server):
    """The running server, with every table but the signing keys emptied."""
    _wipe(_shared_server.db)
    _shared_server.server.clients.invalidate()
    _shared_server.server.limits.device_code.reset()
    return _shared_server


@pytest.fixture
def make_server_with(database_url, stytch_emulator):
    """A server with different settings (short lifetimes, another grace window)."""
    started = []

    def factory(**overrides):
        live, srv = start_server(database_url, stytch_emulator, **overrides)
        started.append((live, srv))
        _wipe(live.db)
        return live

    yield factory
    for live, srv in started:
        srv.shutdown()
        live.db.dispose()


@pytest.fixture
def make_client(live):
    def factory(client_type="third_party", redirect_uris=("https://app.example/cb",), scopes=(),
                grant_types=("authorization_code", "refresh_token"), auth_method=None, **kw):
        from authz_server.storage import clients as store

        s = live.db.session
        try:
            # allowed_resources=, introspection_resources= (the default audience is live.url).
            kw.setdefault("default_audience", live.settings.audience)
            c, secret = store.create(s, name=kw.pop("name", "Test App"), client_type=client_type,
                                     redirect_uris=list(redirect_uris), scopes=list(scopes),
                                     grant_types=list(grant_types), auth_method=auth_method, **kw)
            s.commit()
            return RegisteredClient(c.client_id, secret, (list(redirect_uris) or [None])[0], list(redirect_uris))
        finally:
            s.remove() if hasattr(s, "remove") else live.db.session.remove()

    return factory


@pytest.fixture
def browser(live):
    return Browser(live)


@pytest.fixture
def get_code(live, browser):
    """Run the browser part of the flow and return (code, verifier, redirect params)."""

    def run(client, **extra):
        verifier, challenge = pkce_pair()
        resp = browser.authorize(auth_params(client, challenge, **extra))
        params = redirect_params(resp)
        assert "code" in params, params
        return params["code"], verifier, params

    return run


@pytest.fixture
def token_post(live):
    def post(data, auth=None, **kw):
        return requests.post(live.url + "/oauth/token", data=data, auth=auth, timeout=10, **kw)

    return post


@pytest.fixture
def tokens_for(get_code, token_post):
    """Complete the code flow for a client; returns the token response JSON."""

    def run(client, **extra):
        code, verifier, _ = get_code(client, **extra)
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                "code_verifier": verifier, "client_id": client.client_id}
        auth = (client.client_id, client.client_secret) if client.client_secret else None
        resp = token_post(data, auth=auth)
        assert resp.status_code == 200, resp.text
        return resp.json()

    return run


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own; its keys (only those) are deleted afterwards.
    Skips when no Redis answers at TEST_REDIS_URL."""
    import uuid

    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"authz_test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
