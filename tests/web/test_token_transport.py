"""Token endpoint transport (docs/requirements.md: A1-2, 3, 4, 5): POST with a
form body only, no parameter twice, ``Cache-Control: no-store`` on every token
response, and no access token taken from a URL query string."""
from __future__ import annotations

import requests

BACK_CHANNEL = ("/oauth/token", "/oauth/revoke", "/oauth/introspect")


def _json_error(resp, status, error):
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert body["error"] == error, body
    return body


def _no_store(resp):
    assert "no-store" in resp.headers.get("Cache-Control", ""), (resp.status_code, dict(resp.headers))


# --- item 2: POST with application/x-www-form-urlencoded only ---------------------


def test_a1_2_get_on_token_endpoint_is_405_json(live):
    """RFC 6749 §3.2: the token endpoint takes POST only; GET gets 405 with a JSON
    error and an Allow header."""
    resp = requests.get(live.url + "/oauth/token", params={"grant_type": "client_credentials"}, timeout=10)
    _json_error(resp, 405, "invalid_request")
    assert resp.headers["Allow"].split(", ").count("POST") == 1
    assert "GET" not in resp.headers["Allow"]


def test_a1_2_get_on_revocation_and_introspection_is_405(live):
    """RFC 7009 §2.1, RFC 7662 §2.1: the revocation and introspection endpoints
    take POST only."""
    for path in ("/oauth/revoke", "/oauth/introspect"):
        resp = requests.get(live.url + path, params={"token": "x"}, timeout=10)
        _json_error(resp, 405, "invalid_request")


def test_a1_2_json_body_is_invalid_request(live, make_client):
    """RFC 6749 §3.2: parameters come as application/x-www-form-urlencoded; a JSON
    body gets 400 invalid_request, and issues nothing."""
    c = make_client(grant_types=("client_credentials",))
    for path in BACK_CHANNEL:
        resp = requests.post(live.url + path, json={"grant_type": "client_credentials", "token": "x"},
                             auth=(c.client_id, c.client_secret), timeout=10)
        _json_error(resp, 400, "invalid_request")
        assert "access_token" not in resp.json()


def test_a1_2_form_body_works_for_the_same_request(live, make_client, token_post):
    """The control for the JSON test: the same request as a form body succeeds."""
    c = make_client(grant_types=("client_credentials",))
    resp = token_post({"grant_type": "client_credentials"}, auth=(c.client_id, c.client_secret))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"


def test_a1_2_query_string_parameters_are_not_read(live, make_client):
    """RFC 6749 §3.2: parameters travel in the POST body; a grant_type sent only in
    the query string is not a token request."""
    c = make_client(grant_types=("client_credentials",))
    resp = requests.post(live.url + "/oauth/token?grant_type=client_credentials", data={"x": "1"},
                         auth=(c.client_id, c.client_secret), timeout=10)
    assert resp.status_code == 400, resp.text
    assert "access_token" not in resp.json()


# --- item 3 at the token endpoint: a parameter sent twice --------------------------


def test_a1_3_duplicate_token_parameter_is_invalid_request(live, make_client, token_post):
    """RFC 6749 §3.2: request parameters must not be included more than once."""
    c = make_client(grant_types=("client_credentials",))
    resp = token_post([("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
                      auth=(c.client_id, c.client_secret))
    body = _json_error(resp, 400, "invalid_request")
    assert "grant_type" in body["error_description"]
    _no_store(resp)


def test_a1_3_duplicate_code_is_invalid_request(live, make_client, get_code, token_post):
    """A duplicated ``code`` is refused before any code is looked at (and the code
    stays redeemable)."""
    c = make_client()
    code, verifier, _ = get_code(c)
    auth = (c.client_id, c.client_secret)
    resp = token_post([("grant_type", "authorization_code"), ("code", code), ("code", "other"),
                       ("code_verifier", verifier)], auth=auth)
    _json_error(resp, 400, "invalid_request")
    ok = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier}, auth=auth)
    assert ok.status_code == 200, ok.text


