"""The database unreachable → 503 with Retry-After, and the server
recovers by itself once the database is back (no restart).

The dead-database servers are real apps on real ports whose DATABASE_URL names
a Postgres port where nothing listens, or a SQLite file that cannot be opened.
The recovery tests take a real database away and give it back: on Postgres by
refusing connections to it (ALLOW_CONNECTIONS false) and terminating its
backends (pg_terminate_backend); on SQLite by a database file that only comes
into existence (and is migrated) while the server is running.
"""
from __future__ import annotations

import uuid

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from authz_server import create_app, migrate
from authz_server.config import Settings
from authz_server.db import Database
from tests.helpers import TEST_DATABASE_URL, LiveServer, free_port, pkce_pair, serve_in_thread

FORBIDDEN_IN_BODY = ("Traceback", "OperationalError", "psycopg", "sqlite3", "sqlalchemy", "SELECT ")


def serve(database_url, **overrides):
    """Like conftest.start_server, but touching nothing in the database at start
    (it may be down): a server that starts during an outage must come up."""
    port = free_port()
    settings = Settings(issuer=f"http://127.0.0.1:{port}", database_url=database_url, environment="test",
                        **overrides)
    db = Database(database_url)
    app = create_app(settings, db)
    srv = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(srv)
    return LiveServer(settings.issuer, app, db, settings), srv


def dead_url(kind, tmp_path):
    if kind == "postgres":
        return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/authz"  # nothing listens there
    return f"sqlite:///{tmp_path / 'no-such-dir' / 'authz.db'}"  # cannot be opened


@pytest.fixture(params=["postgres", "sqlite"])
def dead(request, tmp_path):
    live, srv = serve(dead_url(request.param, tmp_path))
    yield live
    srv.shutdown()
    live.db.dispose()


def assert_retry_after(resp):
    # RFC 9110 §10.2.3: delay-seconds, a non-negative integer.
    value = resp.headers.get("Retry-After", "")
    assert value.isdigit() and 0 < int(value) <= 300, resp.headers


def assert_503_json(resp):
    assert resp.status_code == 503, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    assert resp.json()["error"] == "temporarily_unavailable", resp.text
    assert_retry_after(resp)
    assert not any(s in resp.text for s in FORBIDDEN_IN_BODY), resp.text


def assert_503_page(resp):
    assert resp.status_code == 503, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("text/html"), resp.headers
    assert "Location" not in resp.headers
    assert_retry_after(resp)
    assert not any(s in resp.text for s in FORBIDDEN_IN_BODY), resp.text[:500]


FAKE_JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln"


def test_design5_token_endpoint_503_when_database_unreachable(dead):
    """/oauth/token with the database unreachable answers 503 JSON
    (temporarily_unavailable) with Retry-After, for every grant, never a 500."""
    url = dead.url + "/oauth/token"
    resp = requests.post(url, data={"grant_type": "client_credentials"}, auth=("client-x", "secret"), timeout=15)
    assert_503_json(resp)
    _, challenge = pkce_pair()
    resp = requests.post(url, data={"grant_type": "authorization_code", "code": "c", "client_id": "client-x",
                                    "code_verifier": challenge}, timeout=15)
    assert_503_json(resp)
    resp = requests.post(url, data={"grant_type": "refresh_token", "refresh_token": "r"}, auth=("c", "s"), timeout=15)
    assert_503_json(resp)
    assert resp.headers.get("Cache-Control") == "no-store"  # RFC 6749 §5.1, errors included


def test_design5_jwks_and_discovery_503_before_keys_loaded(dead):
    """A server that has never loaded its keys answers /.well-known/jwks.json (and the
    metadata, which lists the scope catalog) 503 JSON with Retry-After while the database is down."""
    assert_503_json(requests.get(dead.url + "/.well-known/jwks.json", timeout=15))
    assert_503_json(requests.get(dead.url + "/.well-known/oauth-authorization-server", timeout=15))


def test_design5_back_channel_endpoints_503(dead):
    """Introspection, revocation and userinfo answer 503 JSON with Retry-After, not a
    401 that would make a caller drop valid credentials or tokens."""
    auth = ("client-x", "secret")
    assert_503_json(requests.post(dead.url + "/oauth/introspect", data={"token": FAKE_JWT}, auth=auth, timeout=15))
    assert_503_json(requests.post(dead.url + "/oauth/revoke", data={"token": FAKE_JWT}, auth=auth, timeout=15))
    assert_503_json(requests.get(dead.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + FAKE_JWT},
                                 timeout=15))


