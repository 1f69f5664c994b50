"""Shared fixtures: a real database (SQLite, or Postgres with TEST_DATABASE_URL),
a real HTTP server in a thread, clients registered through the storage layer,
and a browser-like session that logs in and answers the consent page."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from authz_server import create_app
from authz_server.config import Settings
from authz_server.db import Base, Database
from authz_server import migrate

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DATABASE_URL:
        url = TEST_DATABASE_URL
        migrate.downgrade(url, "base")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'authz.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def stytch_emulator():
    """The project's Stytch emulator on a free port: the real SDK talks to it."""
    from authz_server.stytch_emulator import start_emulator

    handle = start_emulator()
    _EMULATOR.append(handle)
    yield handle
    handle.stop()
    _EMULATOR.clear()


_EMULATOR: list = []


@pytest.fixture(scope="session")
def is_postgres(database_url):
    return database_url.startswith("postgresql")


def _wipe(db: Database):
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "signing_keys":
                conn.execute(table.delete())


@dataclass
class LiveServer:
    url: str
    app: object
    db: Database
    settings: Settings

    @property
    def server(self):
        return self.app.extensions["authz"]

    @property
    def stytch_url(self):
        return self.settings.stytch_environment

    def metadata(self):
        return requests.get(self.url + "/.well-known/oauth-authorization-server", timeout=10).json()


def start_server(database_url, **overrides):
    port = _free_port()
    stytch = {}
    if _EMULATOR:
        emu = _EMULATOR[0]
        stytch = dict(stytch_project_id=emu.project_id, stytch_secret=emu.secret,
                      stytch_public_token=emu.public_token, stytch_environment=emu.url)
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
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return LiveServer(settings.issuer, app, db, settings), srv


@pytest.fixture(scope="session")
def _shared_server(database_url, stytch_emulator):
    # The whole session's requests come from 127.0.0.1 and fuzzers hammer one
    # client: the rate limits added for DESIGN §5 are off here, and tested on
    # servers of their own (tests/web/test_rate_limits.py). Registration keeps its
    # limit (tests reset it).
    live, srv = start_server(database_url, token_rate=0, client_auth_failure_rate=0, introspection_rate=0,
                             login_rate=0, cimd_fetch_rate=0)
    yield live
    srv.shutdown()
    live.db.dispose()


@pytest.fixture
def live(_shared_server):
    """The running server, with every table but the signing keys emptied."""
    _wipe(_shared_server.db)
    _shared_server.server.clients.invalidate()
    _shared_server.server.limits.device_code.reset()
    return _shared_server


@pytest.fixture
def make_server_with(database_url, stytch_emulator):
    """A server with different settings (short lifetimes, another grace window)."""
    started = []

    def factory(**overrides):
        live, srv = start_server(database_url, **overrides)
        started.append((live, srv))
        _wipe(live.db)
        return live

    yield factory
    for live, srv in started:
        srv.shutdown()
        live.db.dispose()


@dataclass
class RegisteredClient:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    redirect_uris: list


@pytest.fixture
def make_client(live):
    def factory(client_type="third_party", redirect_uris=("https://app.example/cb",), scopes=(),
                grant_types=("authorization_code", "refresh_token"), auth_method=None, **kw):
        from authz_server.storage import clients as store

        s = live.db.session
        try:
            # allowed_resources=, introspection_resources= (the default audience is live.url).
            kw.setdefault("default_audience", live.settings.audience)
            c, secret = store.create(s, name=kw.pop("name", "Test App"), client_type=client_type,
                                     redirect_uris_=list(redirect_uris), scopes=list(scopes),
                                     grant_types=list(grant_types), auth_method=auth_method, **kw)
            s.commit()
            return RegisteredClient(c.client_id, secret, (list(redirect_uris) or [None])[0], list(redirect_uris))
        finally:
            s.remove() if hasattr(s, "remove") else live.db.session.remove()

    return factory


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PENDING = re.compile(r'name="pending" value="([^"]+)"')
PROVIDER_LINK = re.compile(r'<a[^>]*data-provider="([^"]+)"[^>]*href="([^"]+)"')
ORG_BUTTON = re.compile(r'name="organization_id" value="([^"]+)" data-organization-slug="([^"]+)"')


def form_fields(html: str) -> dict:
    """The named inputs of the first form of a page, with their values."""
    import html as htmllib

    form = html[html.index("<form"):html.index("</form>")]
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", form):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if "name" in attrs:
            fields[htmllib.unescape(attrs["name"])] = htmllib.unescape(attrs.get("value", ""))
    return fields


