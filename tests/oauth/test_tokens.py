"""The tokens as a resource server and a relying party see them, verified with
PyJWT against the published JWKS: RFC 9068 access tokens (docs/requirements.md: A.10
items 57-61) and OIDC id tokens (A.21 items 94-100)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from contextlib import contextmanager

import jwt
import pytest
import requests
import time_machine

from authz_server.models import Client, Resource
from tests.browser import Browser
from tests.helpers import auth_params, pkce_pair, redirect_params

ACCESS_CLAIMS = {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"}
MCP_A = "https://mcp-a.example/mcp"
MCP_B = "https://mcp-b.example"


def _jwks(server):
    resp = requests.get(server.url + "/.well-known/jwks.json", timeout=10)
    assert resp.status_code == 200
    return resp.json()


def _key_for(server, token):
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = _jwks(server)
    matching = [k for k in jwks["keys"] if k["kid"] == kid]
    assert len(matching) == 1, (kid, [k["kid"] for k in jwks["keys"]])
    return jwt.PyJWK(matching[0]), matching[0]


def _verify_access(server, token, audience=None, alg="ES256"):
    """What a resource server does: header checks, signature by the JWKS key
    named by kid, iss, aud, exp."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    assert header["alg"] == alg, header
    key, _ = _key_for(server, token)
    return jwt.decode(token, key, algorithms=[alg], audience=audience or server.url, issuer=server.url,
                      options={"require": sorted(ACCESS_CLAIMS)})


def _verify_id(server, token, client_id, alg="RS256"):
    """What a relying party does (OIDC Core §3.1.3.7)."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg, header
    key, _ = _key_for(server, token)
    return jwt.decode(token, key, algorithms=[alg], audience=client_id, issuer=server.url,
                      options={"require": ["iss", "sub", "aud", "exp", "iat"]})


def _at_hash(access_token):
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()[:16]).rstrip(b"=").decode()


@contextmanager
def _frozen(live, when):
    try:
        with time_machine.travel(when, tick=False):
            yield
    finally:
        # The caches stamp entries with the travelled monotonic clock; drop them.
        live.server.keys.invalidate()
        live.server.clients.invalidate()


def _code_flow(server, client, browser=None, **extra):
    """The full code flow against any server instance; returns the token JSON."""
    browser = browser or Browser(server)
    verifier, challenge = pkce_pair()
    params = redirect_params(browser.authorize(auth_params(client, challenge, **extra)))
    assert "code" in params, params
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    resp = requests.post(server.url + "/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
        "client_id": client.client_id}, auth=auth, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def mcp_resources(live):
    s = live.db.session
    try:
        s.add(Resource(identifier=MCP_A, name="MCP A", scopes=["a:read"]))
        s.add(Resource(identifier=MCP_B, name="MCP B", scopes=["b:read"]))
        s.commit()
    finally:
        s.remove()
    return MCP_A, MCP_B


# --- A.10 RFC 9068 access tokens -----------------------------------------------------


def test_a10_57_access_token_header(live, make_client, tokens_for):
    """RFC 9068 §2.1: typ at+jwt, an asymmetric alg (ES256 here), and a kid that
    names a key of the JWKS, which verifies the signature."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    header = jwt.get_unverified_header(at)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    _, jwk = _key_for(live, at)
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
    assert "d" not in jwk  # the JWKS never carries private parts
    claims = _verify_access(live, at)
    assert claims["client_id"] == c.client_id


def test_a10_57_jwks_keys_all_have_kids(live):
    """OIDC Core §10.1: with several keys published, each has a unique kid; no
    private or symmetric material is published."""
    keys = _jwks(live)["keys"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)) and len(keys) >= 2
    for k in keys:
        assert k["kty"] in ("EC", "RSA")
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(k)


def test_a10_57_rs256_access_tokens_when_configured(live, make_server_with, make_client):
    """AUTHZ_ACCESS_TOKEN_ALG=RS256 signs access tokens with the RSA key, still
    typ at+jwt with a kid."""
    rsa = make_server_with(access_token_alg="RS256")
    c = make_client()
    at = _code_flow(rsa, c)["access_token"]
    _, jwk = _key_for(rsa, at)
    assert jwk["kty"] == "RSA"
    _verify_access(rsa, at, alg="RS256")


