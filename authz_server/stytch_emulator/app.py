"""The emulator's Flask app factory.

Routes: ``api*.py`` (Stytch API, Basic auth), ``pages.py`` (public OAuth start
pages), ``helpers.py`` (``/emulator/*``). Everything that goes wrong answers with
Stytch's JSON error object, so the SDK raises ``StytchError`` with a real
``error_type`` instead of choking on an HTML error page.
"""
from __future__ import annotations

import hmac
import logging
from typing import Callable

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from . import api, api_email, api_sessions, errors, helpers, pages
from .context import EXTENSION, Emulator, request_id
from .guard import DEFAULT_PROJECT_ID, DEFAULT_PUBLIC_TOKEN, DEFAULT_SECRET, refuse_live
from .store import Store

log = logging.getLogger(__name__)

# Browsers open the start pages, and PyJWKClient fetches the JWKS with a bare
# urllib GET: neither can send the project secret.
_PUBLIC_PREFIXES = ("/v1/b2b/public/", "/v1/b2b/sessions/jwks/")


def _error_body(status: int, error_type: str, message: str):
    response = jsonify({
        "status_code": status,
        "request_id": request_id(),
        "error_type": error_type,
        "error_message": message,
        "error_url": f"https://stytch.com/docs/api/errors/{status}#{error_type}",
    })
    response.status_code = status
    return response


def create_emulator(project_id: str = DEFAULT_PROJECT_ID, secret: str = DEFAULT_SECRET,
                    public_token: str = DEFAULT_PUBLIC_TOKEN, seed: bool = True,
                    clock: Callable[[], float] | None = None,
                    default_redirect_url: str | None = None) -> Flask:
    """A WSGI app speaking the Stytch B2B API subset the gateway uses.

    ``clock`` returns Unix seconds; by default ``time.time`` is looked up on
    every call, so ``time_machine`` moves the emulator's clock too.
    """
    refuse_live(project_id, secret=secret)
    app = Flask(__name__)
    app.json.sort_keys = False
    emulator = Emulator(project_id, secret, public_token, Store(clock=clock, seed=seed),
                        default_redirect_url=default_redirect_url)
    app.extensions[EXTENSION] = emulator

    @app.before_request
    def require_basic_auth():
        if not request.path.startswith("/v1/") or request.path.startswith(_PUBLIC_PREFIXES):
            return None
        auth = request.authorization
        if (auth is None or auth.type != "basic"
                or not hmac.compare_digest((auth.username or "").encode(), project_id.encode())
                or not hmac.compare_digest((auth.password or "").encode(), secret.encode())):
            raise errors.unauthorized()
        return None

    @app.errorhandler(errors.ApiError)
    def api_error(exc: errors.ApiError):
        return _error_body(exc.status, exc.error_type, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kind = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.code, "bad_request")
        return _error_body(exc.code or 500, kind, exc.description or exc.name)

    @app.errorhandler(Exception)
    def crash(exc: Exception):
        log.exception("stytch emulator: unhandled error on %s %s", request.method, request.path)
        return _error_body(500, "internal_server_error", "The emulator hit an unexpected error.")

    for module in (api, api_sessions, api_email, pages, helpers):
        app.register_blueprint(module.bp)
    return app
