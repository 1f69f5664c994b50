"""Property-based robustness tests ("bad input gets a clear, spec-shaped
error, never a stack trace, never partial writes").

Hypothesis throws arbitrary parameters at the live server over HTTP: junk,
duplicated keys, huge values, unicode, NUL bytes, odd percent-encodings, valid
requests with one field mutated, malformed Basic credentials, JSON bodies and
forged JWTs. The properties:

- never a 5xx;
- /oauth/authorize answers an HTML page (4xx, text/html, no Location), the
  login redirect, the consent page, or a redirect to a *registered* redirect URI
  carrying ``iss`` (RFC 6749 §4.1.2.1, RFC 9207 §2);
- /oauth/token, /oauth/revoke, /oauth/introspect, /oauth/userinfo answer JSON
  with an ``error`` member on every 4xx (RFC 6749 §5.2), 401 with
  WWW-Authenticate on a failed Basic authentication (RFC 6749 §5.2) or bearer
  token (RFC 6750 §3);
- a failing request writes nothing (grants, refresh tokens, codes, audit rows).
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text

from authz_server.rules import redirect_uris
from tests.browser import Browser
from tests.helpers import pkce_pair

def fast(max_examples: int):
    """Bounded example counts and no deadline, so the whole file runs in well under a minute
    (FUZZ_SCALE=10 multiplies the counts for a deeper local run)."""
    return settings(
        max_examples=max_examples * int(os.environ.get("FUZZ_SCALE", "1")),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )

TOKEN_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "invalid_target"}
COUNTED = ("grants", "refresh_tokens", "authorization_codes", "audit_events", "revoked_access_tokens",
           "consents", "clients", "device_authorizations")

# --- value strategies ---------------------------------------------------------
SPECIAL = ["", " ", "\x00", "a\x00b", "%00", "%", "%zz", "null", "[]", "{}", "true", "-1", "0",
           "99999999999999999999", "S256", "plain", "code", "token", "openid", "none", "login consent",
           "https://app.example/cb", "https://app.example/cb#frag", "http://127.0.0.1:1/cb", "javascript:alert(1)",
           "\u202eevil", "é", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\r\nX-Injected: 1", "<script>alert(1)</script>", "' OR 1=1 --",
           "\ufeff", "../../etc/passwd", "a" * 129]
small_text = st.text(max_size=40)
huge_text = st.sampled_from([2_000, 20_000]).flatmap(
    lambda n: st.sampled_from(["A", "é", "%", "\x00", "z"]).map(lambda c: c * n))
value = st.one_of(small_text, st.sampled_from(SPECIAL), huge_text)

AUTHZ_KEYS = ["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
              "code_challenge_method", "nonce", "prompt", "max_age", "login_hint", "resource", "request",
              "request_uri", "pending", "response_mode", "organization_slug", "organization_id", "id_token_hint",
              "claims", "display", "ui_locales"]
TOKEN_KEYS = ["grant_type", "code", "code_verifier", "redirect_uri", "refresh_token", "scope", "resource",
              "client_id", "client_secret", "client_assertion", "client_assertion_type", "device_code",
              "subject_token", "username", "password"]
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials", "password", "implicit",
               "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange",
               "urn:ietf:params:oauth:grant-type:jwt-bearer", "AUTHORIZATION_CODE", " refresh_token"]


def keys(known):
    return st.one_of(st.sampled_from(known), small_text.filter(bool))


def pairs(known, max_size=8):
    """A list of (key, value) pairs: keys may repeat, which is how duplicates are sent."""
    return st.lists(st.tuples(keys(known), value), max_size=max_size)


ascii_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7e)
# Percent-encoding oddities that a urlencode() never produces.
ODD_PIECES = ["%", "%z", "%zz", "%0", "%00", "%C3%28", "%FF%FE", "%E2%82", "%25", "%2", "+", "&", "&&", "=", "==",
              ";", "%26", "%3D", "%u0041", "%%41", "a[]=1", "a[b]=2", "?", "/"]
raw_query = st.lists(st.one_of(st.sampled_from(ODD_PIECES), st.text(ascii_printable, max_size=12)),
                     max_size=20).map("".join)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj) -> str:
    return b64url(json.dumps(obj).encode())


# --- shared setup ---------------------------------------------------------------
@pytest.fixture
def world(live, make_client, tokens_for):
    """The clients the fuzzers aim at, and one real token set to mutate."""
    conf = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials",
                                    "urn:ietf:params:oauth:grant-type:device_code"),
                       introspection_resources=(live.url,))
    public = make_client(client_type="third_party_public", redirect_uris=("http://127.0.0.1/callback",))
    first = make_client(client_type="first_party", redirect_uris=("https://first.example/cb?x=1",))
    post = make_client(client_type="first_party", auth_method="client_secret_post",
                       grant_types=("authorization_code", "client_credentials"))
    real = tokens_for(conf)
    browser = Browser(live)
    browser.login()
    kid = json.loads(base64.urlsafe_b64decode(real["access_token"].split(".")[0] + "==")).get("kid")
    return {"live": live, "conf": conf, "public": public, "first": first, "post": post, "real": real,
            "browser": browser, "kid": kid, "clients": [conf, public, first, post]}


def counts(live) -> dict:
    with live.db.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


def description_ok(text_: str) -> bool:
    """RFC 6749 §4.1.2.1 / §5.2: error_description uses only %x20-21 / %x23-5B / %x5D-7E."""
    return all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in text_)


def content_type(resp) -> str:
    return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()


# --- /oauth/authorize -------------------------------------------------------------
def check_authorize(w, resp):
    live = w["live"]
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    loc = resp.headers.get("Location")
    if resp.status_code in (302, 303):
        assert loc, "a redirect without Location"
        if loc.startswith("/login") or loc.startswith(live.url + "/login"):
            return  # the member has to sign in first (docs/architecture.md#an-authorization-request, step 3)
        target = loc.split("?", 1)[0]
        registered = [u for c in w["clients"] for u in c.redirect_uris]
        assert any(loc.startswith(u) for u in registered) or redirect_uris.matches(registered, target), loc
        params = parse_qs(urlsplit(loc).query)
        assert params.get("iss") == [live.url], loc  # RFC 9207 §2
        for d in params.get("error_description", []):
            assert description_ok(d), loc
        return
    assert loc is None, (resp.status_code, loc)
    assert content_type(resp) == "text/html", (resp.status_code, resp.headers)
    assert resp.status_code == 200 or 400 <= resp.status_code < 500
    if resp.status_code == 200:
        assert 'name="decision"' in resp.text  # only the consent page answers 200


def valid_authorize_params(client, **extra):
    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
              "scope": "openid profile", "state": "s" + secrets.token_hex(3), "code_challenge": challenge,
              "code_challenge_method": "S256", "nonce": secrets.token_hex(4)}
    params.update(extra)
    return params


def mutate(data, params: dict) -> list[tuple[str, str]]:
    """Valid parameters with one to three mutations: a field replaced by junk, removed,
    duplicated (same or other value), or a junk field added."""
    items = list(params.items())
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        op = data.draw(st.sampled_from(["replace", "delete", "duplicate", "add"]), label="op")
        if not items:
            op = "add"
        if op == "add":
            items.append((data.draw(keys(AUTHZ_KEYS + TOKEN_KEYS), label="key"), data.draw(value, label="val")))
            continue
        i = data.draw(st.integers(0, len(items) - 1), label="index")
        k, v = items[i]
        if op == "replace":
            items[i] = (k, data.draw(value, label="junk"))
        elif op == "delete":
            items.pop(i)
        else:
            items.append((k, data.draw(st.one_of(st.just(v), value), label="dup")))
    return items


def _http(w, anonymous):
    return requests.Session() if anonymous else w["browser"].http


@fast(120)
@given(data=st.data())
def test_a1_3_authorize_get_arbitrary_params_never_5xx(world, data):
    """A1 #3 / A3: any query string at GET /oauth/authorize gets an HTML page or a
    redirect to a registered URI with iss; never a 5xx."""
    w = world
    items = data.draw(pairs(AUTHZ_KEYS), label="params")
    if data.draw(st.booleans(), label="with_valid_client"):
        items.append(("client_id", data.draw(st.sampled_from(w["clients"])).client_id))
    http = _http(w, data.draw(st.booleans(), label="anonymous"))
    resp = http.get(w["live"].url + "/oauth/authorize", params=items, allow_redirects=False, timeout=10)
    check_authorize(w, resp)


@fast(60)
@given(data=st.data())
def test_a1_3_authorize_raw_percent_encodings_never_5xx(world, data):
    """A1 #3: malformed percent-encodings and separators in the raw query string (what
    urlencode never produces) still get a page or a registered redirect, never a 5xx."""
    w = world
    c = data.draw(st.sampled_from(w["clients"]), label="client")
    prefix = data.draw(st.sampled_from(["", f"client_id={quote(c.client_id)}&",
                                        f"client_id={quote(c.client_id)}&redirect_uri={quote(c.redirect_uri, safe='')}&"
                                        "response_type=code&"]), label="prefix")
    query = prefix + data.draw(raw_query, label="raw")
    conn = http.client.HTTPConnection(urlsplit(w["live"].url).netloc, timeout=10)
    try:
        conn.request("GET", "/oauth/authorize?" + query)
        raw = conn.getresponse()
        body = raw.read().decode("utf-8", "replace")
        resp = requests.Response()
        resp.status_code = raw.status
        resp.headers = requests.structures.CaseInsensitiveDict(raw.getheaders())
        resp._content = body.encode()
    finally:
        conn.close()
    check_authorize(w, resp)


@fast(60)
@given(data=st.data())
def test_a1_3_authorize_post_arbitrary_form_never_5xx(world, data):
    """A1 #3 / OIDC Core §3.1.2.1 (POST allowed): any form body at POST /oauth/authorize, including
    raw undecodable bytes and bodies over the size cap, gets a page or a registered redirect."""
    w = world
    http = _http(w, data.draw(st.booleans(), label="anonymous"))
    url = w["live"].url + "/oauth/authorize"
    kind = data.draw(st.sampled_from(["form", "raw", "big", "json"]), label="kind")
    if kind == "form":
        resp = http.post(url, data=data.draw(pairs(AUTHZ_KEYS)), allow_redirects=False, timeout=10)
    elif kind == "raw":
        body = data.draw(st.one_of(st.binary(max_size=200), raw_query.map(str.encode)), label="body")
        resp = http.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
                         allow_redirects=False, timeout=10)
    elif kind == "big":
        resp = http.post(url, data={"client_id": w["conf"].client_id, "state": "x" * 70_000},
                         allow_redirects=False, timeout=10)
        assert resp.status_code == 413, resp.status_code
    else:
        resp = http.post(url, json=valid_authorize_params(w["conf"]), allow_redirects=False, timeout=10)
    check_authorize(w, resp)


@fast(150)
@given(data=st.data())
def test_a3_authorize_valid_request_one_field_mutated(world, data):
    """A3 / A4: a valid request with a field replaced, removed or duplicated, or junk
    added, is refused on a page (client or redirect_uri unusable) or by an error redirect to the
    registered URI with iss; never a 5xx, never a redirect elsewhere."""
    w = world
    client = data.draw(st.sampled_from(w["clients"]), label="client")
    items = mutate(data, valid_authorize_params(client))
    http = _http(w, data.draw(st.booleans(), label="anonymous"))
    if data.draw(st.booleans(), label="post"):
        resp = http.post(w["live"].url + "/oauth/authorize", data=items, allow_redirects=False, timeout=10)
    else:
        resp = http.get(w["live"].url + "/oauth/authorize", params=items, allow_redirects=False, timeout=10)
    check_authorize(w, resp)
    keys_sent = [k for k, v in items if v != ""]  # RFC 6749 §3.1: an empty value counts as absent
    if resp.status_code in (302, 303) and "code=" in resp.headers["Location"]:
        # A code only for a request whose essentials are all present exactly once.
        for k in ("client_id", "code_challenge", "code_challenge_method", "response_type"):
            assert keys_sent.count(k) == 1, (k, items)
        # OAuth 2.1 §2.3.2: redirect_uri may be left out by a client with exactly one.
        assert keys_sent.count("redirect_uri") <= 1, items


# --- /oauth/token, /oauth/revoke, /oauth/introspect ----------------------------------
def auth_header(data, w):
    """A (header value, basic_sent) pair: valid, wrong, or malformed credentials."""
    conf, public = w["conf"], w["public"]
    kind = data.draw(st.sampled_from(["none", "valid", "wrong_secret", "unknown", "junk_b64", "bin_b64", "no_colon",
                                      "empty_secret", "empty_id", "bare", "bearer", "random", "nul_id",
                                      "public_id", "quoted_valid"]), label="auth")
    basic = lambda s: "Basic " + b64(s.encode() if isinstance(s, str) else s)  # noqa: E731
    header = {
        "none": None,
        "valid": basic(f"{conf.client_id}:{conf.client_secret}"),
        "wrong_secret": basic(f"{conf.client_id}:{conf.client_secret}x"),
        "unknown": basic("nobody:secret"),
        "junk_b64": "Basic " + data.draw(st.text(ascii_printable, max_size=30), label="junk"),
        "bin_b64": "Basic " + b64(data.draw(st.binary(max_size=40), label="bin")),
        "no_colon": basic(conf.client_id),
        "empty_secret": basic(f"{conf.client_id}:"),
        "empty_id": basic(f":{conf.client_secret}"),
        "bare": "Basic",
        "bearer": "Bearer " + w["real"]["access_token"],
        # (requests itself refuses a header value with leading whitespace)
        "random": data.draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40),
                            label="random_header").lstrip(),
        "nul_id": basic(f"{conf.client_id}\x00:{conf.client_secret}"),
        "public_id": basic(f"{public.client_id}:x"),
        # RFC 6749 §2.3.1: the id and secret are form-urlencoded before base64.
        "quoted_valid": basic(f"{quote(conf.client_id, safe='')}:{quote(conf.client_secret, safe='')}"),
    }[kind]
    return header, bool(header) and header.lower().startswith("basic")


def post_junk(data, w, path, known):
    """POST arbitrary parameters in one of several body shapes; returns (response, basic_sent)."""
    header, basic_sent = auth_header(data, w)
    headers = {"Authorization": header} if header is not None else {}
    url = w["live"].url + path
    shape = data.draw(st.sampled_from(["form", "form", "form", "json", "raw", "text_plain", "multipart", "query"]),
                      label="shape")
    items = data.draw(pairs(known, max_size=6), label="params")
    if path == "/oauth/token" and data.draw(st.booleans(), label="known_grant"):
        items.insert(0, ("grant_type", data.draw(st.sampled_from(GRANT_TYPES), label="grant_type")))
    if data.draw(st.booleans(), label="client_in_body"):
        c = data.draw(st.sampled_from(w["clients"]), label="body_client")
        items.append(("client_id", c.client_id))
        if c.client_secret and data.draw(st.booleans(), label="with_secret"):
            items.append(("client_secret", c.client_secret))
    if shape == "form":
        resp = requests.post(url, data=items, headers=headers, timeout=10)
    elif shape == "json":
        resp = requests.post(url, json=dict(items), headers=headers, timeout=10)
    elif shape == "raw":
        body = data.draw(st.one_of(st.binary(max_size=200), raw_query.map(str.encode)), label="body")
        resp = requests.post(url, data=body, timeout=10,
                             headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    elif shape == "text_plain":
        resp = requests.post(url, data="grant_type=client_credentials", timeout=10,
                             headers={**headers, "Content-Type": "text/plain"})
    elif shape == "multipart":
        resp = requests.post(url, files={k[:20] or "f": (None, v[:200]) for k, v in items} or {"a": (None, "b")},
                             headers=headers, timeout=10)
    else:
        # Bounded: an over-long request line is refused by the HTTP layer (414) before the app.
        resp = requests.post(url, params=[(k[:200], v[:500]) for k, v in items], headers=headers, timeout=10)
    return resp, basic_sent


def check_json_error(resp, basic_sent, allowed_errors=None):
    """RFC 6749 §5.2: 4xx answers are JSON with an ``error``; invalid_client after a
    Basic attempt is a 401 with a WWW-Authenticate Basic challenge."""
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code < 400:
        return None
    assert content_type(resp) == "application/json", (resp.status_code, resp.headers, resp.text[:200])
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    if allowed_errors is not None:
        assert body["error"] in allowed_errors, body
    assert description_ok(body.get("error_description", "")), body
    if resp.status_code == 401:
        assert body["error"] in ("invalid_client", "invalid_token"), body
        assert resp.headers.get("WWW-Authenticate"), resp.headers
    if body["error"] == "invalid_client" and basic_sent:
        assert resp.status_code == 401, (resp.status_code, body)
        assert resp.headers.get("WWW-Authenticate", "").startswith("Basic"), resp.headers
    return body


@fast(200)
@given(data=st.data())
def test_a6_41_token_endpoint_junk_gets_json_errors_and_writes_nothing(world, data):
    """A6 #41 / A1 #2-#4: any request at /oauth/token gets 200 or a JSON error with the
    right status (401 + WWW-Authenticate for failed Basic auth), never a 5xx; a failed request
    leaves grants, refresh tokens, codes and audit rows untouched."""
    w = world
    before = counts(w["live"])
    resp, basic_sent = post_junk(data, w, "/oauth/token", TOKEN_KEYS)
    body = check_json_error(resp, basic_sent, TOKEN_ERRORS | {"not_found"})
    if resp.status_code == 200:
        assert content_type(resp) == "application/json"
        assert resp.json()["token_type"] == "Bearer"
    else:
        assert body is not None
        assert resp.headers.get("Cache-Control") == "no-store", resp.headers  # A1 #4
        assert counts(w["live"]) == before


@fast(80)
@given(data=st.data())
def test_a11_revocation_junk_gets_json_errors_and_writes_nothing(world, data):
    """A11 (RFC 7009 §2.1/§2.2): junk at /oauth/revoke gets 200 (unknown tokens) or a JSON error
    (401 + WWW-Authenticate for failed Basic auth); nothing is revoked or written."""
    w = world
    before = counts(w["live"])
    known = ["token", "token_type_hint", "client_id", "client_secret"]
    resp, basic_sent = post_junk(data, w, "/oauth/revoke", known)
    check_json_error(resp, basic_sent, {"invalid_request", "invalid_client", "unsupported_token_type",
                                        "unauthorized_client"})
    assert counts(w["live"]) == before


@fast(80)
@given(data=st.data())
def test_a12_introspection_junk_gets_json_errors(world, data):
    """A12 (RFC 7662 §2.2/§2.3): junk at /oauth/introspect gets {"active": false} or a JSON
    error (401 + WWW-Authenticate for failed Basic auth); never a 5xx, never active."""
    w = world
    before = counts(w["live"])
    known = ["token", "token_type_hint", "client_id", "client_secret"]
    resp, basic_sent = post_junk(data, w, "/oauth/introspect", known)
    check_json_error(resp, basic_sent, {"invalid_request", "invalid_client", "unsupported_token_type",
                                        "unauthorized_client", "access_denied"})
    if resp.status_code == 200:
        assert resp.json() == {"active": False}, resp.text
    assert counts(w["live"]) == before


@fast(80)
@given(data=st.data())
def test_a17_85_device_authorization_junk_gets_json_errors(world, data):
    """A17 #85 / A1 #1-#4: junk at /oauth/device_authorization gets the RFC 8628 §3.2
    answer or a JSON error (401 + WWW-Authenticate for failed Basic auth), never a 5xx;
    a refused request writes nothing."""
    w = world
    before = counts(w["live"])
    known = ["client_id", "client_secret", "scope", "resource", "audience", "client_assertion"]
    resp, basic_sent = post_junk(data, w, "/oauth/device_authorization", known)
    check_json_error(resp, basic_sent, {"invalid_request", "invalid_client", "unauthorized_client",
                                        "invalid_scope", "invalid_target"})
    if resp.status_code == 200:
        body = resp.json()
        assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(body)
    else:
        assert resp.headers.get("Cache-Control") == "no-store", resp.headers
        assert counts(w["live"]) == before


# --- forged and mangled tokens -------------------------------------------------------
def forged_token(data, w) -> str:
    """JWT-looking strings: alg none, HMAC with a public key, our kid with a bad signature,
    a real token with a flipped character, a real id token, or plain junk."""
    real = w["real"]
    kind = data.draw(st.sampled_from(["none_alg", "hs256", "our_kid", "flipped", "id_token", "refresh_as_bearer",
                                      "swapped_payload", "segments", "junk"]), label="forgery")
    claims = data.draw(st.fixed_dictionaries(
        {}, optional={"iss": st.sampled_from([w["live"].url, "https://evil.example", ""]),
                      "sub": small_text, "exp": st.one_of(st.integers(-2**40, 2**40), small_text),
                      "scope": st.sampled_from(["openid", "openid profile email", ""]),
                      "gid": small_text, "jti": small_text, "client_id": small_text}), label="claims")
    claims.setdefault("exp", 4_000_000_000)
    if kind == "none_alg":
        return f"{seg({'alg': 'none', 'typ': 'at+jwt'})}.{seg(claims)}."
    if kind == "hs256":
        return f"{seg({'alg': 'HS256', 'typ': 'at+jwt', 'kid': w['kid']})}.{seg(claims)}.{b64url(b'x' * 32)}"
    if kind == "our_kid":
        alg = data.draw(st.sampled_from(["ES256", "RS256", "ES384", "EdDSA"]), label="alg")
        sig = b64url(data.draw(st.binary(min_size=0, max_size=300), label="sig"))
        return f"{seg({'alg': alg, 'typ': 'at+jwt', 'kid': w['kid']})}.{seg(claims)}.{sig}"
    if kind in ("flipped", "swapped_payload"):
        h, p, s = real["access_token"].split(".")
        if kind == "swapped_payload":
            return f"{h}.{seg(claims)}.{s}"
        i = data.draw(st.integers(0, len(s) - 8), label="pos")  # not the last chars: base64 slack bits
        c = "A" if s[i] != "A" else "B"
        return f"{h}.{p}.{s[:i]}{c}{s[i + 1:]}"
    if kind == "id_token":
        return real["id_token"]  # a valid signature, but typ JWT: not an access token
    if kind == "refresh_as_bearer":
        return real["refresh_token"]
    if kind == "segments":
        parts = data.draw(st.lists(st.one_of(st.text(ascii_printable, max_size=30), st.just("")), min_size=1,
                                   max_size=5), label="parts")
        return ".".join(parts)
    return data.draw(st.one_of(small_text, huge_text), label="junk_token")


@fast(100)
@given(data=st.data())
def test_a23_userinfo_forged_bearer_tokens_refused(world, data):
    """A23 / RFC 6750 §3.1: userinfo answers a forged, mangled or non-access token with 401
    invalid_token and a Bearer challenge (400 for a token outside the header); never a 5xx."""
    w = world
    token = forged_token(data, w)
    scheme = data.draw(st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "DPoP", ""]), label="scheme")
    header = f"{scheme} {token}" if scheme else token
    try:
        header.encode("latin-1")
        requests.utils.check_header_validity(("Authorization", header))
    except (UnicodeEncodeError, requests.exceptions.InvalidHeader):
        # Header values are latin-1 on the wire, and requests refuses CR/LF or a leading space.
        header = (scheme + " " + quote(token)).strip() or "x"
    where = data.draw(st.sampled_from(["header", "query", "form"]), label="where")
    url = w["live"].url + "/oauth/userinfo"
    if where == "header":
        method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
        resp = requests.request(method, url, headers={"Authorization": header}, timeout=10)
    elif where == "query":
        # Bounded: an over-long request line is refused by the HTTP layer (414) before the app.
        resp = requests.get(url, params={"access_token": token[:2000]}, timeout=10)
    else:
        resp = requests.post(url, data={"access_token": token}, timeout=10)
    # A set, because the status depends on the drawn input (where the token goes, the scheme,
    # the size): 401 invalid_token, 400 invalid_request, or 413 for a form body over the size cap.
    assert resp.status_code in (400, 401, 413), (resp.status_code, resp.text[:300])
    body = check_json_error(resp, basic_sent=False)
    if resp.status_code == 401:
        assert body["error"] == "invalid_token", body
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), resp.headers


@fast(60)
@given(data=st.data())
def test_a12_introspection_forged_tokens_inactive(world, data):
    """A12 (RFC 7662 §2.2): a forged or mangled token introspects {"active": false}; only what
    this server issued (signature, typ, issuer) can be active, and never a refresh token (§4)."""
    w = world
    conf = w["conf"]
    token = forged_token(data, w)
    resp = requests.post(w["live"].url + "/oauth/introspect", data={"token": token},
                         auth=(conf.client_id, conf.client_secret), timeout=10)
    if token == "":  # RFC 6749 §3.1: an empty parameter is a missing one
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), resp.text
        return
    # 413 only for a drawn token whose form body is over the cap; every other one is a 200.
    assert resp.status_code in (200, 413), (resp.status_code, resp.text[:300])
    if resp.status_code == 200:
        body = resp.json()
        assert body == {"active": False}, (token[:80], body)


@pytest.mark.parametrize("name", AUTHZ_KEYS)
def test_a1_3_nul_byte_in_each_authorize_parameter_never_5xx(world, name):
    """A1 #3: a NUL byte (which Postgres refuses in text) in any authorization
    parameter of an otherwise valid request, signed in or not, gets a page or an error redirect;
    never a 5xx and never the 503 meant for an unreachable database."""
    w = world
    for anonymous in (True, False):
        params = valid_authorize_params(w["conf"])
        params[name] = "x\x00y"
        resp = _http(w, anonymous).get(w["live"].url + "/oauth/authorize", params=params, allow_redirects=False,
                                       timeout=10)
        check_authorize(w, resp)


@pytest.mark.parametrize("name", TOKEN_KEYS)
def test_a6_41_nul_byte_in_each_token_parameter_gets_json_error(world, name):
    """A6 #41: a NUL byte in any token request parameter gets a JSON 4xx error that
    writes nothing (or is ignored, RFC 6749 §3.2, where the grant has no such parameter); never
    a 5xx."""
    w = world
    conf = w["conf"]
    for grant_type in ("authorization_code", "refresh_token", "client_credentials"):
        data = {"grant_type": grant_type, "code": "c", "code_verifier": "v" * 43, "refresh_token": "r",
                "redirect_uri": conf.redirect_uri}
        data[name] = "x\x00y"
        before = counts(w["live"])
        resp = requests.post(w["live"].url + "/oauth/token", data=data, auth=(conf.client_id, conf.client_secret),
                             timeout=10)
        body = check_json_error(resp, basic_sent=True)
        if body is not None:
            assert counts(w["live"]) == before
        else:
            assert resp.status_code == 200, resp.text
            assert grant_type == "client_credentials" and name != "grant_type", (name, grant_type)
