"""Concurrency on a real Postgres: parallel HTTP requests against the live server,
released together by a ``threading.Barrier`` so they really overlap, each
scenario repeated for several rounds so a race has a chance to show.

SQLite serialises writers on a file lock, so these races cannot happen there and
the module is skipped (run with TEST_DATABASE_URL=postgresql+psycopg://…)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from sqlalchemy import text

from authz_server.security import digest
from tests.helpers import introspect as _introspect, refresh, refresh_token_active, TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(
    not (TEST_DATABASE_URL or "").startswith("postgresql"),
    reason="row-lock races need Postgres (SQLite serialises writers); set TEST_DATABASE_URL=postgresql+psycopg://…",
)

ROUNDS = 5


def _together(*calls):
    """Run the callables in threads released at the same instant; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def run(i, fn):
        try:
            barrier.wait(timeout=10)
            results[i] = fn()
        except Exception as e:  # surfaced below, so a thread failure fails the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def _token(live, data, client):
    return requests.post(live.url + "/oauth/token", data=data, auth=(client.client_id, client.client_secret),
                         timeout=15)


def _grant_of(live, refresh_token):
    with live.db.engine.connect() as conn:
        return conn.execute(text("SELECT grant_id FROM refresh_tokens WHERE token_hash = :h"),
                            {"h": digest(refresh_token)}).scalar_one()


def _grant_revoked(live, grant_id):
    with live.db.engine.connect() as conn:
        return conn.execute(text("SELECT revoked_at FROM grants WHERE id = :g"), {"g": grant_id}).scalar_one()


def _rotated_once(live, client, tokens_for):
    """A fresh grant whose first refresh token was rotated once: (t1, t2, grant id)."""
    t1 = tokens_for(client)
    r = refresh(live, client, t1["refresh_token"])
    assert r.status_code == 200, r.text
    t2 = r.json()
    return t1, t2, _grant_of(live, t2["refresh_token"])


def _assert_invalid_grant(resp):
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.json()["error"] == "invalid_grant", resp.text


def test_a6_39_concurrent_redemptions_of_one_code_single_winner(live, make_client, get_code):
    """A6 #39: each code yields tokens once; redemption is atomic (UPDATE … WHERE used_at IS NULL
    RETURNING), so of two simultaneous redemptions exactly one gets 200, the other invalid_grant,
    and (a second valid redemption being a replay) the winner's tokens end up revoked."""
    client = make_client(introspection_resources=(live.url,))  # it introspects its tokens
    for _ in range(ROUNDS):
        code, verifier, _ = get_code(client)
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                "code_verifier": verifier}
        results = _together(lambda: _token(live, data, client), lambda: _token(live, data, client))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 400], [(r.status_code, r.text) for r in results]
        winner = next(r for r in results if r.status_code == 200).json()
        _assert_invalid_grant(next(r for r in results if r.status_code == 400))
        # OAuth 2.1 §4.1.3: the replay revokes what the first redemption issued.
        assert _introspect(live, client, winner["access_token"]) == {"active": False}
        assert not refresh_token_active(live, winner["refresh_token"])
        _assert_invalid_grant(refresh(live, client, winner["refresh_token"]))


def _live_in_family(live, grant_id):
    with live.db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM refresh_tokens WHERE grant_id = :g AND used_at IS NULL "
                                 "AND revoked_at IS NULL"), {"g": grant_id}).scalar_one()


