"""Discovery: RFC 8414 and OIDC Discovery metadata, and the JWKS.

Both documents are built from one function, so they agree member for member
(OIDC Discovery §4.3) and carry the configured issuer byte for byte. Only what
is really supported is listed, and no member is ever null (docs/requirements.md: A1-6).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify

from ..errors import AppError
from ..oauth import scopes as scope_rules
from ..oauth.claims import ORGANIZATION_CLAIMS, SCOPE_CLAIMS
from ..oauth.keys import JWKS_MAX_AGE

bp = Blueprint("wellknown", __name__)


def _server():
    return current_app.extensions["authz"]


def metadata() -> dict:
    s = _server().settings
    iss = s.issuer
    scopes = sorted(scope_rules.catalog(_server().db.session))
    claims = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", *ORGANIZATION_CLAIMS]
    for names in SCOPE_CLAIMS.values():
        claims.extend(names)
    doc = {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/oauth/authorize",
        "token_endpoint": f"{iss}/oauth/token",
        "jwks_uri": f"{iss}/.well-known/jwks.json",
        "userinfo_endpoint": f"{iss}/oauth/userinfo",
        "revocation_endpoint": f"{iss}/oauth/revoke",
        "introspection_endpoint": f"{iss}/oauth/introspect",
        "end_session_endpoint": f"{iss}/oauth/logout",
        # RFC 8628 §4.
        "device_authorization_endpoint": f"{iss}/oauth/device_authorization",
        # RFC 8414 §2 / RFC 7591 §3: only while registration is on (docs/requirements.md C-2: never
        # advertise an endpoint that answers 404).
        "registration_endpoint": f"{iss}/oauth/register" if s.registration_policy != "off" else None,
        # docs/requirements.md B4-9 / MCP 2026-07-28: URL client_ids are fetched
        # as client ID metadata documents.
        "client_id_metadata_document_supported": True if s.cimd_enabled else None,
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
        # private_key_jwt (RFC 7523) only for CIMD clients that publish keys (docs/requirements.md: A2-11).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none",
                                                  "private_key_jwt"],
        # RFC 8414 §2: required when private_key_jwt is listed (the algorithms joserfc accepts by default).
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none",
                                                       "private_key_jwt"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "claims_supported": claims,
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }
    return {k: v for k, v in doc.items() if v is not None}


def _path_suffix() -> str:
    path = urlsplit(_server().settings.issuer).path
    return path if path not in ("", "/") else ""


def _json(body, max_age=300):
    resp = jsonify(body)
    resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    return resp


@bp.route("/.well-known/oauth-authorization-server")
@bp.route("/.well-known/oauth-authorization-server/<path:suffix>")
@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/openid-configuration/<path:suffix>")
def discovery(suffix=""):
    # RFC 8414 §3.1: for an issuer with a path the document lives at the
    # path-inserted URL; anything else is not ours.
    if ("/" + suffix if suffix else "") != _path_suffix():
        raise AppError("No such metadata document", error="not_found", status=404)
    return _json(metadata())


@bp.route("/.well-known/jwks.json")
def jwks():
    # The key store's publish-before-use window assumes this max-age.
    return _json(_server().keys.jwks(), max_age=JWKS_MAX_AGE)
