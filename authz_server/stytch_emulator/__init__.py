"""A local Stytch B2B API emulator (docs/architecture.md#layers).

A real HTTP server with Stytch's paths, Basic auth and JSON shapes, so the
unmodified SDK talks to it with ``stytch.B2BClient(project_id, secret,
environment="http://127.0.0.1:PORT")``. It serves the public OAuth start pages
(with a stand-in identity-provider form), a JWKS and RS256 session JWTs, email
OTPs and magic links into an outbox, seeded organizations (Acme: alice, admin,
and bob at acme.test; Globex at globex.test) with email-domain JIT, and a
switch that makes a domain require an email step-up.

    python -m authz_server.stytch_emulator --port 8787
    handle = start_emulator()   # tests: free port, background thread
"""
from .app import create_emulator
from .guard import DEFAULT_PROJECT_ID, DEFAULT_PUBLIC_TOKEN, DEFAULT_SECRET, LiveProjectRefused, refuse_live
from .server import EmulatorHandle, start_emulator

__all__ = [
    "create_emulator", "start_emulator", "EmulatorHandle", "refuse_live", "LiveProjectRefused",
    "DEFAULT_PROJECT_ID", "DEFAULT_SECRET", "DEFAULT_PUBLIC_TOKEN",
]
