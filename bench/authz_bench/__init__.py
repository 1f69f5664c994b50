"""The token endpoint benchmark (bench/token_endpoint.py), as a package.

    cli        arguments, and main(): one run from setup to report, bounded by --total-timeout
    processes  setup commands, gunicorn servers (start, wait, stop), CPU from /proc, bench databases
    targets    the servers under test, ours and the peer: their setup, clients and refresh tokens
    serverlog  what a server log tells: sql_count lines, gunicorn worker class/threads, health
    load       the load generator: a minimal asyncio HTTP/1.1 client, the workloads, the phases
    report     statistics, the table, the console notes and the results JSON
    selftest   offline checks of all the above (--self-test)

This module holds what they share: where things are, fixed limits, the bench's errors.
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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

