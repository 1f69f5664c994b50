"""Dynamic client registration (RFC 7591) at ``POST /oauth/register``, and client
configuration (RFC 7592) at ``GET/PUT/DELETE /oauth/register/<client_id>`` with
the registration access token as a Bearer token.

Policy (``AUTHZ_REGISTRATION``): ``open`` (default; MCP clients cannot obtain an
initial access token, docs/requirements.md: C-2), ``token`` (an initial access token,
RFC 7591 §3) or ``off`` (404, and the metadata documents leave the endpoint
out). The metadata rules live in ``oauth.registration.dcr``, storage in
``storage.clients``.

Identical public registrations from one source share one client, and only
registrations that create a client spend the source's rate-limit budget, so a
host that registers again on every connection from shared egress (Claude.ai;
docs/requirements.md: C-14, C-15) neither grows the table nor runs into 429. The first registrant
keeps its registration access token and may read the shared client, but no
registrant may update or delete it any more (403, RFC 7592 §2.2, §2.3).

Errors are ``errors.RegistrationError`` (RFC 7591 §3.2.2) and ``errors.ApiError``
(Bearer token errors); every answer here is no-store (``errors.cache_policy``).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import JSON, ApiError, RegistrationError, Throttled
from ..oauth import permissions, scopes as scope_rules
from ..oauth.registration import dcr
from ..security import digest
from ..sources import client_address, source_key
from ..storage import clients as client_store

bp = Blueprint("registration", __name__)


def _server():
    return current_app.extensions["authz"]


def _answer(body, status):
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _token_error(description, token_sent: bool) -> ApiError:
    # RFC 6750 §3.1: a request that carried no token gets a challenge without an error code.
    challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    return ApiError("invalid_token", description, 401, {"WWW-Authenticate": challenge})


def _source() -> str:
    """The caller's source (a keyed digest of its address, ``sources.source_key``):
    the deduplication scope and the rate-limit key."""
    return source_key(_server().settings.secret_key)


def _initial_token_ok(token: str) -> bool:
    # Compared by digest, every configured token every time (no early exit).
    presented = digest(token)
    ok = False
    for configured in _server().settings.registration_initial_tokens:
        ok |= hmac.compare_digest(presented, digest(configured))
    return ok


def _body() -> dict:
    if request.mimetype != "application/json":
        raise RegistrationError("invalid_client_metadata",
                                "Send the client metadata as application/json (RFC 7591 section 3.1)")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise RegistrationError("invalid_client_metadata", "The request body is larger than 64 KiB", 413) from None
    return dcr.parse_body(raw)


@bp.before_request
def _policy():
    if _server().settings.registration_policy == "off":
        raise ApiError("not_found", "Dynamic client registration is turned off on this server", 404)
    return None


@bp.route("/oauth/register", methods=["POST"])
def register():
    """RFC 7591 §3: register a client; 201 with the client information response."""
    # Hand-written, not Authlib's ClientRegistrationEndpoint: it always issues a
    # secret and refuses what RFC 7591 §3.2.1 lets us trim (docs/requirements.md: D-9).
    server = _server()
    settings = server.settings
    if settings.registration_policy == "token":
        token = _bearer()
        if not token or not _initial_token_ok(token):
            raise _token_error("A valid initial access token is required to register", token is not None)
    body = _body()
    session = server.db.session
    meta = dcr.read(body, scope_rules.catalog(session),
                    client_credentials=permissions.registration_allows_client_credentials(settings))
    source = _source()
    if meta.is_public:
        existing = client_store.find_duplicate(session, source, meta.fingerprint())
        if existing is not None and client_store.share_duplicate(session, existing, meta.fingerprint(),
                                                                 ip=client_address()):
            session.commit()
            return _answer(dcr.client_information(existing, settings.issuer), 201)
    wait = server.registration_limiter.spend(source)
    if wait:
        raise Throttled(wait, f"Too many registrations from this address; retry in {wait} s", kind=JSON)
    client, secret, token = client_store.register_dynamic(session, meta, source=source, ip=client_address())
    session.commit()
    return _answer(dcr.client_information(client, settings.issuer, client_secret=secret,
                                          registration_access_token=token), 201)


def _shared(action: str) -> RegistrationError:
    # RFC 7592 §2.2 / §2.3: a client not allowed to update (delete) itself gets 403.
    return RegistrationError(
        "invalid_client_metadata",
        f"This client is shared by identical registrations from the same source, so no registrant may {action} it; "
        "register a new client instead (RFC 7592 section 2)", 403)


def _managed_client(client_id: str):
    """RFC 7592 §2: the client named in the URL, if the Bearer token is its
    registration access token; an unknown client is answered like a bad token
    (ApiError)."""
    token = _bearer()
    client = None
    if len(client_id) <= 255 and "\x00" not in client_id:
        client = client_store.get(_server().db.session, client_id)
    if not client_store.verify_registration_token(client, token):
        raise _token_error("The registration access token is not valid for this client", token is not None)
    return client


@bp.route("/oauth/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def configure(client_id):
    server = _server()
    session = server.db.session
    issuer = server.settings.issuer
    client = _managed_client(client_id)
    if request.method == "HEAD":
        # Flask answers HEAD with the GET view; a body-less answer must not
        # rotate the token it could never deliver.
        return current_app.response_class(status=200)
    if request.method == "GET":
        # RFC 7592 §2.1.
        token = client_store.reissue_registration_token(client)
        session.commit()
        return _answer(dcr.client_information(client, issuer, registration_access_token=token), 200)
    if client.registration_shared:
        # Checked again in the guarded statements below (a registration sharing
        # the client may be committing right now).
        raise _shared("delete" if request.method == "DELETE" else "update")
    if request.method == "DELETE":
        # RFC 7592 §2.3: the client, its grants, refresh tokens, codes and consents
        # go (ON DELETE CASCADE); its access tokens stop introspecting as active.
        if not client_store.delete_dynamic(session, client, ip=client_address()):
            raise _shared("delete")
        session.commit()
        server.clients.invalidate(client_id)
        return current_app.response_class(status=204)
    # PUT, RFC 7592 §2.2: the body replaces the metadata; omitted members take their defaults.
    body = _body()
    if body.get("client_id") != client.client_id:
        raise RegistrationError("invalid_client_metadata",
                                "The body must carry the client's own client_id (RFC 7592 section 2.2)")
    sent = [m for m in dcr.SERVER_MEMBERS if m in body]
    if sent:
        raise RegistrationError("invalid_client_metadata",
                                f"'{sent[0]}' is set by the server; leave it out (RFC 7592 section 2.2)")
    if "client_secret" in body and not (isinstance(body["client_secret"], str)
                                        and client.verify_secret(body["client_secret"])):
        raise RegistrationError("invalid_client_metadata",
                                "client_secret does not match the issued secret (RFC 7592 section 2.2)")
    meta = dcr.read(body, scope_rules.catalog(session), current_auth_method=client.token_endpoint_auth_method,
                    client_credentials=permissions.registration_allows_client_credentials(server.settings))
    if not client_store.update_dynamic(session, client, meta, ip=client_address()):
        raise _shared("update")
    token = client_store.reissue_registration_token(client)
    session.commit()
    server.clients.invalidate(client.client_id)
    return _answer(dcr.client_information(client, issuer, registration_access_token=token), 200)
