"""User codes for the device flow (RFC 8628 §6.1): short, typed by a person.

Policy, with its defaults: 8 characters from 20 consonants, shown as
``XXXX-XXXX``. That is 20^8 ≈ 2.6 × 10^10 codes (34.5 bits); with entry limited
to ``device_code_attempts`` wrong codes per member (web.device) and codes living
``device_code_ttl`` seconds, guessing a live code is hopeless (§5.1). Consonants
only: no vowels, so no words, and none of 0/O, 1/I/L-style look-alikes but L
itself, which has no twin here. Entry ignores case, spaces and dashes (§6.1).
"""
from __future__ import annotations

import secrets

ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
LENGTH = 8


def generate() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return display(raw)


def display(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:]}"


def canonical_code(entered) -> str | None:
    """The canonical 8 characters of what a person typed, or None when it cannot
    be a user code at all."""
    if not isinstance(entered, str) or len(entered) > 64:
        return None
    raw = "".join(ch for ch in entered.upper() if ch not in " -\t")
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return raw
