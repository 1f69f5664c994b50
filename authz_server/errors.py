"""Typed errors and the one place that maps them to JSON or the HTML error page."""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class PageError(Exception):
    """An error shown to a person on the HTML error page (never a redirect)."""

    status = 400

    def __init__(self, title: str, message: str, *, hint: str | None = None, status: int | None = None,
                 error: str = "invalid_request", headers: dict | None = None):
        super().__init__(message)
        self.title = title
        self.message = message
        self.hint = hint
        self.error = error
        self.headers = dict(headers or {})  # e.g. Retry-After on a 429 (RFC 6585 §4)
        if status:
            self.status = status


def wants_json() -> bool:
    path = request.path
    if path.startswith(("/oauth/authorize", "/oauth/logout", "/login", "/logout", "/org/")):
        return False
    if path.startswith(("/oauth/", "/.well-known/", "/api/")):
        return True
    return request.accept_mimetypes.best == "application/json"


def error_page(title, message, status=400, hint=None):
    return render_template("error.html", title=title, message=message, hint=hint), status


def register(app):
    @app.errorhandler(PageError)
    def _page(e: PageError):
        return (*error_page(e.title, e.message, e.status, e.hint), e.headers)

    from .oauth.limits import Throttled

    @app.errorhandler(Throttled)
    def _throttled(e: Throttled):
        # RFC 6585 §4: 429 with Retry-After; the JSON error as the other limits
        # answer it (oauth.limits), or a page for the person at the browser.
        if wants_json():
            resp = jsonify(error="temporarily_unavailable", error_description=e.description)
        else:
            resp = app.make_response(error_page(
                "Too many requests", "There have been too many requests from your network.",
                hint=f"Wait {e.retry_after} seconds, then try again."))
        resp.status_code = 429
        resp.headers["Retry-After"] = str(e.retry_after)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    from .identity.gateway import IdentityError

    @app.errorhandler(IdentityError)
    def _identity(e: IdentityError):
        # Stytch failing outside the login pages, e.g. while a member session is
        # renewed on /oauth/authorize: the login pages' own page (503 when Stytch is
        # unreachable), never the generic 500 (docs/requirements.md: DESIGN-5).
        if wants_json():
            resp = jsonify(error="temporarily_unavailable" if e.status >= 500 else "invalid_request",
                           error_description=e.message)
        else:
            resp = app.make_response(error_page(e.title, e.message, e.status, e.hint))
        resp.status_code = e.status
        if e.status == 503:
            resp.headers["Retry-After"] = "5"
        return resp

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if wants_json():
            error = {405: "invalid_request", 404: "not_found", 413: "invalid_request"}.get(e.code, "invalid_request")
            resp = jsonify(error=error, error_description=e.description if e.code != 404 else "Not found")
            resp.status_code = e.code
            if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
                resp.headers["Allow"] = ", ".join(e.valid_methods)
            return resp
        return error_page(e.name, e.description, e.code)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db(e):
        # The database unreachable → 503 with Retry-After (RFC 9110 §10.2.3; docs/requirements.md: DESIGN-5); the pool
        # pre-ping reconnects once it is back.
        log.error("database error: %s", e.__class__.__name__)
        app.extensions["authz"].db.session.rollback()
        if wants_json():
            resp = jsonify(error="temporarily_unavailable", error_description="The database is unavailable; retry shortly")
        else:
            resp = error_page("Temporarily unavailable", "We cannot reach our database right now. Please try again in a moment.", 503)[0]
            resp = app.make_response((resp, 503))
        resp.status_code = 503
        resp.headers["Retry-After"] = "5"
        return resp

    @app.errorhandler(DataError)
    def _bad_value(e):
        # A value the database refuses to store or compare (a NUL byte in a Postgres
        # text parameter, an over-long string) is bad input, not an outage: a 400,
        # never the 503 "retry shortly" below (docs/requirements.md: DESIGN-5, clear errors).
        log.warning("database refused a value: %s", e.orig.__class__.__name__ if e.orig else "DataError")
        app.extensions["authz"].db.session.rollback()
        if wants_json():
            resp = jsonify(error="invalid_request", error_description="A parameter holds a value that is not allowed")
            resp.status_code = 400
            return resp
        return error_page("This request is not valid", "A parameter holds a value that is not allowed.", 400)

    @app.errorhandler(Exception)
    def _unexpected(e):
        log.exception("unhandled error on %s", request.path)
        if wants_json():
            resp = jsonify(error="server_error", error_description="An unexpected error occurred")
            resp.status_code = 500
            return resp
        return error_page("Something went wrong", "An unexpected error occurred. Please try again.", 500)