def test_design5_authorize_503_html_page(dead):
    """/oauth/authorize answers a person with a 503 HTML page (Retry-After, no
    redirect: the client and redirect URI cannot be validated without the database)."""
    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": "client-x", "redirect_uri": "https://app.example/cb",
              "code_challenge": challenge, "code_challenge_method": "S256", "state": "s"}
    resp = requests.get(dead.url + "/oauth/authorize", params=params, allow_redirects=False, timeout=15)
    assert_503_page(resp)
    resp = requests.post(dead.url + "/oauth/authorize", data=params, allow_redirects=False, timeout=15)
    assert_503_page(resp)
    # A parked request is looked up only for a browser that could have parked it
    # (its cookie carries a browser binding); without one it is simply not found.
    cookie = dead.app.session_interface.get_signing_serializer(dead.app).dumps({"binding": "b" * 32})
    resp = requests.get(dead.url + "/oauth/authorize", params={"pending": "p" + "x" * 20}, allow_redirects=False,
                        cookies={"authz_session": cookie}, timeout=15)
    assert_503_page(resp)


def _client_credentials(live, client_id, secret):
    return requests.post(live.url + "/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(client_id, secret), timeout=15)


def _register_machine_client(live):
    from authz_server.storage import clients as store

    s = live.db.session
    try:
        # It introspects its own tokens (for the default audience) below.
        c, secret = store.create(s, name="Outage probe", client_type="first_party", redirect_uris=[],
                                 scopes=[], grant_types=["client_credentials"], auth_method=None,
                                 introspection_resources=[live.settings.audience],
                                 default_audience=live.settings.audience)
        s.commit()
        return c.client_id, secret
    finally:
        s.remove()


def _ensure_keys(live):
    with live.app.app_context():
        live.server.keys.ensure(live.db.session)
        live.db.session.commit()
        live.db.session.remove()


def test_design5_recovers_when_sqlite_database_appears(tmp_path):
    """A server started while its database cannot be opened answers 503, and once the
    database is there (created and migrated by the operator) the next requests succeed, without
    a restart."""
    folder = tmp_path / "later"
    url = f"sqlite:///{folder / 'authz.db'}"
    live, srv = serve(url)
    try:
        assert_503_json(_client_credentials(live, "client-x", "secret"))
        assert_503_json(requests.get(live.url + "/.well-known/jwks.json", timeout=15))
        folder.mkdir()
        migrate.upgrade(url)
        _ensure_keys(live)
        client_id, secret = _register_machine_client(live)
        resp = _client_credentials(live, client_id, secret)
        assert resp.status_code == 200, resp.text
        jwks = requests.get(live.url + "/.well-known/jwks.json", timeout=15)
        assert jwks.status_code == 200 and jwks.json()["keys"], jwks.text
    finally:
        srv.shutdown()
        live.db.dispose()


@pytest.fixture
def outage_db():
    """A Postgres database of its own that the test can take away and give back."""
    if not (TEST_DATABASE_URL or "").startswith("postgresql"):
        pytest.skip("needs a Postgres server (TEST_DATABASE_URL) to cut connections with pg_terminate_backend")
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    name = f"{make_url(TEST_DATABASE_URL).database}_outage_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)

    def cut(allow: bool):
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
            if not allow:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})

    def terminate():
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})

    yield url, cut, terminate
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_design5_postgres_outage_503_then_recovers_by_itself(outage_db):
    """With a working server, (1) its pooled connections killed by the database
    (pg_terminate_backend) are replaced transparently: the next request succeeds; (2) while the
    database refuses connections every request gets 503 + Retry-After (JSON for APIs, an HTML
    page at /oauth/authorize), keys already loaded keep JWKS served; (3) once it accepts
    connections again the next request succeeds, with no restart."""
    url, cut, terminate = outage_db
    live, srv = serve(url)
    try:
        _ensure_keys(live)
        client_id, secret = _register_machine_client(live)
        for _ in range(3):  # several pooled connections in use
            assert _client_credentials(live, client_id, secret).status_code == 200
        assert requests.get(live.url + "/.well-known/jwks.json", timeout=15).status_code == 200

        terminate()
        resp = _client_credentials(live, client_id, secret)
        assert resp.status_code == 200, resp.text  # the pool's pre-ping reconnected

        cut(allow=False)
        for _ in range(3):
            assert_503_json(_client_credentials(live, client_id, secret))
        _, challenge = pkce_pair()
        page = requests.get(live.url + "/oauth/authorize", params={
            "response_type": "code", "client_id": "client-unknown-to-cache", "redirect_uri": "https://app.example/cb",
            "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False, timeout=15)
        assert_503_page(page)
        # Keys loaded before the outage are cached in-process (policy): JWKS still answers.
        assert requests.get(live.url + "/.well-known/jwks.json", timeout=15).status_code == 200

        cut(allow=True)
        resp = _client_credentials(live, client_id, secret)
        assert resp.status_code == 200, resp.text
        introspect = requests.post(live.url + "/oauth/introspect", data={"token": resp.json()["access_token"]},
                                   auth=(client_id, secret), timeout=15)
        assert introspect.status_code == 200 and introspect.json()["active"] is True, introspect.text
    finally:
        srv.shutdown()
        live.db.dispose()
