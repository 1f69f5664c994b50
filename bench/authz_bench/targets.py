"""The servers under test, ours and the peer, behind one interface (Target).

prepare_ours/prepare_peer set one up (fresh database, schema, clients) and say how to
mint its refresh tokens and how to start it under gunicorn; start_server starts it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import GRANTS, HOST, PEER_DIR, REPO, BenchError
from .processes import PgAdmin, ServerProcess, free_port, parse_json_output, prepare_database, run_cli
from .serverlog import gunicorn_threads, gunicorn_worker_class


@dataclass
class Client:
    client_id: str
    client_secret: str


@dataclass
class Target:
    """A server under test. prepare_ours()/prepare_peer() build one; the bench treats them alike.

    clients: grant -> Client; mint_refresh_tokens(n) -> n fresh refresh tokens (one
    token family each); server_argv(workers, sql_count) -> (argv, env, cwd) of a gunicorn.
    """

    key: str  # "ours" | "peer"
    label: str
    port: int
    clients: dict[str, Client]
    mint_refresh_tokens: Callable[[int], list[str]]
    server_argv: Callable[[int, bool], tuple[list[str], dict[str, str], Path]]
    admin: PgAdmin | None = None
    dbname: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    chains: list[str] = field(default_factory=list)  # live refresh tokens, one per concurrent worker
    spares: list[str] = field(default_factory=list)  # used when a chain breaks
    worker_class: str | None = None  # gunicorn worker class, as logged ("Using worker: ...")
    threads: int | None = None  # gunicorn threads, if the log tells
    follow: Target | None = None  # peer with --peer-worker-class auto: copy ours' worker class


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in [k for k in env if k.startswith(("AUTHZ_", "PEER_")) or k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")]:
        del env[k]
    env["PYTHONUNBUFFERED"] = "1"
    return env


def find_authz_server_cmd(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "authz-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("authz-server")
    if found:
        return found
    raise BenchError("authz-server not found (pip install -e . in the venv, or pass --authz-server-cmd)")


def prepare_ours(args: argparse.Namespace, log_dir: Path, log: Callable[[str], None]) -> Target:
    """Our server: fresh database, schema, signing key, one confidential client, refresh tokens via the CLI."""
    from cryptography.fernet import Fernet

    from authz_server.stytch_emulator import start_emulator
    from authz_server.stytch_emulator.records import SEED_NAMESPACE

    cmd = find_authz_server_cmd(args.authz_server_cmd)
    port = free_port()
    # The refresh grant asks Stytch whether the member is still active (cached per
    # worker for 60 s): the emulator answers, in this process, on loopback. It is
    # why AUTHZ_ENV is "test": production refuses a non-https Stytch. Everything
    # else (gunicorn, workers, no debug) is what `serve` runs in production.
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log lines in the report
    emulator = start_emulator(port=0)
    env = _base_env()
    env.update({
        "DATABASE_URL": args.database_url,
        "AUTHZ_ISSUER": f"http://{HOST}:{port}",
        "AUTHZ_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTHZ_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "AUTHZ_ENV": "test",
        # One client at thousands of tokens a second is far past the per-client
        # default (1200 a minute): a limit that runs (its cost is measured) but
        # never refuses. The peer has no rate limit either.
        "AUTHZ_TOKEN_RATE": "100000000",
        "STYTCH_PROJECT_ID": emulator.project_id,
        "STYTCH_SECRET": emulator.secret,
        "STYTCH_PUBLIC_TOKEN": emulator.public_token,
        "STYTCH_ENVIRONMENT": emulator.url,
    })
    # The emulator's seeded Acme admin (fixed ids): a real, active member.
    alice = f"member-test-{uuid.uuid5(SEED_NAMESPACE, 'member:alice@acme.test')}"
    acme = f"organization-test-{uuid.uuid5(SEED_NAMESPACE, 'organization:acme')}"
    log(f"ours: {cmd}")
    admin, dbname = prepare_database(args.database_url, log)
    run_cli([cmd, "db", "upgrade"], env, REPO, "ours: db upgrade", log_dir)
    run_cli([cmd, "keys", "rotate"], env, REPO, "ours: keys rotate", log_dir)
    out = run_cli(
        [cmd, "clients", "create", "--name", "bench-token-endpoint", "--type", "third_party",
         "--redirect-uri", "https://app.example/cb", "--scope", "openid profile email offline_access",
         "--grant-type", "authorization_code", "--grant-type", "refresh_token",
         "--grant-type", "client_credentials", "--json"],
        env, REPO, "ours: clients create", log_dir,
    )
    data = parse_json_output(out, "ours: clients create")
    try:
        client = Client(str(data["client_id"]), str(data["client_secret"]))
    except KeyError as exc:
        raise BenchError(f"ours: clients create --json has no {exc} (got keys {sorted(data)})") from None
    log(f"  client {client.client_id}")

    counter = iter(range(10**9))

    def mint_one(i: int) -> str:
        out = run_cli(
            [cmd, "tokens", "issue-refresh", "--client-id", client.client_id, "--subject", alice,
             "--organization-id", acme, "--scope", args.refresh_scope, "--json"],
            env, REPO, f"ours: tokens issue-refresh {i}", log_dir,
        )
        token = parse_json_output(out, "ours: tokens issue-refresh").get("refresh_token")
        if not token:
            raise BenchError(f"ours: tokens issue-refresh --json printed no refresh_token: {out[:200]!r}")
        return str(token)

    def mint(n: int) -> list[str]:
        ids = [next(counter) for _ in range(n)]
        # One CLI process per token (each imports the app): two at a time on two cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(mint_one, ids))

    def server_argv(workers: int, sql_count: bool) -> tuple[list[str], dict[str, str], Path]:
        e = dict(env)
        if sql_count:
            e["AUTHZ_SQL_COUNT"] = "1"
        return [cmd, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)], e, REPO

    version = _pkg_version("authz_server")
    return Target(
        key="ours", label="authz_server", port=port, clients={g: client for g in GRANTS},
        mint_refresh_tokens=mint, server_argv=server_argv, admin=admin, dbname=dbname,
        info={"package": "authz_server", "version": version, "command": cmd, "database_url": _redact(args.database_url),
              "client_type": "third_party", "env": "AUTHZ_ENV=test (gunicorn serve; Stytch = emulator)"},
    )


def prepare_peer(args: argparse.Namespace, log_dir: Path, log: Callable[[str], None]) -> Target:
    """The peer: django-oauth-toolkit (bench/peer/) on its own fresh database."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from sqlalchemy.engine import make_url

    try:
        import django  # noqa: F401
        import oauth2_provider  # noqa: F401
    except ImportError:
        raise BenchError("peer needs Django and django-oauth-toolkit: .venv/bin/pip install -r bench/requirements.txt") from None

    port = free_port()
    u = make_url(args.peer_database_url)
    key_file = log_dir / "peer-oidc-rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    env = _base_env()
    env.update({
        "DJANGO_SETTINGS_MODULE": "peer_project.settings",
        "PEER_DB_NAME": u.database, "PEER_DB_HOST": u.host or HOST, "PEER_DB_PORT": str(u.port or 5432),
        "PEER_DB_USER": u.username or "postgres", "PEER_DB_PASSWORD": u.password or "",
        "PEER_SECRET_KEY": secrets.token_urlsafe(48),
        "PEER_OIDC_RSA_KEY_FILE": str(key_file),
        "PEER_ISSUER": f"http://{HOST}:{port}/oauth",
        "PEER_CLIENT_SECRET_HASHER": args.peer_client_secret_hasher,
    })
    manage = [sys.executable, str(PEER_DIR / "manage.py")]
    log(f"peer: django-oauth-toolkit {_pkg_version('django-oauth-toolkit')} on Django {_pkg_version('django')}")
    admin, dbname = prepare_database(args.peer_database_url, log)
    run_cli(manage + ["migrate", "--noinput", "-v", "0"], env, PEER_DIR, "peer: migrate", log_dir)
    data = parse_json_output(run_cli(manage + ["bench_seed", "--create-clients"], env, PEER_DIR, "peer: create clients", log_dir), "peer: bench_seed")
    clients = {
        "client_credentials": Client(**data["client_credentials"]),
        "refresh_token": Client(**data["refresh_token"]),
    }
    log(f"  clients {clients['client_credentials'].client_id[:12]}... (client_credentials), "
        f"{clients['refresh_token'].client_id[:12]}... (authorization-code + refresh)")

    def mint(n: int) -> list[str]:
        out = run_cli(manage + ["bench_seed", "--refresh-client-id", clients["refresh_token"].client_id,
                                "--refresh-tokens", str(n), "--scope", args.refresh_scope],
                      env, PEER_DIR, "peer: mint refresh tokens", log_dir)
        return list(parse_json_output(out, "peer: bench_seed")["refresh_tokens"])

    def server_argv(workers: int, sql_count: bool) -> tuple[list[str], dict[str, str], Path]:
        e = dict(env)
        if sql_count:
            e["PEER_SQL_COUNT"] = "1"
        if target.follow is not None and target.follow.worker_class:
            target.worker_class = target.follow.worker_class
        wc = target.worker_class or "sync"
        argv = [sys.executable, "-m", "gunicorn", "--chdir", str(PEER_DIR), "--bind", f"{HOST}:{port}",
                "--workers", str(workers), "--worker-class", wc]
        if wc == "gthread":
            target.threads = args.peer_threads
            argv += ["--threads", str(args.peer_threads)]
        return argv + ["peer_project.wsgi:application"], e, PEER_DIR

    target = Target(
        key="peer", label="django-oauth-toolkit", port=port, clients=clients, mint_refresh_tokens=mint,
        server_argv=server_argv, admin=admin, dbname=dbname,
        info={"package": "django-oauth-toolkit", "version": _pkg_version("django-oauth-toolkit"),
              "django": _pkg_version("django"), "oauthlib": _pkg_version("oauthlib"),
              "database_url": _redact(args.peer_database_url),
              "client_secret_hasher": args.peer_client_secret_hasher,
              "settings": "DEBUG=False, CONN_MAX_AGE=600, ROTATE_REFRESH_TOKEN, grace 60 s, reuse protection, "
                          "OIDC on (RS256 id_token on refresh), opaque access tokens"},
    )
    if args.peer_worker_class != "auto":
        target.worker_class = args.peer_worker_class
    return target


