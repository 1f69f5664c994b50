#!/usr/bin/env python
"""Token endpoint benchmark: authz_server against a peer, in the same run.

Measures client_credentials and refresh_token throughput and latency of
POST /oauth/token on our server (``authz-server serve``: gunicorn, production
settings) and on a peer OAuth server (django-oauth-toolkit under gunicorn, see
bench/peer/), both on the local Postgres, and reports ratios ours/peer. It also
counts SQL statements per token request (AUTHZ_SQL_COUNT=1 on our side, an
equivalent middleware on the peer) in a separate, untimed phase.

    .venv/bin/python bench/token_endpoint.py [--duration 10] [--concurrency 8]
        [--workers 2] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_authz]

Everything goes to 127.0.0.1. Every wait is bounded; the whole run is bounded
by --total-timeout. Servers are stopped on exit, Ctrl-C and errors.
See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import ctypes
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import uuid
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
PEER_DIR = BENCH_DIR / "peer"
RESULTS_DIR = BENCH_DIR / "results"

HOST = "127.0.0.1"
TOKEN_PATH = "/oauth/token"
GRANTS = ("client_credentials", "refresh_token")
SQL_REFRESH_TARGET = 3  # issue: "aim at no more than 3 for a refresh"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_authz"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
CLI_TIMEOUT = 180.0  # seconds, any one setup command (migrate, seed, ...)
READY_TIMEOUT = 60.0  # seconds for a server to answer HTTP after start
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL


class BenchError(Exception):
    """A setup step failed; the message says which and where the log is."""


class BenchTimeout(KeyboardInterrupt):
    """--total-timeout elapsed.

    A KeyboardInterrupt so that the event loop re-raises it out of a callback
    (it logs and drops any other exception raised there); the load loops also
    poll ABORT, set by the signal handlers, in case it lands somewhere else.
    """


ABORT: list[str] = []  # set by the SIGALRM/SIGTERM handlers


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="token_endpoint.py",
        description="Throughput/latency of POST /oauth/token (client_credentials, refresh_token), "
        "ours vs a peer (django-oauth-toolkit) in the same run, plus SQL statements per request.",
    )
    p.add_argument("--duration", type=positive_float, default=10.0, help="seconds of timed load per server and grant (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each timed phase (default 2)")
    p.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight (default 8)")
    p.add_argument("--workers", type=positive_int, default=2, help="gunicorn workers for each server (default 2)")
    p.add_argument("--rounds", type=positive_int, default=1, help="repeat the timed phases, alternating which server goes first (default 1)")
    p.add_argument("--grants", default=",".join(GRANTS), help="comma list of grants to run (default both)")
    p.add_argument("--servers", choices=("both", "ours", "peer"), default="both", help="which servers to run; ratios need both (default both)")
    p.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"our DATABASE_URL; the database is dropped and re-created (default {DEFAULT_DATABASE_URL})")
    p.add_argument("--peer-database-url", default=None, help="peer database (Postgres); default: same server as --database-url, database bench_peer")
    p.add_argument("--authz-server-cmd", default=None, help="our CLI (default: authz-server next to this Python, else on PATH)")
    p.add_argument("--auth-method", choices=("client_secret_basic", "client_secret_post"), default="client_secret_basic")
    p.add_argument("--cc-scope", default="", help="scope sent with client_credentials (default: none sent)")
    p.add_argument("--refresh-scope", default="openid offline_access", help="scope of the minted refresh tokens (default 'openid offline_access')")
    p.add_argument("--request-timeout", type=positive_float, default=10.0, help="per-request timeout in seconds; a timeout counts as an error (default 10)")
    p.add_argument("--sql-count-requests", type=int, default=20, help="requests per grant in the untimed SQL counting phase; 0 skips it (default 20)")
    p.add_argument("--peer-client-secret-hasher", default="plain", help="peer client secret storage: 'plain' (hash_client_secret=False), or a Django hasher "
                   "name: 'default' (PBKDF2-SHA256, 1,000,000 iterations), 'md5', 'scrypt' (default plain)")
    p.add_argument("--peer-worker-class", default="auto", help="gunicorn worker class for the peer; 'auto' copies what our serve logs ('Using worker: ...'), else sync")
    p.add_argument("--peer-threads", type=positive_int, default=1, help="gunicorn --threads for the peer (gthread only; default 1)")
    p.add_argument("--output", default=None, help="JSON results path (default bench/results/token_endpoint-<UTC date>.json)")
    p.add_argument("--keep-databases", action="store_true", help="do not drop the bench databases at the end")
    p.add_argument("--keep-logs", action="store_true", help="keep the server logs directory even on success")
    p.add_argument("--strict", action="store_true", help=f"exit 3 if any timed request failed or our refresh uses more than {SQL_REFRESH_TARGET} SQL statements")
    p.add_argument("--self-test", action="store_true", help="check the bench's own parsing and HTTP client offline, then exit")
    p.add_argument("--total-timeout", type=positive_float, default=None, help="hard limit for the whole run in seconds (default: computed from the phases)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    grants = [g.strip() for g in args.grants.split(",") if g.strip()]
    bad = [g for g in grants if g not in GRANTS]
    if bad or not grants:
        parser.error(f"--grants: unknown {bad or 'empty'}; choose from {', '.join(GRANTS)}")
    args.grants = tuple(g for g in GRANTS if g in grants)
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.sql_count_requests < 0:
        parser.error("--sql-count-requests must be >= 0")
    for name in ("database_url", "peer_database_url"):
        url = getattr(args, name)
        if url is not None:
            try:
                check_database_url(url)
            except BenchError as exc:
                parser.error(f"--{name.replace('_', '-')}: {exc}")
    if args.peer_database_url is None:
        args.peer_database_url = default_peer_database_url(args.database_url)
    if args.servers in ("both", "peer") and not args.peer_database_url.startswith("postgresql"):
        parser.error("--peer-database-url must be a postgresql URL")
    if args.total_timeout is None:
        args.total_timeout = default_total_timeout(args)
    return args


def default_total_timeout(args: argparse.Namespace) -> float:
    servers = 1 if args.servers != "both" else 2
    per_phase = args.warmup + args.duration + 2 * args.request_timeout + 5
    timed = args.rounds * len(args.grants) * servers * per_phase
    setup = servers * (4 * CLI_TIMEOUT + 2 * READY_TIMEOUT)  # generous: only hit if something hangs
    counted = servers * len(args.grants) * (args.sql_count_requests + 5) * args.request_timeout / 4
    return round(timed + min(setup, 600) + min(counted, 300) + 60)


def check_database_url(url: str) -> None:
    """Refuse anything but a loopback Postgres database named bench_* or a SQLite file."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:":
            raise BenchError("sqlite URL needs a file path (the server runs in several processes)")
        return
    if u.get_backend_name() != "postgresql":
        raise BenchError(f"unsupported database {u.get_backend_name()!r} (postgresql or sqlite)")
    if (u.host or "127.0.0.1") not in LOOPBACK_HOSTS:
        raise BenchError(f"database host {u.host!r} is not loopback; this bench only touches 127.0.0.1")
    if not (u.database or "").startswith("bench_"):
        raise BenchError(f"database {u.database!r} must be named bench_* (it is dropped and re-created)")


