"""CORS for the endpoints browser-based clients call cross-origin (docs/requirements.md:
C-3, A13-72, A26-122): the metadata documents, the JWKS, token, revocation,
registration and userinfo. No credentials are involved, so "*" is safe; the
authorization endpoint is a top-level navigation and gets none."""
from __future__ import annotations

CORS_PATHS = ("/.well-known/", "/oauth/token", "/oauth/revoke", "/oauth/userinfo", "/oauth/register")
ALLOW_HEADERS = "Authorization, Content-Type, MCP-Protocol-Version"
EXPOSE_HEADERS = "WWW-Authenticate"


def applies(path: str) -> bool:
    return path.startswith(CORS_PATHS)


def is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def decorate(request, resp):
    """Add the CORS headers; answer a preflight with 204 and no body."""
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if request.method == "OPTIONS":
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        resp.headers["Access-Control-Max-Age"] = "86400"
        resp.status_code = 204
        resp.set_data(b"")
    return resp
