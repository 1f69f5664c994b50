"""The example MCP server as a resource server never advertises offline_access
(MCP 2026-07-28 "Refresh Tokens" / SEP-2207; docs/requirements.md: B.1 row 2026-07-28,
B.2 M-10): not in its RFC 9728 ``scopes_supported``, not in the ``scope`` of
its 401 or 403 ``WWW-Authenticate`` challenge, and it refuses a configuration
that would put it there. Our authorization server does list it, so MCP clients
add it on their own (tests/oauth/test_offline_access.py)."""
from __future__ import annotations

import re

import pytest
import requests

pytest.importorskip("mcp", reason="the official mcp SDK is not installed (pip install -e '.[test]')")
pytest.importorskip("uvicorn", reason="uvicorn (an mcp dependency) is not installed")

from examples.mcp_server import Config  # noqa: E402
from examples.mcp_server.server import config_from_args  # noqa: E402

from .mcp_runner import example_mcp_server  # noqa: E402

SCOPES = ("mcp:tools", "mcp:admin")
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def _challenge_scopes(header: str) -> list[str]:
    m = re.search(r'(?:^|[ ,])scope="([^"]*)"', header)
    assert m, header
    return m.group(1).split()


def test_sep2207_resource_metadata_and_challenges_leave_out_offline_access(live):
    """The AS lists offline_access; the resource server's metadata (both RFC 9728
    URLs) and its 401 and 403 challenges name exactly its own scopes."""
    assert "offline_access" in live.metadata()["scopes_supported"]
    with example_mcp_server(live, SCOPES) as mcp_url:
        origin = mcp_url.rsplit("/mcp", 1)[0]
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            doc = requests.get(origin + path, timeout=10).json()
            assert doc["scopes_supported"] == list(SCOPES), doc
        r = requests.post(mcp_url, json=CALL, timeout=10)
        assert r.status_code == 401
        assert _challenge_scopes(r.headers["WWW-Authenticate"]) == list(SCOPES)
        # A token of ours for this server, but with one of the two scopes: 403
        # insufficient_scope naming every scope needed, still without offline_access.
        with live.app.app_context():
            token, _ = live.server.minter.access_token(
                client_id="c", subject="member-x", scope="mcp:tools offline_access", audience=[mcp_url],
                organization_id="org-x")
        r = requests.post(mcp_url, json=CALL, headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 403
        header = r.headers["WWW-Authenticate"]
        assert 'error="insufficient_scope"' in header
        assert "offline_access" not in _challenge_scopes(header)
        assert set(_challenge_scopes(header)) <= set(SCOPES)


def test_sep2207_offline_access_is_refused_as_a_resource_scope(capsys):
    """A configuration that would require and advertise offline_access is refused,
    in code and on the command line (exit status 2, the reason on stderr)."""
    with pytest.raises(ValueError, match="offline_access"):
        Config(issuer="http://127.0.0.1:5000", resource="http://127.0.0.1:8000/mcp",
               scopes=["mcp:tools", "offline_access"])
    with pytest.raises(SystemExit) as exit_:
        config_from_args(["--scopes", "mcp:tools offline_access"])
    assert exit_.value.code == 2
    assert "offline_access" in capsys.readouterr().err
    config, _, _ = config_from_args([])
    assert config.scopes == ["mcp:tools"]