def default_peer_database_url(ours: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(ours)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg", database="bench_peer").render_as_string(hide_password=False)
    return "postgresql+psycopg://postgres@127.0.0.1:5432/bench_peer"


# --------------------------------------------------------------------------
# SQL count log parsing
# --------------------------------------------------------------------------

SQL_COUNT_RE = re.compile(r"\bsql_count\b(?P<rest>[^\n]*)")
KV_RE = re.compile(r"(\w+)=(?:\"([^\"]*)\"|([^\s,;\"'}]+))")


def parse_sql_count_line(line: str) -> dict[str, str] | None:
    """'... sql_count path=/oauth/token grant_type=refresh_token statements=3' -> dict, else None.

    Tolerates a log prefix (timestamp, level, logger) and a JSON-wrapped message.
    """
    m = SQL_COUNT_RE.search(line)
    if not m:
        return None
    fields = {k: (v1 if v1 else v2) for k, v1, v2 in KV_RE.findall(m.group("rest"))}
    if "statements" not in fields:
        return None
    try:
        int(fields["statements"])
    except ValueError:
        return None
    return fields


def sql_counts_by_grant(text: str, path: str = TOKEN_PATH) -> dict[str, list[int]]:
    """Statement counts per grant_type of the sql_count lines for `path`, in log order."""
    out: dict[str, list[int]] = collections.defaultdict(list)
    for line in text.splitlines():
        fields = parse_sql_count_line(line)
        if fields is None:
            continue
        if fields.get("path", path).rstrip("/") != path.rstrip("/"):
            continue
        out[fields.get("grant_type", "-")].append(int(fields["statements"]))
    return dict(out)


def summarize_counts(values: list[int]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), 2),
        "min": min(values),
        "median": sorted(values)[len(values) // 2],
        "max": max(values),
    }


WORKER_CLASS_RE = re.compile(r"Using worker: (\S+)")


def gunicorn_worker_class(log_text: str) -> str | None:
    m = WORKER_CLASS_RE.search(log_text)
    return m.group(1) if m else None


THREADS_RE = re.compile(r"\bthreads\s*[:=]\s*(\d+)")


def gunicorn_threads(log_text: str) -> int | None:
    """Threads per worker if the server logs its gunicorn config (e.g. 'threads: 4' at debug level)."""
    m = THREADS_RE.search(log_text)
    return int(m.group(1)) if m else None


def log_health(log_text: str, workers: int) -> dict[str, int]:
    """Things in a gunicorn log that distort a benchmark: restarts, timeouts, tracebacks."""
    return {
        "worker_boots": len(re.findall(r"Booting worker with pid", log_text)),
        "extra_worker_boots": max(0, len(re.findall(r"Booting worker with pid", log_text)) - workers),
        "worker_timeouts": len(re.findall(r"WORKER TIMEOUT", log_text)),
        "autorestarts": len(re.findall(r"Autorestarting worker", log_text)),
        "tracebacks": len(re.findall(r"^Traceback \(most recent call last\)", log_text, re.MULTILINE)),
        "log_lines": log_text.count("\n"),
    }


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

_LIVE: list[ServerProcess] = []
_libc = None


def _set_pdeathsig() -> None:
    """In the child: get SIGTERM if the bench dies without cleaning up (Linux)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def run_cli(argv: list[str], env: dict[str, str], cwd: Path, what: str, log_dir: Path, timeout: float = CLI_TIMEOUT) -> str:
    """Run a setup command, return stdout; on failure raise with the output saved to a log."""
    log = log_dir / f"cli-{re.sub(r'[^a-z0-9]+', '-', what.lower()).strip('-')}.log"
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"$ {' '.join(argv)}\n(timed out after {timeout}s)\n{exc.stdout or ''}\n{exc.stderr or ''}")
        raise BenchError(f"{what}: timed out after {timeout:.0f}s (see {log})") from None
    except FileNotFoundError:
        raise BenchError(f"{what}: command not found: {argv[0]}") from None
    if proc.returncode != 0:
        log.write_text(f"$ {' '.join(argv)}\nexit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BenchError(f"{what}: exit {proc.returncode} (full output in {log})\n{tail}")
    return proc.stdout


def parse_json_output(text: str, what: str) -> dict[str, Any]:
    """The JSON object a CLI printed: the whole stdout, or else its last line that parses."""
    text = text.strip()
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    raise BenchError(f"{what}: expected a JSON object on stdout, got: {text[:300]!r}")


class ServerProcess:
    """A gunicorn server in its own session, output to one log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int, log_path: Path):
        self.name, self.argv, self.env, self.cwd, self.port, self.log_path = name, argv, env, cwd, port, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_set_pdeathsig,
        )
        _LIVE.append(self)

    def log_text(self, offset: int = 0) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until the server answers any HTTP response on GET /; return seconds taken."""
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} during start-up; log {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=2) as s:
                s.settimeout(5)
                s.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(5) == b"HTTP/":
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{self.name} not answering on {HOST}:{self.port} after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """Master and workers: every process in the server's session."""
        if self.proc is None:
            return []
        return [pid for pid, stat in _proc_stats().items() if stat[2] == self.proc.pid]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # workers outlive a master killed hard: sweep the session
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._log.close()
        if self in _LIVE:
            _LIVE.remove(self)


