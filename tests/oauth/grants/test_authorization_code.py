"""Redeeming authorization codes at /oauth/token: client authentication
(docs/requirements.md: A2-7, A2-10), the code's binding, single use and replay
revocation, the success body and the error codes (A.6 items 38-42)."""
from __future__ import annotations

import base64
from urllib.parse import quote

import requests

from authz_server.models import Client
from authz_server.security import digest
from tests.helpers import (audit_rows as _audit, frozen as _frozen, introspect as _introspect, oauth_error,
                           refresh_token_active, register_resources, resource_server)


def _redeem(token_post, client, code, verifier, auth="basic", **extra):
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": client.redirect_uri, **extra}
    if auth == "basic":
        return token_post(data, auth=(client.client_id, client.client_secret))
    if auth == "post":
        return token_post({**data, "client_id": client.client_id, "client_secret": client.client_secret})
    return token_post({**data, "client_id": client.client_id})


def _basic(client_id, secret, encode=True):
    if encode:
        client_id, secret = quote(client_id, safe=""), quote(secret, safe="")
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- A.2 client identification and authentication ----------------------------------


def test_a2_7_basic_secret_with_reserved_characters_percent_encoded(live, make_client, token_post):
    """RFC 6749 §2.3.1: client_secret_basic id and secret are form-url-encoded
    before base64; a secret holding '%', '+' and ':' works when percent-encoded."""
    c = make_client(grant_types=("client_credentials",))
    secret = "s3cr%t+with:colon/and%2Bplus"
    s = live.db.session
    try:
        s.get(Client, c.client_id).client_secret_hash = digest(secret)
        s.commit()
    finally:
        s.remove()
    live.server.clients.invalidate(c.client_id)
    ok = token_post({"grant_type": "client_credentials"},
                    headers={"Authorization": _basic(c.client_id, secret)})
    assert ok.status_code == 200, ok.text
    # Sent without the encoding, '%2B' decodes to '+' and the secret no longer matches.
    bad = token_post({"grant_type": "client_credentials"},
                     headers={"Authorization": _basic(c.client_id, secret, encode=False)})
    oauth_error(bad, 401, "invalid_client")


def test_a2_7_minted_secrets_need_no_encoding(live, make_client, token_post):
    """docs/requirements.md: A2-7: minted ids and secrets use unreserved
    characters only, so clients that skip the encoding (TS SDK 1.x) still work."""
    c = make_client(grant_types=("client_credentials",))
    unreserved = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert set(c.client_id) <= unreserved and set(c.client_secret) <= unreserved
    for encode in (True, False):
        resp = token_post({"grant_type": "client_credentials"},
                          headers={"Authorization": _basic(c.client_id, c.client_secret, encode)})
        assert resp.status_code == 200, resp.text


def test_a2_7_client_secret_post(live, make_client, get_code, token_post):
    """OAuth 2.1 §2.4.1: client_secret_post is supported for a client registered
    with it."""
    c = make_client(auth_method="client_secret_post")
    code, verifier, _ = get_code(c)
    resp = _redeem(token_post, c, code, verifier, auth="post")
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"


def test_a2_8_public_client_redeems_code_with_client_id_only(live, make_client, get_code, token_post):
    """OAuth 2.1 §4.1.3: a public client (auth method none) redeems its code by
    sending only client_id (Authlib leaves 'none' out, D-2)."""
    for ctype in ("third_party_public", "first_party_public"):
        c = make_client(client_type=ctype, redirect_uris=("http://127.0.0.1/callback",))
        assert c.client_secret is None
        code, verifier, _ = get_code(c)
        resp = _redeem(token_post, c, code, verifier, auth="none")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["access_token"] and body["refresh_token"] and body["id_token"]


