"""A reference MCP server protected by this authorization server.

Built on the official ``mcp`` SDK (``MCPServer`` + ``AuthSettings`` + a
``TokenVerifier``), it is an OAuth 2.1 resource server as the MCP
authorization spec (2025-06-18 and later) asks:

- RFC 9728 protected-resource metadata at
  ``/.well-known/oauth-protected-resource/mcp`` (the path-inserted form the SDK
  serves) and at the root ``/.well-known/oauth-protected-resource`` (for
  clients that only probe the root), naming our issuer;
- 401 with ``WWW-Authenticate: Bearer resource_metadata="…", scope="…"`` for a
  missing or bad token, 403 ``insufficient_scope`` with the needed scope;
- our RFC 9068 JWT access tokens verified through the issuer's JWKS: ``typ``
  ``at+jwt``, signature, ``iss``, ``aud`` = this server's own URL (RFC 8707:
  tokens minted for another resource are refused), ``exp``, and the required
  scopes.

Run: ``python -m examples.mcp_server --issuer http://127.0.0.1:5000 --port 8000``
"""
from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit, urlunsplit
from dataclasses import dataclass, field

import anyio
import jwt
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §2.1
ALGORITHMS = ["ES256", "RS256"]


@dataclass
class Config:
    issuer: str  # our issuer, exactly as its metadata spells it (no trailing slash)
    resource: str  # this server's canonical URL, e.g. http://127.0.0.1:8000/mcp: the tokens' `aud`
    scopes: list[str] = field(default_factory=lambda: ["mcp:tools"])
    leeway: int = 0  # seconds of clock skew tolerated on exp/nbf/iat

    def __post_init__(self):
        # MCP 2026-07-28 "Refresh Tokens" (SEP-2207): a resource server SHOULD NOT
        # put offline_access in its WWW-Authenticate scope or its RFC 9728
        # scopes_supported; refresh tokens are between the client and the
        # authorization server, never a resource requirement. These scopes are
        # both what every call requires and what is advertised, so refuse it here.
        if "offline_access" in self.scopes:
            raise ValueError("offline_access is not a resource scope: the MCP server must not require or "
                             "advertise it (clients ask the authorization server for it themselves)")

    @property
    def jwks_uri(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/jwks.json"


class JWTTokenVerifier:
    """The SDK's ``TokenVerifier``: our JWT access tokens, checked locally
    against the issuer's JWKS (keys cached, refetched on an unknown ``kid``)."""

    def __init__(self, config: Config):
        self.config = config
        self.jwks = jwt.PyJWKClient(config.jwks_uri, cache_keys=True, lifespan=300)

    def decode(self, token: str) -> dict:
        """The verified claims; raises jwt.PyJWTError on any failure."""
        header = jwt.get_unverified_header(token)
        # RFC 9068 §4: refuse an id token or any other JWT presented as an access token.
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise jwt.InvalidTokenError("not an RFC 9068 access token")
        key = self.jwks.get_signing_key(header.get("kid", ""))  # network only on a cache miss
        return jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=self.config.issuer,
            audience=self.config.resource,  # RFC 8707 / MCP: only tokens minted for this server
            leeway=self.config.leeway,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "client_id"]},
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # PyJWKClient fetches with blocking urllib: keep it off the event loop.
            claims = await anyio.to_thread.run_sync(self.decode, token)
        except (jwt.PyJWTError, ValueError):
            return None
        aud = claims["aud"]
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            # With several audiences, the one that is this server (the SDK compares it).
            resource=self.config.resource if isinstance(aud, list) else aud,
            subject=claims["sub"],
            claims=claims,
        )


class Challenge:
    """ASGI wrapper that writes the ``WWW-Authenticate`` challenge MCP clients
    read. The SDK's names ``resource_metadata`` but no ``scope``, which MCP
    2025-11-25+ clients take their initial scopes from (RFC 6750 §3 allows it),
    and it sends ``error="invalid_token"`` even when no token was presented,
    which RFC 6750 §3.1 says not to do."""

    def __init__(self, app, metadata_url: str, scopes: list[str]):
        self.app = app
        self.scope = f'scope="{" ".join(scopes)}"'
        self.params = f'resource_metadata="{metadata_url}", {self.scope}'

    def challenge(self, status: int, had_token: bool, sdk_value: bytes) -> bytes:
        if status == 401:
            error = 'error="invalid_token", ' if had_token else ""
            return f"Bearer {error}{self.params}".encode()
        if b"scope=" not in sdk_value:  # 403 insufficient_scope: name every scope needed (B.6)
            return sdk_value + b", " + self.scope.encode()
        return sdk_value

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        had_token = any(k == b"authorization" for k, _ in scope.get("headers", []))

        async def send_with_challenge(message):
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                message = {**message, "headers": [
                    (k, self.challenge(message["status"], had_token, v) if k.lower() == b"www-authenticate" else v)
                    for k, v in message.get("headers", [])]}
            await send(message)

        await self.app(scope, receive, send_with_challenge)


