from tests.conftest import auth_params, pkce_pair, redirect_params


def test_code_flow_confidential(live, make_client, browser, token_post):
    c = make_client()
    v, ch = pkce_pair()
    resp = browser.authorize(auth_params(c, ch))
    p = redirect_params(resp)
    assert p["iss"] == live.url
    r = token_post({"grant_type": "authorization_code", "code": p["code"], "redirect_uri": c.redirect_uri,
                    "code_verifier": v}, auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and "id_token" in body and "refresh_token" in body