def stop_all() -> None:
    for server in _LIVE:
        with contextlib.suppress(Exception):
            server.stop()


# --------------------------------------------------------------------------
# CPU accounting from /proc (server processes and their Postgres backends)
# --------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> dict[int, tuple[int, int, int, float]]:
    """pid -> (ppid, pgrp, session, user+system CPU seconds) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read().decode()
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()
        # rest[0]=state [1]=ppid [2]=pgrp [3]=session ... [11]=utime [12]=stime
        out[int(entry)] = (int(rest[1]), int(rest[2]), int(rest[3]), (int(rest[11]) + int(rest[12])) / _CLK_TCK)
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    stats = _proc_stats()
    return {pid: stats[pid][3] for pid in pids if pid in stats}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in (fields + ["0"] * 8)[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class PgAdmin:
    """One autocommit connection to a loopback Postgres server's 'postgres' database."""

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self.conn = None

    def connect(self):
        import psycopg

        if self.conn is None:
            u = self.url
            self.conn = psycopg.connect(
                host=u.host or HOST, port=u.port or 5432, user=u.username or "postgres",
                password=u.password or None, dbname="postgres", autocommit=True, connect_timeout=10,
            )
        return self.conn

    def recreate(self, dbname: str) -> None:
        from psycopg import sql

        conn = self.connect()
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def drop(self, dbname: str) -> None:
        from psycopg import sql

        self.connect().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def backend_pids(self, dbname: str) -> list[int]:
        rows = self.connect().execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,)).fetchall()
        return [r[0] for r in rows]

    def server_version(self) -> str:
        return self.connect().execute("SHOW server_version").fetchone()[0]

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def prepare_database(url: str, log: Callable[[str], None]) -> tuple[PgAdmin | None, str | None]:
    """Drop and re-create the bench database; return (admin connection, dbname) for Postgres."""
    from sqlalchemy.engine import make_url

    check_database_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = Path(u.database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(path) + suffix).unlink()
        log(f"  sqlite file {path} removed")
        return None, None
    admin = PgAdmin(url)
    admin.recreate(u.database)
    log(f"  database {u.database} re-created on {u.host or HOST}:{u.port or 5432}")
    return admin, u.database


# --------------------------------------------------------------------------
# Targets: ours and the peer, same interface
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Load generator: a minimal asyncio HTTP/1.1 client (cheap on a 2-core box)
# --------------------------------------------------------------------------


def run_async(coro):
    """asyncio.run, on uvloop when installed (about 30% less client CPU per request)."""
    if LOOP == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    if ABORT:  # a signal landed inside the loop and may have been swallowed there
        raise BenchTimeout(ABORT[0])
    return result


try:
    import uvloop as _uvloop

    LOOP = "uvloop" if hasattr(_uvloop, "run") else "asyncio"
except ImportError:
    LOOP = "asyncio"


class HttpConn:
    """One connection slot; reconnects when the server closes (gunicorn sync closes after each response)."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            self.connects += 1
        reader, writer = self.reader, self.writer
        writer.write(data)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await reader.read()
            self.close()
            return status, body
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.close()
        return status, body


def client_auth(client: Client, method: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(extra headers, extra form fields) for client_secret_basic or client_secret_post."""
    if method == "client_secret_basic":
        q = urllib.parse.quote
        cred = base64.b64encode(f"{q(client.client_id, safe='')}:{q(client.client_secret, safe='')}".encode()).decode()
        return [("Authorization", f"Basic {cred}")], {}
    return [], {"client_id": client.client_id, "client_secret": client.client_secret}