def metadata_document(config: Config) -> dict:
    """RFC 9728 §2. Built by hand rather than with the SDK's pydantic model, which
    renders a path-less issuer with a trailing slash (``http://as/``): clients
    compare it with the issuer's own metadata byte for byte (RFC 8414 §3.3)."""
    return {
        "resource": config.resource,
        "authorization_servers": [config.issuer],
        "scopes_supported": config.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "authz_server example MCP server",
    }


def build_server(config: Config) -> MCPServer:
    auth = AuthSettings(
        issuer_url=AnyHttpUrl(config.issuer),
        resource_server_url=AnyHttpUrl(config.resource),
        required_scopes=config.scopes,
        # The verifier already checks `aud`; the SDK checks AccessToken.resource again.
        validate_token_resource=True,
    )
    mcp = MCPServer(name="authz-example", instructions="Tells you who you are signed in as.",
                    token_verifier=JWTTokenVerifier(config), auth=auth)

    @mcp.tool()
    def whoami() -> dict:
        """The member, organization and client behind the access token of this call."""
        token = get_access_token()
        claims = token.claims or {}
        return {
            "sub": token.subject,
            "organization_id": claims.get("organization_id"),
            "client_id": token.client_id,
            "scopes": token.scopes,
            "aud": claims.get("aud"),
            "iss": claims.get("iss"),
            "expires_at": token.expires_at,
        }

    @mcp.tool()
    def organization() -> dict:
        """The organization the caller signed in to (the token's organization_id)."""
        token = get_access_token()
        return {"organization_id": (token.claims or {}).get("organization_id"), "member": token.subject}

    return mcp


def build_app(config: Config):
    """The ASGI app: the MCP endpoint at the resource URL's path, and its metadata."""
    parts = urlsplit(config.resource)
    path = parts.path or "/"
    server = build_server(config)
    app = server.streamable_http_app(streamable_http_path=path)

    document = metadata_document(config)
    cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": "mcp-protocol-version"}

    async def protected_resource_metadata(request):
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        return JSONResponse(document, headers={**cors, "Cache-Control": "public, max-age=3600"})

    # RFC 9728 §3.1 path-inserted form (what the 401 points at), and the root form
    # that clients fall back to; both replace the SDK's own route (see above).
    well_known = "/.well-known/oauth-protected-resource"
    metadata_path = well_known + ("" if path == "/" else path)
    app.router.routes[:] = [r for r in app.router.routes if not getattr(r, "path", "").startswith(well_known)]
    for p in dict.fromkeys([metadata_path, well_known]):
        app.router.routes.append(Route(p, endpoint=protected_resource_metadata, methods=["GET", "OPTIONS"]))
    metadata_url = urlunsplit((parts.scheme, parts.netloc, metadata_path, "", ""))
    return Challenge(app, metadata_url, config.scopes)


def config_from_args(argv=None) -> tuple[Config, str, int]:
    p = argparse.ArgumentParser(prog="python -m examples.mcp_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", default=os.environ.get("MCP_ISSUER", "http://127.0.0.1:5000"),
                   help="the authorization server's issuer (env MCP_ISSUER)")
    p.add_argument("--host", default=os.environ.get("MCP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("MCP_PORT", "8000")))
    p.add_argument("--resource", default=os.environ.get("MCP_RESOURCE"),
                   help="this server's public URL, the tokens' audience (env MCP_RESOURCE; "
                        "default http://HOST:PORT/mcp)")
    p.add_argument("--scopes", default=os.environ.get("MCP_SCOPES", "mcp:tools"),
                   help="space-separated scopes every call needs (env MCP_SCOPES)")
    a = p.parse_args(argv)
    resource = a.resource or f"http://{a.host}:{a.port}/mcp"
    try:
        config = Config(issuer=a.issuer.rstrip("/"), resource=resource, scopes=a.scopes.split())
    except ValueError as e:
        p.error(f"--scopes: {e}")
    return config, a.host, a.port


def main(argv=None) -> None:
    import uvicorn

    config, host, port = config_from_args(argv)
    print(f"MCP server {config.resource} (issuer {config.issuer}, scopes {' '.join(config.scopes)})")
    print("Register it on the authorization server first:\n"
          f"  authz-server resources add {config.resource} --scope {' --scope '.join(config.scopes)}")
    uvicorn.run(build_app(config), host=host, port=port)
