"""The headline end-to-end test: a third-party developer's app, written with
Authlib's OAuth client (``OAuth2Session``), runs the whole OAuth 2.1 / OIDC
life cycle against the live server over real HTTP, for a confidential and for a
public client:

discovery → authorization URL (PKCE S256, state, nonce) → member login and
consent in the browser → code exchange → id token verified against the JWKS →
userinfo → refresh (rotation) → introspection → revocation → inactive.

Nothing here knows the server's internals: endpoints come from the discovery
document, keys from the JWKS."""
from __future__ import annotations

import secrets
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import MismatchingStateException
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from authz_server.oauth.tokens import at_hash
from tests.helpers import refresh_token_active

SCOPE = "openid profile email offline_access"


@pytest.fixture
def discovery(live, monkeypatch):
    # The test server is plain-http loopback; Authlib's client refuses http unless told.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    r = requests.get(live.url + "/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200
    return r.json()


def _session(client, discovery, **kw):
    if client.client_secret:
        return OAuth2Session(client.client_id, client.client_secret, scope=SCOPE, redirect_uri=client.redirect_uri,
                             code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic", **kw)
    return OAuth2Session(client.client_id, scope=SCOPE, redirect_uri=client.redirect_uri,
                         code_challenge_method="S256", token_endpoint_auth_method="none", **kw)


def _authorize_in_browser(browser, discovery, authorization_url):
    """The member's browser opens the URL Authlib built, signs in, allows; returns the client redirect."""
    assert authorization_url.startswith(discovery["authorization_endpoint"] + "?")
    params = dict(parse_qsl(urlsplit(authorization_url).query, keep_blank_values=True))
    resp = browser.authorize(params, decision="allow")
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
    return resp.headers["Location"]


def _verify_id_token(id_token, discovery, client_id, nonce, access_token, nonce_required=True):
    """OIDC Core §3.1.3.7: signature against the JWKS, iss, aud, exp/iat, nonce, at_hash."""
    jwks = requests.get(discovery["jwks_uri"], timeout=10).json()
    tok = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=discovery["id_token_signing_alg_values_supported"])
    assert tok.header["alg"] in discovery["id_token_signing_alg_values_supported"]
    assert tok.header["kid"] in {k["kid"] for k in jwks["keys"]}
    JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": nonce_required, "value": nonce},
        auth_time={"essential": True},
    ).validate(tok.claims)
    assert tok.claims["at_hash"] == at_hash(access_token)
    return tok.claims