def build_request(port: int, headers: list[tuple[str, str]], form: dict[str, str]) -> bytes:
    body = urllib.parse.urlencode(form).encode()
    head = [f"POST {TOKEN_PATH} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: application/json",
            "Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class StopWorker(Exception):
    pass


def _error_key(status: int, body: bytes) -> str:
    try:
        err = json.loads(body).get("error")
    except Exception:
        err = None
    return f"http {status}" + (f" {err}" if err else "")


def response_shape(grant: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a successful response carried: tells how comparable the two servers' work is."""
    at = str(body.get("access_token", ""))
    return {
        "keys": sorted(body),
        "access_token_is_jwt": at.count(".") == 2,
        "access_token_len": len(at),
        "id_token": "id_token" in body,
        "refresh_token_rotated": grant == "refresh_token" and "refresh_token" in body,
        "scope": body.get("scope"),
    }


class ClientCredentialsWorkload:
    grant = "client_credentials"

    def __init__(self, target: Target, auth_method: str, scope: str):
        headers, form = client_auth(target.clients[self.grant], auth_method)
        form = {"grant_type": "client_credentials", **form}
        if scope:
            form["scope"] = scope
        self.data = build_request(target.port, headers, form)
        self.shape: dict[str, Any] | None = None

    def workers(self, concurrency: int) -> int:
        return concurrency

    def request(self, i: int) -> bytes:
        return self.data

    def check(self, i: int, status: int, body: bytes) -> str | None:
        if status != 200:
            return _error_key(status, body)
        try:
            doc = json.loads(body)
        except ValueError:
            return "200 not json"
        if not doc.get("access_token"):
            return "200 without access_token"
        if self.shape is None:
            self.shape = response_shape(self.grant, doc)
        return None

    def transport_error(self, i: int) -> None:
        pass


class RefreshWorkload:
    """Each worker walks its own rotation chain: the token it got back is the one it sends next."""

    grant = "refresh_token"

    def __init__(self, target: Target, auth_method: str):
        self.target = target
        self.port = target.port
        self.headers, self.auth_form = client_auth(target.clients[self.grant], auth_method)
        self.shape: dict[str, Any] | None = None
        self.chain_breaks = 0

    def workers(self, concurrency: int) -> int:
        return min(concurrency, len(self.target.chains))

    def request(self, i: int) -> bytes:
        form = {"grant_type": "refresh_token", "refresh_token": self.target.chains[i], **self.auth_form}
        return build_request(self.port, self.headers, form)

    def check(self, i: int, status: int, body: bytes) -> str | None:
        if status != 200:
            key = _error_key(status, body)
            if status in (400, 401) and "invalid_grant" in key:
                # the chain is dead (revoked/reused): continue on a spare token
                self.chain_breaks += 1
                if not self.target.spares:
                    raise StopWorker(key)
                self.target.chains[i] = self.target.spares.pop()
            return key
        try:
            doc = json.loads(body)
        except ValueError:
            return "200 not json"
        if not doc.get("access_token"):
            return "200 without access_token"
        new = doc.get("refresh_token")
        if not new:
            return "200 without refresh_token (no rotation)"
        self.target.chains[i] = new
        if self.shape is None:
            self.shape = response_shape(self.grant, doc)
        return None

    def transport_error(self, i: int) -> None:
        pass  # keep the token: within the grace window a retry of it is valid


@dataclass
class PhaseResult:
    server: str
    grant: str
    round: int
    elapsed: float
    latencies: list[float]
    errors: collections.Counter
    connects: int
    client_cpu: float
    app_cpu: float | None = None
    db_cpu: float | None = None
    other_cpu: float | None = None
    workers_run: int = 0
    stopped_workers: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def requests(self) -> int:
        return self.ok + sum(self.errors.values())


async def _drive(port: int, workload, concurrency: int, duration: float, timeout: float) -> tuple[list[float], collections.Counter, int, int, int, float]:
    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    conns: list[HttpConn] = []
    stopped = 0
    n = workload.workers(concurrency)
    start = time.perf_counter()
    deadline = start + duration

    async def worker(i: int) -> None:
        nonlocal stopped
        conn = HttpConn(port)
        conns.append(conn)
        perf = time.perf_counter
        while perf() < deadline and not ABORT:
            data = workload.request(i)
            t0 = perf()
            try:
                async with asyncio.timeout(timeout):  # cheaper than wait_for (no extra task)
                    status, body = await conn.request(data)
            except TimeoutError:
                conn.close()
                errors["timeout"] += 1
                workload.transport_error(i)
                continue
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                conn.close()
                errors[f"transport {type(exc).__name__}"] += 1
                workload.transport_error(i)
                await asyncio.sleep(0.01)  # don't spin on a refused connection
                continue
            t1 = perf()
            try:
                err = workload.check(i, status, body)
            except StopWorker as exc:
                errors[str(exc)] += 1  # the chain died and no spare token is left
                stopped += 1
                break
            if err is None:
                latencies.append(t1 - t0)
            else:
                errors[err] += 1
        conn.close()

    await asyncio.gather(*(worker(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    return latencies, errors, sum(c.connects for c in conns), n, stopped, elapsed


def run_load(target: Target, server: ServerProcess, workload, args: argparse.Namespace, duration: float, round_no: int) -> PhaseResult:
    db_pids_before = target.admin.backend_pids(target.dbname) if target.admin else []
    app_before = cpu_seconds(server.pids())
    db_before = cpu_seconds(db_pids_before)
    busy0 = machine_busy_seconds()
    cpu0 = time.process_time()
    latencies, errors, connects, n, stopped, elapsed = run_async(
        _drive(target.port, workload, args.concurrency, duration, args.request_timeout))
    client_cpu = time.process_time() - cpu0
    busy = machine_busy_seconds() - busy0
    app_after = cpu_seconds(server.pids())
    db_after = cpu_seconds(target.admin.backend_pids(target.dbname)) if target.admin else {}
    app_cpu = cpu_delta(app_before, app_after)
    db_cpu = cpu_delta(db_before, db_after) if target.admin else None
    # whatever else ran meanwhile (other users of the machine, Postgres background work)
    other = max(0.0, busy - client_cpu - app_cpu - (db_cpu or 0.0))
    return PhaseResult(
        server=target.key, grant=workload.grant, round=round_no, elapsed=elapsed, latencies=latencies,
        errors=errors, connects=connects, client_cpu=client_cpu, app_cpu=app_cpu, db_cpu=db_cpu,
        other_cpu=other, workers_run=n, stopped_workers=stopped,
    )


async def _sequential(port: int, workload, count: int, timeout: float) -> collections.Counter:
    errors: collections.Counter = collections.Counter()
    conn = HttpConn(port)
    for _ in range(count):
        if ABORT:
            break
        try:
            async with asyncio.timeout(timeout):
                status, body = await conn.request(workload.request(0))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            errors[f"transport {type(exc).__name__}"] += 1
            continue
        try:
            err = workload.check(0, status, body)
        except StopWorker as exc:
            errors[str(exc)] += 1
            break
        if err:
            errors[err] += 1
    conn.close()
    return errors


# --------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------


def make_workload(target: Target, grant: str, args: argparse.Namespace):
    if grant == "client_credentials":
        return ClientCredentialsWorkload(target, args.auth_method, args.cc_scope)
    return RefreshWorkload(target, args.auth_method)


def start_server(target: Target, workers: int, sql_count: bool, log_dir: Path, log: Callable[[str], None]) -> ServerProcess:
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


def sql_count_phase(target: Target, args: argparse.Namespace, log_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Untimed: one worker, sequential requests, server logging sql_count lines."""
    result: dict[str, Any] = {}
    server = start_server(target, 1, True, log_dir, log)
    try:
        for grant in args.grants:
            workload = make_workload(target, grant, args)
            warm = run_async(_sequential(target.port, workload, 3, args.request_timeout))
            time.sleep(0.2)
            offset = server.log_size()
            errs = run_async(_sequential(target.port, workload, args.sql_count_requests, args.request_timeout))
            time.sleep(0.5)  # let the log lines land
            counts = sql_counts_by_grant(server.log_text(offset)).get(grant, [])
            warm_counts = sql_counts_by_grant(server.log_text()).get(grant, [])[: -len(counts) or None]
            result[grant] = {
                "steady": summarize_counts(counts),
                "first_requests": warm_counts,
                "errors": dict(errs + warm),
            }
            s = result[grant]["steady"]
            log(f"  {target.key} {grant}: " + (f"{s['mean']} statements/request (min {s['min']}, max {s['max']}, n={s['n']})"
                                               if s else "no sql_count lines in the log")
                + (f"; errors {dict(errs + warm)}" if errs or warm else ""))
    finally:
        server.stop()
    return result


def summarize(results: list[PhaseResult], server: str, grant: str) -> dict[str, Any] | None:
    rs = [r for r in results if r.server == server and r.grant == grant]
    if not rs:
        return None
    lat = sorted(x for r in rs for x in r.latencies)
    elapsed = sum(r.elapsed for r in rs)
    ok = len(lat)
    errors = sum((r.errors for r in rs), collections.Counter())
    app_cpu = sum(r.app_cpu for r in rs if r.app_cpu is not None)
    db_cpus = [r.db_cpu for r in rs if r.db_cpu is not None]
    ms = lambda v: round(v * 1000, 3)
    return {
        "requests": ok + sum(errors.values()),
        "ok": ok,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "elapsed_s": round(elapsed, 3),
        "rps": round(ok / elapsed, 2) if elapsed else None,
        "p50_ms": ms(percentile(lat, 50)) if lat else None,
        "p90_ms": ms(percentile(lat, 90)) if lat else None,
        "p99_ms": ms(percentile(lat, 99)) if lat else None,
        "max_ms": ms(lat[-1]) if lat else None,
        "mean_ms": ms(sum(lat) / ok) if lat else None,
        "app_cpu_ms_per_req": round(app_cpu * 1000 / ok, 3) if ok else None,
        "db_cpu_ms_per_req": round(sum(db_cpus) * 1000 / ok, 3) if ok and db_cpus else None,
        "client_cpu_share": round(sum(r.client_cpu for r in rs) / (elapsed * (os.cpu_count() or 1)), 3) if elapsed else None,
        "other_cpu_share": round(sum(r.other_cpu or 0 for r in rs) / (elapsed * (os.cpu_count() or 1)), 3) if elapsed else None,
        "connections_opened": sum(r.connects for r in rs),
        "workers_stopped": sum(r.stopped_workers for r in rs),
    }


def compute_ratios(summary: dict[str, dict[str, Any]], grants: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    out = {}
    for grant in grants:
        ours, peer = summary.get("ours", {}).get(grant), summary.get("peer", {}).get(grant)
        if not ours or not peer:
            continue
        out[grant] = {
            k: (round(r, 3) if (r := ratio(ours.get(k), peer.get(k))) is not None else None)
            for k in ("rps", "p50_ms", "p99_ms", "app_cpu_ms_per_req", "db_cpu_ms_per_req")
        }
    return out


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def render_table(summary: dict[str, dict[str, Any]], ratios: dict[str, Any], sql: dict[str, Any], labels: dict[str, str], grants: tuple[str, ...]) -> str:
    cols = ["server", "grant", "requests", "errors", "req/s", "p50 ms", "p99 ms", "app CPU ms/req", "db CPU ms/req", "SQL/req"]
    rows = []
    for grant in grants:
        for key in ("ours", "peer"):
            s = summary.get(key, {}).get(grant)
            if not s:
                continue
            steady = (sql.get(key, {}).get(grant) or {}).get("steady")
            rows.append([labels[key], grant, s["requests"], s["errors"], _fmt(s["rps"], 1), _fmt(s["p50_ms"]),
                         _fmt(s["p99_ms"]), _fmt(s["app_cpu_ms_per_req"]), _fmt(s["db_cpu_ms_per_req"]),
                         _fmt(steady["mean"], 1) if steady else "-"])
        r = ratios.get(grant)
        if r:
            so = (sql.get("ours", {}).get(grant) or {}).get("steady")
            sp = (sql.get("peer", {}).get(grant) or {}).get("steady")
            sr = ratio(so["mean"], sp["mean"]) if so and sp else None
            rows.append(["ratio ours/peer", grant, "", "", _fmt(r["rps"]), _fmt(r["p50_ms"]), _fmt(r["p99_ms"]),
                         _fmt(r["app_cpu_ms_per_req"]), _fmt(r["db_cpu_ms_per_req"]), _fmt(sr)])
    widths = [max(len(str(c)), *(len(str(row[i])) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _git_commit() -> str | None:
    with contextlib.suppress(Exception):
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    started = dt.datetime.now(dt.UTC)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-token-endpoint-"))
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True)

    def on_alarm(signum, frame):
        ABORT.append(f"--total-timeout {args.total_timeout:.0f}s elapsed")
        raise BenchTimeout(ABORT[0])

    def on_term(signum, frame):
        ABORT.append(f"signal {signum}")
        raise KeyboardInterrupt(ABORT[0])

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(math.ceil(args.total_timeout)))

    keys = ["ours", "peer"] if args.servers == "both" else [args.servers]
    targets: dict[str, Target] = {}
    servers: dict[str, ServerProcess] = {}
    results: list[PhaseResult] = []
    warmups: list[dict[str, Any]] = []
    sql: dict[str, Any] = {}
    shapes: dict[str, dict[str, Any]] = collections.defaultdict(dict)
    health: dict[str, Any] = {}
    ok = False
    pg_version = None
    try:
        log(f"logs in {log_dir}; {os.cpu_count()} CPUs shared by load generator, servers and Postgres; "
            f"hard limit {args.total_timeout:.0f}s")
        for key in keys:
            targets[key] = (prepare_ours if key == "ours" else prepare_peer)(args, log_dir, log)
        pg_version = _pg_version(targets)
        link_targets(targets, args)
        need = args.concurrency + max(2, args.concurrency // 2)
        if "refresh_token" in args.grants:
            for t in targets.values():
                t0 = time.monotonic()
                tokens = t.mint_refresh_tokens(need)
                t.chains, t.spares = tokens[: args.concurrency], tokens[args.concurrency:]
                log(f"{t.key}: minted {len(tokens)} refresh tokens in {time.monotonic() - t0:.1f}s")

        if args.sql_count_requests:
            log("SQL statement counting (untimed, 1 worker, sequential requests)")
            for key in keys:
                sql[key] = sql_count_phase(targets[key], args, log_dir, log)

        log(f"timed phases: {args.rounds} round(s) x {len(args.grants)} grant(s), "
            f"warmup {args.warmup:g}s + {args.duration:g}s each, concurrency {args.concurrency}, {args.workers} workers")
        for key in keys:  # ours first: its log tells the peer which worker class to use
            servers[key] = start_server(targets[key], args.workers, False, log_dir, log)
        log("  gunicorn: " + ", ".join(
            f"{k} worker class {targets[k].worker_class or '?'}" + (f" x {targets[k].threads} threads" if targets[k].threads else "")
            for k in keys))
        if "ours" in targets and "peer" in targets:
            wo, wp = targets["ours"].worker_class, targets["peer"].worker_class
            if wo and wo != wp:
                log("  WARNING: worker classes differ; pass --peer-worker-class to match")
            if wo == "gthread" and targets["ours"].threads != targets["peer"].threads:
                log(f"  WARNING: ours uses gthread with {targets['ours'].threads or 'unknown'} threads, peer with "
                    f"{targets['peer'].threads}; pass --peer-threads to match")

        for rnd in range(args.rounds):
            order = keys if rnd % 2 == 0 else list(reversed(keys))
            for grant in args.grants:
                for key in order:
                    t, srv = targets[key], servers[key]
                    workload = make_workload(t, grant, args)
                    if args.warmup > 0:
                        w = run_load(t, srv, workload, args, args.warmup, rnd)
                        warmups.append({"server": key, "grant": grant, "round": rnd, "ok": w.ok, "errors": dict(w.errors)})
                    r = run_load(t, srv, workload, args, args.duration, rnd)
                    results.append(r)
                    if workload.shape and grant not in shapes[key]:
                        shapes[key][grant] = workload.shape
                    rps = r.ok / r.elapsed if r.elapsed else 0
                    lat = sorted(r.latencies)
                    log(f"  round {rnd + 1} {key:4} {grant:18} {r.requests:6d} req  {sum(r.errors.values()):4d} err  "
                        f"{rps:8.1f} req/s  p50 {percentile(lat, 50) * 1000:7.2f} ms  p99 {percentile(lat, 99) * 1000:7.2f} ms"
                        + (f"  errors {dict(r.errors)}" if r.errors else ""))
        for key, srv in servers.items():
            health[key] = log_health(srv.log_text(), args.workers)
        ok = True
    except BenchError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
    except BenchTimeout as exc:
        print(f"\nERROR: {exc}; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
    finally:
        signal.alarm(0)
        stop_all()
        if not args.keep_databases:
            for t in targets.values():
                if t.admin and t.dbname:
                    with contextlib.suppress(Exception):
                        t.admin.drop(t.dbname)
        for t in targets.values():
            if t.admin:
                t.admin.close()

    if not ok:
        print(f"logs kept in {log_dir}", file=sys.stderr)
        return 1

    labels = {"ours": "authz_server", "peer": "peer (DOT)"}
    summary = {key: {g: summarize(results, key, g) for g in args.grants} for key in keys}
    ratios = compute_ratios(summary, args.grants)
    print()
    print(render_table(summary, ratios, sql, labels, args.grants))
    print()
    print("req/s counts successful responses; latencies are of successful responses, connect included;")
    print("ratio req/s > 1 and ratio ms < 1 mean ours is better. CPU ms/req: server processes / their Postgres backends.")
    client_share = max((s["client_cpu_share"] or 0) for per in summary.values() for s in per.values() if s)
    print(f"load generator ({LOOP}) used up to {client_share:.0%} of the machine's {os.cpu_count()} CPUs (it shares them with the servers).")
    other_share = max((s["other_cpu_share"] or 0) for per in summary.values() for s in per.values() if s)
    if other_share > 0.05:
        print(f"WARNING: other work used up to {other_share:.0%} of the machine during a timed phase; "
              "absolute figures are disturbed, ratios less so (more --rounds helps)")
    for key in keys:
        for grant, shape in shapes[key].items():
            print(f"  {labels[key]:12} {grant:18} response: keys={','.join(shape['keys'])} "
                  f"jwt_access_token={shape['access_token_is_jwt']} id_token={shape['id_token']}")
    for w in warmups:
        if w["errors"]:
            print(f"NOTE: warm-up errors, {labels[w['server']]} {w['grant']} round {w['round'] + 1}: {w['errors']}")
    failed_checks = []
    ours_refresh = (sql.get("ours", {}).get("refresh_token") or {}).get("steady")
    if "ours" in sql and "refresh_token" in args.grants:
        if ours_refresh is None:
            print("SQL: our server logged no sql_count lines for refresh_token (AUTHZ_SQL_COUNT=1 implemented?)")
            failed_checks.append("no sql_count")
        else:
            verdict = "OK" if ours_refresh["max"] <= SQL_REFRESH_TARGET else "ABOVE TARGET"
            print(f"SQL: our refresh_token uses {ours_refresh['mean']} statements/request (max {ours_refresh['max']}); "
                  f"target <= {SQL_REFRESH_TARGET}: {verdict}")
            if verdict != "OK":
                failed_checks.append("sql")
    for key, h in health.items():
        bad = {k: v for k, v in h.items() if k not in ("worker_boots", "log_lines") and v}
        if bad:
            print(f"WARNING: {labels[key]} server log: {bad} (see {log_dir})")
        served = sum(s["requests"] for s in summary[key].values() if s)
        if served and h["log_lines"] > served / 2:
            print(f"NOTE: {labels[key]} wrote {h['log_lines'] / served:.1f} log lines per request (access log?); "
                  "that cost is in its figures")
    total_errors = sum(s["errors"] for per in summary.values() for s in per.values() if s)
    if total_errors:
        print(f"WARNING: {total_errors} timed requests failed (error kinds in the JSON results)")
        failed_checks.append("errors")

    out_path = Path(args.output) if args.output else RESULTS_DIR / f"token_endpoint-{started.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": "token_endpoint",
        "started_utc": started.isoformat(timespec="seconds"),
        "duration_total_s": round(time.monotonic() - t_start, 1),
        "git_commit": _git_commit(),
        "load_generator": {"loop": LOOP, "http": "minimal asyncio HTTP/1.1 client, keep-alive when the server allows"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgres": pg_version},
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                 if k not in ("database_url", "peer_database_url")},
        "servers": {k: {**t.info, "label": labels[k], "worker_class": t.worker_class, "threads": t.threads, "workers": args.workers}
                    for k, t in targets.items()},
        "summary": summary,
        "ratios_ours_over_peer": ratios,
        "sql_statements_per_request": sql,
        "sql_refresh_target": SQL_REFRESH_TARGET,
        "response_shapes": shapes,
        "server_log_health": health,
        "warmups": warmups,
        "phases": [{"server": r.server, "grant": r.grant, "round": r.round, "elapsed_s": round(r.elapsed, 3),
                    "ok": r.ok, "errors": dict(r.errors), "connections_opened": r.connects,
                    "client_cpu_s": round(r.client_cpu, 3), "app_cpu_s": round(r.app_cpu, 3),
                    "db_cpu_s": None if r.db_cpu is None else round(r.db_cpu, 3),
                    "other_cpu_s": None if r.other_cpu is None else round(r.other_cpu, 3),
                    "workers": r.workers_run, "workers_stopped": r.stopped_workers} for r in results],
    }
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {out_path.relative_to(REPO) if out_path.is_relative_to(REPO) else out_path}")
    if args.keep_logs or any(v for h in health.values() for k, v in h.items() if k not in ("worker_boots", "log_lines")):
        print(f"logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 3 if args.strict and failed_checks else 0


def self_test() -> int:
    """Offline checks of what can be checked without the servers (parsing, client, chain logic)."""
    checks = 0

    def check(cond: bool, what: str) -> None:
        nonlocal checks
        checks += 1
        if not cond:
            raise AssertionError(what)

    # arguments
    a = parse_args([])
    check(a.duration == 10 and a.concurrency == 8 and a.workers == 2 and a.grants == GRANTS, "defaults")
    check(a.peer_database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/bench_peer", a.peer_database_url)
    a = parse_args(["--grants", "refresh_token,client_credentials", "--database-url", "sqlite:////tmp/bench_x.db", "--servers", "ours"])
    check(a.grants == GRANTS and a.peer_database_url.endswith("/bench_peer"), "grants order, sqlite peer default")
    a = parse_args(["--database-url", "postgresql+psycopg://u:pw@localhost:5433/bench_a"])
    check(a.peer_database_url == "postgresql+psycopg://u:pw@localhost:5433/bench_peer", a.peer_database_url)
    check(a.total_timeout > a.duration * 4, "total timeout covers the phases")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        for bad in (["--grants", "password"], ["--duration", "0"], ["--concurrency", "0"],
                    ["--database-url", "postgresql://postgres@10.0.0.5/bench_a"],
                    ["--database-url", "postgresql://postgres@127.0.0.1/production"],
                    ["--database-url", "mysql://root@127.0.0.1/bench_a"], ["--database-url", "sqlite://"]):
            try:
                parse_args(bad)
            except SystemExit as exc:
                check(exc.code == 2, f"exit code for {bad}")
            else:
                check(False, f"accepted {bad}")

    # sql_count lines
    log_text = "\n".join([
        "[2026-11-23 10:00:00 +0000] [12] [INFO] Using worker: gthread",
        "sql_count path=/oauth/token grant_type=refresh_token statements=3",
        "2026-11-23 10:00:01,123 INFO authz_server.sql: sql_count path=/oauth/token grant_type=client_credentials statements=1",
        '{"level": "info", "message": "sql_count path=/oauth/token grant_type=refresh_token statements=4", "ts": 1}',
        "sql_count path=/.well-known/openid-configuration grant_type=- statements=2",
        "sql_count path=/oauth/token/ grant_type=refresh_token statements=5",
        "sql_count path=/oauth/token grant_type=refresh_token",  # no count: ignored
        "sql_count path=/oauth/token grant_type=refresh_token statements=x",  # bad count: ignored
        "sql_counter=7 statements=9",  # other word: ignored
        "Traceback (most recent call last):",
        "[2026-11-23 10:00:02 +0000] [12] [INFO] Booting worker with pid: 13",
    ])
    check(parse_sql_count_line("x sql_count path=/a statements=2 grant_type=\"refresh_token\"")
          == {"path": "/a", "statements": "2", "grant_type": "refresh_token"}, "quoted value")
    check(parse_sql_count_line("sql_counter statements=9") is None, "word boundary")
    counts = sql_counts_by_grant(log_text)
    check(counts == {"refresh_token": [3, 4, 5], "client_credentials": [1]}, f"counts {counts}")
    check(summarize_counts([3, 4, 5]) == {"n": 3, "mean": 4.0, "min": 3, "median": 4, "max": 5}, "summary")
    check(summarize_counts([]) is None, "empty summary")
    check(gunicorn_worker_class(log_text) == "gthread" and gunicorn_worker_class("") is None, "worker class")
    check(gunicorn_threads("  threads: 4\n") == 4 and gunicorn_threads(log_text) is None, "threads")
    h = log_health(log_text, 1)
    check(h["tracebacks"] == 1 and h["worker_boots"] == 1 and h["extra_worker_boots"] == 0, f"health {h}")

    # statistics
    vals = sorted(float(i) for i in range(1, 101))
    check(percentile(vals, 50) == 50 and percentile(vals, 99) == 99 and percentile(vals, 100) == 100, "percentile")
    check(percentile([7.0], 99) == 7 and math.isnan(percentile([], 50)), "percentile edge")
    check(ratio(2.0, 4.0) == 0.5 and ratio(1.0, 0) is None and ratio(None, 1.0) is None, "ratio")

    # CLI output
    check(parse_json_output('{"client_id": "a", "client_secret": "b"}', "t")["client_id"] == "a", "json whole")
    check(parse_json_output('Created client\n{"refresh_token": "r"}\n', "t") == {"refresh_token": "r"}, "json last line")
    try:
        parse_json_output("no json here", "t")
        check(False, "garbage accepted")
    except BenchError:
        check(True, "")

    # HTTP client against a local server: keep-alive with Content-Length, chunked, close-delimited
    async def http_checks() -> None:
        replies = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\n{\"err\r\n15\r\nor\": \"invalid_grant\"}\r\n0\r\n\r\n"),
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.0 200 OK\r\n\r\nuntil-eof",
        ]
        seen = []

        async def handle(reader, writer):
            while replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                seen.append(head + await reader.readexactly(length))
                reply = replies.pop(0)
                writer.write(reply)
                await writer.drain()
                if b"close" in reply or reply.startswith(b"HTTP/1.0"):
                    break
            writer.close()

        srv = await asyncio.start_server(handle, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        conn = HttpConn(port)
        req = build_request(port, [("Authorization", "Basic eDp5")], {"grant_type": "client_credentials", "scope": "a b"})
        r1 = await conn.request(req)
        r2 = await conn.request(req)
        r3 = await conn.request(req)
        check(conn.writer is None, "closed after Connection: close")
        r4 = await conn.request(req)
        check(conn.connects == 2, f"connects {conn.connects}")
        check(r1 == (200, b"hello") and r3 == (200, b"ok") and r4 == (200, b"until-eof"), f"{r1} {r3} {r4}")
        check(r2[0] == 400 and json.loads(r2[1]) == {"error": "invalid_grant"}, f"chunked {r2}")
        check(_error_key(*r2) == "http 400 invalid_grant", _error_key(*r2))
        check(seen[0].endswith(b"\r\n\r\ngrant_type=client_credentials&scope=a+b") and b"Content-Length: 39" in seen[0], seen[0].decode())
        srv.close()
        await srv.wait_closed()

    asyncio.run(http_checks())
    h, f = client_auth(Client("id:1", "s/2"), "client_secret_basic")
    check(h == [("Authorization", "Basic " + base64.b64encode(b"id%3A1:s%2F2").decode())] and f == {}, f"basic {h}")
    check(client_auth(Client("i", "s"), "client_secret_post") == ([], {"client_id": "i", "client_secret": "s"}), "post")

    # refresh chains: rotation, broken chain -> spare, no spare -> worker stops
    t = Target(key="ours", label="x", port=1, clients={"refresh_token": Client("i", "s")},
               mint_refresh_tokens=lambda n: [], server_argv=lambda w, c: ([], {}, REPO))
    t.chains, t.spares = ["r0", "r1"], ["s0"]
    w = RefreshWorkload(t, "client_secret_post")
    check(w.workers(8) == 2 and b"refresh_token=r1" in w.request(1), "chain request")
    check(w.check(0, 200, b'{"access_token": "a.b.c", "refresh_token": "r0b"}') is None and t.chains[0] == "r0b", "rotate")
    check(w.shape["access_token_is_jwt"] and w.shape["refresh_token_rotated"], f"shape {w.shape}")
    check(w.check(0, 200, b'{"access_token": "a"}') == "200 without refresh_token (no rotation)" and t.chains[0] == "r0b", "no rotation")
    check(w.check(0, 500, b"oops") == "http 500" and t.chains[0] == "r0b", "5xx keeps token")
    check(w.check(1, 400, b'{"error": "invalid_grant"}') == "http 400 invalid_grant" and t.chains[1] == "s0", "spare")
    try:
        w.check(1, 400, b'{"error": "invalid_grant"}')
        check(False, "no StopWorker")
    except StopWorker:
        check(True, "")
    cc = ClientCredentialsWorkload(Target(key="peer", label="x", port=9, clients={"client_credentials": Client("i", "s")},
                                          mint_refresh_tokens=lambda n: [], server_argv=lambda w, c: ([], {}, REPO)),
                                   "client_secret_basic", "")
    check(b"scope" not in cc.request(0) and cc.check(0, 200, b"{}") == "200 without access_token", "cc checks")
    check(cc.check(0, 401, b'{"error": "invalid_client"}') == "http 401 invalid_client", "cc error key")

    # table and ratios
    s1 = {"requests": 10, "errors": 0, "rps": 100.0, "p50_ms": 5.0, "p99_ms": 9.0, "app_cpu_ms_per_req": 2.0, "db_cpu_ms_per_req": 1.0}
    s2 = dict(s1, rps=50.0, p50_ms=10.0, p99_ms=18.0, app_cpu_ms_per_req=4.0, db_cpu_ms_per_req=None)
    summ = {"ours": {"refresh_token": s1}, "peer": {"refresh_token": s2}}
    r = compute_ratios(summ, ("refresh_token",))
    check(r == {"refresh_token": {"rps": 2.0, "p50_ms": 0.5, "p99_ms": 0.5, "app_cpu_ms_per_req": 0.5, "db_cpu_ms_per_req": None}}, f"{r}")
    sqld = {"ours": {"refresh_token": {"steady": {"mean": 3.0}}}, "peer": {"refresh_token": {"steady": {"mean": 19.0}}}}
    table = render_table(summ, r, sqld, {"ours": "authz_server", "peer": "peer (DOT)"}, ("refresh_token",))
    check("ratio ours/peer" in table and "0.16" in table and "2.00" in table, table)

    print(f"self-test: {checks} passed, 0 failed")
    return 0


def _pg_version(targets: dict[str, Target]) -> str | None:
    for t in targets.values():
        if t.admin:
            with contextlib.suppress(Exception):
                return t.admin.server_version()
    return None


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
