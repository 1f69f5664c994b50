"""Processes and databases the bench starts and stops.

Setup commands (run_cli), gunicorn servers in their own session (ServerProcess,
stop_all), CPU accounting from /proc, and the bench's Postgres databases (PgAdmin,
prepare_database; only loopback databases named bench_* are ever touched).
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import CLI_TIMEOUT, HOST, LOOPBACK_HOSTS, READY_TIMEOUT, STOP_TIMEOUT, BenchError

# --------------------------------------------------------------------------
# Setup commands and servers
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


# --------------------------------------------------------------------------
# Bench databases: which URLs may be dropped, and dropping them
# --------------------------------------------------------------------------


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
