"""The jti replay memory of private_key_jwt client assertions (RFC 7523 §3
item 7), shared by every node: in the database, or in Redis when REDIS_URL is
set.

Two servers on the same database (and the same Redis) stand for two nodes of
one deployment. They listen on different ports, so their token endpoints
differ: each assertion names both as its audience (an array, RFC 7519 §4.1.3),
as one naming the deployment's single token endpoint would be accepted by both."""
from __future__ import annotations

import datetime as dt

import requests
import time_machine
from sqlalchemy import func, select

from authz_server.models import UsedClientAssertion
from tests.helpers import REDIS_URL, oauth_error
from tests.cimd_docs import ASSERTION_TYPE, REDIRECT, DocServer, assertion as _assertion, code_for as _code, ec_key as _ec


def _two_nodes(make_server_with, **settings):
    return (make_server_with(cimd_allow_loopback=True, **settings),
            make_server_with(cimd_allow_loopback=True, **settings))


def _client(docs, key):
    docs.serve_json("/pk.json", docs.document("/pk.json", token_endpoint_auth_method="private_key_jwt",
                                              jwks={"keys": [key.as_dict(private=False)]}))
    return docs.url("/pk.json")


def _post(live, client_id, assertion, **data):
    return requests.post(live.url + "/oauth/token", timeout=10, data={
        **data, "client_id": client_id, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})


def _replayed_at_the_other_node(a, b, docs):
    """An assertion accepted by ``a`` is refused by ``b``; a fresh one works at
    ``b``. Returns (client_id, key, refresh token)."""
    key = _ec("k1")
    client_id = _client(docs, key)
    audiences = [a.url + "/oauth/token", b.url + "/oauth/token"]
    code, verifier = _code(a, client_id)
    once = _assertion(key, client_id, audiences)
    resp = _post(a, client_id, once, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                 code_verifier=verifier)
    assert resp.status_code == 200, resp.text
    refresh = resp.json()["refresh_token"]
    oauth_error(_post(b, client_id, once, grant_type="refresh_token", refresh_token=refresh), 400, "invalid_client")
    oauth_error(_post(a, client_id, once, grant_type="refresh_token", refresh_token=refresh), 400, "invalid_client")
    resp = _post(b, client_id, _assertion(key, client_id, audiences), grant_type="refresh_token",
                 refresh_token=refresh)
    assert resp.status_code == 200, resp.text
    return client_id, key, resp.json()["refresh_token"]


def _used_rows(live):
    with live.app.app_context():
        try:
            return live.db.session.scalar(select(func.count()).select_from(UsedClientAssertion))
        finally:
            live.db.session.remove()


def test_private_key_jwt_replay_refused_across_two_servers_on_one_database(make_server_with):
    """Without Redis, a jti used at one node is refused at
    another on the same database (one row per assertion, keyed by a digest of
    client_id and jti); rows of expired assertions are purged in passing."""
    a, b = _two_nodes(make_server_with)
    docs = DocServer()
    try:
        client_id, key, refresh = _replayed_at_the_other_node(a, b, docs)
        assert _used_rows(a) == 2
        with a.app.app_context():
            keys = a.db.session.scalars(select(UsedClientAssertion.key_hash)).all()
            a.db.session.remove()
        assert all(len(k) == 64 and client_id not in k for k in keys)
        # Past the assertions' exp and leeway (120 s + 60 s): purged by the next use.
        with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=200), tick=True):
            resp = _post(a, client_id, _assertion(key, client_id, [a.url + "/oauth/token"]),
                         grant_type="refresh_token", refresh_token=refresh)
            assert resp.status_code == 200, resp.text
        assert _used_rows(a) == 1
    finally:
        docs.httpd.shutdown()
        docs.httpd.server_close()


def test_private_key_jwt_replay_refused_across_two_servers_on_one_redis(make_server_with, redis_prefix):
    """With REDIS_URL, a jti used at one node is refused at
    another through Redis (SET NX, expiring with the assertion), and the
    database keeps no row."""
    import redis

    a, b = _two_nodes(make_server_with, redis_url=REDIS_URL, rate_limit_prefix=redis_prefix)
    docs = DocServer()
    try:
        _replayed_at_the_other_node(a, b, docs)
        assert _used_rows(a) == 0
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=redis_prefix + "jti:*"))
            assert len(keys) == 2
            assert all(0 < client.ttl(k) <= 180 for k in keys)  # exp (120 s) + leeway (60 s)
        finally:
            client.close()
    finally:
        docs.httpd.shutdown()
        docs.httpd.server_close()
