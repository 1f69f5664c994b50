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
The code is the package bench/authz_bench/ (see its __init__); this file is its entry point.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # python -P leaves the script's directory out
        sys.path.insert(0, here)

    from authz_bench.cli import main
    from authz_bench.processes import stop_all

    try:
        sys.exit(main())
    finally:
        stop_all()
