"""Typed errors and the one place that maps them to a response.

Every error the server answers is an ``AppError`` (or is converted into one by
``to_app_error``: Authlib's ``OAuth2Error`` raised in our views, werkzeug's HTTP
errors, database errors, the identity gateway's errors, anything unexpected),
and ``render`` turns it into the response:

- ``PageError``: the HTML error page for a person (never a redirect);
- ``ApiError``: the OAuth JSON error ``{"error", "error_description"}``
  (RFC 6749 §5.2, RFC 6750 §3); ``RegistrationError`` is its RFC 7591 §3.2.2 kind;
- ``ClientRedirect``: an error that goes back to the client's validated redirect
  URI (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6), a redirect, not a page;
- ``Throttled``: 429 with Retry-After (RFC 6585 §4);
- the rest (``AppError`` itself): JSON or the page by the kind of endpoint
  (``endpoint_kind``).

``Cache-Control: no-store`` is decided in one place, ``cache_policy``, which
the after-request hook applies to every response (Authlib adds it to the
responses it builds itself, ``oauth.server.AuthzServer.handle_response``).
"""
from __future__ import annotations

import logging

from flask import current_app, g, jsonify, redirect, render_template, request, session
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PAGE, JSON, REDIRECT = "page", "json", "redirect"

# RFC 6749 §5.1: "Cache-Control: no-store" and "Pragma: no-cache" on anything
# that carries tokens or credentials.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class AppError(Exception):
    """An error the server answers: HTTP status, OAuth ``error`` code and
    description (the JSON body), title/hint (the page), extra headers.
    ``kind`` is PAGE, JSON or REDIRECT; None answers by the endpoint's kind."""

    status = 400
    error = "invalid_request"
    title = "This request is not valid"
    kind: str | None = None
    # Cache headers the answer carries wherever it is raised (set by cache_policy).
    cache_headers: dict = {}

    def __init__(self, description: str | None = None, *, error: str | None = None, status: int | None = None,
                 title: str | None = None, hint: str | None = None, headers: dict | None = None):
        super().__init__(description)
        self.description = description
        self.hint = hint
        self.headers = dict(headers or {})
        if error:
            self.error = error
        if status:
            self.status = status
        if title:
            self.title = title

    @property
    def message(self) -> str | None:
        return self.description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class PageError(AppError):
    """An error shown to a person on the HTML error page (never a redirect)."""

    kind = PAGE

    def __init__(self, title: str, message: str, *, hint: str | None = None, status: int | None = None,
                 error: str = "invalid_request", headers: dict | None = None):
        super().__init__(message, error=error, status=status, title=title, hint=hint, headers=headers)


class ApiError(AppError):
    """The JSON error of an API endpoint (RFC 6749 §5.2; with a
    ``WWW-Authenticate`` header for Bearer errors, RFC 6750 §3)."""

    kind = JSON
    cache_headers = NO_STORE

    def __init__(self, error: str, description: str, status: int = 400, headers: dict | None = None):
        super().__init__(description, error=error, status=status, headers=headers)


class RegistrationError(ApiError):
    """An RFC 7591 §3.2.2 error: ``invalid_redirect_uri`` or ``invalid_client_metadata``
    (or an RFC 7592 §2 refusal); nothing of the request is stored."""


class ClientRedirect(AppError):
    """An error that goes back to the validated redirect URI with ``state`` and
    ``iss`` (RFC 6749 §4.1.2.1, RFC 9207, OIDC Core §3.1.2.6). Raised before the
    redirect URI is known (``oauth.prompts``), then ``at`` it by the view."""

    kind = REDIRECT

    def __init__(self, error: str, description: str | None = None, *, redirect_uri: str | None = None,
                 state: str | None = None):
        super().__init__(description, error=error)
        self.redirect_uri = redirect_uri
        self.state = state

    def at(self, redirect_uri: str, state: str | None) -> "ClientRedirect":
        self.redirect_uri, self.state = redirect_uri, state
        return self


