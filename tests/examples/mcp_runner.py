"""Run the example MCP server (examples/mcp_server) on a free loopback port,
over real HTTP (uvicorn in a thread), registered on our server as a resource;
and the in-memory token storage an ``mcp`` SDK client needs."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from tests.helpers import free_port


@contextmanager
def example_mcp_server(live, scopes=("mcp:tools",)):
    """Yields the MCP endpoint URL (also the tokens' ``aud``)."""
    import uvicorn

    from authz_server.storage import resources
    from examples.mcp_server import Config, build_app

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    s = live.db.session
    try:
        resources.add(s, resource, "Example MCP server", list(scopes))
        s.commit()
    finally:
        live.db.session.remove()
    app = build_app(Config(issuer=live.url, resource=resource, scopes=list(scopes)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "MCP server did not start"
        time.sleep(0.02)
    try:
        yield resource
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class MemoryStorage:
    """``mcp.client.auth.TokenStorage`` kept in memory (what a host app persists)."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info