def test_a2_8_public_client_must_identify_itself(live, make_client, get_code, token_post):
    """Without client_id a public client is not identified: invalid_client, and
    the code survives for the real client."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/callback",))
    code, verifier, _ = get_code(c)
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier})
    oauth_error(resp, 401, "invalid_client")
    assert _redeem(token_post, c, code, verifier, auth="none").status_code == 200


def test_a2_9_basic_with_matching_body_client_id(live, make_client, get_code, token_post):
    """RFC 6749 §3.2.1: Basic plus a body client_id naming the same client is
    accepted (Python SDK 2.x always sends it)."""
    c = make_client()
    code, verifier, _ = get_code(c)
    resp = _redeem(token_post, c, code, verifier, client_id=c.client_id)
    assert resp.status_code == 200, resp.text


def test_a2_9_basic_with_mismatched_body_client_id(live, make_client, get_code, token_post):
    """docs/requirements.md: A2-9: a body client_id different from the Basic
    credentials gets invalid_client (401, Basic challenge)."""
    a = make_client()
    b = make_client()
    code, verifier, _ = get_code(a)
    resp = _redeem(token_post, a, code, verifier, client_id=b.client_id)
    oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert _redeem(token_post, a, code, verifier).status_code == 200  # nothing was consumed


def test_a2_9_client_must_use_its_registered_method(live, make_client, get_code, token_post):
    """RFC 6749 §3.2.1: a confidential client authenticates with the method it
    registered: a Basic client's secret in the body, a post client's secret in
    Basic, and a confidential client sending only client_id are all refused."""
    basic = make_client()
    code, verifier, _ = get_code(basic)
    oauth_error(_redeem(token_post, basic, code, verifier, auth="post"), 401, "invalid_client")
    oauth_error(_redeem(token_post, basic, code, verifier, auth="none"), 401, "invalid_client")
    post = make_client(auth_method="client_secret_post")
    code2, verifier2, _ = get_code(post)
    oauth_error(_redeem(token_post, post, code2, verifier2, auth="basic"), 401, "invalid_client")
    # The refused attempts consumed nothing.
    assert _redeem(token_post, basic, code, verifier).status_code == 200
    assert _redeem(token_post, post, code2, verifier2, auth="post").status_code == 200


def test_a2_10_bad_basic_secret_is_401_with_basic_challenge(live, make_client, get_code, token_post):
    """RFC 6749 §5.2: failed authentication through the Authorization header is
    401 invalid_client with WWW-Authenticate: Basic."""
    c = make_client()
    code, verifier, _ = get_code(c)
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                      auth=(c.client_id, c.client_secret + "x"))
    oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    unknown = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                         auth=("client-unknown", "whatever"))
    oauth_error(unknown, 401, "invalid_client")
    assert unknown.headers["WWW-Authenticate"].startswith("Basic ")


def test_a2_10_bad_post_secret_is_invalid_client(live, make_client, get_code, token_post):
    """RFC 6749 §5.2: a wrong client_secret_post secret is invalid_client too."""
    c = make_client(auth_method="client_secret_post")
    code, verifier, _ = get_code(c)
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                       "client_id": c.client_id, "client_secret": "wrong"})
    oauth_error(resp, 401, "invalid_client")


def test_a2_10_disabled_client_is_invalid_client(live, make_client, get_code, token_post):
    """A disabled client cannot authenticate any more: invalid_client."""
    from authz_server.clock import utcnow

    c = make_client()
    code, verifier, _ = get_code(c)
    s = live.db.session
    try:
        s.get(Client, c.client_id).disabled_at = utcnow()
        s.commit()
    finally:
        s.remove()
    live.server.clients.invalidate(c.client_id)
    oauth_error(_redeem(token_post, c, code, verifier), 401, "invalid_client")


# --- A.6 redeeming codes -----------------------------------------------------------


def test_a6_38_code_of_another_client_is_invalid_grant(live, make_client, get_code, token_post):
    """RFC 6749 §4.1.3: the code must have been issued to the authenticated
    client; client B redeeming A's code gets invalid_grant, and A's code is not
    burned by B's attempt."""
    a = make_client()
    b = make_client(redirect_uris=(a.redirect_uri,))
    pub = make_client(client_type="third_party_public", redirect_uris=(a.redirect_uri,))
    code, verifier, _ = get_code(a)
    oauth_error(_redeem(token_post, b, code, verifier), 400, "invalid_grant")
    oauth_error(_redeem(token_post, pub, code, verifier, auth="none"), 400, "invalid_grant")
    assert _redeem(token_post, a, code, verifier).status_code == 200
    assert _audit(live, "code_replayed") == []


def test_a6_38_expired_code_is_invalid_grant(live, make_client, get_code, token_post):
    """RFC 6749 §4.1.2: a code older than its lifetime gets invalid_grant."""
    c = make_client()
    code, verifier, _ = get_code(c)
    with _frozen(live, live.settings.code_ttl + 5):
        resp = _redeem(token_post, c, code, verifier)
    oauth_error(resp, 400, "invalid_grant")


def test_a6_38_code_just_inside_its_lifetime_works(live, make_client, get_code, token_post):
    """The control for the expiry test: a code redeemed before its lifetime ends works."""
    c = make_client()
    code, verifier, _ = get_code(c)
    with _frozen(live, live.settings.code_ttl - 10):
        resp = _redeem(token_post, c, code, verifier)
    assert resp.status_code == 200, resp.text


