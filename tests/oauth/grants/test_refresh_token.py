"""The refresh-token grant (docs/requirements.md: A7-43, A7-48, with A.2 item 8 and
A.6 item 42): rotation, reuse detection with a grace window, client binding,
scope narrowing, idle and absolute expiry, refresh tokens by grant type."""
from __future__ import annotations

import datetime as dt

import requests
import time_machine

from tests.browser import Browser
from tests.helpers import (audit_rows as _audit, auth_params, frozen as _frozen, introspect as _introspect, oauth_error,
                           pkce_pair, redirect_params, refresh, refresh_token_active, resource_server)

PUBLIC_REDIRECT = ("http://127.0.0.1/callback",)


def _ok(resp):
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return resp.json()


def _public(make_client, **kw):
    return make_client(client_type="third_party_public", redirect_uris=PUBLIC_REDIRECT, **kw)


def _tokens_on(server, client, scope="openid profile email"):
    """The code flow against another server instance (make_server_with)."""
    browser = Browser(server)
    verifier, challenge = pkce_pair()
    params = redirect_params(browser.authorize(auth_params(client, challenge, scope=scope)))
    data = {"grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
            "client_id": client.client_id}
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    return _ok(requests.post(server.url + "/oauth/token", data=data, auth=auth, timeout=10))


# --- A.2 item 8 ---------------------------------------------------------------------


