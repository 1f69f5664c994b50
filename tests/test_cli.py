"""`authz-server` administration CLI (admins register, edit, disable
clients and rotate their secrets; migrations; bad input gets a clear error,
never partial writes).

Every command runs through click's CliRunner with DATABASE_URL pointing at a
temporary SQLite database of its own (migrated with `db upgrade` first). A real
server on that same database checks that what the CLI issued works at the
token endpoint."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from click.testing import CliRunner
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.orm import Session

from authz_server.cli import main as cli
from authz_server.models import AuditEvent, Client, SigningKey
from authz_server.oauth.keys import MIN_PUBLISHED_SECONDS
from tests.helpers import start_server

CONFIDENTIAL = ("first_party", "third_party")
PUBLIC = ("first_party_public", "third_party_public")


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(db_url):
    """Invoke the CLI with a clean environment naming the temp database."""
    runner = CliRunner()
    env = {"DATABASE_URL": db_url, "AUTHZ_ENV": "development", "AUTHZ_ISSUER": None, "AUTHZ_SECRET_KEY": None,
           "AUTHZ_KEY_ENCRYPTION_KEY": None, "AUTHZ_ACCESS_TOKEN_TTL": None, "AUTHZ_CODE_TTL": None}

    def invoke(*args, input=None, **extra_env):
        return runner.invoke(cli, list(args), env={**env, **extra_env}, input=input)

    return invoke


@pytest.fixture
def migrated(run, db_url):
    res = run("db", "upgrade")
    assert res.exit_code == 0, res.output
    return db_url


def _ok(res):
    assert res.exit_code == 0, (res.exit_code, res.output, res.exception)
    return res


def _failed(res, *fragments):
    """A clean failure: non-zero exit, an 'Error:' line naming the problem, no traceback."""
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    assert not (res.exception and not isinstance(res.exception, SystemExit)), repr(res.exception)
    for f in fragments:
        assert f in res.output, (f, res.output)
    return res


def _create(run, client_type="third_party", *extra, name="CLI App"):
    args = ["clients", "create", "--name", name, "--type", client_type,
            "--redirect-uri", "https://app.example/cb", "--scope", "openid profile",
            "--grant-type", "authorization_code", "--grant-type", "refresh_token", *extra, "--json"]
    return json.loads(_ok(run(*args)).output)


def _rows(url, model):
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return list(s.scalars(select(model)).all())
    finally:
        engine.dispose()


def _count(url, model):
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return s.scalar(select(func.count()).select_from(model))
    finally:
        engine.dispose()


def _client(url, client_id) -> Client | None:
    return next((c for c in _rows(url, Client) if c.client_id == client_id), None)


@pytest.fixture
def server(migrated, stytch_emulator):
    live, srv = start_server(migrated, stytch_emulator)
    yield live
    srv.shutdown()
    live.db.dispose()


def _cc_token(live, client_id, secret):
    return requests.post(live.url + "/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(client_id, secret), timeout=10)


# --- db -----------------------------------------------------------------------------

def test_cli_db_upgrade_creates_the_schema(run, db_url):
    """`authz-server db upgrade` migrates a fresh database to head."""
    res = _ok(run("db", "upgrade"))
    assert "database is at head" in res.output
    engine = create_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"clients", "signing_keys", "audit_events", "alembic_version"} <= tables
    _ok(run("db", "upgrade"))  # idempotent


# --- clients create -------------------------------------------------------------------

@pytest.mark.parametrize("client_type", CONFIDENTIAL)
def test_cli_create_confidential_prints_id_and_secret_once(run, migrated, client_type):
    """A confidential client gets a secret, shown once and stored only as its SHA-256 digest."""
    data = _create(run, client_type)
    assert data["client_id"] and data["client_secret"]
    assert data["client_type"] == client_type
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    assert data["redirect_uris"] == ["https://app.example/cb"]
    assert data["scope"] == "openid profile"
    assert data["grant_types"] == ["authorization_code", "refresh_token"]
    assert "client_secret_hash" not in data
    stored = _client(migrated, data["client_id"])
    assert stored.client_secret_hash == hashlib.sha256(data["client_secret"].encode()).hexdigest()
    assert data["client_secret"] not in (stored.client_secret_hash or "")
    # Never again: show and list do not reveal it.
    shown = _ok(run("clients", "show", data["client_id"], "--json")).output
    assert data["client_secret"] not in shown and "client_secret" not in json.loads(shown)
    assert data["client_secret"] not in _ok(run("clients", "list", "--json")).output


@pytest.mark.parametrize("client_type", PUBLIC)
def test_cli_create_public_prints_no_secret(run, migrated, client_type):
    """OAuth 2.1 §2.1: a public client has no secret and authenticates with `none`."""
    data = _create(run, client_type)
    assert "client_secret" not in data
    assert data["token_endpoint_auth_method"] == "none"
    assert _client(migrated, data["client_id"]).client_secret_hash is None


def test_cli_create_text_output_warns_the_secret_is_shown_once(run, migrated):
    """The plain output shows the secret with a store-it-now warning."""
    res = _ok(run("clients", "create", "--name", "Plain", "--type", "third_party",
                  "--redirect-uri", "https://app.example/cb"))
    assert "client_secret" in res.output and "shown only once" in res.output


def test_cli_created_secret_works_at_the_token_endpoint(run, server):
    """RFC 6749 §2.3.1: the printed secret authenticates the client (client_secret_basic)."""
    data = _create(run, "third_party", "--grant-type", "client_credentials")
    r = _cc_token(server, data["client_id"], data["client_secret"])
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    r = _cc_token(server, data["client_id"], data["client_secret"] + "x")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


# --- bad input stores nothing -----------------------------------------------------------

@pytest.mark.parametrize("uri, fragment", [
    ("javascript:alert(1)", "forbidden scheme"),
    ("http://app.example/cb", "non-loopback"),
    ("https://app.example/cb#frag", "fragment"),
    ("/relative/cb", "absolute"),
])
def test_cli_create_refuses_bad_redirect_uris_and_stores_nothing(run, migrated, uri, fragment):
    """OAuth 2.1 §2.3 / RFC 8252 §7.3: a clear error, exit non-zero, no row, no audit event."""
    res = run("clients", "create", "--name", "Bad", "--type", "third_party", "--redirect-uri", uri, "--json")
    _failed(res, "Error:", "redirect URI", fragment)
    assert _count(migrated, Client) == 0
    assert _count(migrated, AuditEvent) == 0


def test_cli_create_allows_loopback_http_for_native_clients(run, migrated):
    """RFC 8252 §7.3: http on a loopback address is fine."""
    res = _ok(run("clients", "create", "--name", "CLI", "--type", "third_party_public",
                  "--redirect-uri", "http://127.0.0.1/callback", "--json"))
    assert json.loads(res.output)["redirect_uris"] == ["http://127.0.0.1/callback"]


@pytest.mark.parametrize("args, fragment", [
    (["--type", "third_party_public", "--grant-type", "client_credentials"], "public client"),
    (["--type", "third_party_public", "--auth-method", "client_secret_basic",
      "--redirect-uri", "https://app.example/cb"], "public client"),
    (["--type", "third_party", "--auth-method", "none", "--redirect-uri", "https://app.example/cb"],
     "confidential client"),
    (["--type", "third_party"], "redirect URI"),  # authorization_code without a redirect URI
])
def test_cli_create_refuses_inconsistent_metadata(run, migrated, args, fragment):
    """RFC 7591 §2 / OAuth 2.1 §2.1: inconsistent types, methods and grants are refused with a reason."""
    _failed(run("clients", "create", "--name", "Bad", *args), "Error:", fragment)
    assert _count(migrated, Client) == 0


def test_cli_create_refuses_unknown_type(run, migrated):
    """click validation: an unknown --type is a usage error (exit 2), nothing stored."""
    res = run("clients", "create", "--name", "Bad", "--type", "superuser", "--redirect-uri", "https://a.example/cb")
    assert res.exit_code == 2 and "superuser" in res.output
    assert _count(migrated, Client) == 0


@pytest.mark.parametrize("command", [
    ["clients", "show"], ["clients", "update", "--name", "X"], ["clients", "disable"],
    ["clients", "rotate-secret"], ["clients", "delete", "--yes"],
])
def test_cli_unknown_client_id_is_a_clean_error(run, migrated, command):
    """An unknown client id exits non-zero naming it, and writes nothing."""
    res = run(*command[:2], "client-nope", *command[2:])
    _failed(res, "Error:", "no client 'client-nope'")
    assert _count(migrated, AuditEvent) == 0


# --- list / show / update / disable / rotate / delete ---------------------------------------

def test_cli_list_and_show(run, migrated):
    """Admins see every client (text and JSON), and one client's metadata."""
    a = _create(run, "third_party", name="Alpha")
    b = _create(run, "third_party_public", name="Beta")
    text = _ok(run("clients", "list")).output
    assert a["client_id"] in text and b["client_id"] in text and "Alpha" in text and "active" in text
    listed = json.loads(_ok(run("clients", "list", "--json")).output)
    assert {c["client_id"] for c in listed} == {a["client_id"], b["client_id"]}
    shown = json.loads(_ok(run("clients", "show", b["client_id"], "--json")).output)
    assert shown["client_name"] == "Beta" and shown["client_type"] == "third_party_public"
    assert shown["disabled"] is False
    assert b["client_id"] in _ok(run("clients", "show", b["client_id"])).output