def test_a10_57_unsigned_or_symmetric_tokens_are_refused(live, make_client, tokens_for):
    """alg none and HS256 tokens are never accepted as our access tokens
    (RFC 9068 §4, RFC 8725 §3.1)."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    claims = jwt.decode(at, options={"verify_signature": False})
    none_token = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})
    hs_token = jwt.encode(claims, "a-secret-long-enough-for-hs256-32bytes!", algorithm="HS256",
                          headers={"typ": "at+jwt", "kid": jwt.get_unverified_header(at)["kid"]})
    for forged in (none_token, hs_token):
        resp = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + forged}, timeout=10)
        assert resp.status_code == 401, resp.text


def test_a10_58_required_claims(live, make_client, tokens_for):
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat and jti are present; iss is
    the issuer; sub is the member (as in the id token); jti is unique."""
    c = make_client()
    t1 = tokens_for(c)
    t2 = tokens_for(c)
    c1 = _verify_access(live, t1["access_token"])
    c2 = _verify_access(live, t2["access_token"])
    assert ACCESS_CLAIMS <= set(c1)
    assert c1["iss"] == live.url == live.metadata()["issuer"]
    assert c1["sub"] == _verify_id(live, t1["id_token"], c.client_id)["sub"]
    assert c1["client_id"] == c.client_id
    assert c1["exp"] - c1["iat"] == live.settings.access_token_ttl
    assert isinstance(c1["jti"], str) and c1["jti"] != c2["jti"]
    assert all(type(c1[n]) is int for n in ("exp", "iat"))


def test_a10_59_scope_claim_is_a_string(live, make_client, tokens_for):
    """RFC 9068 §2.2.3: ``scope`` is a space-separated string of the granted scopes,
    never null; auth_time is carried when known (§2.2.1)."""
    c = make_client()
    t = tokens_for(c, scope="openid email")
    claims = _verify_access(live, t["access_token"])
    assert claims["scope"] == "openid email"
    assert isinstance(claims["auth_time"], int)
    assert claims["auth_time"] == _verify_id(live, t["id_token"], c.client_id)["auth_time"]
    assert None not in claims.values()


def test_a10_59_no_scope_means_no_scope_claim(live, make_client, token_post):
    """With nothing granted the claim is absent, not "" or null."""
    c = make_client(grant_types=("client_credentials",), redirect_uris=())
    at = token_post({"grant_type": "client_credentials"}, auth=(c.client_id, c.client_secret)).json()["access_token"]
    claims = _verify_access(live, at)
    assert "scope" not in claims


def test_a10_60_default_audience_is_the_issuer(live, make_client, tokens_for):
    """RFC 9068 §3 / docs/requirements.md: A9-56: without ``resource`` the token's aud is
    the documented default audience, the issuer."""
    c = make_client()
    claims = _verify_access(live, tokens_for(c)["access_token"])
    assert claims["aud"] == live.url


def test_a10_60_audience_is_the_resource(live, make_client, tokens_for, mcp_resources):
    """RFC 8707 / RFC 9068 §3: a token for resource A has aud A; tokens for two MCP
    servers have different audiences and do not verify for each other."""
    c = make_client()
    at_a = tokens_for(c, scope="openid a:read", resource=MCP_A)["access_token"]
    at_b = tokens_for(c, scope="openid b:read", resource=MCP_B + "/")["access_token"]
    a = _verify_access(live, at_a, audience=MCP_A)
    b = _verify_access(live, at_b, audience=MCP_B)
    assert a["aud"] == MCP_A and b["aud"] == MCP_B
    with pytest.raises(jwt.InvalidAudienceError):
        _verify_access(live, at_a, audience=MCP_B)
    with pytest.raises(jwt.InvalidAudienceError):
        _verify_access(live, at_b, audience=live.url)


