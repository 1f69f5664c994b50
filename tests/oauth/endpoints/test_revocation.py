"""RFC 7009 token revocation at /oauth/revoke (docs/requirements.md: A11-62, A11-65)."""
from __future__ import annotations

import requests
from tests.helpers import introspect as _introspect, post_as_client, refresh, refresh_token_active, resource_server

PUBLIC_REDIRECT = ("http://127.0.0.1/callback",)


def _revoke(live, client, token, hint=None, auth="basic"):
    return post_as_client(live, "/oauth/revoke", client, auth, token=token, token_type_hint=hint)


def _userinfo(live, at):
    return requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + at}, timeout=10)


def _ok200(resp):
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")


def test_a11_62_revoked_refresh_token_is_refused_at_token(live, make_client, tokens_for):
    """RFC 7009 §2: refresh tokens can be revoked; afterwards /oauth/token answers
    invalid_grant."""
    c = make_client()
    t = tokens_for(c)
    _ok200(_revoke(live, c, t["refresh_token"], hint="refresh_token"))
    r = refresh(live, c, t["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_a11_62_revocation_endpoint_advertised(live):
    """RFC 8414 §2 / RFC 7009: revocation_endpoint with its auth methods, ``none``
    included (public clients revoke too)."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        meta = requests.get(live.url + path, timeout=10).json()
        assert meta["revocation_endpoint"] == live.url + "/oauth/revoke"
        assert set(meta["revocation_endpoint_auth_methods_supported"]) == {
            "client_secret_basic", "client_secret_post", "none", "private_key_jwt"}


def test_a11_62_access_token_revocation(live, make_client, tokens_for):
    """RFC 7009 §2 [SHOULD]: access tokens can be revoked too; the revoked JWT is
    inactive at introspection and refused at userinfo."""
    c = make_client()
    rs = resource_server(live, make_client)
    t = tokens_for(c)
    assert _userinfo(live, t["access_token"]).status_code == 200
    _ok200(_revoke(live, c, t["access_token"], hint="access_token"))
    assert _introspect(live, rs, t["access_token"]) == {"active": False}
    assert _userinfo(live, t["access_token"]).status_code == 401


def test_a11_62_revoking_an_access_token_leaves_the_refresh_token(live, make_client, tokens_for):
    """RFC 7009 §2.1 [MAY] is not taken: revoking only the access token keeps the
    grant, so its refresh token still works (and mints a fresh access token)."""
    c = make_client()
    t = tokens_for(c)
    _ok200(_revoke(live, c, t["access_token"]))
    r = refresh(live, c, t["refresh_token"])
    assert r.status_code == 200, r.text
    assert _userinfo(live, r.json()["access_token"]).status_code == 200


def test_a11_62_client_credentials_token_revocation(live, make_client):
    """A client-credentials token (no grant behind it) is revocable by its client."""
    c = make_client(grant_types=("client_credentials",), redirect_uris=())
    rs = resource_server(live, make_client)
    at = requests.post(live.url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(c.client_id, c.client_secret), timeout=10).json()["access_token"]
    assert _introspect(live, rs, at)["active"] is True
    _ok200(_revoke(live, c, at))
    assert _introspect(live, rs, at) == {"active": False}


def test_a11_63_public_client_revokes_with_client_id(live, make_client, tokens_for):
    """RFC 7009 §2.1: a public client just identifies itself (auth method none,
    Authlib defaults to Basic only, D-2)."""
    c = make_client(client_type="third_party_public", redirect_uris=PUBLIC_REDIRECT)
    t = tokens_for(c)
    _ok200(_revoke(live, c, t["refresh_token"], auth="none"))
    assert not refresh_token_active(live, t["refresh_token"])
    r = refresh(live, c, t["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a11_63_client_secret_post_revocation(live, make_client, get_code):
    """A client registered for client_secret_post revokes with it."""
    c = make_client(auth_method="client_secret_post")
    code, verifier, _ = get_code(c)
    t = requests.post(live.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "client_id": c.client_id, "client_secret": c.client_secret}, timeout=10).json()
    bad = _revoke(live, c, t["refresh_token"], auth="basic")  # not its registered method
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    _ok200(_revoke(live, c, t["refresh_token"], auth="post"))
    r = requests.post(live.url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": t["refresh_token"],
        "client_id": c.client_id, "client_secret": c.client_secret}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_a11_63_another_clients_token_is_not_revoked(live, make_client, tokens_for):
    """RFC 7009 §2.1: the token must belong to the requesting client; another
    client's request is answered 200 (policy: reveal nothing) and revokes nothing."""
    a = make_client()
    b = make_client()
    pub = make_client(client_type="third_party_public", redirect_uris=PUBLIC_REDIRECT)
    rs = resource_server(live, make_client)
    t = tokens_for(a)
    _ok200(_revoke(live, b, t["refresh_token"]))
    _ok200(_revoke(live, b, t["access_token"]))
    _ok200(_revoke(live, pub, t["refresh_token"], auth="none"))
    assert refresh_token_active(live, t["refresh_token"])
    assert _introspect(live, rs, t["access_token"])["active"] is True
    assert refresh(live, a, t["refresh_token"]).status_code == 200


def test_a11_63_wrong_hint_still_finds_the_token(live, make_client, tokens_for):
    """RFC 7009 §2.1: a wrong token_type_hint makes the server search the other
    types."""
    c = make_client()
    rs = resource_server(live, make_client)
    t1 = tokens_for(c)
    _ok200(_revoke(live, c, t1["refresh_token"], hint="access_token"))
    assert not refresh_token_active(live, t1["refresh_token"])
    t2 = tokens_for(c)
    _ok200(_revoke(live, c, t2["access_token"], hint="refresh_token"))
    assert _introspect(live, rs, t2["access_token"]) == {"active": False}


def test_a11_63_client_must_authenticate(live, make_client, tokens_for):
    """RFC 7009 §2.1: a confidential client authenticates; a bad or missing
    secret gets 401 invalid_client, and the token stays active."""
    c = make_client()
    t = tokens_for(c)
    bad = requests.post(live.url + "/oauth/revoke", data={"token": t["refresh_token"]},
                        auth=(c.client_id, "wrong"), timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client", bad.text
    assert bad.headers["WWW-Authenticate"].startswith("Basic ")
    anon = requests.post(live.url + "/oauth/revoke", data={"token": t["refresh_token"]}, timeout=10)
    assert anon.status_code == 401 and anon.json()["error"] == "invalid_client", anon.text
    only_id = _revoke(live, c, t["refresh_token"], auth="none")  # confidential client without its secret
    assert only_id.status_code == 401 and only_id.json()["error"] == "invalid_client", only_id.text
    assert refresh_token_active(live, t["refresh_token"])


def test_a11_63_token_parameter_is_required(live, make_client):
    """RFC 7009 §2.1: ``token`` is REQUIRED: invalid_request without it."""
    c = make_client()
    resp = requests.post(live.url + "/oauth/revoke", data={"token_type_hint": "refresh_token"},
                         auth=(c.client_id, c.client_secret), timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text


def test_a11_64_unknown_or_already_revoked_token_is_200(live, make_client, tokens_for):
    """RFC 7009 §2.2: 200 whether the token was revoked, already invalid, or
    never existed."""
    c = make_client()
    _ok200(_revoke(live, c, "a-random-string-that-is-no-token"))
    _ok200(_revoke(live, c, "e30.e30.c2ln"))  # JWT-shaped garbage
    t = tokens_for(c)
    _ok200(_revoke(live, c, t["refresh_token"]))
    _ok200(_revoke(live, c, t["refresh_token"]))
    _ok200(_revoke(live, c, t["access_token"]))


def test_a11_64_unsupported_token_type_hint(live, make_client):
    """RFC 7009 §2.2.1: an unsupported token_type_hint gets unsupported_token_type,
    a 400 JSON error (RFC 6749 §5.2)."""
    c = make_client()
    resp = _revoke(live, c, "whatever", hint="id_token")
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_token_type", resp.text
    assert resp.headers["Content-Type"].startswith("application/json")


def test_a11_65_revoking_refresh_token_kills_its_access_tokens(live, make_client, tokens_for):
    """RFC 7009 §2.1 [SHOULD]: revoking a refresh token also invalidates the access
    tokens of the same grant, and only of that grant."""
    c = make_client()
    rs = resource_server(live, make_client)
    t = tokens_for(c)
    r = refresh(live, c, t["refresh_token"]).json()  # a second access token of the grant
    other = tokens_for(c)  # another grant of the same client and member
    _ok200(_revoke(live, c, r["refresh_token"]))
    assert _introspect(live, rs, t["access_token"]) == {"active": False}
    assert _introspect(live, rs, r["access_token"]) == {"active": False}
    assert _userinfo(live, r["access_token"]).status_code == 401
    assert _introspect(live, rs, other["access_token"])["active"] is True
    assert refresh(live, c, other["refresh_token"]).status_code == 200