def test_c8_concurrent_refreshes_in_grace_window_share_one_family(live, make_client, tokens_for):
    """RFC 9700 §4.14.2: parallel refreshes of the same token inside the grace
    window are a benign race: both succeed with the SAME new refresh token (the loser waits on
    the winner's row lock, then answers with the child the winner kept), so the family has
    exactly one live token and stays valid."""
    client = make_client(introspection_resources=(live.url,))  # it introspects its tokens
    for _ in range(ROUNDS):
        rt = tokens_for(client)["refresh_token"]
        grant_id = _grant_of(live, rt)
        a, b = _together(lambda: refresh(live, client, rt), lambda: refresh(live, client, rt))
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        ta, tb = a.json(), b.json()
        assert ta["refresh_token"] == tb["refresh_token"]
        assert _grant_of(live, ta["refresh_token"]) == grant_id
        assert _live_in_family(live, grant_id) == 1
        assert _grant_revoked(live, grant_id) is None
        for t in (ta, tb):
            assert _introspect(live, client, t["access_token"])["active"] is True
        # The one child still refreshes, and its child stays in the family.
        r = refresh(live, client, ta["refresh_token"])
        assert r.status_code == 200, r.text
        assert _grant_of(live, r.json()["refresh_token"]) == grant_id
        assert _live_in_family(live, grant_id) == 1
        assert _grant_revoked(live, grant_id) is None


def _later(seconds):
    return time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=seconds), tick=True)


def test_a7_44_reuse_after_grace_window_revokes_family(live, make_client, tokens_for):
    """A7 #44: an already-rotated refresh token presented after the grace window gets
    invalid_grant and revokes the family: the live refresh token dies and every access
    token of the grant introspects inactive."""
    client = make_client(introspection_resources=(live.url,))  # it introspects its tokens
    grace = live.settings.refresh_grace_seconds
    for _ in range(ROUNDS):
        t1, t2, grant_id = _rotated_once(live, client, tokens_for)
        with _later(grace + 5):
            # Two simultaneous replays of the stale token: both refused, none resurrects it.
            results = _together(lambda: refresh(live, client, t1["refresh_token"]),
                                lambda: refresh(live, client, t1["refresh_token"]))
            for resp in results:
                _assert_invalid_grant(resp)
            assert _grant_revoked(live, grant_id) is not None
            _assert_invalid_grant(refresh(live, client, t2["refresh_token"]))
            for tok in (t1["access_token"], t2["access_token"]):
                assert _introspect(live, client, tok) == {"active": False}


def test_c8_reuse_racing_live_refresh_leaves_no_live_token(live, make_client, tokens_for):
    """A7 #44 under a race: the stale token is replayed (after the window) at the same instant
    the legitimate holder refreshes the live one. Whoever wins, afterwards the family is dead:
    no refresh token issued in the race still refreshes, and its access tokens are inactive."""
    client = make_client(introspection_resources=(live.url,))  # it introspects its tokens
    grace = live.settings.refresh_grace_seconds
    for _ in range(ROUNDS):
        t1, t2, grant_id = _rotated_once(live, client, tokens_for)
        with _later(grace + 5):
            stale, fresh = _together(lambda: refresh(live, client, t1["refresh_token"]),
                                     lambda: refresh(live, client, t2["refresh_token"]))
            _assert_invalid_grant(stale)
            assert _grant_revoked(live, grant_id) is not None
            if fresh.status_code == 200:
                t3 = fresh.json()
                _assert_invalid_grant(refresh(live, client, t3["refresh_token"]))
                assert _introspect(live, client, t3["access_token"]) == {"active": False}
                assert not refresh_token_active(live, t3["refresh_token"])
            else:
                _assert_invalid_grant(fresh)
            _assert_invalid_grant(refresh(live, client, t2["refresh_token"]))
            assert _introspect(live, client, t2["access_token"]) == {"active": False}


def test_pool_concurrent_client_credentials_all_succeed(live, make_client):
    """Connection-pool sanity: 8 simultaneous client_credentials requests all get
    200 with distinct access tokens; none waits out the pool or fails on a shared connection."""
    client = make_client(client_type="first_party", grant_types=("client_credentials",))
    data = {"grant_type": "client_credentials"}
    for _ in range(ROUNDS):
        results = _together(*[lambda: _token(live, data, client)] * 8)
        assert [r.status_code for r in results] == [200] * 8, [r.text for r in results if r.status_code != 200]
        tokens = {r.json()["access_token"] for r in results}
        assert len(tokens) == 8