def test_a10_60_refreshed_token_keeps_the_audience(live, make_client, tokens_for, mcp_resources):
    """A refresh without ``resource`` keeps the authorized audience."""
    c = make_client()
    t = tokens_for(c, scope="openid a:read", resource=MCP_A)
    r = requests.post(live.url + "/oauth/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": t["refresh_token"]},
                      auth=(c.client_id, c.client_secret), timeout=10).json()
    assert _verify_access(live, r["access_token"], audience=MCP_A)["aud"] == MCP_A


def test_a10_61_no_personal_data_in_access_tokens(live, make_client, tokens_for):
    """RFC 9068 §6: no email, name or other profile claims in access tokens, even
    when the email and profile scopes are granted."""
    c = make_client()
    t = tokens_for(c, scope="openid profile email")
    claims = _verify_access(live, t["access_token"])
    assert not {"email", "email_verified", "name", "given_name", "family_name", "roles"} & set(claims)
    assert "alice" not in jwt.utils.base64url_decode(t["access_token"].split(".")[1]).decode().lower()
    # ... while the id token, for the client itself, carries them.
    assert _verify_id(live, t["id_token"], c.client_id)["email"] == "alice@acme.test"


# --- A.21 OIDC id tokens --------------------------------------------------------------


def test_a21_94_iss_is_the_metadata_issuer(live, make_client, tokens_for):
    """OIDC Core §2 / Discovery §4.3: iss equals the issuer of both discovery
    documents, byte for byte, and the access token's iss."""
    c = make_client()
    t = tokens_for(c)
    claims = _verify_id(live, t["id_token"], c.client_id)
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        assert claims["iss"] == requests.get(live.url + path, timeout=10).json()["issuer"]
    assert claims["iss"] == _verify_access(live, t["access_token"])["iss"]


def test_a21_95_sub_is_stable(live, make_client):
    """OIDC Core §2: the same member signing in twice (two browser sessions) gets
    the same sub; sub is ASCII and at most 255 characters."""
    c = make_client()
    first = _code_flow(live, c, Browser(live))
    second = _code_flow(live, c, Browser(live))
    s1 = _verify_id(live, first["id_token"], c.client_id)["sub"]
    s2 = _verify_id(live, second["id_token"], c.client_id)["sub"]
    assert s1 == s2
    assert s1.isascii() and 0 < len(s1) <= 255
    other = _verify_id(live, _code_flow(live, c, Browser(live, "carol@acme.test"))["id_token"], c.client_id)["sub"]
    assert other != s1


def test_a21_96_aud_exp_iat_azp(live, make_client, tokens_for):
    """OIDC Core §2: aud contains the client_id, exp > iat, and azp, if present,
    is the client_id."""
    c = make_client()
    claims = _verify_id(live, tokens_for(c)["id_token"], c.client_id)
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert c.client_id in aud
    assert claims["exp"] > claims["iat"]
    assert claims["exp"] - claims["iat"] == live.settings.id_token_ttl
    assert claims.get("azp", c.client_id) == c.client_id


def test_a21_97_auth_time_is_the_real_authentication_time(live, make_client, browser, get_code, token_post):
    """OIDC Core §2 / §3.1.2.1: auth_time is when the member really signed in, not
    when the token was issued: a later authorization on the same session (max_age
    still satisfied) keeps it; max_age exceeded forces a login and a new auth_time."""
    c = make_client()
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)

    def flow(**extra):
        code, verifier, _ = get_code(c, **extra)
        resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                          auth=(c.client_id, c.client_secret))
        assert resp.status_code == 200, resp.text
        return _verify_id(live, resp.json()["id_token"], c.client_id)

    with _frozen(live, t0):
        first = flow(max_age="60")
    assert first["auth_time"] == int(t0.timestamp()) == first["iat"]
    with _frozen(live, t0 + dt.timedelta(seconds=300)):
        later = flow(max_age="3600")
    assert later["auth_time"] == int(t0.timestamp())
    assert later["iat"] == int(t0.timestamp()) + 300
    with _frozen(live, t0 + dt.timedelta(seconds=400)):
        relogin = flow(max_age="60")
    assert relogin["auth_time"] == int(t0.timestamp()) + 400


