"""Random secrets and their digests.

Codes, refresh tokens, client secrets are 256-bit random values; they are stored
only as SHA-256 digests (a slow hash adds nothing for such values and would cap
the token endpoint; docs/architecture.md#secrets-at-rest).
"""
from __future__ import annotations

import hashlib
import secrets


def new_secret(nbytes: int = 32) -> str:
    """URL-safe random string: only unreserved characters (docs/requirements.md: A2-7)."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_id(prefix: str = "", nbytes: int = 16) -> str:
    return prefix + secrets.token_urlsafe(nbytes).replace("_", "x").replace("-", "y")
