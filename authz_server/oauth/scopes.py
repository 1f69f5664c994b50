"""The scope catalog and the scope policy.

Policy (documented defaults):
- A requested scope must be in the catalog: the built-in OIDC scopes plus the
  scopes of registered resources. A client registered with a scope list may only
  ask within it; a client registered with none may ask for any catalog scope,
  and so may a dynamically registered client, whose list is only its default.
- ``offline_access`` is allowed for every client, whatever list it registered:
  it is in ``scopes_supported``, so MCP SDKs add it on their own whenever the
  client's grant_types include refresh_token (MCP 2026-07-28 "Refresh Tokens",
  docs/requirements.md: B6, C-11). It grants nothing by itself: refresh tokens go
  by the refresh_token grant type (A7-48), with or without it.
- No ``scope`` at /authorize means the client's registered scopes, or ``openid``
  when it registered none (RFC 6749 §3.3 allows a documented default).
"""
from __future__ import annotations

from ..models import RegisteredVia
from ..storage import resources as resource_store

BUILTIN_SCOPES = {
    "openid": "Confirm who you are (your member id in this organization)",
    "profile": "See your name and your roles in the organization",
    "email": "See your email address",
    "offline_access": "Stay connected when you are not using it (a refresh token)",
}

DEFAULT_SCOPE = "openid"

# Scopes no registered list can exclude (see the module docstring).
ALWAYS_ALLOWED = frozenset({"offline_access"})


def split(scope: str | None) -> list[str]:
    if not scope:
        return []
    seen, out = set(), []
    for s in scope.split():
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def join(scopes) -> str:
    return " ".join(scopes)


def catalog(session) -> dict[str, str]:
    """Every scope this server knows, with its plain-words description."""
    out = dict(BUILTIN_SCOPES)
    for _, name, scopes in resource_store.scope_lists(session):
        for s in scopes or []:
            out.setdefault(s, f"Use {name} ({s})")
    return out


def resolve_requested(session, client, requested: str | None) -> list[str] | None:
    """The scopes to grant for an authorization request, or None when invalid."""
    scopes = split(requested)
    if not scopes:
        return list(client.scopes) if client.scopes else [DEFAULT_SCOPE]
    known = catalog(session)
    # A dynamically registered client's scope is self-asserted (RFC 7591 §5) and
    # only its default: step-up asks for more later (docs/requirements.md: B6, C-16).
    limited = client.scopes and getattr(client, "registered_via", RegisteredVia.ADMIN) != RegisteredVia.DCR
    allowed = (set(client.scopes) | ALWAYS_ALLOWED) if limited else set(known)
    if any(s not in known or s not in allowed for s in scopes):
        return None
    return scopes


def granted(client, scopes: list[str]) -> list[str]:
    """What is granted of the valid requested scopes. ``offline_access`` asks for a
    refresh token (OIDC Core §11); a client not registered for the refresh_token
    grant gets none, so the scope is dropped rather than shown on the consent
    page and put in tokens as a promise nobody keeps (§11 lets the server ignore
    it; RFC 6749 §3.3 lets it grant less, and the response names the scope)."""
    if "offline_access" in scopes and not client.check_grant_type("refresh_token"):
        return [s for s in scopes if s != "offline_access"]
    return scopes


def describe(session, scopes) -> list[tuple[str, str]]:
    known = catalog(session)
    return [(s, known.get(s, s)) for s in scopes]
