"""OIDC UserInfo at /oauth/userinfo (docs/requirements.md: A23-109, A23-111).

The query-string token (A.1 item 5) is tested in test_token_transport.py."""
from __future__ import annotations

import datetime as dt

import jwt
import requests
import time_machine

from tests.browser import Browser
from tests.helpers import auth_params, pkce_pair, redirect_params


def _userinfo(live, at, method="GET"):
    return requests.request(method, live.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {at}"},
                            timeout=10)


def _sub(id_token):
    return jwt.decode(id_token, options={"verify_signature": False})["sub"]


def _bearer_error(resp, status, error):
    assert resp.status_code == status, (resp.status_code, resp.text)
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert f'error="{error}"' in challenge, challenge
    assert resp.json()["error"] == error
    assert "sub" not in resp.json()


# --- item 109 -------------------------------------------------------------------------


def test_a23_109_get_and_post_with_bearer_header(live, make_client, tokens_for):
    """OIDC Core §5.3.1: GET and POST both work with a Bearer token in the
    Authorization header; the answer is JSON and not cached."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    for method in ("GET", "POST"):
        resp = _userinfo(live, at, method)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/json")
        assert "no-store" in resp.headers["Cache-Control"]
        assert resp.json()["sub"]


def test_a23_109_bearer_scheme_is_case_insensitive(live, make_client, tokens_for):
    """RFC 7235 §2.1: the auth scheme name is case-insensitive."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    resp = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": f"bearer {at}"}, timeout=10)
    assert resp.status_code == 200, resp.text


def test_a23_109_token_without_openid_is_insufficient_scope(live, make_client, tokens_for):
    """OIDC Core §5.3.1: the token must carry the openid scope; without it 403
    insufficient_scope (RFC 6750 §3.1)."""
    c = make_client()
    at = tokens_for(c, scope="profile email")["access_token"]
    _bearer_error(_userinfo(live, at), 403, "insufficient_scope")


def test_a23_109_form_body_token_refused_by_policy(live, make_client, tokens_for):
    """Documented policy (web/endpoints.py): the token is read from the
    Authorization header only; a form-body token (RFC 6750 §2.2, a MAY for
    servers) gets 400 invalid_request rather than being silently ignored."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    resp = requests.post(live.url + "/oauth/userinfo", data={"access_token": at}, timeout=10)
    _bearer_error(resp, 400, "invalid_request")


# --- item 110 -------------------------------------------------------------------------


def test_a23_110_sub_equals_id_token_sub(live, make_client, tokens_for):
    """OIDC Core §5.3.2: sub is always returned and equals the id token's sub."""
    c = make_client()
    t = tokens_for(c)
    body = _userinfo(live, t["access_token"]).json()
    assert body["sub"] == _sub(t["id_token"])


def test_a23_110_claims_follow_the_scopes(live, make_client, tokens_for):
    """OIDC Core §5.4: profile and email claims only with their scopes; claims
    without a value are left out, never null."""
    c = make_client()
    only_openid = _userinfo(live, tokens_for(c, scope="openid")["access_token"]).json()
    assert "email" not in only_openid and "name" not in only_openid and "email_verified" not in only_openid
    assert only_openid["organization_id"]  # the organization rides with openid

    with_email = _userinfo(live, tokens_for(c, scope="openid email")["access_token"]).json()
    assert with_email["email"] == "alice@acme.test"
    assert with_email["email_verified"] is True
    assert "name" not in with_email and "roles" not in with_email

    with_profile = _userinfo(live, tokens_for(c, scope="openid profile")["access_token"]).json()
    assert with_profile["name"] == "Alice Admin"  # the emulator's seeded Acme admin
    assert "email" not in with_profile

    for body in (only_openid, with_email, with_profile):
        assert None not in body.values()
        assert len({only_openid["sub"], with_email["sub"], with_profile["sub"]}) == 1


def test_a23_110_narrowed_refresh_narrows_userinfo(live, make_client, tokens_for):
    """The claims follow the access token's scope, also after a narrowing refresh."""
    c = make_client()
    t = tokens_for(c, scope="openid profile email")
    r = requests.post(live.url + "/oauth/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": t["refresh_token"], "scope": "openid"},
                      auth=(c.client_id, c.client_secret), timeout=10).json()
    body = _userinfo(live, r["access_token"]).json()
    assert "email" not in body and "name" not in body
    assert body["sub"] == _sub(t["id_token"])


