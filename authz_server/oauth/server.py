"""The Authlib authorization server, wired to our storage, keys and policies."""
from __future__ import annotations

import base64
import binascii
import os

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request, UnsupportedResponseTypeError
from authlib.oauth2.rfc9207 import IssuerParameter
from cryptography.fernet import Fernet
from flask import request as flask_request

from ..errors import NO_STORE
from ..sources import source_key
from .clients import ClientCache, OAuthClient
from .endpoints.device_authorization import DeviceAuthorizationEndpoint
from .endpoints.introspection import IntrospectionEndpoint
from .endpoints.revocation import RevocationEndpoint
from .grants.authorization_code import AuthorizationCodeGrant
from .grants.client_credentials import ClientCredentialsGrant
from .grants.device_code import DeviceCodeGrant
from .grants.refresh_token import RefreshTokenGrant
from . import limits as limit_rules
from .assertion_replay import ReplayMemory
from .keys import KeyStore
from .registration.cimd import CimdPrivateKeyJWT, CimdResolver
from .pkce import RequiredS256CodeChallenge
from .requests import ParamsRequest, split_params
from .tokens import TokenMinter


class _Issuer(IssuerParameter):
    """RFC 9207: ``iss`` on every authorization response Authlib builds (our own
    error redirects add it in web.authorize)."""

    def __init__(self, issuer: str):
        self.issuer = issuer

    def get_issuer(self):
        return self.issuer


