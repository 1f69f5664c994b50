"""RFC 7662 token introspection at /oauth/introspect (docs/requirements.md: A.12 items
66-68): only resource servers an operator allowed, only about access tokens for
their resources."""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import requests
import time_machine

from tests.helpers import post_as_client, refresh_token_active, register_resources

PUBLIC_REDIRECT = ("http://127.0.0.1/callback",)


def _introspect(live, rs, token, hint=None, auth="basic"):
    return post_as_client(live, "/oauth/introspect", rs, auth, token=token, token_type_hint=hint)


def _body(resp):
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def _rs(live, make_client, **kw):
    """A resource server allowed to introspect tokens for the default audience."""
    kw.setdefault("introspection_resources", (live.url,))
    return make_client(grant_types=("client_credentials",), redirect_uris=(), **kw)


@contextmanager
def _frozen(live, seconds):
    try:
        with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds), tick=False):
            yield
    finally:
        # The caches stamp entries with the travelled monotonic clock; drop them.
        live.server.keys.invalidate()
        live.server.clients.invalidate()


# --- item 66: the caller must be authorized -----------------------------------------


def test_a12_66_unauthenticated_call_is_401(live, make_client, tokens_for):
    """RFC 7662 §2.1 / §4: the endpoint requires caller authentication (no token
    scanning): 401 invalid_client, and nothing about the token."""
    c = make_client()
    t = tokens_for(c)
    resp = requests.post(live.url + "/oauth/introspect", data={"token": t["access_token"]}, timeout=10)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_client"
    assert "active" not in resp.json()


def test_a12_66_bad_credentials_are_401(live, make_client, tokens_for):
    """A wrong secret is 401 invalid_client with a Basic challenge."""
    c = make_client()
    t = tokens_for(c)
    resp = requests.post(live.url + "/oauth/introspect", data={"token": t["access_token"]},
                         auth=(c.client_id, "wrong"), timeout=10)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")


def test_a12_66_public_clients_may_not_introspect(live, make_client, tokens_for):
    """A public client cannot authenticate, so it cannot introspect, not even its
    own token."""
    pub = make_client(client_type="third_party_public", redirect_uris=PUBLIC_REDIRECT)
    t = tokens_for(pub)
    resp = _introspect(live, pub, t["access_token"], auth="none")
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", resp.text


def test_a12_66_client_secret_post_caller(live, make_client, tokens_for):
    """A resource server registered for client_secret_post authenticates with it."""
    rs = _rs(live, make_client, auth_method="client_secret_post")
    c = make_client()
    t = tokens_for(c)
    assert _body(_introspect(live, rs, t["access_token"], auth="post"))["active"] is True


def test_a12_66_token_parameter_required(live, make_client):
    """RFC 7662 §2.1: ``token`` is REQUIRED: invalid_request without it."""
    rs = _rs(live, make_client)
    resp = requests.post(live.url + "/oauth/introspect", data={"token_type_hint": "access_token"},
                         auth=(rs.client_id, rs.client_secret), timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text


# --- item 67: the answer ------------------------------------------------------------


def test_a12_67_active_access_token(live, make_client, tokens_for):
    """RFC 7662 §2.2: an active access token answers active plus scope, client_id,
    sub, aud, iss, exp, iat, token_type (and jti); no null member."""
    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c, scope="openid profile")
    info = _body(_introspect(live, rs, t["access_token"]))
    assert info["active"] is True
    assert info["scope"] == "openid profile"
    assert info["client_id"] == c.client_id
    assert info["sub"].startswith("member-")
    assert info["aud"] == live.url
    assert info["iss"] == live.url
    assert info["token_type"] == "Bearer"
    for name in ("exp", "iat"):
        assert type(info[name]) is int
    assert info["exp"] - info["iat"] == live.settings.access_token_ttl
    assert isinstance(info["jti"], str) and info["jti"]
    assert None not in info.values()


def test_a12_67_refresh_tokens_are_never_active_for_a_resource_server(live, make_client, tokens_for):
    """RFC 7662 §4: a refresh token concerns only the client it was issued to,
    never a resource server: introspection answers exactly {"active": false}
    for a live one, with or without the hint, also to the client itself."""
    c = make_client(introspection_resources=(live.url,))
    rs = _rs(live, make_client)
    t = tokens_for(c, scope="openid email")
    assert refresh_token_active(live, t["refresh_token"])
    for caller in (rs, c):
        for hint in (None, "refresh_token", "access_token"):
            assert _body(_introspect(live, caller, t["refresh_token"], hint=hint)) == {"active": False}


def test_a12_67_sub_matches_access_token_and_id_token(live, make_client, tokens_for):
    """The member is the same subject everywhere (introspection, id token)."""
    import jwt

    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c)
    id_sub = jwt.decode(t["id_token"], options={"verify_signature": False})["sub"]
    assert _body(_introspect(live, rs, t["access_token"]))["sub"] == id_sub


def test_a12_67_revoked_token_is_exactly_inactive(live, make_client, tokens_for):
    """RFC 7662 §2.2: a revoked token answers exactly {"active": false}."""
    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c)
    assert _body(_introspect(live, rs, t["access_token"]))["active"] is True
    requests.post(live.url + "/oauth/revoke", data={"token": t["refresh_token"]},
                  auth=(c.client_id, c.client_secret), timeout=10).raise_for_status()
    assert not refresh_token_active(live, t["refresh_token"])
    assert _body(_introspect(live, rs, t["access_token"])) == {"active": False}