def test_a6_38_no_id_token_without_openid(live, make_client, get_code, token_post):
    """OIDC Core §3.1.3.2: an id token only for a code from an OpenID request
    (scope holds openid)."""
    c = make_client()
    code, verifier, _ = get_code(c, scope="profile")
    resp = _redeem(token_post, c, code, verifier)
    assert resp.status_code == 200, resp.text
    assert "id_token" not in resp.json()
    assert resp.json()["scope"] == "profile"


def test_a6_39_second_redemption_is_refused_and_revokes(live, make_client, get_code, token_post):
    """OAuth 2.1 §4.1.3 / §7.5.3: a code yields tokens once; a second valid
    redemption gets invalid_grant, the tokens of the first become inactive, and
    the replay is audited as code_replayed."""
    c = make_client()
    rs = resource_server(live, make_client)
    code, verifier, _ = get_code(c)
    first = _redeem(token_post, c, code, verifier)
    assert first.status_code == 200, first.text
    t = first.json()
    assert _introspect(live, rs, t["access_token"])["active"] is True
    assert refresh_token_active(live, t["refresh_token"])

    second = _redeem(token_post, c, code, verifier)
    oauth_error(second, 400, "invalid_grant")

    assert _introspect(live, rs, t["access_token"]) == {"active": False}
    assert not refresh_token_active(live, t["refresh_token"])
    refresh = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]},
                         auth=(c.client_id, c.client_secret))
    oauth_error(refresh, 400, "invalid_grant")
    ui = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + t["access_token"]},
                      timeout=10)
    assert ui.status_code == 401
    events = _audit(live, "code_replayed")
    assert len(events) == 1
    assert events[0].client_id == c.client_id and events[0].grant_id


def test_a6_39_replay_also_revokes_rotated_descendants(live, make_client, get_code, token_post):
    """Every token issued from the code is revoked, also refresh tokens rotated
    from the first one."""
    c = make_client()
    rs = resource_server(live, make_client)
    auth = (c.client_id, c.client_secret)
    code, verifier, _ = get_code(c)
    t = _redeem(token_post, c, code, verifier).json()
    r = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, auth=auth)
    assert r.status_code == 200
    t2 = r.json()
    oauth_error(_redeem(token_post, c, code, verifier), 400, "invalid_grant")
    assert _introspect(live, rs, t2["access_token"]) == {"active": False}
    assert not refresh_token_active(live, t2["refresh_token"])


