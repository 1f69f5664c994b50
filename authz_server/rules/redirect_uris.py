"""Redirect-URI rules (OAuth 2.1 §2.3, RFC 8252 §7.3; docs/requirements.md A4-24 to A4-30)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..config import is_loopback_host

FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript", "file", "about", "blob"}
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "localhost"}


def validate_registration(uri: str) -> str | None:
    """Why ``uri`` cannot be registered, or None when it can.

    Absolute, no fragment (OAuth 2.1 §2.3); https, or http only on loopback
    (RFC 8252 §7.3); private-use schemes allowed for native apps (RFC 8252 §7.1),
    dangerous schemes never.
    """
    if not isinstance(uri, str) or not uri or len(uri) > 2000 or any(c.isspace() for c in uri):
        return "must be a non-empty absolute URI without spaces"
    # A NUL or other control character is no URI character (RFC 3986 §2), and
    # Postgres cannot even store a NUL.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return "must not contain control characters"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme:
        return "must be absolute"
    if "#" in uri:
        return "must not contain a fragment"
    if scheme in FORBIDDEN_SCHEMES:
        return f"uses the forbidden scheme {scheme}:"
    if scheme == "http":
        if not is_loopback_host(parts.hostname):
            return "uses http on a non-loopback host; use https"
    elif scheme == "https":
        if not parts.hostname:
            return "has no host"
    return None


def _is_loopback_http(parts) -> bool:
    return parts.scheme == "http" and parts.hostname is not None and (
        parts.hostname in ("127.0.0.1", "::1", "localhost")
    )


# The authority of a loopback http redirect URI, spelled exactly as RFC 8252 §7.3
# and OAuth 2.1 §4.1.1 name it, with its optional port; what follows must start
# a path or a query, so "127.0.0.1.evil.example" or "user@127.0.0.1" never fit.
_LOOPBACK_AUTHORITY = re.compile(r"http://(127\.0\.0\.1|\[::1\]|localhost)(?::(\d{1,5}))?(?=[/?]|$)")


def _without_port(uri: str) -> str | None:
    """``uri`` with its port removed when it is a loopback http URI, else None."""
    m = _LOOPBACK_AUTHORITY.match(uri)
    if m is None or "#" in uri or (m.group(2) is not None and not 0 < int(m.group(2)) < 65536):
        return None
    return f"http://{m.group(1)}{uri[m.end():]}"


def matches(registered: list[str], requested: str) -> bool:
    """Simple string comparison (RFC 3986 §6.2.1), except that for loopback http
    redirect URIs the port may differ, also from a portless entry (RFC 8252 §7.3).
    Everything but the port is still compared as a string: no case folding or
    other normalization."""
    if requested in registered:
        return True
    req = _without_port(requested)
    if req is None:
        return False
    return any(_without_port(entry) == req for entry in registered)


def all_loopback(uris: list[str]) -> bool:
    return bool(uris) and all(_is_loopback_http(urlsplit(u)) for u in uris)