class AuthzServer(AuthorizationServer):
    def __init__(self, app, settings, db):
        super().__init__()
        # The config check refuses http issuers outside loopback in production; behind a
        # TLS-terminating proxy the WSGI request itself is http, so Authlib's own
        # transport check would refuse every request there. Authlib reads only this
        # process-wide variable, so it is set when a server is built, not on import.
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self.settings = settings
        self.db = db
        # Rate limits (oauth.limits): in this process, or in Redis when REDIS_URL is set.
        self.limits = limit_rules.Limits.from_settings(settings)
        resolver = CimdResolver(
            db, make_client=OAuthClient.from_model, allow_loopback=settings.cimd_allow_loopback,
            timeout=settings.cimd_fetch_timeout,
            first_fetches=self.limits.cimd_fetch, source=lambda: source_key(settings.secret_key),
        ) if settings.cimd_enabled else None
        self.clients = ClientCache(db, settings.client_cache_ttl, cimd=resolver)
        retired = max(settings.access_token_ttl, settings.id_token_ttl) + 24 * 3600
        self.keys = KeyStore(db, settings.key_encryption_key, retired_publish_seconds=retired)
        # The key-encryption key, for the refresh children kept during the grace
        # window (storage.grants), as for the private signing keys.
        self.kek = Fernet(settings.key_encryption_key.encode())
        self.minter = TokenMinter(settings, self.keys)
        # RFC 7591 registrations that create a client, per source (web.registration).
        self.registration_limiter = self.limits.registration
        # Set by create_app when Stytch is configured (identity.membership).
        self.membership = None
        self.init_app(app, query_client=self.clients.get, save_token=lambda token, request: None)
        self.register_grant(AuthorizationCodeGrant, [RequiredS256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(DeviceCodeGrant)
        self.register_endpoint(DeviceAuthorizationEndpoint)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)
        self.register_extension(_Issuer(settings.issuer))
        # docs/requirements.md A2-11: private_key_jwt (RFC 7523) for CIMD clients with keys
        # (inline jwks, or jwks_uri fetched and cached by the resolver).
        # Used jti values are remembered in Redis or the database (oauth.assertion_replay).
        self.register_client_auth_method(CimdPrivateKeyJWT.CLIENT_AUTH_METHOD, CimdPrivateKeyJWT(
            settings.issuer, resolver=resolver, replay=ReplayMemory(db, self.limits.store)))

    def create_oauth2_request(self, request):
        if isinstance(request, OAuth2Request):
            return request
        values = flask_request.form if flask_request.method == "POST" else flask_request.args
        single, lists, _ = split_params(values)
        return ParamsRequest(flask_request.method, flask_request.url, flask_request.headers, single, lists)

    def get_authorization_grant(self, request):
        try:
            return super().get_authorization_grant(request)
        except ValueError:
            # Authlib 1.9 echoes the raw response_type into error_description, which
            # RFC 6749 §4.1.2.1 limits to printable ASCII; for anything else it raises
            # ValueError (a 500). Same answer without the echo, redirected (as Authlib
            # does) only to a validated redirect URI.
            payload, redirect_uri = request.payload, None
            client = self.query_client(payload.client_id) if payload.client_id else None
            if client is not None:
                if payload.redirect_uri:
                    redirect_uri = payload.redirect_uri if client.check_redirect_uri(payload.redirect_uri) else None
                else:
                    redirect_uri = client.get_default_redirect_uri()
            raise UnsupportedResponseTypeError("(unprintable)", "The response_type is not supported.",
                                               redirect_uri=redirect_uri) from None

    def create_token_response(self, request=None):
        request = self.create_oauth2_request(request)
        response = super().create_token_response(request)
        # oauth.limits: only issued tokens spend the client's budget (docs/requirements.md: C-15).
        key = getattr(request, "rate_limit_key", None)
        if key is not None and response.status_code == 200:
            self.limits.token.spend(key)
        return response

    def authenticate_client(self, request, methods, endpoint="token"):
        source = source_key(self.settings.secret_key)
        failure_key = limit_rules.auth_failure_key(source, limit_rules.claimed_client_id(request))
        wait = self.limits.client_auth_failure.check(failure_key)
        if wait:
            raise limit_rules.RateLimited(wait, f"Too many failed client authentications; retry in {wait} s")
        try:
            client = self._authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            self.limits.client_auth_failure.spend(failure_key)
            raise
        if endpoint == "token":
            key = limit_rules.token_key(client, request.payload.grant_type, source)
            wait = self.limits.token.check(key)
            if wait:
                raise limit_rules.RateLimited(wait, f"Too many token requests for this client; retry in {wait} s")
            request.rate_limit_key = key
        elif endpoint == "introspection":
            wait = self.limits.introspection.spend(limit_rules.introspection_key(client))
            if wait:
                raise limit_rules.RateLimited(wait, f"Too many introspection requests; retry in {wait} s")
        return client

    def _authenticate_client(self, request, methods, endpoint):
        header = request.headers.get("Authorization") or ""
        parts = header.split(None, 1)
        basic = bool(parts) and parts[0].lower() == "basic"
        # Authlib's Basic parser raises (a 500) on a header whose only space is
        # trailing ("Basic ") and on credentials that are not UTF-8 once decoded.
        malformed = " " in header and len(parts) < 2
        if basic and len(parts) == 2:
            try:
                base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                malformed = True
        if malformed:
            raise InvalidClientError(status_code=401, description="Malformed Authorization header")
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as e:
            # RFC 6749 §5.2: a client that tried the Authorization header gets 401 and
            # a challenge, also when Authlib failed it on another method (400).
            if basic:
                e.status_code = 401
            raise
        # RFC 6749 §3.2.1 (docs/requirements.md: A2-9): a body client_id next to Basic must name the same client.
        body_id = request.form.get("client_id")
        if request.auth_method == "client_secret_basic" and body_id and body_id != client.client_id:
            raise InvalidClientError(status_code=401, description="client_id in the body differs from the Basic credentials")
        return client

    def member_active(self, organization_id: str | None, subject: str) -> bool:
        """False when the member behind a grant left or was removed from the
        organization in Stytch (OAuth 2.1 §4.3.1; docs/requirements.md: A7-45). Grants without an
        organization (client credentials) have no member to check."""
        if self.membership is None or not organization_id:
            return True
        return self.membership.is_active(organization_id, subject)

    def handle_response(self, status_code, payload, headers):
        headers = list(headers or [])
        names = {h[0].lower() for h in headers}
        # Every response Authlib builds (token, revocation, introspection, device
        # authorization, its authorization redirects): RFC 6749 §5.1.
        headers += [(k, v) for k, v in NO_STORE.items() if k.lower() not in names]
        return super().handle_response(status_code, payload, headers)
