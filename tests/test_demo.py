"""The demo `make run` seeds (authz_server/demo.py): its clients work as printed."""
from __future__ import annotations

import requests

from authz_server.demo import DEMO_CLI_ID, DEMO_CLIENT_ID, DEMO_REDIRECT_URI, seed


def test_demo_seed_prints_working_clients_and_is_repeatable(live):
    first = seed(live.settings)
    again = seed(live.settings)  # every `make run` seeds again: same ids, a new secret
    secret = next(line.split("=", 1)[1].strip() for line in again.splitlines() if "client_secret" in line)
    assert secret not in first
    assert DEMO_CLIENT_ID in again and DEMO_REDIRECT_URI in again and DEMO_CLI_ID in again
    live.server.clients.invalidate()
    # The printed secret authenticates the web client; the CLI starts the device flow.
    resp = requests.post(live.url + "/oauth/revoke", data={"token": "x"}, auth=(DEMO_CLIENT_ID, secret), timeout=10)
    assert resp.status_code == 200, resp.text
    resp = requests.post(live.url + "/oauth/device_authorization", data={"client_id": DEMO_CLI_ID}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["verification_uri"] == live.url + "/device"


def _printed(info: str):
    """The authorization URL's parameters, the verifier and the `curl` exchange line the demo printed."""
    from urllib.parse import parse_qsl, urlsplit

    words = info.split()
    url = next(w for w in words if "/oauth/authorize?" in w)
    params = dict(parse_qsl(urlsplit(url).query))
    verifier = info.split("(code_verifier = ", 1)[1].split(")", 1)[0]
    curl = next((line.strip() for line in info.splitlines() if line.strip().startswith("curl -u ")), None)
    return url, params, verifier, curl


def _run_curl_line(line: str, code: str):
    """Send what the printed `curl -u ID:SECRET -d k=v … URL` line sends, with CODE
    replaced; anything else on the line fails the test."""
    import shlex

    args = shlex.split(line)
    assert args[0] == "curl"
    auth, data, url = None, [], None
    it = iter(args[1:])
    for arg in it:
        if arg == "-u":
            auth = tuple(next(it).split(":", 1))
        elif arg == "-d":
            data.append(tuple(next(it).split("=", 1)))
        else:
            assert url is None and arg.startswith("http"), arg
            url = arg
    data = [(k, code if v == "CODE" else v) for k, v in data]
    return auth, dict(data), requests.post(url, data=data, auth=auth, timeout=10)


def test_demo_prints_a_matching_pkce_pair_and_a_code_exchange_that_works(live):
    """RFC 7636 §4.2: the printed code_challenge is S256 of the printed verifier
    (drawn afresh at every start), and after signing in at the printed URL the
    printed `curl` line, with the code in place of CODE, gets tokens: it sends
    exactly what the token endpoint needs (RFC 6749 §4.1.3: the client's
    credentials, grant_type, code, redirect_uri, and the PKCE verifier)."""
    import base64
    import hashlib

    from tests.browser import Browser
    from tests.helpers import redirect_params

    earlier = _printed(seed(live.settings))
    info = seed(live.settings)  # the latest start's secret is the one that works
    live.server.clients.invalidate()
    url, params, verifier, curl = _printed(info)
    assert url.startswith(live.url + "/oauth/authorize?")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge_method"] == "S256" and params["code_challenge"] == challenge
    assert params["client_id"] == DEMO_CLIENT_ID and params["redirect_uri"] == DEMO_REDIRECT_URI
    assert verifier != earlier[2]  # drawn at every start, not a constant
    assert curl and f"code_verifier={verifier}" in curl and curl.endswith(" " + live.url + "/oauth/token")

    back = redirect_params(Browser(live).authorize(params))
    assert back["state"] == "demo" and "code" in back, back
    auth, sent, resp = _run_curl_line(curl, back["code"])
    assert auth[0] == DEMO_CLIENT_ID and f"client_secret = {auth[1]}" in info
    assert sent == {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": DEMO_REDIRECT_URI,
                    "code_verifier": verifier}
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["access_token"] and body["id_token"] and body["refresh_token"]
