"""Default credentials, and the refusal to stand in for a real Stytch project."""
from __future__ import annotations

from urllib.parse import urlsplit

# Fixed development credentials: `make run` and the server agree on them without
# configuration. They only ever open this in-memory emulator.
DEFAULT_PROJECT_ID = "project-test-e0e0e0e0-0000-4000-8000-000000000001"
DEFAULT_SECRET = "secret-test-emulator-only-not-a-real-stytch-secret="
DEFAULT_PUBLIC_TOKEN = "public-token-test-e0e0e0e0-0000-4000-8000-000000000002"


class LiveProjectRefused(ValueError):
    """The configuration names a real Stytch project or host; the emulator will not pose as it."""


def refuse_live(project_id: str | None, environment: str | None = None, secret: str | None = None) -> None:
    """Raise ``LiveProjectRefused`` unless this is safe to emulate.

    Refused: a live project id or secret (``project-live-…``/``secret-live-…``),
    ``environment="live"``, and an environment that points at Stytch's own
    hosts (``test``/``live`` or any ``stytch.com`` URL): those send the SDK to the
    real service, so starting an emulator for them is a configuration mistake.
    """
    if project_id and project_id.startswith("project-live-"):
        raise LiveProjectRefused(
            f"STYTCH_PROJECT_ID {project_id[:13]}… is a live Stytch project: the emulator only "
            "runs for test projects (project-test-…) or with the Stytch settings unset."
        )
    if secret and secret.startswith("secret-live-"):
        raise LiveProjectRefused("STYTCH_SECRET is a live Stytch secret: the emulator refuses to start with it.")
    env = (environment or "").strip()
    if env.lower() in ("live", "test"):
        raise LiveProjectRefused(
            f"STYTCH_ENVIRONMENT={env!r} points the SDK at Stytch's hosted API, not at the emulator; "
            "unset it or give the emulator's URL (for example http://127.0.0.1:8787)."
        )
    host = (urlsplit(env).hostname or "").lower() if "://" in env else ""
    if host == "stytch.com" or host.endswith(".stytch.com"):
        raise LiveProjectRefused(
            f"STYTCH_ENVIRONMENT={env!r} is a Stytch host; the emulator cannot stand in for it."
        )
