"""Key rotation drill (docs/requirements.md: A26-121, with items 120 and 122 as
seen through a rotation): the next key is published before it signs, new tokens
carry the new kid, and tokens signed by a retired key keep verifying against the
JWKS until they expire; a compromised key (forced rotation, `keys revoke`)
leaves the JWKS and verification at once.

Rotation happens in the shared test database, so each drill moves the clock past
the publish-before-use window of the next key it promotes (never a sleep), and
afterwards drops the server's key cache: the cache runs on ``time.monotonic``,
which time-machine moves too."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from click.testing import CliRunner
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from authz_server.cli import main as cli
from authz_server.models import SigningKey
from authz_server.oauth.keys import CACHE_SECONDS, JWKS_MAX_AGE, MIN_PUBLISHED_SECONDS, RotationTooSoon
from tests.helpers import audit_rows

JWKS_PATH = "/.well-known/jwks.json"


def _jwks(live):
    r = requests.get(live.url + JWKS_PATH, timeout=10)
    assert r.status_code == 200
    return r.json()


def _kids(live):
    return {k["kid"] for k in _jwks(live)["keys"]}


def _rows(live):
    s = live.db.session
    try:
        return {r.kid: (r.alg, r.state, r.created_at) for r in s.scalars(select(SigningKey)).all()}
    finally:
        s.remove()


def _by_state(live, state):
    """{alg: kid} of the keys in ``state`` (the newest one when several)."""
    out = {}
    for kid, (alg, st, created) in sorted(_rows(live).items(), key=lambda kv: kv[1][2]):
        if st == state:
            out[alg] = kid
    return out


def _ready_to_rotate(live):
    """A moment at which every next key has been published for the whole window."""
    newest = max(created for _, st, created in _rows(live).values() if st == "next")
    return max(newest, datetime.now(timezone.utc)) + timedelta(seconds=MIN_PUBLISHED_SECONDS + 1)


def _rotate(live, **kw):
    s = live.db.session
    try:
        changes = live.server.keys.rotate(s, **kw)
        s.commit()
    except Exception:
        s.rollback()
        raise
    finally:
        s.remove()
    live.server.keys.invalidate()
    return changes


def _verify(token, jwks):
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"])


def _unverified_header(token):
    import base64
    import json

    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


@pytest.fixture
def restore_key_cache(live):
    yield
    live.server.keys.invalidate()


def test_a26_121_kid_in_every_token_header(live, make_client, tokens_for):
    """OIDC Core §10.1: with several keys published, every JWS header names its kid."""
    assert len(_jwks(live)["keys"]) > 1
    t = tokens_for(make_client(), nonce="n")
    active = _by_state(live, "active")
    assert _unverified_header(t["access_token"])["kid"] == active["ES256"]
    assert _unverified_header(t["id_token"])["kid"] == active["RS256"]


def test_a26_121_next_key_published_before_it_signs(live):
    """OIDC Core §10.1.1: the next key of each algorithm is in the JWKS while it signs nothing yet."""
    nxt = _by_state(live, "next")
    assert set(nxt) == {"ES256", "RS256"}
    jwks_kids = _kids(live)
    assert set(nxt.values()) <= jwks_kids
    assert set(_by_state(live, "active").values()) <= jwks_kids


def test_a26_121_rotation_drill(live, make_client, tokens_for, restore_key_cache):
    """OIDC Core §10.1.1: after rotation new tokens carry the new kid (the key
    published before), old tokens still verify against the JWKS and at the server,
    and a fresh next key is published."""
    c = make_client(introspection_resources=(live.url,))  # it introspects below
    old_active = _by_state(live, "active")
    old_next = _by_state(live, "next")
    published_before = _kids(live)
    old = tokens_for(c, nonce="before")
    assert _unverified_header(old["access_token"])["kid"] == old_active["ES256"]

    with time_machine.travel(_ready_to_rotate(live), tick=True):
        changes = _rotate(live)
        assert sorted((a, new) for a, _, new in changes) == sorted(old_next.items())
        assert _by_state(live, "active") == old_next
        new_next = _by_state(live, "next")
        assert set(new_next.values()).isdisjoint(published_before)

        jwks = _jwks(live)
        kids = {k["kid"] for k in jwks["keys"]}
        # Retired keys stay published; the newly generated next key is published already.
        assert set(old_active.values()) <= kids
        assert set(new_next.values()) <= kids

        new = tokens_for(c, nonce="after")
        assert _unverified_header(new["access_token"])["kid"] == old_next["ES256"]
        assert _unverified_header(new["id_token"])["kid"] == old_next["RS256"]
        # The key that signs now was in the JWKS before the rotation.
        assert {old_next["ES256"], old_next["RS256"]} <= published_before

        for token in (old["access_token"], old["id_token"], new["access_token"], new["id_token"]):
            _verify(token, jwks)
        # The server itself still accepts the token signed by the retired key.
        u = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + old["access_token"]},
                         timeout=10)
        assert u.status_code == 200, u.text
        i = requests.post(live.url + "/oauth/introspect", data={"token": old["access_token"]},
                          auth=(c.client_id, c.client_secret), timeout=10)
        assert i.json()["active"] is True


def test_a26_121_retired_key_published_until_old_tokens_expire(live, make_client, tokens_for, restore_key_cache):
    """OIDC Core §10.1.1: a retired public key stays published at least for the
    longest token lifetime plus caching time, and is dropped after."""
    c = make_client()
    retired_kids = set(_by_state(live, "active").values())
    start = _ready_to_rotate(live)
    with time_machine.travel(start, tick=False):
        old = tokens_for(c, nonce="n")
        _rotate(live)
    longest = max(live.settings.access_token_ttl, live.settings.id_token_ttl)
    assert live.server.keys.retired_publish_seconds >= longest + JWKS_MAX_AGE + CACHE_SECONDS

    # Just before the old tokens expire (and a cache period after that) the key is still there.
    claims = jwt.decode(old["access_token"], KeySet.import_key_set(_jwks(live)), algorithms=["ES256"]).claims
    at_exp = datetime.fromtimestamp(claims["exp"], timezone.utc)
    with time_machine.travel(at_exp - timedelta(seconds=5), tick=False):
        live.server.keys.invalidate()
        jwks = _jwks(live)
        assert retired_kids <= {k["kid"] for k in jwks["keys"]}
        _verify(old["access_token"], jwks)
        _verify(old["id_token"], jwks)
    with time_machine.travel(start + timedelta(seconds=longest + JWKS_MAX_AGE + CACHE_SECONDS), tick=False):
        live.server.keys.invalidate()
        assert retired_kids <= _kids(live)

    # Past the publishing window the retired keys leave the JWKS; the active and next stay.
    with time_machine.travel(start + timedelta(seconds=live.server.keys.retired_publish_seconds + 1), tick=False):
        live.server.keys.invalidate()
        kids = _kids(live)
        assert retired_kids.isdisjoint(kids)
        assert set(_by_state(live, "active").values()) | set(_by_state(live, "next").values()) <= kids
        with pytest.raises(JoseError):
            _verify(old["access_token"], {"keys": _jwks(live)["keys"]})


def test_a26_121_rotation_refused_before_next_key_was_published_long_enough(live, restore_key_cache):
    """OIDC Core §10.1.1 / RFC 9068 §4: a next key starts signing only after it was
    published for the JWKS max-age plus the key cache; a refusal changes nothing."""
    with time_machine.travel(_ready_to_rotate(live), tick=False) as traveller:
        _rotate(live)
        before = _rows(live)
        traveller.shift(MIN_PUBLISHED_SECONDS - 5)
        with pytest.raises(RotationTooSoon):
            _rotate(live)
        assert _rows(live) == before
        # An emergency (a compromised key) may force it.
        traveller.shift(1)
        forced = _rotate(live, alg="ES256", force=True)
        assert [a for a, _, _ in forced] == ["ES256"]
        # Once the window has passed the ordinary rotation goes through.
        traveller.shift(MIN_PUBLISHED_SECONDS + 1)
        assert {a for a, _, _ in _rotate(live)} == {"ES256", "RS256"}


def test_a26_121_other_nodes_pick_up_a_rotation_within_their_cache_period(
        live, make_server_with, make_client, tokens_for, restore_key_cache):
    """OIDC Core §10.1.1: every node reads the same keys; a node
    that cached the old key keeps signing with it (still published) for at most
    CACHE_SECONDS, then signs with the new one."""
    other = make_server_with()
    requests.get(other.url + JWKS_PATH, timeout=10)  # the other node loads its key cache
    at = _ready_to_rotate(live)
    old_es = _by_state(live, "active")["ES256"]
    with time_machine.travel(at, tick=False) as traveller:
        # The other node's cache is younger than CACHE_SECONDS at the rotation moment.
        other.server.keys.invalidate()
        requests.get(other.url + JWKS_PATH, timeout=10)
        _rotate(live)
        new_es = _by_state(live, "active")["ES256"]
        r = requests.post(other.url + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=_cc_client(other), timeout=10)
        assert r.status_code == 200, r.text
        stale = r.json()["access_token"]
        assert _unverified_header(stale)["kid"] == old_es
        _verify(stale, _jwks(live))  # the retired key is still published
        traveller.shift(CACHE_SECONDS + 1)
        r = requests.post(other.url + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=_cc_client(other), timeout=10)
        assert _unverified_header(r.json()["access_token"])["kid"] == new_es
    other.server.keys.invalidate()


def _cc_client(server):
    from authz_server.storage import clients as store

    s = server.db.session
    try:
        c, secret = store.create(s, name="machine", client_type="third_party", redirect_uris=[],
                                 grant_types=["client_credentials"])
        s.commit()
        return c.client_id, secret
    finally:
        s.remove()


def test_a26_121_rotation_drill_through_the_cli(live, database_url, make_client, tokens_for, restore_key_cache):
    """OIDC Core §10.1.1: `authz-server keys rotate` promotes the published next
    key; the server signs with it and old tokens still verify."""
    c = make_client()
    old = tokens_for(c, nonce="n")
    old_next = _by_state(live, "next")
    env = {"DATABASE_URL": database_url, "AUTHZ_ENV": "test", "AUTHZ_ISSUER": live.url,
           "AUTHZ_KEY_ENCRYPTION_KEY": live.settings.key_encryption_key}
    runner = CliRunner()
    with time_machine.travel(_ready_to_rotate(live), tick=True):
        res = runner.invoke(cli, ["keys", "rotate"], env=env)
        assert res.exit_code == 0, res.output
        for alg, kid in old_next.items():
            assert f"{alg}: active {kid}" in res.output
        # Right after a rotation, the fresh next key is not ready: a clean refusal.
        again = runner.invoke(cli, ["keys", "rotate"], env=env)
        assert again.exit_code == 1
        assert "published for only" in again.output and "Traceback" not in again.output
        listing = runner.invoke(cli, ["keys", "list"], env=env)
        assert listing.exit_code == 0
        for kid in old_next.values():
            assert any(line.startswith(kid) and " active " in line for line in listing.output.splitlines())

        live.server.keys.invalidate()  # the server would see it within CACHE_SECONDS
        new = tokens_for(c, nonce="n2")
        assert _unverified_header(new["access_token"])["kid"] == old_next["ES256"]
        assert _unverified_header(new["id_token"])["kid"] == old_next["RS256"]
        jwks = _jwks(live)
        _verify(old["access_token"], jwks)
        _verify(old["id_token"], jwks)
        _verify(new["id_token"], jwks)


# --- revocation of a compromised key ---------------------------------------------------


def _cli_env(live, database_url):
    return {"DATABASE_URL": database_url, "AUTHZ_ENV": "test", "AUTHZ_ISSUER": live.url,
            "AUTHZ_KEY_ENCRYPTION_KEY": live.settings.key_encryption_key}


def _userinfo(node, token):
    return requests.get(node.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + token}, timeout=10)


def _introspection(node, token, client):
    resp = requests.post(node.url + "/oauth/introspect", data={"token": token}, auth=client, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _signed_by(nodes, kid, tokens):
    """Both nodes have loaded their key cache, and each node's token signed by
    ``kid`` is accepted by that node (userinfo: 200 for a member's token, 403
    insufficient_scope for a machine token: valid, just without openid)."""
    for node, (token, _), status in zip(nodes, tokens, (200, 403)):
        assert kid in _kids(node)
        assert _unverified_header(token)["kid"] == kid
        assert _userinfo(node, token).status_code == status


def _withdrawn_everywhere(nodes, kid, tokens):
    """Within CACHE_SECONDS every node has dropped ``kid``: not in its JWKS, and
    the tokens it signed are refused at userinfo and introspect inactive."""
    for node, (token, introspector) in zip(nodes, tokens):
        assert kid not in _kids(node)
        u = _userinfo(node, token)
        assert u.status_code == 401 and u.json()["error"] == "invalid_token", u.text
        assert _introspection(node, token, introspector) == {"active": False}


def _two_nodes_with_tokens(live, make_server_with, make_client, tokens_for):
    """This node and another one on the same database, each with a token signed
    by the active ES256 key (a member's access token here, a machine's there)."""
    other = make_server_with()
    c = make_client()
    mine = tokens_for(c, nonce="n")
    machine = _cc_client(other)
    theirs = requests.post(other.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=machine,
                           timeout=10).json()["access_token"]
    return [live, other], [(mine["access_token"], (c.client_id, c.client_secret)), (theirs, machine)], c, mine


def test_forced_key_rotation_removes_the_compromised_key_from_jwks_and_verification(
        live, database_url, make_server_with, make_client, tokens_for, restore_key_cache):
    """A compromised key is not kept published for the lifetime of the tokens it
    signed: `keys rotate --force` revokes the old active key, so within the key
    cache period every node drops it from the JWKS and the tokens it signed stop
    verifying (userinfo refuses them, introspection says inactive); the promoted
    key signs, and the other algorithm is untouched. Audited."""
    with time_machine.travel(datetime.now(timezone.utc), tick=False) as traveller:
        live.server.keys.invalidate()
        nodes, tokens, c, mine = _two_nodes_with_tokens(live, make_server_with, make_client, tokens_for)
        compromised = _by_state(live, "active")["ES256"]
        promoted = _by_state(live, "next")["ES256"]
        rs_active = _by_state(live, "active")["RS256"]
        _signed_by(nodes, compromised, tokens)

        res = CliRunner().invoke(cli, ["keys", "rotate", "--alg", "ES256", "--force"], env=_cli_env(live, database_url))
        assert res.exit_code == 0, res.output

        traveller.shift(CACHE_SECONDS + 1)  # no cache is dropped by hand: each node re-reads in time
        _withdrawn_everywhere(nodes, compromised, tokens)
        assert f"ES256: active {promoted} (revoked {compromised})" in res.output
        assert _by_state(live, "active") == {"ES256": promoted, "RS256": rs_active}
        _verify(mine["id_token"], _jwks(live))  # RS256 was not rotated
        new = tokens_for(c, nonce="n2")
        assert _unverified_header(new["access_token"])["kid"] == promoted
        assert _userinfo(live, new["access_token"]).status_code == 200
    events = [e for e in audit_rows(live, "signing_key_revoked") if e.details["kid"] == compromised]
    assert len(events) == 1 and events[0].details["reason"] == "forced_rotation" and events[0].actor == "cli"


def test_keys_revoke_removes_any_key_from_jwks_and_verification_and_signing_goes_on(
        live, database_url, make_server_with, make_client, tokens_for, restore_key_cache):
    """`keys revoke KID` withdraws a key whatever its state, from the JWKS and from
    verification on every node within the key cache period: an active key is
    first replaced by the (already published) next key so signing never stops;
    a next key by a new next key; a retired key just goes. Audited; an unknown
    kid is a clean error, a second revocation changes nothing."""
    env = _cli_env(live, database_url)
    runner = CliRunner()
    with time_machine.travel(_ready_to_rotate(live), tick=False) as traveller:
        live.server.keys.invalidate()
        nodes, tokens, c, mine = _two_nodes_with_tokens(live, make_server_with, make_client, tokens_for)
        active = _by_state(live, "active")["ES256"]
        nxt = _by_state(live, "next")["ES256"]
        _signed_by(nodes, active, tokens)

        res = runner.invoke(cli, ["keys", "revoke", active], env=env)
        assert res.exit_code == 0, res.output
        assert f"ES256: revoked {active} (was active)" in res.output and f"ES256: active {nxt}" in res.output
        # Signing never stopped: the replacement is the next key, published before.
        assert nxt in _kids(live)
        traveller.shift(CACHE_SECONDS + 1)
        _withdrawn_everywhere(nodes, active, tokens)
        new = tokens_for(c, nonce="n2")
        assert _unverified_header(new["access_token"])["kid"] == nxt
        assert _userinfo(live, new["access_token"]).status_code == 200

        # A next key: replaced by a new next key, and never published again.
        fresh_next = _by_state(live, "next")["ES256"]
        res = runner.invoke(cli, ["keys", "revoke", fresh_next], env=env)
        assert res.exit_code == 0, res.output
        assert f"ES256: revoked {fresh_next} (was next)" in res.output
        replacement = _by_state(live, "next")["ES256"]
        assert replacement != fresh_next

        # A retired key: an ordinary rotation retires the RS256 key (still published
        # for the id tokens it signed); revoking it withdraws it at once.
        traveller.shift(MIN_PUBLISHED_SECONDS + 1)
        retired = _by_state(live, "active")["RS256"]
        _rotate(live, alg="RS256")
        assert retired in _kids(live)
        _verify(mine["id_token"], _jwks(live))
        res = runner.invoke(cli, ["keys", "revoke", retired], env=env)
        assert res.exit_code == 0 and f"RS256: revoked {retired} (was retired)" in res.output, res.output
        traveller.shift(CACHE_SECONDS + 1)
        for node in nodes:
            kids = _kids(node)
            assert {active, fresh_next, retired}.isdisjoint(kids) and replacement in kids
        with pytest.raises((JoseError, ValueError)):
            _verify(mine["id_token"], _jwks(live))

        again = runner.invoke(cli, ["keys", "revoke", active], env=env)
        assert again.exit_code == 0 and "already revoked" in again.output
        unknown = runner.invoke(cli, ["keys", "revoke", "es256-nope"], env=env)
        assert unknown.exit_code == 1 and "no signing key" in unknown.output and "Traceback" not in unknown.output
        listing = runner.invoke(cli, ["keys", "list"], env=env).output
        assert any(line.startswith(active) and " revoked " in line for line in listing.splitlines())
    revoked = {e.details["kid"]: e for e in audit_rows(live, "signing_key_revoked")}
    assert {active, fresh_next, retired} <= set(revoked)
    assert revoked[active].details["replaced_by"] == nxt and revoked[active].actor == "cli"
    assert revoked[retired].details["previous_state"] == "retired"