def test_a6_39_replay_by_public_client_revokes(live, make_client, get_code, token_post):
    """The same for a public client, which proves possession only by the verifier."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/callback",))
    rs = resource_server(live, make_client)
    code, verifier, _ = get_code(c)
    t = _redeem(token_post, c, code, verifier, auth="none").json()
    oauth_error(_redeem(token_post, c, code, verifier, auth="none"), 400, "invalid_grant")
    assert not refresh_token_active(live, t["refresh_token"])
    assert _introspect(live, rs, t["access_token"]) == {"active": False}


def test_a6_39_replay_with_wrong_verifier_does_not_revoke(live, make_client, get_code, token_post):
    """OAuth 2.1 §7.5.3 [SHOULD NOT]: a replay that fails another check (a wrong
    verifier) is refused without revoking anything, or it would be a DoS lever."""
    c = make_client()
    rs = resource_server(live, make_client)
    code, verifier, _ = get_code(c)
    t = _redeem(token_post, c, code, verifier).json()
    wrong = _redeem(token_post, c, code, "w" * 43)
    oauth_error(wrong, 400, "invalid_grant")
    assert _introspect(live, rs, t["access_token"])["active"] is True
    assert refresh_token_active(live, t["refresh_token"])
    assert _audit(live, "code_replayed") == []
    r = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]},
                   auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text


def test_a6_39_replay_with_wrong_client_auth_does_not_revoke(live, make_client, get_code, token_post):
    """A replay that fails client authentication revokes nothing either."""
    c = make_client()
    code, verifier, _ = get_code(c)
    t = _redeem(token_post, c, code, verifier).json()
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                      auth=(c.client_id, "not-the-secret"))
    oauth_error(resp, 401, "invalid_client")
    assert refresh_token_active(live, t["refresh_token"])
    assert _audit(live, "code_replayed") == []


def test_a6_40_success_body(live, make_client, get_code, token_post):
    """RFC 6749 §5.1: access_token, token_type "Bearer", integer expires_in
    (always sent, item 40 [POLICY]), the granted scope, and no null member."""
    c = make_client()
    code, verifier, _ = get_code(c, scope="openid profile")
    resp = _redeem(token_post, c, code, verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] == live.settings.access_token_ttl
    assert body["scope"] == "openid profile"
    assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    assert isinstance(body["id_token"], str) and body["id_token"].count(".") == 2
    assert None not in body.values()
    assert set(body) <= {"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token"}


def test_a6_41_missing_grant_type_is_invalid_request(live, make_client, token_post):
    """RFC 6749 §5.2: a missing required parameter is invalid_request (not
    unsupported_grant_type)."""
    c = make_client(grant_types=("client_credentials",))
    oauth_error(token_post({"scope": "openid"}, auth=(c.client_id, c.client_secret)), 400, "invalid_request")


def test_a6_41_error_codes(live, make_client, get_code, token_post):
    """RFC 6749 §5.2 / RFC 8707 §2: each error condition gets its code and status,
    as a JSON body."""
    c = make_client()
    auth = (c.client_id, c.client_secret)
    code, verifier, _ = get_code(c)
    # invalid_request: a required parameter is missing.
    oauth_error(token_post({"grant_type": "authorization_code", "code_verifier": verifier}, auth=auth),
           400, "invalid_request")
    # unsupported_grant_type: implicit/password are not token grants here (OAuth 2.1 §10.1).
    oauth_error(token_post({"grant_type": "password", "username": "a", "password": "b"}, auth=auth),
           400, "unsupported_grant_type")
    oauth_error(token_post({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, auth=auth),
           400, "unsupported_grant_type")
    # unauthorized_client: a client not registered for the grant.
    oauth_error(token_post({"grant_type": "client_credentials"}, auth=auth), 400, "unauthorized_client")
    # invalid_target: a resource that was not part of the authorization (RFC 8707 §2.2).
    oauth_error(_redeem(token_post, c, code, verifier, resource="https://other.example/mcp"), 400, "invalid_target")
    # invalid_grant: an unknown code.
    oauth_error(_redeem(token_post, c, "not-a-code", verifier), 400, "invalid_grant")
    # invalid_client: 401 with a Basic challenge.
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                      auth=(c.client_id, "x"))
    oauth_error(resp, 401, "invalid_client")
    assert "WWW-Authenticate" in resp.headers
    # None of the failures above used the code up.
    assert _redeem(token_post, c, code, verifier).status_code == 200


def test_a6_41_code_only_client_refused_code_grant_by_registration(live, make_client, token_post):
    """unauthorized_client also for a client without the authorization_code grant."""
    c = make_client(grant_types=("client_credentials",), redirect_uris=())
    resp = token_post({"grant_type": "authorization_code", "code": "x", "code_verifier": "v" * 43},
                      auth=(c.client_id, c.client_secret))
    oauth_error(resp, 400, "unauthorized_client")


def test_a6_42_used_expired_unknown_codes_get_invalid_grant(live, make_client, get_code, token_post):
    """docs/requirements.md: A6-42: an expired, used or unknown code is
    invalid_grant, never invalid_client (TS SDK 1.x would drop the registration)."""
    c = make_client()
    code, verifier, _ = get_code(c)
    assert _redeem(token_post, c, code, verifier).status_code == 200
    oauth_error(_redeem(token_post, c, code, verifier), 400, "invalid_grant")
    code2, verifier2, _ = get_code(c)
    with _frozen(live, live.settings.code_ttl + 1):
        oauth_error(_redeem(token_post, c, code2, verifier2), 400, "invalid_grant")
    oauth_error(_redeem(token_post, c, "x" * 43, verifier), 400, "invalid_grant")


def test_client_with_a_resource_allow_list_is_limited_in_member_flows(live, make_client, browser):
    """In a member's authorization the consent gates
    resources, so a client without a list may name any registered resource; a
    client an operator limited to some resources gets invalid_target for
    another one (RFC 8707 §2) and invalid_scope for its scopes, on the redirect."""
    from tests.helpers import auth_params, pkce_pair, redirect_params

    files, mail = "https://files.example/mcp", "https://mail.example/mcp"
    register_resources(live, {files: ["files:read"], mail: ["mail:send"]})
    limited = make_client(allowed_resources=(files,))
    free = make_client()
    _, challenge = pkce_pair()
    for params, error in (({"resource": mail}, "invalid_target"), ({"scope": "openid mail:send"}, "invalid_scope")):
        got = redirect_params(browser.authorize(auth_params(limited, challenge, **params)))
        assert got.get("error") == error, (params, got)
    assert "code" in redirect_params(browser.authorize(auth_params(limited, challenge, resource=files,
                                                                   scope="openid files:read")))
    assert "code" in redirect_params(browser.authorize(auth_params(free, challenge, resource=mail,
                                                                   scope="openid mail:send")))
