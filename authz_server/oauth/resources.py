"""Resource indicators (RFC 8707): which audiences a token may name."""
from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from authlib.oauth2.rfc6749 import OAuth2Error

from ..models import Resource


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2."""

    error = "invalid_target"
    status_code = 400


def canonical_uri(uri: str) -> str | None:
    """Canonical form: lowercase scheme and host, no default port, no trailing
    slash on a bare origin (MCP "Canonical Server URI"). None if not an absolute
    URI without fragment (RFC 8707 §2)."""
    try:
        p = urlsplit(uri)
        port = p.port
    except ValueError:
        return None
    if p.scheme.lower() not in ("https", "http") or not p.hostname or p.fragment or "#" in uri:
        return None
    scheme = p.scheme.lower()
    host = p.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port and not ((scheme == "https" and port == 443) or (scheme == "http" and port == 80)):
        host = f"{host}:{port}"
    path = "" if p.path == "/" else p.path
    return urlunsplit((scheme, host, path, p.query, ""))


def shown(value: str) -> str:
    """The value percent-encoded: error_description allows only printable ASCII
    without '"' and '\\' (RFC 6749 §5.2), and Authlib raises ValueError (a 500)
    for anything else."""
    return quote(value[:200], safe=":/?&=@%")


def validate(session, values: list[str], default_audience: str) -> list[str]:
    """Registered resources named by the request, canonical; raises invalid_target."""
    out = []
    for v in values:
        canon = canonical_uri(v)
        if canon is None:
            raise InvalidTargetError(f"The resource {shown(v)} is not an absolute URI without a fragment")
        if canon != default_audience and session.get(Resource, canon) is None:
            raise InvalidTargetError(f"The resource {shown(canon)} is not registered on this server")
        if canon not in out:
            out.append(canon)
    return out


def narrow(requested: list[str], granted: list[str], default_audience: str) -> list[str]:
    """RFC 8707 §2.2: the token request may name only resources already granted."""
    allowed = granted or [default_audience]
    out = []
    for v in requested:
        canon = canonical_uri(v)
        if canon is None or canon not in allowed:
            raise InvalidTargetError("The resource was not part of the authorization")
        out.append(canon)
    return out or allowed
