from tests.helpers import auth_params, pkce_pair, redirect_params


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


def test_refresh_introspect_revoke_userinfo(live, make_client, tokens_for, token_post):
    import requests

    c = make_client(grant_types=("authorization_code", "refresh_token", "client_credentials"),
                    introspection_resources=(live.url,))
    t = tokens_for(c)
    auth = (c.client_id, c.client_secret)
    r = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, auth=auth)
    assert r.status_code == 200, r.text
    t2 = r.json()
    assert t2["refresh_token"] != t["refresh_token"]
    u = requests.get(live.url + "/oauth/userinfo", headers={"Authorization": "Bearer " + t2["access_token"]})
    assert u.status_code == 200, u.text
    assert u.json()["email"] == "alice@acme.test"
    i = requests.post(live.url + "/oauth/introspect", data={"token": t2["access_token"]}, auth=auth)
    assert i.json()["active"] is True, i.text
    rv = requests.post(live.url + "/oauth/revoke", data={"token": t2["refresh_token"]}, auth=auth)
    assert rv.status_code == 200, rv.text
    i = requests.post(live.url + "/oauth/introspect", data={"token": t2["access_token"]}, auth=auth)
    assert i.json() == {"active": False}
    cc = token_post({"grant_type": "client_credentials"}, auth=auth)
    assert cc.status_code == 200, cc.text
