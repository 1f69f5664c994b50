"""The command line: arguments, and main(), one run from setup to report.

main: fresh databases and servers (targets), refresh tokens minted, the untimed SQL
counting phase, then the timed rounds (load), all under --total-timeout; servers are
stopped and the bench databases dropped whatever happens; then the report.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import ABORT, CLI_TIMEOUT, DEFAULT_DATABASE_URL, GRANTS, READY_TIMEOUT, SQL_REFRESH_TARGET, BenchError, BenchTimeout
from .load import PhaseResult, make_workload, run_load, sql_count_phase
from .processes import ServerProcess, check_database_url, stop_all
from .report import percentile, report
from .serverlog import log_health
from .targets import Target, link_targets, postgres_version, prepare_ours, prepare_peer, start_server


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




def default_peer_database_url(ours: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(ours)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg", database="bench_peer").render_as_string(hide_password=False)
    return "postgresql+psycopg://postgres@127.0.0.1:5432/bench_peer"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.self_test:
        from .selftest import self_test  # here: selftest imports this module

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
        pg_version = postgres_version(targets)
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

    return report(args, keys=keys, targets=targets, results=results, warmups=warmups, sql=sql, shapes=shapes,
                  health=health, pg_version=pg_version, log_dir=log_dir, started=started, t_start=t_start)
