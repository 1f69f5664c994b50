"""--self-test: offline checks of the bench's own parsing, HTTP client, refresh chains and report.

Needs no server, no database and no network beyond a listener on loopback; takes
well under a second. `make test` runs it (tests/test_bench_selftest.py).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import re

from . import GRANTS, HOST, REPO, BenchError
from .cli import parse_args
from .load import ClientCredentialsWorkload, HttpConn, RefreshWorkload, StopWorker, build_request, client_auth, error_key
from .processes import parse_json_output
from .report import compute_ratios, percentile, ratio, render_table
from .serverlog import gunicorn_threads, gunicorn_worker_class, log_health, parse_sql_count_line, sql_counts_by_grant, summarize_counts
from .targets import Client, Target


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
        check(error_key(*r2) == "http 400 invalid_grant", error_key(*r2))
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
