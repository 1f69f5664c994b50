"""The resource registry (RFC 8707 audiences): admins register protected
resources (an MCP server's URL) and the scopes each one defines."""
from __future__ import annotations

import re

from sqlalchemy import select

from ..models import Resource
from ..rules.resource_uris import canonical_uri
from . import audit

SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")  # RFC 6749 §3.3 scope-token


class ResourceInputError(ValueError):
    """Invalid resource metadata; the message says which and why."""


def add(session, identifier: str, name: str, scopes, description=None, actor="cli") -> Resource:
    canon = canonical_uri(identifier or "")
    if canon is None:
        raise ResourceInputError(f"{identifier!r} is not an absolute http(s) URI without a fragment (RFC 8707 §2)")
    if session.get(Resource, canon) is not None:
        raise ResourceInputError(f"{canon} is already registered")
    bad = [s for s in scopes if not SCOPE.match(s)]
    if bad:
        raise ResourceInputError(f"invalid scope token(s): {' '.join(bad)}")
    res = Resource(identifier=canon, name=name or canon, scopes=list(dict.fromkeys(scopes)), description=description)
    session.add(res)
    audit.record(session, "resource_registered", actor=actor, resource=canon, scopes=" ".join(res.scopes))
    return res


def all_resources(session) -> list[Resource]:
    return list(session.scalars(select(Resource).order_by(Resource.identifier)).all())


def scope_lists(session) -> list:
    """(identifier, name, scopes) of every registered resource, in the
    database's order: what the scope catalog and client permissions read."""
    return list(session.execute(select(Resource.identifier, Resource.name, Resource.scopes)).all())


def get(session, identifier: str) -> Resource | None:
    canon = canonical_uri(identifier or "")
    return session.get(Resource, canon) if canon else None


def exists(session, canon: str) -> bool:
    """Whether the canonical resource URI ``canon`` is registered."""
    return session.get(Resource, canon) is not None


def remove(session, res: Resource, actor="cli") -> None:
    audit.record(session, "resource_removed", actor=actor, resource=res.identifier)
    session.delete(res)
