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