def test_a23_110_other_member_gets_their_own_claims(live, make_client, token_post):
    """Two members of two organizations get their own sub and claims."""
    c = make_client()
    subs = set()
    for email in ("alice@acme.test", "bob@globex.test"):
        b = Browser(live, email=email)
        verifier, challenge = pkce_pair()
        code = redirect_params(b.authorize(auth_params(c, challenge)))["code"]
        t = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                       auth=(c.client_id, c.client_secret)).json()
        body = _userinfo(live, t["access_token"]).json()
        assert body["email"] == email
        subs.add(body["sub"])
    assert len(subs) == 2


# --- item 111 -------------------------------------------------------------------------


def test_a23_111_missing_token_is_401_with_bearer_challenge(live):
    """RFC 6750 §3 / §3.1: no token → 401 with a Bearer challenge (and no error
    code is required when no credentials were sent)."""
    resp = requests.get(live.url + "/oauth/userinfo", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    basic = requests.get(live.url + "/oauth/userinfo", auth=("a", "b"), timeout=10)
    assert basic.status_code == 401
    assert basic.headers["WWW-Authenticate"].startswith("Bearer")


def test_a23_111_invalid_token_is_401_invalid_token(live, make_client, tokens_for):
    """OIDC Core §5.3.3: a bad token → 401 with WWW-Authenticate: Bearer
    error="invalid_token"; an id token is not an access token either."""
    c = make_client()
    t = tokens_for(c)
    for bad in ("garbage", t["access_token"][:-4] + "AAAA", t["id_token"]):
        _bearer_error(_userinfo(live, bad), 401, "invalid_token")


def test_a23_111_expired_token_is_401_invalid_token(live, make_client, tokens_for):
    """An expired access token → 401 invalid_token (frozen clock)."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=live.settings.access_token_ttl + 1)
    try:
        with time_machine.travel(later, tick=False):
            _bearer_error(_userinfo(live, at), 401, "invalid_token")
    finally:
        live.server.keys.invalidate()
        live.server.clients.invalidate()


def test_a23_111_token_of_another_issuer_is_invalid(live, make_server_with, make_client, tokens_for):
    """A token whose ``iss`` is another issuer is invalid_token here, although
    that server shares our database and so our signing keys."""
    other = make_server_with()
    c = make_client()
    b = Browser(other)
    verifier, challenge = pkce_pair()
    code = redirect_params(b.authorize(auth_params(c, challenge)))["code"]
    t = requests.post(other.url + "/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                        "code_verifier": verifier},
                      auth=(c.client_id, c.client_secret), timeout=10).json()
    assert _userinfo(other, t["access_token"]).status_code == 200
    _bearer_error(_userinfo(live, t["access_token"]), 401, "invalid_token")


# --- one decision about access tokens --------------------------


def test_userinfo_refuses_the_token_of_a_member_removed_in_stytch(live, make_server_with, make_client):
    """Once Stytch deletes the member, userinfo answers 401
    invalid_token for their still unexpired access token, as introspection
    already says inactive: one function decides whether an access token is
    active (signature, expiry, revocation, grant, member still in Stytch)."""
    import secrets
    import warnings

    import stytch

    from tests.helpers import introspect, resource_server

    srv = make_server_with(member_check_seconds=0)
    c = make_client()
    rs = resource_server(live, make_client, default_audience=srv.url, introspection_resources=(srv.url,))
    email = f"jit-{secrets.token_hex(4)}@globex.test"  # a new member: never delete the seeded ones
    verifier, challenge = pkce_pair()
    got = redirect_params(Browser(srv, email).authorize(auth_params(c, challenge, scope="openid email")))
    resp = requests.post(srv.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": c.redirect_uri,
        "code_verifier": verifier}, auth=(c.client_id, c.client_secret), timeout=10)
    assert resp.status_code == 200, resp.text
    at = resp.json()["access_token"]
    assert _userinfo(srv, at).status_code == 200
    assert introspect(srv, rs, at)["active"] is True

    state = requests.get(srv.stytch_url + "/emulator/state", timeout=10).json()
    member = next(m for m in state["members"] if m["email_address"] == email)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        admin = stytch.B2BClient(srv.settings.stytch_project_id, srv.settings.stytch_secret,
                                 environment=srv.stytch_url, suppress_warnings=True)
    admin.organizations.members.delete(organization_id=member["organization_id"], member_id=member["member_id"])

    assert introspect(srv, rs, at) == {"active": False}
    _bearer_error(_userinfo(srv, at), 401, "invalid_token")
