"""Resource URIs (RFC 8707 §2): their canonical form and how one is shown in an error."""
from __future__ import annotations

from typing import Callable
from urllib.parse import quote, urlsplit, urlunsplit


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


class UnknownResource(ValueError):
    """A requested resource that is not a URI or not registered; the message is
    fit for an error_description."""


def registered(values: list[str], default_audience: str | None, is_registered: Callable[[str], bool]) -> list[str]:
    """The resources named, canonical and without repeats, each the default
    audience or one ``is_registered`` knows; raises UnknownResource."""
    out = []
    for v in values:
        canon = canonical_uri(v)
        if canon is None:
            raise UnknownResource(f"The resource {shown(v)} is not an absolute URI without a fragment")
        if canon != default_audience and not is_registered(canon):
            raise UnknownResource(f"The resource {shown(canon)} is not registered on this server")
        if canon not in out:
            out.append(canon)
    return out