class Browser:
    """A person's browser: follows the server's own redirects, stops at the
    client's redirect URI, signs in through the login page, answers consent."""

    def __init__(self, live: LiveServer, email="alice@acme.test"):
        self.live = live
        self.email = email
        self.http = requests.Session()

    def get(self, path_or_url, **kw):
        url = path_or_url if path_or_url.startswith("http") else self.live.url + path_or_url
        return self.http.get(url, allow_redirects=False, timeout=10, **kw)

    def post(self, path, data, **kw):
        return self.http.post(self.live.url + path, data=data, allow_redirects=False, timeout=10, **kw)

    def login(self, email=None, pending="", organization_slug=None, provider="google", start=None):
        """Sign in as a person does: the login page, the identity-provider page of
        the Stytch emulator, back to /login/callback, the organization picker (the
        organization of ``organization_slug``, or the first one; created when none
        is offered), and a step-up passcode from the emulator's outbox if asked.
        ``start`` is the login URL a page redirected to, if not the plain one.
        Returns the response that leaves the login pages."""
        import html as htmllib

        email = email or self.email
        page = self.get(start or ("/login" + (f"?pending={pending}" if pending else "")))
        assert page.status_code == 200, (page.status_code, page.text[:300])
        links = {p: htmllib.unescape(h) for p, h in PROVIDER_LINK.findall(page.text)}
        idp = self.http.get(links[provider], timeout=10)
        fields = form_fields(idp.text)
        fields["email"] = email
        back = self.http.post(idp.url, data=fields, allow_redirects=False, timeout=10)
        assert back.status_code in (302, 303), back.text[:300]
        resp = self.get(back.headers["Location"])
        return self.finish_login(resp, email, organization_slug)

    def finish_login(self, resp, email, organization_slug=None):
        for _ in range(6):
            loc = resp.headers.get("Location", "")
            if resp.status_code in (302, 303) and loc.startswith("/login/organizations"):
                resp = self.get(loc)
                continue
            if resp.status_code == 200 and ('name="organization_id"' in resp.text or 'name="create_organization"' in resp.text):
                token = CSRF.search(resp.text).group(1)
                orgs = ORG_BUTTON.findall(resp.text)
                chosen = [o for o, slug in orgs if organization_slug in (None, slug)]
                if chosen:
                    resp = self.post("/login/organizations", {"csrf_token": token, "organization_id": chosen[0]})
                else:
                    name = organization_slug or email.split("@")[1].split(".")[0].capitalize()
                    resp = self.post("/login/organizations", {"csrf_token": token, "create_organization": "1",
                                                              "organization_name": name})
                continue
            if resp.status_code in (302, 303) and loc.startswith("/login/step-up"):
                page = self.get(loc)
                code = requests.get(self.live.stytch_url + "/emulator/outbox", params={"email": email},
                                    timeout=10).json()["code"]
                resp = self.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": code})
                continue
            return resp
        raise AssertionError("login did not finish")

    def authorize(self, params: dict, decision="allow", email=None):
        """Drive /oauth/authorize to the client's redirect; returns the last response
        (a redirect to the client) or the page where the flow stopped."""
        resp = self.get("/oauth/authorize?" + urlencode(params, doseq=True))
        for _ in range(10):
            loc = resp.headers.get("Location", "")
            if resp.status_code in (302, 303) and loc.startswith("/login"):
                pending = parse_qs(urlsplit(loc).query)["pending"][0]
                resp = self.login(email, pending)
                continue
            if resp.status_code in (302, 303) and loc.startswith("/oauth/authorize"):
                resp = self.get(loc)
                continue
            if resp.status_code == 200 and 'name="decision"' in resp.text and decision:
                resp = self.post("/oauth/authorize/consent", {
                    "csrf_token": CSRF.search(resp.text).group(1),
                    "pending": PENDING.search(resp.text).group(1),
                    "decision": decision,
                })
                continue
            return resp
        raise AssertionError("too many hops")


def redirect_params(resp) -> dict:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
    loc = resp.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


@pytest.fixture
def browser(live):
    return Browser(live)


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


@pytest.fixture
def get_code(live, browser):
    """Run the browser part of the flow and return (code, verifier, redirect params)."""

    def run(client, **extra):
        verifier, challenge = pkce_pair()
        resp = browser.authorize(auth_params(client, challenge, **extra))
        params = redirect_params(resp)
        assert "code" in params, params
        return params["code"], verifier, params

    return run


@pytest.fixture
def token_post(live):
    def post(data, auth=None, **kw):
        return requests.post(live.url + "/oauth/token", data=data, auth=auth, timeout=10, **kw)

    return post


@pytest.fixture
def tokens_for(get_code, token_post):
    """Complete the code flow for a client; returns the token response JSON."""

    def run(client, **extra):
        code, verifier, _ = get_code(client, **extra)
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                "code_verifier": verifier, "client_id": client.client_id}
        auth = (client.client_id, client.client_secret) if client.client_secret else None
        resp = token_post(data, auth=auth)
        assert resp.status_code == 200, resp.text
        return resp.json()

    return run


# Not database 0: the machine's Redis is shared.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own; its keys (only those) are deleted afterwards.
    Skips when no Redis answers at TEST_REDIS_URL."""
    import uuid

    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"authz_test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
