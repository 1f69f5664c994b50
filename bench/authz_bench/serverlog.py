"""What a server's log tells the bench: sql_count lines, gunicorn's worker class and threads, trouble."""
from __future__ import annotations

import collections
import re
from typing import Any

from . import TOKEN_PATH

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
