"""Small helpers shared by the test modules (the fixtures live in conftest.py,
the browser-like client in browser.py). Test modules import from here, never
from conftest.py or from one another (tests/test_layout.py checks)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests
import time_machine
from sqlalchemy import select

from authz_server.models import AuditEvent

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

# Not database 0: the machine's Redis is shared.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


# --- local servers ------------------------------------------------------------

def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How often a server thread looks whether shutdown() was asked for: shutdown()
# waits up to this long (socketserver's default of 0.5 s, paid in every teardown).
POLL_INTERVAL = 0.05


def serve_in_thread(server) -> threading.Thread:
    """Run a socketserver (werkzeug's or http.server's) in a daemon thread that
    stops within POLL_INTERVAL of ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
    thread.start()
    return thread


@dataclass
class LiveServer:
    url: str
    app: object
    db: object
    settings: object

    @property
    def server(self):
        return self.app.extensions["authz"]

    @property
    def stytch_url(self):
        return self.settings.stytch_environment

    def metadata(self):
        return requests.get(self.url + "/.well-known/oauth-authorization-server", timeout=10).json()


def start_server(database_url, emulator=None, **overrides):
    """Our server on a free loopback port in a thread, talking to ``emulator``
    (the Stytch emulator's handle) when given; returns (LiveServer, the werkzeug server)."""
    from werkzeug.serving import make_server

    from authz_server import create_app
    from authz_server.config import Settings
    from authz_server.db import Database

    port = free_port()
    stytch = {}
    if emulator is not None:
        stytch = dict(stytch_project_id=emulator.project_id, stytch_secret=emulator.secret,
                      stytch_public_token=emulator.public_token, stytch_environment=emulator.url)
    stytch.update(overrides)
    settings = Settings(
        issuer=f"http://127.0.0.1:{port}",
        database_url=database_url,
        environment="test",
        **stytch,
    )
    db = Database(database_url)
    app = create_app(settings, db)
    with app.app_context():
        app.extensions["authz"].keys.ensure(db.session)
        db.session.commit()
        db.session.remove()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(srv)
    return LiveServer(settings.issuer, app, db, settings), srv


# --- an OAuth client's side ---------------------------------------------------

@dataclass
class RegisteredClient:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    redirect_uris: list


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def auth_params(client: RegisteredClient, challenge, **extra):
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile email",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def redirect_params(resp) -> dict:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
    loc = resp.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def client_auth(client, data: dict):
    """HTTP Basic for a client with a secret; a public client names itself with
    client_id in the body (RFC 6749 §2.3.1, §3.2.1). Returns the ``auth=`` argument."""
    if client.client_secret:
        return (client.client_id, client.client_secret)
    data["client_id"] = client.client_id
    return None


def refresh(live_or_url, client, refresh_token, **extra):
    """One refresh-token grant request (RFC 6749 §6) as ``client``, at a LiveServer or a base URL."""
    url = live_or_url if isinstance(live_or_url, str) else live_or_url.url
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    auth = client_auth(client, data)
    return requests.post(url + "/oauth/token", data=data, auth=auth, timeout=10)


def post_as_client(live, path, client, auth="basic", **data):
    """POST a form to one of our endpoints as ``client``, authenticating by
    ``auth``: "basic" (HTTP Basic), "post" (the secret in the body) or "none"
    (client_id only, as a public client does). Parameters that are None are left out."""
    data = {k: v for k, v in data.items() if v is not None}
    if auth == "basic":
        return requests.post(live.url + path, data=data, auth=(client.client_id, client.client_secret), timeout=10)
    if auth == "post":
        data.update(client_id=client.client_id, client_secret=client.client_secret)
    else:
        assert auth == "none", auth
        data["client_id"] = client.client_id
    return requests.post(live.url + path, data=data, timeout=10)


def oauth_error(resp, status: int, error: str) -> dict:
    """An RFC 6749 §5.2 error response (token and device authorization
    endpoints): the status, a JSON body naming ``error``, not cached, no
    token in it. Returns the body."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers["Content-Type"]
    assert resp.headers.get("Cache-Control") == "no-store", resp.headers.get("Cache-Control")
    body = resp.json()
    assert body["error"] == error, body
    assert not {"access_token", "refresh_token", "id_token", "device_code"} & body.keys(), body
    return body


# --- HTML forms ---------------------------------------------------------------

class _FirstForm(HTMLParser):
    """Collects the first <form> of a page: its attributes and named inputs
    (attribute values come unescaped, as a browser submits them)."""

    def __init__(self):
        super().__init__()
        self.form: dict | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.form is None:
            self.form = attrs
        elif tag == "input" and self.form is not None and not self._done and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form" and self.form is not None:
            self._done = True


def parse_form(html: str) -> _FirstForm:
    """The first form of a page: ``.form`` (its attributes) and ``.fields``."""
    parser = _FirstForm()
    parser.feed(html)
    return parser


def form_fields(html: str) -> dict:
    """The named inputs (with their values) of a page's first form."""
    return parse_form(html).fields


# --- the server's state ---------------------------------------------------------


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


# --- the Stytch emulator -----------------------------------------------------

@contextmanager
def step_up_required(stytch_url, domain):
    """Make the emulator at ``stytch_url`` ask members of ``domain`` for an email
    passcode, and put it back afterwards."""
    url = stytch_url + "/emulator/step-up-domains"
    assert requests.post(url, json={"domain": domain, "required": True}, timeout=10).status_code == 200
    try:
        yield
    finally:
        requests.post(url, json={"domain": domain, "required": False}, timeout=10)


# --- the device flow (RFC 8628) as a device and as a member's browser --------

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def device_start(live, client, **params):
    """POST to the device authorization endpoint as the device does (§3.1)."""
    data = {k: v for k, v in params.items() if v is not None}
    auth = client_auth(client, data)
    return requests.post(live.url + "/oauth/device_authorization", data=data, auth=auth, timeout=10)


def device_poll(live, client, device_code, **extra):
    """One token request with the device code (§3.4)."""
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code, **extra}
    auth = client_auth(client, data)
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
    return free_port()