def test_a2_8_public_client_refreshes_with_client_id_only(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.1: a public client refreshes by sending only client_id
    (Authlib's RefreshTokenGrant is Basic-only, D-2)."""
    c = _public(make_client)
    t = tokens_for(c)
    body = _ok(refresh(live, c, t["refresh_token"]))
    assert body["token_type"] == "Bearer" and body["access_token"] and body["refresh_token"]


def test_a2_8_confidential_client_must_authenticate_to_refresh(live, make_client, tokens_for, token_post):
    """A confidential client sending only client_id is not authenticated:
    invalid_client; the refresh token is not consumed."""
    c = make_client()
    t = tokens_for(c)
    resp = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": c.client_id})
    oauth_error(resp, 401, "invalid_client")
    _ok(refresh(live, c, t["refresh_token"]))


# --- item 43: rotation ------------------------------------------------------------


def test_a7_43_public_refresh_rotates(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.1: each refresh of a public client returns a new refresh
    token; the old one, once past the grace window, gets invalid_grant."""
    c = _public(make_client)
    rt1 = tokens_for(c)["refresh_token"]
    t2 = _ok(refresh(live, c, rt1))
    rt2 = t2["refresh_token"]
    assert rt2 and rt2 != rt1
    t3 = _ok(refresh(live, c, rt2))
    assert t3["refresh_token"] not in (rt1, rt2)
    assert t3["access_token"] != t2["access_token"]
    with _frozen(live, live.settings.refresh_grace_seconds + 5):
        oauth_error(refresh(live, c, rt1), 400, "invalid_grant")


def test_a7_43_confidential_refresh_rotates_too(live, make_client, tokens_for):
    """Rotation applies to confidential clients as well (one policy for all)."""
    c = make_client()
    rt1 = tokens_for(c)["refresh_token"]
    rt2 = _ok(refresh(live, c, rt1))["refresh_token"]
    assert rt2 and rt2 != rt1
    _ok(refresh(live, c, rt2))


def test_a7_43_without_grace_the_old_token_dies_at_once(live, make_server_with, make_client):
    """With the grace window set to 0 the rotated token is refused immediately."""
    strict = make_server_with(refresh_grace_seconds=0)
    c = _public(make_client)
    rt1 = _tokens_on(strict, c)["refresh_token"]
    rt2 = _ok(refresh(strict, c, rt1))["refresh_token"]
    oauth_error(refresh(strict, c, rt1), 400, "invalid_grant")
    oauth_error(refresh(strict, c, rt2), 400, "invalid_grant")  # and the family went with it


# --- item 44: reuse detection and the grace window -------------------------------


def test_a7_44_reuse_after_grace_window_revokes_family(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: RT1 yields RT2; RT1 presented again
    after the grace window gets invalid_grant, and RT2 and the family's access
    tokens are dead too; the reuse is audited."""
    c = _public(make_client)
    rs = resource_server(live, make_client)
    t1 = tokens_for(c)
    t2 = _ok(refresh(live, c, t1["refresh_token"]))
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, live.settings.refresh_grace_seconds + 1, start):
        oauth_error(refresh(live, c, t1["refresh_token"]), 400, "invalid_grant")
        oauth_error(refresh(live, c, t2["refresh_token"]), 400, "invalid_grant")
        assert not refresh_token_active(live, t2["refresh_token"])
        assert _introspect(live, rs, t2["access_token"]) == {"active": False}
        assert _introspect(live, rs, t1["access_token"]) == {"active": False}
    events = _audit(live, "refresh_token_reused")
    assert len(events) == 1 and events[0].client_id == c.client_id


def test_a7_44_reuse_inside_grace_window_succeeds_and_family_stays(live, make_client, tokens_for):
    """docs/requirements.md: A7-44, A2-8: RT1 presented again inside the grace
    window (a parallel refresh or a lost response) succeeds with the same child,
    and the family stays valid: that child still refreshes."""
    c = _public(make_client)
    rs = resource_server(live, make_client)
    rt1 = tokens_for(c)["refresh_token"]
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, 0, start):
        t2 = _ok(refresh(live, c, rt1))
    with _frozen(live, live.settings.refresh_grace_seconds - 5, start):
        t3 = _ok(refresh(live, c, rt1))
        assert t3["refresh_token"] == t2["refresh_token"]
        assert _introspect(live, rs, t2["access_token"])["active"] is True
        assert _introspect(live, rs, t3["access_token"])["active"] is True
        _ok(refresh(live, c, t3["refresh_token"]))
    assert _audit(live, "refresh_token_reused") == []


def _family(live, refresh_token):
    """{token hash: row} of every refresh token of the grant ``refresh_token`` belongs to."""
    from sqlalchemy import select

    from authz_server.models import RefreshToken
    from authz_server.security import digest

    s = live.db.session
    try:
        grant_id = s.get(RefreshToken, digest(refresh_token)).grant_id
        return {r.token_hash: r for r in s.scalars(select(RefreshToken).where(RefreshToken.grant_id == grant_id))}
    finally:
        s.remove()


def _live_tokens(family):
    return [h for h, r in family.items() if r.used_at is None and r.revoked_at is None]


def test_grace_window_replay_gets_the_same_child_and_never_forks_the_family(live, make_client, tokens_for):
    """RFC 9700 §4.14.2: a replay of a used refresh token inside the grace window
    (a thief's or the client's own parallel refresh) is answered with the one child
    the first use issued, with a fresh access token, so the family never has a
    second live branch. The child is kept encrypted with the key-encryption key on
    the used token's row, and cleared once the window is over; reuse after the
    window still revokes the family."""
    from cryptography.fernet import Fernet

    from authz_server.security import digest

    c = _public(make_client)
    rs = resource_server(live, make_client)
    rt1 = tokens_for(c)["refresh_token"]
    grace = live.settings.refresh_grace_seconds
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, 0, start):
        victim = _ok(refresh(live, c, rt1))
    with _frozen(live, grace - 1, start):
        thief = _ok(refresh(live, c, rt1))
        again = _ok(refresh(live, c, rt1))
    child = victim["refresh_token"]
    assert thief["refresh_token"] == again["refresh_token"] == child
    assert thief["access_token"] != victim["access_token"]  # minted per answer
    assert _introspect(live, rs, thief["access_token"])["active"] is True
    family = _family(live, rt1)
    assert _live_tokens(family) == [digest(child)]  # one live branch, however many replays
    sealed = family[digest(rt1)].child_token_encrypted
    assert sealed and child not in sealed and digest(child) not in sealed
    assert Fernet(live.settings.key_encryption_key.encode()).decrypt(sealed.encode()).decode() == child

    # Past the window the next rotation clears the kept child: nothing answers with it any more.
    with _frozen(live, grace + 1, start):
        rt3 = _ok(refresh(live, c, child))["refresh_token"]
    family = _family(live, rt1)
    assert family[digest(rt1)].child_token_encrypted is None
    assert family[digest(child)].child_token_encrypted is not None  # its own window is open
    assert _live_tokens(family) == [digest(rt3)]
    assert _audit(live, "refresh_token_reused") == []

    # Reuse after the window revokes the family, and every kept child goes.
    with _frozen(live, 2 * grace + 5, start):
        oauth_error(refresh(live, c, rt1), 400, "invalid_grant")
        oauth_error(refresh(live, c, rt3), 400, "invalid_grant")
        assert _introspect(live, rs, thief["access_token"]) == {"active": False}
    family = _family(live, rt1)
    assert _live_tokens(family) == []
    assert all(r.child_token_encrypted is None for r in family.values())
    assert len(_audit(live, "refresh_token_reused")) == 1


