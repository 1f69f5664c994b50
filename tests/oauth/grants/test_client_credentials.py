"""The client-credentials grant (RFC 6749 §4.4): a machine client acting as
itself. ``sub`` is the client id (RFC 9068 §2.2), no refresh token (RFC 6749
§4.4.3), no member scopes, audience by resource indicator (RFC 8707)."""
from __future__ import annotations

import jwt
import pytest
import requests

from tests.helpers import oauth_error, register_resources

FILES = "https://files.example/mcp"


@pytest.fixture
def files_resource(live):
    register_resources(live, {FILES: ["files:read", "files:write"]})
    return FILES


def _cc(token_post, client, **data):
    return token_post({"grant_type": "client_credentials", **data}, auth=(client.client_id, client.client_secret))


def _decode(live, token, audience):
    jwks = requests.get(live.url + "/.well-known/jwks.json", timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    return jwt.decode(token, key, algorithms=["ES256", "RS256"], audience=audience, issuer=live.url)


def _machine(make_client, **kw):
    kw.setdefault("redirect_uris", ())
    return make_client(grant_types=("client_credentials",), **kw)


def test_cc_token_is_about_the_client(live, make_client, token_post):
    """RFC 9068 §2.2: with no member, ``sub`` is the client id; the token names
    the client in client_id too."""
    c = _machine(make_client)
    resp = _cc(token_post, c)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    claims = _decode(live, body["access_token"], live.url)
    assert claims["sub"] == c.client_id
    assert claims["client_id"] == c.client_id
    assert "auth_time" not in claims and "organization_id" not in claims


def test_cc_issues_no_refresh_or_id_token(live, make_client, token_post):
    """RFC 6749 §4.4.3: a refresh token SHOULD NOT be included; with no member
    there is no id token. The body is a plain Bearer response."""
    c = make_client(grant_types=("client_credentials", "refresh_token"), redirect_uris=())
    body = _cc(token_post, c).json()
    assert "refresh_token" not in body and "id_token" not in body
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] == live.settings.access_token_ttl
    assert None not in body.values()


@pytest.mark.parametrize("scope", ["openid", "profile", "email", "offline_access", "openid email"])
def test_cc_member_scopes_refused(live, make_client, token_post, scope):
    """Member scopes make no sense without a member: invalid_scope."""
    c = _machine(make_client)
    oauth_error(_cc(token_post, c, scope=scope), 400, "invalid_scope")


def test_cc_member_scope_refused_next_to_a_resource_scope(live, make_client, token_post, files_resource):
    """One member scope in the request spoils it: invalid_scope, nothing issued."""
    c = _machine(make_client)
    oauth_error(_cc(token_post, c, scope="files:read openid"), 400, "invalid_scope")


def test_cc_resource_scopes_within_the_registration(live, make_client, token_post, files_resource):
    """A client registered with a scope list may ask within it, not beyond it;
    unknown scopes are invalid_scope."""
    c = _machine(make_client, scopes=("files:read",), allowed_resources=(FILES,))
    ok = _cc(token_post, c, scope="files:read")
    assert ok.status_code == 200, ok.text
    assert ok.json()["scope"] == "files:read"
    oauth_error(_cc(token_post, c, scope="files:write"), 400, "invalid_scope")
    oauth_error(_cc(token_post, c, scope="files:delete"), 400, "invalid_scope")


def test_cc_default_scope_drops_member_scopes(live, make_client, token_post, files_resource):
    """No scope sent: the client's registered scopes, without the member ones."""
    c = _machine(make_client, scopes=("openid", "files:read", "email"), allowed_resources=(FILES,))
    body = _cc(token_post, c).json()
    assert body["scope"] == "files:read"
    assert _decode(live, body["access_token"], live.url)["scope"] == "files:read"


def test_cc_without_scopes_has_no_scope_member(live, make_client, token_post):
    """No scope at all: no ``scope`` in the body or the token, never null or ""."""
    c = _machine(make_client)
    body = _cc(token_post, c).json()
    assert "scope" not in body
    assert "scope" not in _decode(live, body["access_token"], live.url)


def test_cc_audience_default_and_resource(live, make_client, token_post, files_resource):
    """RFC 9068 §3 / RFC 8707: aud is the default audience (the issuer) without
    ``resource``, the resource when one is named; an unregistered one is
    invalid_target."""
    c = _machine(make_client, allowed_resources=(FILES,))
    plain = _cc(token_post, c).json()
    assert _decode(live, plain["access_token"], live.url)["aud"] == live.url
    bound = _cc(token_post, c, resource=FILES).json()
    assert _decode(live, bound["access_token"], FILES)["aud"] == FILES
    oauth_error(_cc(token_post, c, resource="https://unknown.example/mcp"), 400, "invalid_target")