def test_a17_86_concurrent_polls_of_an_approved_device_code_single_winner(live, make_client):
    """A17 #86: the device code is single-use. approved → issued is one UPDATE … WHERE
    status = 'approved' RETURNING, so of two simultaneous polls exactly one gets tokens and
    exactly one grant is created; the other is a replay and revokes them (as for codes)."""
    from tests.helpers import DEVICE_GRANT, device_confirm_page, device_decide, device_start
    from tests.browser import Browser

    client = make_client(redirect_uris=(), grant_types=(DEVICE_GRANT, "refresh_token"),
                         introspection_resources=(live.url,))  # it introspects its tokens
    browser = Browser(live)
    for _ in range(ROUNDS):
        started = device_start(live, client).json()
        assert device_decide(browser, device_confirm_page(browser, started["verification_uri_complete"])
                             ).status_code == 200
        data = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"]}
        results = _together(lambda: _token(live, data, client), lambda: _token(live, data, client))
        assert sorted(r.status_code for r in results) == [200, 400], [(r.status_code, r.text) for r in results]
        _assert_invalid_grant(next(r for r in results if r.status_code == 400))
        winner = next(r for r in results if r.status_code == 200).json()
        assert _introspect(live, client, winner["access_token"]) == {"active": False}
        _assert_invalid_grant(refresh(live, client, winner["refresh_token"]))
    with live.db.engine.connect() as conn:
        grants = conn.execute(text("SELECT count(*) FROM grants WHERE client_id = :c"),
                              {"c": client.client_id}).scalar_one()
    assert grants == ROUNDS  # one per device code, none from the losing polls


def test_c14_update_racing_a_duplicate_registration_never_rewrites_a_shared_client(live):
    """The first registrant's RFC 7592 update
    (a new redirect URI) and an identical registration arrive together. Either
    the update wins (the registration then gets a client of its own) or the
    sharing wins (the update is refused with 403); never both, so no registrant
    ever gets a client whose redirect URIs another one rewrote."""
    live.server.registration_limiter.reset()
    body = {"client_name": "Claude", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "token_endpoint_auth_method": "none"}
    for i in range(ROUNDS):
        named = {**body, "client_name": f"Claude {i}"}
        first = requests.post(live.url + "/oauth/register", json=named, timeout=15).json()
        url = f"{live.url}/oauth/register/{first['client_id']}"
        headers = {"Authorization": "Bearer " + first["registration_access_token"]}
        change = {**named, "client_id": first["client_id"], "redirect_uris": ["https://elsewhere.example/cb"]}
        put, dup = _together(lambda: requests.put(url, json=change, headers=headers, timeout=15),
                             lambda: requests.post(live.url + "/oauth/register", json=named, timeout=15))
        assert dup.status_code == 201, dup.text
        shared = dup.json()["client_id"] == first["client_id"]
        assert put.status_code == (403 if shared else 200), (shared, put.status_code, put.text)
        if shared:
            assert dup.json()["redirect_uris"] == body["redirect_uris"]
        with live.db.engine.connect() as conn:
            uris = conn.execute(text("SELECT redirect_uris FROM clients WHERE client_id = :c"),
                                {"c": first["client_id"]}).scalar_one()
        assert (uris == body["redirect_uris"]) if shared else (uris == change["redirect_uris"]), uris


def test_concurrent_revocations_of_one_access_token_all_succeed(live, make_client, tokens_for):
    """RFC 7009 §2.2: revoking a token already revoked is a 200. Four
    revocations of one access token at the same instant all answer 200 (one
    INSERT … ON CONFLICT DO NOTHING, not a read then an insert that fails the
    losers), and the token is inactive."""
    client = make_client()
    rs = make_client(grant_types=("client_credentials",), redirect_uris=(),
                     introspection_resources=(live.settings.audience,))
    for _ in range(ROUNDS):
        at = tokens_for(client)["access_token"]

        def revoke():
            return requests.post(live.url + "/oauth/revoke", data={"token": at},
                                 auth=(client.client_id, client.client_secret), timeout=10)

        results = _together(revoke, revoke, revoke, revoke)
        assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
        assert _introspect(live, rs, at) == {"active": False}