class Throttled(AppError):
    """429 with Retry-After (RFC 6585 §4), never cached. The JSON error code is
    ``temporarily_unavailable`` (see ``oauth.limits``); a person gets the page.
    Raised from a limit that can trip wherever a client is looked up (the CIMD
    first-fetch limit): not an OAuth2Error, so no Authlib endpoint turns it into
    its own error."""

    status = 429
    error = "temporarily_unavailable"
    title = "Too many requests"
    cache_headers = {"Cache-Control": "no-store"}

    def __init__(self, retry_after: int, description: str, *, title: str | None = None,
                 message: str = "There have been too many requests from your network.",
                 hint: str | None = None, kind: str | None = None):
        super().__init__(description, title=title, hint=hint or f"Wait {retry_after} seconds, then try again.",
                         headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
        self.page_message = message
        if kind:
            self.kind = kind

    @property
    def message(self) -> str:
        return self.page_message


def endpoint_kind() -> str:
    """JSON or PAGE for an error that does not say: by the endpoint the path
    names; a path that is no endpoint of ours answers what the caller accepts."""
    path = request.path
    if path.startswith(("/oauth/authorize", "/oauth/logout", "/login", "/logout", "/org/")):
        return PAGE
    if path.startswith(("/oauth/", "/.well-known/", "/api/")):
        return JSON
    return JSON if request.accept_mimetypes.best == "application/json" else PAGE


# Copy for an Authlib error raised in a page view that cannot go back to a client.
_OAUTH2_PAGES = {
    "/oauth/authorize": ("This sign-in link is not valid", "The application sent an invalid authorization request.",
                         "Go back to the application and try again. If it keeps happening, tell its developer "
                         "(error: {error})."),
    "/oauth/logout": ("This sign-out link is not valid", "The sign-out request is invalid.",
                      "You are still signed in. Close this window or sign out from the application."),
}


def from_oauth2(e, state: str | None = None) -> AppError:
    """An Authlib ``OAuth2Error`` raised in one of our views. At the authorization
    endpoint it goes back to a validated redirect URI, else (RFC 6749 §3.1.2.4 /
    §4.1.2.1: never to an unvalidated one) to the page; at an API endpoint it is
    Authlib's own JSON error."""
    path = request.path
    if e.redirect_uri and path.startswith("/oauth/authorize"):
        return ClientRedirect(e.error, e.description, redirect_uri=e.redirect_uri, state=state)
    if endpoint_kind() == JSON:
        headers = {k: v for k, v in e.get_headers() if k.lower() not in ("content-type", "cache-control", "pragma")}
        return ApiError(e.error, e.get_error_description(), e.status_code, headers)
    title, default, hint = next((copy for prefix, copy in _OAUTH2_PAGES.items() if path.startswith(prefix)),
                                ("This request is not valid", "The request is invalid.", None))
    return PageError(title, e.get_error_description() or default, hint=hint and hint.format(error=e.error))


def to_app_error(e: Exception) -> AppError:
    """Whatever was raised, as the AppError that answers it."""
    from authlib.oauth2.rfc6749 import OAuth2Error

    from .identity.gateway import IdentityError

    if isinstance(e, AppError):
        return e
    if isinstance(e, OAuth2Error):
        return from_oauth2(e, getattr(e, "state", None))
    if isinstance(e, IdentityError):
        # Stytch failing outside the login pages, e.g. while a member session is
        # renewed on /oauth/authorize: the login pages' own page (503 when Stytch
        # is unreachable), never the generic 500.
        return AppError(e.message, error="temporarily_unavailable" if e.status >= 500 else "invalid_request",
                        status=e.status, title=e.title, hint=e.hint,
                        headers={"Retry-After": "5"} if e.status == 503 else None)
    if isinstance(e, HTTPException):
        if endpoint_kind() == PAGE:
            return AppError(e.description, status=e.code, title=e.name)
        headers = {}
        if e.code == 405 and getattr(e, "valid_methods", None):
            headers["Allow"] = ", ".join(e.valid_methods)
        return AppError("Not found" if e.code == 404 else e.description,
                        error="not_found" if e.code == 404 else "invalid_request", status=e.code, headers=headers)
    if isinstance(e, DataError):
        # A value the database refuses to store or compare (a NUL byte in a Postgres
        # text parameter, an over-long string) is bad input, not an outage: a 400,
        # never the 503 "retry shortly" below.
        log.warning("database refused a value: %s", e.orig.__class__.__name__ if e.orig else "DataError")
        return AppError("A parameter holds a value that is not allowed" if endpoint_kind() == JSON
                        else "A parameter holds a value that is not allowed.")
    if isinstance(e, (OperationalError, DBAPIError)):
        # The database unreachable → 503 with Retry-After (RFC 9110 §10.2.3); the
        # pool pre-ping reconnects once it is back.
        log.error("database error: %s", e.__class__.__name__)
        return AppError("The database is unavailable; retry shortly" if endpoint_kind() == JSON
                        else "We cannot reach our database right now. Please try again in a moment.",
                        error="temporarily_unavailable", status=503, title="Temporarily unavailable",
                        headers={"Retry-After": "5"})
    log.exception("unhandled error on %s", request.path)
    return AppError("An unexpected error occurred" if endpoint_kind() == JSON
                    else "An unexpected error occurred. Please try again.",
                    error="server_error", status=500, title="Something went wrong")


def render(e: AppError):
    """The one response for an error: a redirect to the client, the JSON error
    or the HTML error page, with the error's status and headers."""
    kind = e.kind or endpoint_kind()
    if kind == REDIRECT:
        resp = redirect_to_client(e.redirect_uri, error_params(e.error, e.description), e.state)
    elif kind == JSON:
        resp = jsonify(e.body())
        resp.status_code = e.status
    else:
        resp = current_app.make_response((render_template("error.html", title=e.title, message=e.message,
                                                          hint=e.hint), e.status))
    for k, v in e.headers.items():
        resp.headers[k] = v
    if e.cache_headers:
        g.error_cache_headers = e.cache_headers
    return resp


def error_params(error: str, description: str | None) -> list[tuple[str, str]]:
    params = [("error", error)]
    if description:
        params.append(("error_description", description))
    return params


def redirect_to_client(redirect_uri: str, params: list[tuple[str, str]], state: str | None):
    """A response at the client's redirect URI, with ``state`` and ``iss`` (RFC 9207)."""
    from authlib.common.urls import add_params_to_uri

    if state:
        params.append(("state", state))
    params.append(("iss", current_app.extensions["authz"].settings.issuer))
    # RFC 9700 §4.12 / OAuth 2.1 §7.5.4: 303 after a POST, never 307.
    return redirect(add_params_to_uri(redirect_uri, params), 303 if request.method == "POST" else 302)


# The views whose answers carry secrets, tokens or claims, with whether Pragma:
# no-cache goes along: registration (client secrets and registration access
# tokens, RFC 7591 §3.2.1, RFC 7592 §3) and userinfo (claims about a member,
# OIDC Core §5.3). Errors carry their own (``AppError.cache_headers``).
NO_STORE_VIEWS = {"registration.register": True, "registration.configure": True, "endpoints.userinfo": False}
# Every answer on these paths, also the 405/413 of the generic mapping: the token
# endpoint (RFC 6749 §5.1 / OAuth 2.1 §3.2.3) and device authorization, which
# carries codes too (RFC 8628 §3.2).
NO_STORE_PATHS = ("/oauth/token", "/oauth/device_authorization")
# The pages of one browser's authorization and sign-in.
NO_STORE_PAGES = ("/oauth/authorize", "/login")


def cache_policy(resp):
    """Cache-Control for every response, applied by the after-request hook: the
    one place that sets no-store (Authlib's own endpoint responses carry it
    already, ``oauth.server.AuthzServer.handle_response``)."""
    path = request.path
    for k, v in g.get("error_cache_headers", {}).items():
        resp.headers[k] = v
    pragma = NO_STORE_VIEWS.get(request.endpoint)
    if pragma is not None and request.method != "OPTIONS":
        resp.headers["Cache-Control"] = "no-store"
        if pragma:
            resp.headers["Pragma"] = "no-cache"
    if path.startswith(NO_STORE_PAGES):
        resp.headers["Cache-Control"] = "no-store"
    elif "Cache-Control" not in resp.headers and (session.accessed or session.modified):
        # A response that read or wrote the session cookie belongs to one
        # browser (its CSRF token, its login in progress, its Set-Cookie): a
        # shared cache must never hand it to another (RFC 9111 §5.2.2.5).
        resp.headers["Cache-Control"] = "no-store"
    if path in NO_STORE_PATHS:
        resp.headers["Cache-Control"] = "no-store"
        resp.headers.setdefault("Pragma", "no-cache")
    return resp


def register(app):
    @app.errorhandler(Exception)
    def _any(e):
        err = to_app_error(e)
        # Nothing of a refused request is written (RFC 7591 §3.2.2 for registration);
        # the session would be discarded at teardown anyway.
        try:
            app.extensions["authz"].db.session.rollback()
        except Exception:  # the database may be what failed
            log.debug("rollback after an error failed", exc_info=True)
        return render(err)
