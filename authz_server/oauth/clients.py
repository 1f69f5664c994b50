"""The client as Authlib sees it, and the in-process client cache.

Clients are cached per process for ``client_cache_ttl`` seconds (docs/architecture.md#caches-and-scale):
a disabled client or a rotated secret reaches every node within that time.
"""
from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ClientMixin

from ..models import Client, RegisteredVia
from ..security import digest
from ..storage import clients as client_store
from ..rules import redirect_uris
from .registration import cimd


@dataclass(frozen=True)
class OAuthClient(ClientMixin):
    client_id: str
    client_secret_hash: str | None
    name: str
    client_type: str
    redirect_uris: tuple
    post_logout_redirect_uris: tuple
    scopes: tuple
    grant_types: tuple
    token_endpoint_auth_method: str
    logo_uri: str | None
    client_uri: str | None
    organization_id: str | None
    id_token_signed_response_alg: str | None
    require_auth_time: bool
    registered_via: str = RegisteredVia.ADMIN
    application_type: str | None = None
    last_used_at: object = None
    # A CIMD client's public keys (private_key_jwt), from its document; not stored.
    jwks: object = None
    # Operator-set permissions (oauth.permissions), canonical resource URIs.
    allowed_resources: tuple = ()
    introspection_resources: tuple = ()

    @classmethod
    def from_model(cls, m: Client) -> "OAuthClient":
        return cls(
            client_id=m.client_id,
            client_secret_hash=m.client_secret_hash,
            name=m.name,
            client_type=m.client_type,
            redirect_uris=tuple(m.redirect_uris or ()),
            post_logout_redirect_uris=tuple(m.post_logout_redirect_uris or ()),
            scopes=tuple(m.scopes or ()),
            grant_types=tuple(m.grant_types or ()),
            token_endpoint_auth_method=m.token_endpoint_auth_method,
            logo_uri=m.logo_uri,
            client_uri=m.client_uri,
            organization_id=m.organization_id,
            id_token_signed_response_alg=m.id_token_signed_response_alg,
            require_auth_time=bool(m.require_auth_time),
            registered_via=RegisteredVia(m.registered_via or RegisteredVia.ADMIN),
            application_type=m.application_type,
            last_used_at=m.last_used_at,
            allowed_resources=tuple(m.allowed_resources or ()),
            introspection_resources=tuple(m.introspection_resources or ()),
        )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def is_first_party(self) -> bool:
        return self.client_type.startswith("first_party")

    @property
    def is_dynamic(self) -> bool:
        """Registered through RFC 7591 or a CIMD document: its metadata is
        self-asserted (RFC 7591 §5)."""
        return self.registered_via in (RegisteredVia.DCR, RegisteredVia.CIMD)

    @property
    def cimd_host(self) -> str | None:
        """The host serving a CIMD client's document (shown on consent, docs/requirements.md: B4-6)."""
        if self.registered_via != RegisteredVia.CIMD:
            return None
        from urllib.parse import urlsplit
        return urlsplit(self.client_id).netloc

    # --- Authlib ClientMixin ----------------------------------------------
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # OAuth 2.1 §2.3.2: only a client with exactly one URI may omit it.
        if len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope):
        # Scope policy lives in oauth.scopes; the grant validates it there.
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return redirect_uris.matches(list(self.redirect_uris), redirect_uri)

    def check_client_secret(self, client_secret):
        if not client_secret or not self.client_secret_hash:
            return False
        return hmac.compare_digest(digest(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        # RFC 6749 §3.2.1: a client authenticates with the method it registered.
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


class ClientCache:
    def __init__(self, db, ttl: int, cimd=None):
        self.db = db
        self.ttl = ttl
        # registration.cimd.CimdResolver, or None when CIMD is off.
        self.cimd = cimd
        self._items: dict[str, tuple[float, OAuthClient | None]] = {}
        self._lock = threading.Lock()

    def get(self, client_id) -> OAuthClient | None:
        # A NUL can be in no client id, and Postgres refuses it in a query (DataError).
        if not isinstance(client_id, str) or not client_id or len(client_id) > 255 or "\x00" in client_id:
            return None
        # docs/requirements.md B4-1: a URL-shaped client_id names a metadata document;
        # it is never looked up as a registered id (ours never start with http).
        if cimd.looks_like_cimd(client_id):
            return self.cimd.get(client_id) if self.cimd is not None else None
        now = time.monotonic()
        hit = self._items.get(client_id)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        model = self.db.session.get(Client, client_id)
        value = OAuthClient.from_model(model) if model is not None and model.is_active else None
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            # Unknown ids are not cached, so a probe cannot grow the cache.
            if value is not None:
                self._items[client_id] = (now, value)
        return value

    def is_enabled(self, client_id) -> bool:
        """Whether the client exists and is not disabled, as the token endpoint
        would find it (within the cache TTL). A metadata-document client is
        judged by its stored row: answering this never fetches a document."""
        if not isinstance(client_id, str) or not client_id or len(client_id) > 255 or "\x00" in client_id:
            return False
        if cimd.looks_like_cimd(client_id):
            return client_store.is_enabled(self.db.session, client_id)
        return self.get(client_id) is not None

    def invalidate(self, client_id: str | None = None):
        with self._lock:
            if client_id is None:
                self._items.clear()
            else:
                self._items.pop(client_id, None)