def test_a1_3_duplicate_revocation_and_introspection_parameter(live, make_client):
    """RFC 7009 / RFC 7662 bodies follow the same form rules: ``token`` twice is
    invalid_request."""
    c = make_client(grant_types=("client_credentials",))
    for path in ("/oauth/revoke", "/oauth/introspect"):
        resp = requests.post(live.url + path, data=[("token", "a"), ("token", "b")],
                             auth=(c.client_id, c.client_secret), timeout=10)
        _json_error(resp, 400, "invalid_request")


def test_a1_3_empty_parameter_counts_as_absent(live, make_client, token_post):
    """RFC 6749 §3.1: an empty value is treated as omitted, so an empty ``scope``
    is not a (duplicate or invalid) scope."""
    c = make_client(grant_types=("client_credentials",))
    resp = token_post([("grant_type", "client_credentials"), ("scope", "")], auth=(c.client_id, c.client_secret))
    assert resp.status_code == 200, resp.text


# --- item 4: Cache-Control: no-store on every token response ----------------------


def test_a1_4_no_store_on_success(live, make_client, tokens_for, token_post):
    """RFC 6749 §5.1: a token response carries Cache-Control: no-store (and the
    Pragma: no-cache of §5.1)."""
    c = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    auth = (c.client_id, c.client_secret)
    cc = token_post({"grant_type": "client_credentials"}, auth=auth)
    assert cc.status_code == 200
    _no_store(cc)
    assert cc.headers.get("Pragma") == "no-cache"
    t = tokens_for(c)
    rt = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, auth=auth)
    assert rt.status_code == 200
    _no_store(rt)
    assert rt.headers["Content-Type"].startswith("application/json")


def test_a1_4_no_store_on_code_redemption(live, make_client, get_code, token_post):
    """The authorization-code response, which carries an id token too, is no-store."""
    c = make_client()
    code, verifier, _ = get_code(c)
    resp = token_post({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                      auth=(c.client_id, c.client_secret))
    assert resp.status_code == 200
    _no_store(resp)


def test_a1_4_no_store_on_every_error(live, make_client, token_post):
    """Every /oauth/token response, 4xx included, has Cache-Control: no-store."""
    c = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    auth = (c.client_id, c.client_secret)
    cases = [
        (token_post({"grant_type": "authorization_code", "code": "nope", "code_verifier": "x" * 43}, auth=auth),
         400, "invalid_grant"),
        (token_post({"grant_type": "client_credentials"}, auth=(c.client_id, "wrong")), 401, "invalid_client"),
        (token_post({"grant_type": "urn:example:unknown"}, auth=auth), 400, "unsupported_grant_type"),
        (token_post({"grant_type": "client_credentials", "scope": "no-such-scope"}, auth=auth), 400, "invalid_scope"),
        (token_post({"grant_type": "refresh_token"}, auth=auth), 400, "invalid_request"),
        (requests.post(live.url + "/oauth/token", json={"grant_type": "client_credentials"}, auth=auth, timeout=10),
         400, "invalid_request"),
        (requests.get(live.url + "/oauth/token", timeout=10), 405, "invalid_request"),
    ]
    for resp, status, error in cases:
        _json_error(resp, status, error)
        _no_store(resp)


# --- item 5: no access token from a query string ----------------------------------


def test_a1_5_userinfo_refuses_access_token_in_query(live, make_client, tokens_for):
    """RFC 6750 §2.3 / OAuth 2.1 §5.1: an access token in the URL query is never
    accepted, even a valid one, at userinfo."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    ok = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {at}"}, timeout=10)
    assert ok.status_code == 200, ok.text  # the token itself is good
    resp = requests.get(live.url + "/oauth/userinfo", params={"access_token": at}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
    assert "sub" not in resp.json()
    assert resp.json()["error"] in ("invalid_request", "invalid_token")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a1_5_query_token_refused_even_next_to_a_header(live, make_client, tokens_for):
    """A query-string token is refused also when a valid header is sent with it
    (RFC 6750 §2: a client uses one method only)."""
    c = make_client()
    at = tokens_for(c)["access_token"]
    resp = requests.post(live.url + "/oauth/userinfo?access_token=" + at,
                         headers={"Authorization": f"Bearer {at}"}, timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"