def _run_life_cycle(live, browser, discovery, client, introspector):
    """One app's full journey; ``introspector`` is the OAuth2Session of a confidential client that may introspect."""
    app = _session(client, discovery)
    verifier = generate_token(64)
    nonce = "n-" + secrets.token_hex(8)

    # 1. Authorization request built by Authlib (PKCE S256, state, nonce).
    url, state = app.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    sent = parse_qs(urlsplit(url).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["state"] == [state]

    # 2. The member signs in and consents; the browser lands on the app's redirect URI.
    callback = _authorize_in_browser(browser, discovery, url)
    assert callback.startswith(client.redirect_uri + "?")
    got = dict(parse_qsl(urlsplit(callback).query))
    assert got["state"] == state
    assert got["iss"] == discovery["issuer"]  # RFC 9207 mix-up defence, checked as a client would

    # A callback with a forged state is refused by the client library before any token request.
    with pytest.raises(MismatchingStateException):
        _session(client, discovery).fetch_token(discovery["token_endpoint"], authorization_response=callback,
                                                state="forged", code_verifier=verifier)

    # 3. Code exchange.
    token = app.fetch_token(discovery["token_endpoint"], authorization_response=callback, state=state,
                            code_verifier=verifier)
    assert token["token_type"].lower() == "bearer"
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(token)
    assert set(token["scope"].split()) == set(SCOPE.split())

    # 4. The id token, verified against the JWKS.
    claims = _verify_id_token(token["id_token"], discovery, client.client_id, nonce, token["access_token"])
    assert claims["email"] == browser.email

    # 5. Userinfo with the bearer header (OAuth2Session puts the token in the header).
    r = app.get(discovery["userinfo_endpoint"])
    assert r.status_code == 200, r.text
    assert r.request.headers["Authorization"] == "Bearer " + token["access_token"]
    info = r.json()
    assert info["sub"] == claims["sub"]
    assert info["email"] == claims["email"] and info["email_verified"] is True

    # 6. Refresh: a new access token and a new (rotated) refresh token.
    old = dict(token)
    new = app.refresh_token(discovery["token_endpoint"])
    assert new["refresh_token"] != old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert app.token["access_token"] == new["access_token"]
    if "id_token" in new:
        # OIDC Core §12.2: same iss, sub, aud and auth_time; nonce, if present, the original one.
        again = _verify_id_token(new["id_token"], discovery, client.client_id, nonce, new["access_token"],
                                 nonce_required=False)
        assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"]
    assert app.get(discovery["userinfo_endpoint"]).json()["sub"] == claims["sub"]

    # 7. Introspection by an authorized caller.
    r = introspector.introspect_token(discovery["introspection_endpoint"], token=new["access_token"],
                                      token_type_hint="access_token")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is True
    assert body["client_id"] == client.client_id
    assert body["sub"] == claims["sub"]
    assert body["iss"] == discovery["issuer"]
    assert set(body["scope"].split()) == set(SCOPE.split())
    # Refresh tokens concern only their client, never a resource server (RFC 7662 §4).
    r = introspector.introspect_token(discovery["introspection_endpoint"], token=new["refresh_token"],
                                      token_type_hint="refresh_token")
    assert r.json() == {"active": False}
    assert refresh_token_active(live, new["refresh_token"])
    # The rotated-away refresh token is no longer active.
    assert not refresh_token_active(live, old["refresh_token"])

    # 8. Revocation by the app itself; afterwards nothing of the grant is active.
    r = app.revoke_token(discovery["revocation_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200, r.text
    for value in (new["refresh_token"], new["access_token"]):
        r = introspector.introspect_token(discovery["introspection_endpoint"], token=value)
        assert r.status_code == 200
        assert r.json() == {"active": False}
    r = app.get(discovery["userinfo_endpoint"])
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # A refresh with the revoked token fails.
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "refresh_token",
                                                         "refresh_token": new["refresh_token"],
                                                         **({} if client.client_secret else
                                                            {"client_id": client.client_id})},
                      auth=(client.client_id, client.client_secret) if client.client_secret else None, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_e2e_confidential_client_with_authlib(live, make_client, browser, discovery):
    """OAuth 2.1 §4.1 + OIDC Core §3.1 + RFC 7662 + RFC 7009, confidential client
    (client_secret_basic): the app, which an operator allowed to introspect tokens
    for the default audience, introspects its own tokens."""
    client = make_client(client_type="third_party", redirect_uris=("https://app.example/cb",),
                         introspection_resources=(live.url,))
    app_as_introspector = OAuth2Session(client.client_id, client.client_secret,
                                        token_endpoint_auth_method="client_secret_basic")
    _run_life_cycle(live, browser, discovery, client, app_as_introspector)


def test_e2e_public_client_with_authlib(live, make_client, browser, discovery):
    """OAuth 2.1 §4.1 + §2.1 public client (token_endpoint_auth_method none, PKCE
    only); introspection by a separate confidential resource-server client."""
    client = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1:8765/callback",))
    assert client.client_secret is None
    rs = make_client(client_type="third_party", name="Resource server", redirect_uris=(),
                     grant_types=("client_credentials",), introspection_resources=(live.url,))
    resource_server = OAuth2Session(rs.client_id, rs.client_secret, token_endpoint_auth_method="client_secret_basic")
    # A public client itself may not introspect (RFC 7662 §4: no token scanning).
    public = OAuth2Session(client.client_id, token_endpoint_auth_method="none")
    r = public.introspect_token(discovery["introspection_endpoint"], token="anything")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    _run_life_cycle(live, browser, discovery, client, resource_server)
