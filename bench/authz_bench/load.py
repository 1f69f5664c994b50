"""The load generator: a minimal asyncio HTTP/1.1 client (cheap on a 2-core box) and the phases it drives.

A workload builds each request and checks each response (client_credentials: the
same request; refresh_token: each worker walks its own rotation chain). run_load is a
timed phase with CPU accounting; sql_count_phase an untimed, sequential one that
reads the statement counts from the server's log.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ABORT, HOST, TOKEN_PATH, BenchTimeout
from .processes import ServerProcess, cpu_delta, cpu_seconds, machine_busy_seconds
from .serverlog import sql_counts_by_grant, summarize_counts
from .targets import Client, Target, start_server


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


def error_key(status: int, body: bytes) -> str:
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


def token_response(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The JSON of a 200 token response, and what is wrong with it (None: it carries an access token)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}, "200 not json"
    if not doc.get("access_token"):
        return doc, "200 without access_token"
    return doc, None


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
            return error_key(status, body)
        doc, err = token_response(body)
        if err:
            return err
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
            key = error_key(status, body)
            if status in (400, 401) and "invalid_grant" in key:
                # the chain is dead (revoked/reused): continue on a spare token
                self.chain_breaks += 1
                if not self.target.spares:
                    raise StopWorker(key)
                self.target.chains[i] = self.target.spares.pop()
            return key
        doc, err = token_response(body)
        if err:
            return err
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


def make_workload(target: Target, grant: str, args: argparse.Namespace):
    if grant == "client_credentials":
        return ClientCredentialsWorkload(target, args.auth_method, args.cc_scope)
    return RefreshWorkload(target, args.auth_method)


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
