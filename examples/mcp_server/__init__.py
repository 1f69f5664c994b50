"""A reference MCP server protected by authz_server (see README.md)."""
from .server import Config, JWTTokenVerifier, build_app, build_server

__all__ = ["Config", "JWTTokenVerifier", "build_app", "build_server"]