def test_cc_client_not_registered_for_the_grant(live, make_client, token_post):
    """RFC 6749 §5.2: a client without the client_credentials grant gets
    unauthorized_client."""
    c = make_client()  # authorization_code + refresh_token
    oauth_error(_cc(token_post, c), 400, "unauthorized_client")


def test_cc_public_client_refused(live, make_client, token_post):
    """RFC 6749 §4.4: only confidential clients; a public client (auth none)
    cannot authenticate for this grant."""
    c = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/callback",))
    resp = token_post({"grant_type": "client_credentials", "client_id": c.client_id})
    oauth_error(resp, 401, "invalid_client")


def test_cc_bad_secret_is_invalid_client(live, make_client, token_post):
    """RFC 6749 §4.4.2 / §5.2: the client must authenticate."""
    c = _machine(make_client)
    resp = token_post({"grant_type": "client_credentials"}, auth=(c.client_id, "wrong"))
    oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    oauth_error(token_post({"grant_type": "client_credentials"}), 401, "invalid_client")


def test_cc_client_secret_post(live, make_client, token_post):
    """client_secret_post works for a client registered with it."""
    c = _machine(make_client, auth_method="client_secret_post")
    resp = token_post({"grant_type": "client_credentials", "client_id": c.client_id,
                       "client_secret": c.client_secret})
    assert resp.status_code == 200, resp.text


def test_cc_token_is_active_at_introspection_but_not_for_userinfo(live, make_client, token_post):
    """The token introspects as active with sub = client_id; userinfo, which is
    about a member, refuses it (OIDC Core §5.3.3: insufficient_scope)."""
    c = _machine(make_client, introspection_resources=(live.url,))
    at = _cc(token_post, c).json()["access_token"]
    info = requests.post(live.url + "/oauth/introspect", data={"token": at},
                         auth=(c.client_id, c.client_secret), timeout=10).json()
    assert info["active"] is True and info["sub"] == c.client_id and info["client_id"] == c.client_id
    ui = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + at}, timeout=10)
    assert ui.status_code == 403
    assert 'error="insufficient_scope"' in ui.headers["WWW-Authenticate"]


MAIL = "https://mail.example/mcp"


def test_client_credentials_reaches_only_the_resources_the_client_is_allowed(live, make_client, token_post,
                                                                             files_resource):
    """A client acting as itself gets a resource as audience, and that
    resource's scopes, only when an operator allowed it the resource (a
    per-client allow-list, like Hydra's audience list). Another registered
    resource is invalid_target (RFC 8707 §2), its scopes invalid_scope (RFC 6749
    §5.2); a client allowed nothing gets the default audience only."""
    register_resources(live, {MAIL: ["mail:send"]})
    files_only = _machine(make_client, allowed_resources=(FILES,))
    ok = _cc(token_post, files_only, scope="files:read", resource=FILES)
    assert ok.status_code == 200, ok.text
    claims = _decode(live, ok.json()["access_token"], FILES)
    assert claims["aud"] == FILES and claims["scope"] == "files:read"
    oauth_error(_cc(token_post, files_only, resource=MAIL), 400, "invalid_target")
    oauth_error(_cc(token_post, files_only, scope="mail:send"), 400, "invalid_scope")
    oauth_error(_cc(token_post, files_only, scope="mail:send", resource=FILES), 400, "invalid_scope")

    nothing = _machine(make_client)  # the default for an admin client: no resource
    oauth_error(_cc(token_post, nothing, resource=FILES), 400, "invalid_target")
    oauth_error(_cc(token_post, nothing, scope="files:read"), 400, "invalid_scope")
    plain = _cc(token_post, nothing)
    assert plain.status_code == 200, plain.text
    claims = _decode(live, plain.json()["access_token"], live.url)
    assert claims["aud"] == live.url and "scope" not in claims


def test_cc_default_scope_keeps_only_allowed_resources_scopes(live, make_client, token_post, files_resource):
    """No scope sent: the registered default scope, narrowed (RFC 6749 §3.3) to
    the resources the client is allowed rather than refused."""
    c = _machine(make_client, scopes=("files:read",))
    body = _cc(token_post, c).json()
    assert "scope" not in body