def test_a12_67_unknown_token_is_exactly_inactive(live, make_client):
    """Unknown, malformed and foreign-signed tokens answer exactly {"active": false}."""
    import jwt as pyjwt

    rs = _rs(live, make_client)
    forged = pyjwt.encode({"iss": live.url, "sub": "x", "exp": 9999999999, "client_id": rs.client_id},
                          "a-secret-long-enough-for-hs256-32bytes!", algorithm="HS256", headers={"typ": "at+jwt"})
    for token in ("nope", "a.b.c", forged, "x" * 9000):
        assert _body(_introspect(live, rs, token)) == {"active": False}, token


def test_a12_67_expired_access_token_is_exactly_inactive(live, make_client, tokens_for):
    """An access token past its exp answers exactly {"active": false}."""
    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c)
    with _frozen(live, live.settings.access_token_ttl + 1):
        assert _body(_introspect(live, rs, t["access_token"])) == {"active": False}
    with _frozen(live, live.settings.access_token_ttl - 60):
        assert _body(_introspect(live, rs, t["access_token"]))["active"] is True


def test_a12_67_hint_does_not_limit_the_search(live, make_client, tokens_for):
    """RFC 7662 §2.1: a wrong token_type_hint still finds the token, and the hint
    MAY be ignored, so an unknown hint value does not fail the call."""
    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c)
    assert _body(_introspect(live, rs, t["access_token"], hint="refresh_token"))["active"] is True
    assert _body(_introspect(live, rs, t["access_token"], hint="id_token"))["active"] is True
    assert _body(_introspect(live, rs, "unknown", hint="id_token")) == {"active": False}


def test_a12_67_id_token_is_not_an_access_token(live, make_client, tokens_for):
    """An id token (typ JWT, signed by us) is not an access token: inactive."""
    c = make_client()
    rs = _rs(live, make_client)
    t = tokens_for(c)
    assert _body(_introspect(live, rs, t["id_token"])) == {"active": False}


# --- item 68: only resource servers, only about their own tokens ---


def test_introspection_is_only_for_allowed_resource_servers_and_their_tokens(live, make_client, tokens_for):
    """Introspection is open neither to every confidential
    client (an anonymous registration included) nor about every token. Only a
    client an operator allowed to introspect a resource learns about access
    tokens whose audience is that resource (RFC 7662 §2.1, §4); everyone else,
    and every refresh token, gets exactly {"active": false}."""
    from tests.helpers import RegisteredClient

    files = "https://files.example/mcp"
    register_resources(live, {files: ["files:read"]})
    live.server.registration_limiter.reset()
    app = make_client()
    for_issuer = tokens_for(app)  # aud: the default audience
    for_files = tokens_for(app, resource=files, scope="openid files:read")  # aud: files
    anonymous = requests.post(live.url + "/oauth/register", json={
        "client_name": "Anyone", "redirect_uris": ["https://anyone.example/cb"]}, timeout=10).json()
    nobody = [_rs(live, make_client, introspection_resources=()), app,
              RegisteredClient(anonymous["client_id"], anonymous["client_secret"], None, [])]
    for caller in nobody:
        for token in (for_issuer["access_token"], for_files["access_token"], for_files["refresh_token"]):
            assert _body(_introspect(live, caller, token)) == {"active": False}, caller.client_id

    files_rs = _rs(live, make_client, introspection_resources=(files,))
    info = _body(_introspect(live, files_rs, for_files["access_token"]))
    assert info["active"] is True and info["aud"] == files and info["client_id"] == app.client_id
    assert _body(_introspect(live, files_rs, for_issuer["access_token"])) == {"active": False}
    assert _body(_introspect(live, files_rs, for_files["refresh_token"])) == {"active": False}
    issuer_rs = _rs(live, make_client)
    assert _body(_introspect(live, issuer_rs, for_issuer["access_token"]))["active"] is True
    assert _body(_introspect(live, issuer_rs, for_files["access_token"])) == {"active": False}


def test_tokens_of_a_disabled_or_deleted_client_are_inactive_everywhere(live, make_client, tokens_for, token_post):
    """The token endpoint refuses a disabled or deleted client; its access
    tokens stop being active with it, at introspection and userinfo alike
    (one decision, oauth.token_status): a client_credentials token has no
    grant to revoke, and disabling a client revokes none of its grants."""
    from authz_server.models import Client
    from authz_server.storage import clients as store

    rs = _rs(live, make_client)
    machine = make_client(grant_types=("client_credentials",), redirect_uris=())
    cc = token_post({"grant_type": "client_credentials"}, auth=(machine.client_id, machine.client_secret))
    app = make_client()
    member_token = tokens_for(app)["access_token"]
    cc_token = cc.json()["access_token"]
    assert _body(_introspect(live, rs, cc_token))["active"] is True
    assert _body(_introspect(live, rs, member_token))["active"] is True

    s = live.db.session
    try:
        store.set_disabled(s, s.get(Client, app.client_id), True)
        store.delete(s, s.get(Client, machine.client_id))
        s.commit()
    finally:
        s.remove()
    live.server.clients.invalidate()  # what every node sees within the client cache's TTL

    assert _body(_introspect(live, rs, cc_token)) == {"active": False}
    assert _body(_introspect(live, rs, member_token)) == {"active": False}
    ui = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + member_token}, timeout=10)
    assert ui.status_code == 401 and 'error="invalid_token"' in ui.headers["WWW-Authenticate"]