def test_cli_update_changes_only_the_given_fields(run, migrated):
    """Admins edit a client; options not given keep their values."""
    a = _create(run, "third_party")
    res = _ok(run("clients", "update", a["client_id"], "--name", "Renamed",
                  "--redirect-uri", "https://app.example/cb2", "--redirect-uri", "https://app.example/cb3", "--json"))
    data = json.loads(res.output)
    assert data["client_name"] == "Renamed"
    assert data["redirect_uris"] == ["https://app.example/cb2", "https://app.example/cb3"]
    assert data["scope"] == "openid profile"
    stored = _client(migrated, a["client_id"])
    assert stored.name == "Renamed" and stored.redirect_uris == data["redirect_uris"]
    assert stored.client_secret_hash == hashlib.sha256(a["client_secret"].encode()).hexdigest()


@pytest.mark.parametrize("uri, fragment", [("javascript:alert(1)", "forbidden scheme"),
                                           ("http://evil.example/cb", "non-loopback")])
def test_cli_update_refuses_bad_redirect_uri_and_changes_nothing(run, migrated, uri, fragment):
    """OAuth 2.1 §2.3: a refused update leaves the client and the audit log as they were."""
    a = _create(run, "third_party")
    events = _count(migrated, AuditEvent)
    _failed(run("clients", "update", a["client_id"], "--name", "Changed", "--redirect-uri", uri),
            "Error:", fragment)
    stored = _client(migrated, a["client_id"])
    assert stored.name == "CLI App" and stored.redirect_uris == ["https://app.example/cb"]
    assert _count(migrated, AuditEvent) == events