def test_grace_window_child_of_an_abandoned_family_is_not_kept_past_the_window(live, make_client, tokens_for):
    """A family that stops refreshing after a rotation must not keep its child
    encrypted for good: any later rotation (another family's) clears children
    whose grace window is over."""
    from authz_server.security import digest

    c = _public(make_client)
    abandoned = tokens_for(c)["refresh_token"]
    other = tokens_for(c)["refresh_token"]
    grace = live.settings.refresh_grace_seconds
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, 0, start):
        _ok(refresh(live, c, abandoned))
    assert _family(live, abandoned)[digest(abandoned)].child_token_encrypted is not None
    with _frozen(live, grace + 1, start):
        _ok(refresh(live, c, other))
    assert _family(live, abandoned)[digest(abandoned)].child_token_encrypted is None


def test_a7_44_grace_window_boundary(live, make_client, tokens_for):
    """With a frozen clock: grace_seconds after the rotation RT1 is still honoured,
    one second later it is reuse."""
    c = _public(make_client)
    rt1 = tokens_for(c)["refresh_token"]
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)
    grace = live.settings.refresh_grace_seconds
    with _frozen(live, 0, start):
        _ok(refresh(live, c, rt1))
    with _frozen(live, grace, start):
        _ok(refresh(live, c, rt1))
    with _frozen(live, grace + 1, start):
        oauth_error(refresh(live, c, rt1), 400, "invalid_grant")
    assert len(_audit(live, "refresh_token_reused")) == 1


def test_a7_44_grace_reuse_by_another_client_is_refused(live, make_client, tokens_for):
    """The grace window does not loosen the client binding: another client
    presenting the just-rotated token gets invalid_grant and revokes nothing."""
    a = _public(make_client)
    b = _public(make_client)
    rt1 = tokens_for(a)["refresh_token"]
    rt2 = _ok(refresh(live, a, rt1))["refresh_token"]
    oauth_error(refresh(live, b, rt1), 400, "invalid_grant")
    _ok(refresh(live, a, rt2))
    assert _audit(live, "refresh_token_reused") == []


# --- item 45: client binding and an active grant --------------------------------------