def test_a21_97_auth_time_in_access_token_matches(live, make_client, tokens_for):
    """The access token's auth_time (RFC 9068 §2.2.1) is the same real time."""
    c = make_client()
    t = tokens_for(c, max_age="600")
    assert _verify_access(live, t["access_token"])["auth_time"] == _verify_id(live, t["id_token"], c.client_id)[
        "auth_time"]


def test_a21_98_nonce_copied_and_at_hash(live, make_client, tokens_for):
    """OIDC Core §2 / §3.1.3.6: nonce is copied exactly; at_hash is the left half
    of SHA-256 of the access token, base64url."""
    c = make_client()
    nonce = "n-0S6_WzA2Mj~.+/=é"
    t = tokens_for(c, nonce=nonce)
    claims = _verify_id(live, t["id_token"], c.client_id)
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == _at_hash(t["access_token"])


def test_a21_98_no_nonce_when_none_was_sent(live, make_client, tokens_for):
    """Without a nonce in the request the id token has none."""
    c = make_client()
    assert "nonce" not in _verify_id(live, tokens_for(c)["id_token"], c.client_id)


def test_a21_98_reused_nonce_rejected_at_authorize(live, make_client, browser, get_code):
    """OIDC Core §15.5.2 [SHOULD]: a nonce already used by this client is refused
    at /authorize (an error redirect with state and iss); another client may use
    the same value."""
    c = make_client()
    get_code(c, nonce="once-only")
    verifier, challenge = pkce_pair()
    params = redirect_params(browser.authorize(auth_params(c, challenge, nonce="once-only", state="s-1")))
    assert params["error"] == "invalid_request", params
    assert "code" not in params
    assert params["state"] == "s-1" and params["iss"] == live.url
    other = make_client()
    code, _, _ = get_code(other, nonce="once-only")
    assert code


def test_a21_99_id_token_rs256_with_kid_from_jwks(live, make_client, tokens_for):
    """OIDC Core §10.1 / §3.1.3.7: RS256 by default, and the header's kid names an
    RSA key of jwks_uri, which verifies the signature."""
    c = make_client()
    id_token = tokens_for(c)["id_token"]
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256" and header["kid"]
    _, jwk = _key_for(live, id_token)
    assert jwk["kty"] == "RSA"
    assert live.metadata()["jwks_uri"] == live.url + "/.well-known/jwks.json"
    _verify_id(live, id_token, c.client_id)


def test_a21_99_per_client_id_token_alg(live, make_client, tokens_for):
    """A client registered with id_token_signed_response_alg=ES256 gets ES256."""
    c = make_client()
    s = live.db.session
    try:
        s.get(Client, c.client_id).id_token_signed_response_alg = "ES256"
        s.commit()
    finally:
        s.remove()
    live.server.clients.invalidate(c.client_id)
    id_token = tokens_for(c)["id_token"]
    _verify_id(live, id_token, c.client_id, alg="ES256")


def test_a21_100_refreshed_id_token(live, make_client, get_code, token_post):
    """OIDC Core §12.2: the id token from a refresh has the same iss, sub and aud,
    a new iat, the original auth_time, no nonce, and at_hash of the new access
    token."""
    c = make_client()
    auth = (c.client_id, c.client_secret)
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)
    with _frozen(live, t0):
        code, verifier, _ = get_code(c, nonce="first-nonce")
        first = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                           auth=auth).json()
        original = _verify_id(live, first["id_token"], c.client_id)
    with _frozen(live, t0 + dt.timedelta(seconds=120)):
        r = token_post({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=auth)
        assert r.status_code == 200, r.text
        refreshed_body = r.json()
        refreshed = _verify_id(live, refreshed_body["id_token"], c.client_id)
    assert original["nonce"] == "first-nonce"
    for name in ("iss", "sub", "aud"):
        assert refreshed[name] == original[name]
    assert refreshed.get("azp") == original.get("azp")
    assert refreshed["iat"] == original["iat"] + 120
    assert refreshed["auth_time"] == original["auth_time"] == int(t0.timestamp())
    assert "nonce" not in refreshed
    assert refreshed["at_hash"] == _at_hash(refreshed_body["access_token"])
