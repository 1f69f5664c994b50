"""What an operator allows a client beyond what it registered: the resources it
may ask for, and the resources whose access tokens it may introspect.

**Resources** (RFC 8707 audiences, and with them the scopes each one defines)
work like Hydra's per-client audience allow-list: ``clients.allowed_resources``
is set by an operator (``clients create/update --resource URL``), never by a
registration. The policy, with its defaults:

- ``client_credentials`` (RFC 6749 §4.4): the client acts as itself and nobody
  consents, so it gets only what it was allowed. A ``resource`` it names must be
  on its list (else ``invalid_target``, RFC 8707 §2), and a scope that a
  registered resource defines may be asked for only when the client is allowed
  that resource (else ``invalid_scope``, RFC 6749 §5.2). A request without
  ``resource`` gets the default audience (``AUTHZ_DEFAULT_AUDIENCE``, the
  issuer), which names no registered resource and is open to every client. So
  an admin client created without ``--resource`` gets tokens for the default
  audience only, with no resource scope.
- A client ID metadata document never gives ``client_credentials``
  (registration.cimd refuses a document that asks for it: a URL anyone can
  publish is no credential of a machine client). A dynamically registered
  client (RFC 7591) gets no ``client_credentials`` grant unless the
  registration policy allows it:
  ``AUTHZ_REGISTRATION_CLIENT_CREDENTIALS_RESOURCES`` lists the resources every
  such client may then ask for (empty, the default: the grant is trimmed at
  registration and refused at the token endpoint, also for clients registered
  while it was allowed). An operator may still list resources for one such
  client, which then allows it the grant for those.
- Authorization code and device grants: the member's consent gates resources.
  A client without a list is not limited; a client with one may name only its
  resources and ask only for their scopes (besides the scopes no resource
  defines: OIDC's and ``offline_access``).

**Introspection** (RFC 7662 §2.1, §4) is for resource servers: a client may
introspect only when an operator listed resources for it (``clients
create/update --introspect URL``: a registered resource, or the default
audience), and learns only about access tokens whose ``aud`` names one of them.
Every other caller, and every refresh token, gets ``{"active": false}``: a refresh
token concerns only the client it was issued to, never a resource server.
"""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidScopeError
from ..rules import resource_uris
from ..storage import resources as resource_store
from . import resources as resource_rules
from . import scopes as scope_rules

CLIENT_CREDENTIALS = "client_credentials"


def registration_resources(settings) -> frozenset[str]:
    """The resources the registration policy allows every dynamically
    registered client with client_credentials; empty: the grant is not offered."""
    return frozenset(c for c in (resource_uris.canonical_uri(v) for v in
                                 settings.registration_client_credentials_resources) if c)


def registration_allows_client_credentials(settings) -> bool:
    """May a registration (RFC 7591) keep the client_credentials grant?"""
    return bool(registration_resources(settings))


def client_credentials_resources(client, settings) -> frozenset[str]:
    """The resources ``client`` may get as audience with client_credentials."""
    allowed = frozenset(client.allowed_resources or ())
    if getattr(client, "is_dynamic", False):
        allowed |= registration_resources(settings)
    return allowed


def may_use_client_credentials(client, settings) -> bool:
    """Registered for the grant and, for a self-registered client, allowed it by
    the registration policy (or an operator) now, not only when it registered."""
    if not client.check_grant_type(CLIENT_CREDENTIALS):
        return False
    return not getattr(client, "is_dynamic", False) or bool(client_credentials_resources(client, settings))


def member_grant_resources(client) -> frozenset[str] | None:
    """The resources ``client`` may name in a member's authorization; None when
    it has no list (the member's consent alone decides)."""
    return frozenset(client.allowed_resources) if client.allowed_resources else None


def _resource_scopes(session) -> dict[str, set[str]]:
    """Each scope a registered resource defines → the resources defining it.
    OIDC's built-in scopes stay the member's, whatever a resource lists."""
    owners: dict[str, set[str]] = {}
    for identifier, _, scopes in resource_store.scope_lists(session):
        for s in scopes or []:
            if s not in scope_rules.BUILTIN_SCOPES:
                owners.setdefault(s, set()).add(identifier)
    return owners


def _outside(session, allowed: frozenset[str], scopes) -> list[str]:
    candidates = [s for s in scopes if s not in scope_rules.BUILTIN_SCOPES]
    if not candidates:
        return []  # no query on the hot path (a client_credentials request without scope)
    owners = _resource_scopes(session)
    return [s for s in candidates if s in owners and not owners[s] & allowed]


def check_scopes(session, allowed: frozenset[str], scopes) -> None:
    """RFC 6749 §5.2 ``invalid_scope`` for a scope of a resource the client is
    not allowed."""
    if _outside(session, allowed, scopes):
        raise InvalidScopeError("The requested scope belongs to a resource this client is not allowed")


def permitted_scopes(session, allowed: frozenset[str], scopes) -> list[str]:
    """``scopes`` without those of resources the client is not allowed (a
    default scope is narrowed, RFC 6749 §3.3, rather than refused)."""
    outside = set(_outside(session, allowed, scopes))
    return [s for s in scopes if s not in outside]


def check_audience(allowed: frozenset[str], audience, default_audience: str) -> None:
    """RFC 8707 §2 ``invalid_target`` for a named resource the client is not
    allowed; ``audience`` holds canonical, registered resources
    (``resources.validate``) and the default audience is open to all."""
    for aud in audience:
        if aud != default_audience and aud not in allowed:
            raise resource_rules.InvalidTargetError(
                f"The client is not allowed the resource {resource_uris.shown(aud)}")


# --- introspection (RFC 7662) ------------------------------------------------------


def may_introspect(client) -> bool:
    """A resource server an operator allowed to introspect (RFC 7662 §2.1)."""
    return not client.is_public and bool(client.introspection_resources)


def may_introspect_token(client, claims: dict) -> bool:
    """RFC 7662 §4: only about access tokens meant for the caller's resources."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or [])
    return bool(set(audiences) & set(client.introspection_resources))
