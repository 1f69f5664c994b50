"""The token endpoint benchmark's offline self-test runs with the suite.

`bench/token_endpoint.py` is run by hand, against live servers; its `--self-test` checks
its own argument parsing, server-log parsing, HTTP client, refresh chains and report
without a server, database or network (a listener on loopback only), in well under a
second. Running it here keeps the bench working as the repository changes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_token_endpoint_self_test_passes():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "token_endpoint.py"), "--self-test"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.fullmatch(r"self-test: [1-9]\d* passed, 0 failed\n", proc.stdout), proc.stdout
