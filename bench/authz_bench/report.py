"""What a run reports: statistics, the table, the console notes and the results JSON."""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from . import REPO, RESULTS_DIR, SQL_REFRESH_TARGET
from .load import LOOP, PhaseResult
from .targets import Target


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


def report(args: argparse.Namespace, *, keys: list[str], targets: dict[str, Target], results: list[PhaseResult],
           warmups: list[dict[str, Any]], sql: dict[str, Any], shapes: dict[str, dict[str, Any]], health: dict[str, Any],
           pg_version: str | None, log_dir: Path, started: dt.datetime, t_start: float) -> int:
    """Print the table and the notes, write the results JSON; return the exit code (3: --strict and a check failed)."""
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