def test_cli_disable_and_enable(run, server):
    """Admins disable a client: it can no longer get tokens; --enable restores it."""
    a = _create(run, "third_party", "--grant-type", "client_credentials")
    cid, secret = a["client_id"], a["client_secret"]
    assert _cc_token(server, cid, secret).status_code == 200
    res = _ok(run("clients", "disable", cid))
    assert "disabled " + cid in res.output
    assert _client(server.settings.database_url, cid).disabled_at is not None
    assert json.loads(_ok(run("clients", "show", cid, "--json")).output)["disabled"] is True
    server.server.clients.invalidate()  # every node sees it within client_cache_ttl
    r = _cc_token(server, cid, secret)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    _ok(run("clients", "disable", cid, "--enable"))
    assert _client(server.settings.database_url, cid).disabled_at is None
    server.server.clients.invalidate()
    assert _cc_token(server, cid, secret).status_code == 200


def test_cli_rotate_secret(run, server):
    """Admins rotate a secret: the new one works, the old one stops working."""
    a = _create(run, "third_party", "--grant-type", "client_credentials")
    cid, old = a["client_id"], a["client_secret"]
    res = json.loads(_ok(run("clients", "rotate-secret", cid, "--json")).output)
    assert res["client_id"] == cid and res["client_secret"] and res["client_secret"] != old
    stored = _client(server.settings.database_url, cid)
    assert stored.client_secret_hash == hashlib.sha256(res["client_secret"].encode()).hexdigest()
    assert stored.secret_rotated_at is not None
    server.server.clients.invalidate()
    assert _cc_token(server, cid, old).status_code == 401
    assert _cc_token(server, cid, res["client_secret"]).status_code == 200
    assert "shown only once" in _ok(run("clients", "rotate-secret", cid)).output


