"""The back-channel endpoints: token, revocation, introspection, userinfo."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..errors import ApiError
from ..oauth import claims as claim_rules, scopes as scope_rules, token_status
from ..oauth.requests import split_params, shown
from ..storage import grants as grant_store

bp = Blueprint("endpoints", __name__)


def _server():
    return current_app.extensions["authz"]


def _check_form():
    """RFC 6749 §3.2: form-encoded POST bodies only; no parameter twice (§3.1).
    An empty body needs no type: a client authenticating with Basic may have
    nothing else to send (RFC 8628 §3.1 with no scope)."""
    if request.mimetype != "application/x-www-form-urlencoded" and request.content_length:
        raise ApiError("invalid_request", "Send the parameters as application/x-www-form-urlencoded")
    _, _, dups = split_params(request.form)
    if dups:
        raise ApiError("invalid_request", f"Parameter sent more than once: {shown(dups[0])}")


@bp.route("/oauth/token", methods=["POST"])
def token():
    _check_form()
    if not request.form.get("grant_type"):
        # RFC 6749 §5.2: a missing required parameter is invalid_request (Authlib
        # would answer unsupported_grant_type).
        raise ApiError("invalid_request", "Missing 'grant_type' in request")
    server = _server()
    response = server.create_token_response()
    if response.status_code == 200:
        server.db.session.commit()
    else:
        server.db.session.rollback()
    return response


def _form_endpoint(name: str):
    """An Authlib endpoint behind the form checks; its writes stand only on a 200."""
    _check_form()
    server = _server()
    response = server.create_endpoint_response(name)
    server.db.session.commit() if response.status_code == 200 else server.db.session.rollback()
    return response


@bp.route("/oauth/revoke", methods=["POST"])
def revoke():
    return _form_endpoint("revocation")


@bp.route("/oauth/device_authorization", methods=["POST"])
def device_authorization():
    """RFC 8628 §3.1 (the verification page is web.device)."""
    return _form_endpoint("device_authorization")


@bp.route("/oauth/introspect", methods=["POST"])
def introspect():
    _check_form()
    return _server().create_endpoint_response("introspection")


def _bearer_error(error, description, status) -> ApiError:
    # RFC 6750 §3: the challenge names the error.
    header = f'Bearer error="{error}", error_description="{description}"'
    return ApiError(error, description, status, {"WWW-Authenticate": header})


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo():
    """OIDC Core §5.3. Written by hand: it reads our JWT access tokens, and only
    from the Authorization header (RFC 6750 §2.3 query tokens are refused,
    OAuth 2.1 §5.1; a form-body token is refused too, by our policy). A token
    is accepted exactly when introspection would call it active
    (oauth.token_status)."""
    server = _server()
    if "access_token" in request.args or "access_token" in request.form:
        raise _bearer_error("invalid_request", "Send the access token in the Authorization header", 400)
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError("invalid_token", "An access token is required", 401, {"WWW-Authenticate": 'Bearer realm="userinfo"'})
    # The same decision as introspection (a member removed in Stytch included).
    claims = token_status.active_access_token(server, value.strip())
    if claims is None:
        raise _bearer_error("invalid_token", "The access token is invalid, expired or revoked", 401)
    session = server.db.session
    scopes = scope_rules.split(claims.get("scope"))
    if "openid" not in scopes or not claims.get("gid"):
        raise _bearer_error("insufficient_scope", "The access token lacks the openid scope", 403)
    grant = grant_store.get(session, claims["gid"])
    # Cache-Control: no-store by errors.cache_policy.
    return jsonify(claim_rules.userinfo(claims["sub"], dict(grant.claims or {}), scopes))