def test_a7_45_another_clients_refresh_token_is_invalid_grant(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.1: a refresh token is bound to its client; another client
    (confidential or public) gets invalid_grant, and the owner's token survives."""
    a = make_client()
    b = make_client()
    pub = _public(make_client)
    rt = tokens_for(a)["refresh_token"]
    oauth_error(refresh(live, b, rt), 400, "invalid_grant")
    oauth_error(refresh(live, pub, rt), 400, "invalid_grant")
    _ok(refresh(live, a, rt))


def test_a7_45_public_client_bound_by_client_id(live, make_client, tokens_for):
    """A public client's token presented under another public client's id is refused."""
    a = _public(make_client)
    b = _public(make_client)
    rt = tokens_for(a)["refresh_token"]
    oauth_error(refresh(live, b, rt), 400, "invalid_grant")
    _ok(refresh(live, a, rt))


def test_a7_45_revoked_grant_cannot_refresh(live, make_client, tokens_for):
    """After the grant is revoked (RFC 7009 revocation of its refresh token), a
    refresh gets invalid_grant, also with a token rotated earlier in the family."""
    c = make_client()
    t1 = tokens_for(c)
    rt2 = _ok(refresh(live, c, t1["refresh_token"]))["refresh_token"]
    rv = requests.post(live.url + "/oauth/revoke", data={"token": rt2, "token_type_hint": "refresh_token"},
                       auth=(c.client_id, c.client_secret), timeout=10)
    assert rv.status_code == 200
    oauth_error(refresh(live, c, rt2), 400, "invalid_grant")
    oauth_error(refresh(live, c, t1["refresh_token"]), 400, "invalid_grant")


def test_a7_45_client_losing_refresh_grant_cannot_refresh(live, make_client, tokens_for):
    """A client no longer registered for refresh_token gets unauthorized_client."""
    from authz_server.models import Client

    c = make_client()
    rt = tokens_for(c)["refresh_token"]
    s = live.db.session
    try:
        s.get(Client, c.client_id).grant_types = ["authorization_code"]
        s.commit()
    finally:
        s.remove()
    live.server.clients.invalidate(c.client_id)
    oauth_error(refresh(live, c, rt), 400, "unauthorized_client")


# --- item 46: scope ------------------------------------------------------------------


def test_a7_46_extra_scope_is_invalid_scope(live, make_client, tokens_for):
    """RFC 6749 §6: a requested scope beyond the original grant gets invalid_scope,
    and the refresh token stays usable."""
    c = make_client()
    rt = tokens_for(c, scope="openid profile")["refresh_token"]
    oauth_error(refresh(live, c, rt, scope="openid profile email"), 400, "invalid_scope")
    oauth_error(refresh(live, c, rt, scope="offline_access"), 400, "invalid_scope")
    _ok(refresh(live, c, rt))


def test_a7_46_scope_narrows_and_omitted_means_original(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.1: a narrower scope gives a narrower access token (and the
    response says so); an omitted scope gives the original grant's scope; the
    rotated refresh token keeps the original scope."""
    c = make_client()
    t1 = tokens_for(c, scope="openid profile email")
    narrow = _ok(refresh(live, c, t1["refresh_token"], scope="openid email"))
    assert narrow["scope"] == "openid email"
    assert "id_token" in narrow
    plain = _ok(refresh(live, c, narrow["refresh_token"]))
    assert plain["scope"] == "openid profile email"
    only_profile = _ok(refresh(live, c, plain["refresh_token"], scope="profile"))
    assert only_profile["scope"] == "profile"
    assert "id_token" not in only_profile  # no openid, no id token
    again = _ok(refresh(live, c, only_profile["refresh_token"]))
    assert again["scope"] == "openid profile email"


def test_a7_46_narrowed_scope_reaches_the_access_token(live, make_client, tokens_for):
    """The narrowed scope is what the access token carries (seen through
    introspection)."""
    c = make_client()
    t1 = tokens_for(c, scope="openid profile email")
    narrow = _ok(refresh(live, c, t1["refresh_token"], scope="email"))
    info = _introspect(live, resource_server(live, make_client), narrow["access_token"])
    assert info["active"] is True and info["scope"] == "email"


# --- item 47: idle expiry ---------------------------------------------------------------


def test_a7_47_idle_refresh_token_expires(live, make_client, tokens_for):
    """OAuth 2.1 §4.3.3: a refresh token idle longer than the idle lifetime gets
    invalid_grant (frozen clock)."""
    c = _public(make_client)
    rt = tokens_for(c)["refresh_token"]
    idle = live.settings.refresh_token_idle_ttl
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, idle + 60, start):
        oauth_error(refresh(live, c, rt), 400, "invalid_grant")


def test_a7_47_each_rotation_restarts_the_idle_clock(live, make_client, tokens_for):
    """Idle means unused: a token used within its idle lifetime yields a fresh one,
    so an active client keeps refreshing past the idle lifetime."""
    c = _public(make_client)
    rt = tokens_for(c)["refresh_token"]
    idle = live.settings.refresh_token_idle_ttl
    start = dt.datetime.now(dt.timezone.utc)
    with _frozen(live, idle - 3600, start):
        rt = _ok(refresh(live, c, rt))["refresh_token"]
    with _frozen(live, 2 * idle - 7200, start):
        rt = _ok(refresh(live, c, rt))["refresh_token"]
    with _frozen(live, 3 * idle, start):
        oauth_error(refresh(live, c, rt), 400, "invalid_grant")


def test_a7_47_absolute_lifetime_caps_the_family(live, make_server_with, make_client):
    """The grant's absolute lifetime ends the family even for a client that
    refreshes well within the idle lifetime."""
    short = make_server_with(refresh_token_idle_ttl=3600, refresh_token_absolute_ttl=7200)
    c = _public(make_client)
    rt = _tokens_on(short, c)["refresh_token"]
    start = dt.datetime.now(dt.timezone.utc)
    try:
        with time_machine.travel(start + dt.timedelta(seconds=3000), tick=False):
            rt = _ok(refresh(short, c, rt))["refresh_token"]
        with time_machine.travel(start + dt.timedelta(seconds=6000), tick=False):
            rt = _ok(refresh(short, c, rt))["refresh_token"]
        with time_machine.travel(start + dt.timedelta(seconds=7300), tick=False):
            oauth_error(refresh(short, c, rt), 400, "invalid_grant")
    finally:
        live.server.keys.invalidate()
        live.server.clients.invalidate()


# --- item 48: refresh tokens by grant type ------------------------------------------------


def test_a7_48_refresh_token_without_offline_access(live, make_client, tokens_for):
    """docs/requirements.md: A7-48: a client registered for refresh_token gets
    a refresh token without asking for offline_access."""
    for c in (make_client(), _public(make_client)):
        t = tokens_for(c, scope="openid profile")
        assert "offline_access" not in t["scope"].split()
        assert isinstance(t["refresh_token"], str) and t["refresh_token"]


def test_a7_48_offline_access_also_yields_a_refresh_token(live, make_client, tokens_for):
    """offline_access, when asked (with prompt=consent, as the SDKs send it), is
    honoured too."""
    c = make_client()
    t = tokens_for(c, scope="openid offline_access", prompt="consent")
    assert t["refresh_token"]
    assert t["scope"].split() == ["openid", "offline_access"]


def test_a7_48_no_refresh_token_without_the_grant(live, make_client, tokens_for, token_post):
    """A client not registered for refresh_token gets no refresh token (no null
    member either), and the refresh grant answers unauthorized_client."""
    c = make_client(grant_types=("authorization_code",))
    t = tokens_for(c)
    assert "refresh_token" not in t
    resp = token_post({"grant_type": "refresh_token", "refresh_token": "anything"},
                      auth=(c.client_id, c.client_secret))
    oauth_error(resp, 400, "unauthorized_client")


# --- item 42 for refresh tokens --------------------------------------------------------


def test_a6_42_stale_refresh_tokens_get_invalid_grant(live, make_client, tokens_for):
    """docs/requirements.md: A6-42: an unknown, rotated, revoked or expired
    refresh token gets invalid_grant, never invalid_client."""
    c = make_client()
    oauth_error(refresh(live, c, "not-a-refresh-token"), 400, "invalid_grant")
    oauth_error(refresh(live, c, "x" * 600), 400, "invalid_grant")
    rt1 = tokens_for(c)["refresh_token"]
    rt2 = _ok(refresh(live, c, rt1))["refresh_token"]
    with _frozen(live, live.settings.refresh_token_idle_ttl + 60):
        oauth_error(refresh(live, c, rt2), 400, "invalid_grant")  # expired
    with _frozen(live, live.settings.refresh_grace_seconds + 1):
        oauth_error(refresh(live, c, rt1), 400, "invalid_grant")  # rotated, reuse
    oauth_error(refresh(live, c, rt2), 400, "invalid_grant")  # revoked with its family


def test_a6_41_missing_refresh_token_is_invalid_request(live, make_client, token_post):
    """RFC 6749 §5.2: a refresh request without refresh_token is invalid_request."""
    c = make_client()
    oauth_error(token_post({"grant_type": "refresh_token"}, auth=(c.client_id, c.client_secret)), 400, "invalid_request")


def test_a6_40_refresh_response_body(live, make_client, tokens_for):
    """RFC 6749 §5.1 for refresh: Bearer, integer expires_in, scope, a new refresh
    token, an id token for openid, no null members."""
    c = make_client()
    t = tokens_for(c)
    body = _ok(refresh(live, c, t["refresh_token"]))
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] > 0
    assert body["scope"] == t["scope"]
    assert None not in body.values()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token"}