def test_cli_rotate_secret_of_public_client_refused(run, migrated):
    """OAuth 2.1 §2.1: a public client has no secret to rotate; nothing is stored."""
    b = _create(run, "third_party_public")
    _failed(run("clients", "rotate-secret", b["client_id"]), "Error:", "public client has no secret")
    assert _client(migrated, b["client_id"]).client_secret_hash is None


def test_cli_delete(run, server):
    """Admins delete a client (confirmation required); its secret stops working."""
    a = _create(run, "third_party", "--grant-type", "client_credentials")
    cid = a["client_id"]
    res = run("clients", "delete", cid, input="n\n")
    assert res.exit_code == 1 and "Aborted" in res.output
    assert _client(server.settings.database_url, cid) is not None
    assert "deleted " + cid in _ok(run("clients", "delete", cid, input="y\n")).output
    assert _client(server.settings.database_url, cid) is None
    b = _create(run, "third_party")
    _ok(run("clients", "delete", b["client_id"], "--yes"))
    assert _count(server.settings.database_url, Client) == 0
    server.server.clients.invalidate()
    assert _cc_token(server, cid, a["client_secret"]).status_code == 401


# --- resources a client may ask for, resources it may introspect ------------------

FILES = "https://files.example/mcp"


def test_cli_resource_allow_list_for_client_credentials(run, server):
    """`clients create/update --resource URL` (repeatable) is
    the client's allow-list; without one, client_credentials gets only the
    default audience. `--no-resources` takes it back; an unregistered resource
    is a clean error and nothing is stored."""
    _ok(run("resources", "add", FILES, "--scope", "files:read"))
    data = _create(run, "third_party", "--grant-type", "client_credentials", "--scope", "files:read",
                   "--resource", FILES)
    assert data["allowed_resources"] == [FILES]
    form = {"grant_type": "client_credentials", "resource": FILES, "scope": "files:read"}
    auth = (data["client_id"], data["client_secret"])
    ok = requests.post(server.url + "/oauth/token", data=form, auth=auth, timeout=10)
    assert ok.status_code == 200, ok.text
    shown = json.loads(_ok(run("clients", "update", data["client_id"], "--no-resources", "--json")).output)
    assert shown["allowed_resources"] == []
    server.server.clients.invalidate()  # every node sees it within client_cache_ttl
    refused = requests.post(server.url + "/oauth/token", data=form, auth=auth, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope", refused.text
    refused = requests.post(server.url + "/oauth/token", data={"grant_type": "client_credentials", "resource": FILES},
                            auth=auth, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target", refused.text
    before = _count(server.settings.database_url, Client)
    _failed(run("clients", "create", "--name", "X", "--type", "third_party", "--grant-type", "client_credentials",
                "--resource", "https://unknown.example/mcp"), "Error:", "is not registered on this server")
    _failed(run("clients", "update", data["client_id"], "--resource", "not a url"), "Error:", "absolute")
    assert _count(server.settings.database_url, Client) == before
    assert json.loads(_ok(run("clients", "show", data["client_id"], "--json")).output)["allowed_resources"] == []


def test_cli_introspect_makes_a_resource_server(run, migrated):
    """`--introspect URL` lets a confidential client
    introspect tokens for that resource (a registered one, or the default
    audience); public clients cannot; `--no-introspection` takes it back."""
    _ok(run("resources", "add", FILES, "--scope", "files:read"))
    rs = json.loads(_ok(run("clients", "create", "--name", "Files API", "--type", "first_party",
                            "--grant-type", "client_credentials", "--introspect", FILES,
                            "--introspect", "http://127.0.0.1:5000", "--json")).output)
    assert rs["introspection_resources"] == [FILES, "http://127.0.0.1:5000"]
    _failed(run("clients", "create", "--name", "P", "--type", "third_party_public",
                "--redirect-uri", "http://127.0.0.1/cb", "--introspect", FILES), "Error:", "public client")
    updated = json.loads(_ok(run("clients", "update", rs["client_id"], "--no-introspection", "--json")).output)
    assert updated["introspection_resources"] == []
    assert _client(migrated, rs["client_id"]).introspection_resources == []


# --- keys ----------------------------------------------------------------------------

def test_cli_keys_list_and_rotate(run, migrated):
    """OIDC Core §10.1.1: `keys list` shows next and active keys per algorithm;
    `keys rotate` on a fresh database creates and promotes keys; a second rotation
    right away is refused until the new next key was published long enough, unless forced."""
    listing = _ok(run("keys", "list")).output.splitlines()
    assert len(listing) == 4
    states = {(line.split()[1], line.split()[2]) for line in listing}
    assert states == {("ES256", "active"), ("ES256", "next"), ("RS256", "active"), ("RS256", "next")}
    next_kids = {line.split()[1]: line.split()[0] for line in listing if line.split()[2] == "next"}

    # The next keys exist (and a server could publish them) from now on: not ready yet.
    _failed(run("keys", "rotate"), "Error:", "published for only", "--force")
    assert len(_rows(migrated, SigningKey)) == 4

    later = datetime.now(timezone.utc) + timedelta(seconds=MIN_PUBLISHED_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        res = _ok(run("keys", "rotate"))
        for alg, kid in next_kids.items():
            assert f"{alg}: active {kid}" in res.output
        rows = _rows(migrated, SigningKey)
        assert sorted(r.state for r in rows) == ["active", "active", "next", "next", "retired", "retired"]
        # The private parts are stored encrypted, never as a JWK in clear.
        for r in rows:
            assert '"d"' not in r.private_jwk_encrypted and "d" not in r.public_jwk

        _failed(run("keys", "rotate"), "Error:", "published for only", "--force")
        assert len(_rows(migrated, SigningKey)) == 6
        res = _ok(run("keys", "rotate", "--alg", "RS256", "--force"))
        assert res.output.startswith("RS256: active ")
        assert len(_rows(migrated, SigningKey)) == 7


def test_cli_keys_rotate_on_an_empty_database_creates_keys(run, migrated):
    """A fresh install may run `keys rotate` first: nothing has signed yet, so it is allowed."""
    res = _ok(run("keys", "rotate"))
    assert "ES256: active" in res.output and "RS256: active" in res.output
    assert {r.state for r in _rows(migrated, SigningKey)} == {"active", "next", "retired"}


# --- configuration errors --------------------------------------------------------------------

@pytest.mark.parametrize("env, fragment", [
    ({"AUTHZ_ENV": "production"}, "AUTHZ_ISSUER is required"),
    ({"AUTHZ_ENV": "staging"}, "AUTHZ_ENV must be one of"),
    ({"AUTHZ_ACCESS_TOKEN_TTL": "soon"}, "AUTHZ_ACCESS_TOKEN_TTL must be an integer"),
    ({"AUTHZ_KEY_ENCRYPTION_KEY": "not-a-fernet-key"}, "not a valid Fernet key"),
    ({"AUTHZ_ISSUER": "https://as.example/"}, "must not end with '/'"),
])
def test_cli_settings_errors_are_clean_click_errors(run, migrated, env, fragment):
    """config: Settings.from_env errors surface as 'Error: …' with exit 1, no traceback."""
    for command in (["clients", "list"], ["keys", "list"], ["db", "upgrade"]):
        res = run(*command, **env)
        _failed(res, "Error:", fragment)
        assert res.exit_code == 1


def test_cli_create_device_client_with_the_short_grant_name(run, server):
    """RFC 8628: `--grant-type device_code` stands for the grant's URN; a device-only
    public client needs no redirect URI and can start the device flow at once."""
    res = _ok(run("clients", "create", "--name", "Deploy CLI", "--type", "third_party_public",
                  "--grant-type", "device_code", "--grant-type", "refresh_token", "--json"))
    data = json.loads(res.output)
    assert data["grant_types"] == ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]
    assert data["redirect_uris"] == []
    r = requests.post(server.url + "/oauth/device_authorization", data={"client_id": data["client_id"]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["verification_uri"] == server.url + "/device"
