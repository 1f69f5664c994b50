"""Resource indicators (RFC 8707): which audiences a token may name."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Error

from ..rules.resource_uris import UnknownResource, canonical_uri, registered
from ..storage import resources as resource_store


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2."""

    error = "invalid_target"
    status_code = 400


def validate(session, values: list[str], default_audience: str) -> list[str]:
    """Registered resources named by the request, canonical; raises invalid_target."""
    try:
        return registered(values, default_audience, lambda canon: resource_store.exists(session, canon))
    except UnknownResource as e:
        raise InvalidTargetError(str(e)) from None


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