def link_targets(targets: dict[str, Target], args: argparse.Namespace) -> None:
    if args.peer_worker_class == "auto" and "ours" in targets and "peer" in targets:
        targets["peer"].follow = targets["ours"]


def _pkg_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def start_server(target: Target, workers: int, sql_count: bool, log_dir: Path, log: Callable[[str], None]) -> ServerProcess:
    """Start the target's gunicorn, wait until it answers, note its worker class (and our threads) from its log."""
    argv, env, cwd = target.server_argv(workers, sql_count)
    name = f"{target.key}{'-sqlcount' if sql_count else ''}"
    server = ServerProcess(name, argv, env, cwd, target.port, log_dir / f"{name}.log")
    server.start()
    took = server.wait_ready()
    log(f"  {name} up on {HOST}:{target.port} in {took:.1f}s (pid {server.proc.pid}, {workers} workers)")
    text = server.log_text()
    target.worker_class = gunicorn_worker_class(text) or target.worker_class
    if target.key == "ours":
        target.threads = gunicorn_threads(text) or target.threads
    return server


def postgres_version(targets: dict[str, Target]) -> str | None:
    """The Postgres server version, from the first target on Postgres."""
    for t in targets.values():
        if t.admin:
            with contextlib.suppress(Exception):
                return t.admin.server_version()
    return None
