"""`authz-server resources …`: the RFC 8707 resource registry, and what it changes
at the token endpoint (aud = the resource; its scopes join the catalog)."""
from __future__ import annotations

import json

import requests
from click.testing import CliRunner

from authz_server.cli import main
from authz_server.models import AuditEvent, Resource


def run(live, *args):
    env = {"DATABASE_URL": live.settings.database_url, "AUTHZ_ENV": "test"}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_resources_add_list_remove(live):
    r = run(live, "resources", "add", "https://MCP.example.com/", "--name", "Example MCP",
            "--scope", "tools:read tools:call", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    # RFC 8707 / MCP canonical URI: lowercase host, no trailing slash on a bare origin.
    assert data == {"resource": "https://mcp.example.com", "name": "Example MCP", "scopes": ["tools:read", "tools:call"]}
    assert "https://mcp.example.com" in run(live, "resources", "list").output
    again = run(live, "resources", "add", "https://mcp.example.com")
    assert again.exit_code != 0 and "already registered" in again.output
    assert run(live, "resources", "remove", "https://mcp.example.com/").exit_code == 0
    s = live.db.session
    assert s.query(Resource).count() == 0
    events = [e.event for e in s.query(AuditEvent).order_by(AuditEvent.id)]
    s.remove()
    assert events[-2:] == ["resource_registered", "resource_removed"]


def test_resources_bad_input_stores_nothing(live):
    for args in (["mcp.example.com"], ["https://x.example/#f"], ["javascript:alert(1)"],
                 ["https://ok.example", "--scope", 'bad"scope']):
        r = run(live, "resources", "add", *args)
        assert r.exit_code != 0 and "Error" in r.output, (args, r.output)
    assert live.db.session.query(Resource).count() == 0
    assert run(live, "resources", "remove", "https://nope.example").exit_code != 0


def test_registered_resource_becomes_the_audience(live, make_client, token_post):
    """The resource's scopes join the catalog, and aud = the resource (RFC 8707 §2)."""
    import jwt

    run(live, "resources", "add", "https://mcp.example.com", "--scope", "tools:read")
    c = make_client(grant_types=("client_credentials",), redirect_uris=(),
                    allowed_resources=("https://mcp.example.com",))
    r = token_post({"grant_type": "client_credentials", "scope": "tools:read",
                    "resource": "https://mcp.example.com/"}, auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://mcp.example.com" and claims["scope"] == "tools:read"
    meta = requests.get(live.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert "tools:read" in meta["scopes_supported"]
