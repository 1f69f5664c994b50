"""Small helpers shared by the test modules (the fixtures live in conftest.py)."""
from __future__ import annotations

import base64
import datetime as dt
import json
from contextlib import contextmanager

import requests
import time_machine
from sqlalchemy import select

from authz_server.models import AuditEvent


def introspect(live, resource_server, token: str) -> dict:
    """RFC 7662 introspection as a confidential resource server; asserts a 200."""
    resp = requests.post(live.url + "/oauth/introspect", data={"token": token},
                         auth=(resource_server.client_id, resource_server.client_secret), timeout=15)
    assert resp.status_code == 200, resp.text
    return resp.json()


def register_resources(live, resources: dict) -> None:
    """Register protected resources, {identifier: [scopes]}, as `resources add` does."""
    from authz_server.models import Resource

    s = live.db.session
    try:
        s.add_all([Resource(identifier=uri, name=uri, scopes=list(scopes)) for uri, scopes in resources.items()])
        s.commit()
    finally:
        s.remove()


def resource_server(live, make_client, **kw):
    """A confidential client an operator allowed to introspect access tokens for
    the default audience (``clients create --introspect``), as resource servers are."""
    kw.setdefault("introspection_resources", (live.settings.audience,))
    return make_client(grant_types=("client_credentials",), redirect_uris=(), **kw)


def refresh_token_active(live, token: str) -> bool:
    """Whether the server would still accept a refresh token (not rotated,
    revoked or expired, its grant and member still active). Introspection tells
    nobody (RFC 7662 §4: it is not a resource server's business), so tests look
    it up as the revocation endpoint does."""
    from authz_server.oauth.endpoints import tokens_lookup

    with live.app.app_context():
        try:
            found = tokens_lookup.find(live.server, token, "refresh_token", kinds=("refresh_token",))
            return found is not None and found.active
        finally:
            live.db.session.remove()


def audit_rows(live, event: str) -> list:
    s = live.db.session
    try:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event)).all())
    finally:
        s.remove()


def jwt_claims(token: str) -> dict:
    """The claims of a JWT, unverified (the tests that need it verify elsewhere)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@contextmanager
def frozen(live, seconds, start=None):
    """Freeze the clock ``seconds`` after ``start`` (default: now); the server
    runs in-process, so it sees the same clock."""
    start = start or dt.datetime.now(dt.timezone.utc)
    try:
        with time_machine.travel(start + dt.timedelta(seconds=seconds), tick=False):
            yield
    finally:
        # The caches stamp entries with the travelled monotonic clock; drop them.
        live.server.keys.invalidate()
        live.server.clients.invalidate()


# --- the device flow (RFC 8628) as a device and as a member's browser --------

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _client_auth(client, data):
    if client.client_secret:
        return (client.client_id, client.client_secret)
    data["client_id"] = client.client_id
    return None


def device_start(live, client, **params):
    """POST to the device authorization endpoint as the device does (§3.1)."""
    data = {k: v for k, v in params.items() if v is not None}
    auth = _client_auth(client, data)
    return requests.post(live.url + "/oauth/device_authorization", data=data, auth=auth, timeout=10)


def device_poll(live, client, device_code, **extra):
    """One token request with the device code (§3.4)."""
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code, **extra}
    auth = _client_auth(client, data)
    return requests.post(live.url + "/oauth/token", data=data, auth=auth, timeout=10)


def device_confirm_page(browser, url):
    """Open the verification link as the member does, signing in on the way;
    returns the page the flow stops at (the confirmation, or an error)."""
    resp = browser.get(url)
    for _ in range(5):
        loc = resp.headers.get("Location", "")
        if resp.status_code in (302, 303) and loc.startswith("/login"):
            resp = browser.login(start=loc)
            continue
        if resp.status_code in (302, 303):
            resp = browser.get(loc)
            continue
        return resp
    raise AssertionError("too many hops")


def device_decide(browser, page, decision="allow"):
    """Submit the confirmation form of ``page``."""
    import html as htmllib
    import re

    fields = dict(re.findall(r'name="(csrf_token|user_code)" value="([^"]*)"', page.text))
    fields = {k: htmllib.unescape(v) for k, v in fields.items()}
    return browser.post("/device/decision", {**fields, "decision": decision})


def closed_port() -> int:
    """A loopback port nothing listens on (a service that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
