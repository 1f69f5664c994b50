"""authz_server: an OAuth 2.1 / OpenID Connect authorization server."""
from __future__ import annotations

import datetime as dt
import logging
import os

from flask import Flask, g, request
from sqlalchemy import event

from .config import Settings
from .db import Database

__all__ = ["create_app", "Settings"]

log = logging.getLogger("authz_server")

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")

SECURITY_HEADERS = {
    # RFC 9700 §4.16 / OAuth 2.1 §7.10: no framing, ever.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    # No form-action: browsers apply it to the redirect after the consent POST,
    # which may go to a client's private-use scheme (RFC 8252 §7.1).
    "X-Frame-Options": "DENY",
    # RFC 9700 §4.2.4: codes and state must not leak through Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def create_app(settings: Settings | None = None, database: Database | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.validate()
    app = Flask(__name__, template_folder=TEMPLATES, static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="authz_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=settings.member_session_minutes),
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
        APP_NAME=settings.app_name,
    )
    app.json.sort_keys = False
    if settings.trusted_proxies:
        # AUTHZ_TRUSTED_PROXIES: request.remote_addr (rate limits, audit log; see
        # sources.py) and the scheme come from the X-Forwarded-For/-Proto entries
        # that many proxies added. Never by default: a client can send the headers.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    db = database or Database(settings.database_url)

    from .oauth.server import AuthzServer

    server = AuthzServer(app, settings, db)
    app.extensions["authz"] = server
    if settings.stytch_configured:
        from .identity.gateway import StytchGateway

        from .identity.membership import MembershipCache

        gateway = StytchGateway(settings.stytch_project_id, settings.stytch_secret,
                                settings.stytch_public_token, settings.stytch_environment,
                                session_minutes=settings.member_session_minutes)
        app.extensions["identity"] = gateway
        server.membership = MembershipCache(gateway, settings.member_check_seconds)

    from . import errors
    from .web import authorize, device, endpoints, login, registration, wellknown

    for bp in (authorize.bp, device.bp, endpoints.bp, login.bp, registration.bp, wellknown.bp):
        app.register_blueprint(bp)
    from .oauth.endpoints.end_session import EndSessionEndpoint

    from .identity.session import cookie_member

    server.register_endpoint(EndSessionEndpoint(end_session=login.end_member_session, signed_in_member=cookie_member))
    errors.register(app)

    from .web import cors

    @app.before_request
    def _preflight():
        # An OPTIONS preflight never reaches the views (POST-only routes would 405).
        if cors.applies(request.path) and cors.is_preflight(request):
            return app.response_class(status=204)

    @app.after_request
    def _headers(resp):
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        # Cache-Control: no-store, decided in one place (errors.cache_policy).
        errors.cache_policy(resp)
        if cors.applies(request.path):
            cors.decorate(request, resp)
        return resp

    @app.teardown_request
    def _remove_session(exc):
        db.session.remove()

    if settings.sql_count:
        _install_sql_counter(app, db)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/")
    def index():
        from flask import render_template

        return render_template("message.html", title=settings.app_name,
                               message="This is an OAuth 2.1 and OpenID Connect authorization server.",
                               link=(f"{settings.issuer}/.well-known/openid-configuration", "Discovery document"))

    return app


def _install_sql_counter(app, db):
    """AUTHZ_SQL_COUNT=1: log the number of SQL statements each request ran
    (bench/token_endpoint.py reads these lines)."""

    @event.listens_for(db.engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        try:
            g.sql_count = g.get("sql_count", 0) + 1
        except RuntimeError:
            pass

    @app.after_request
    def _report(resp):
        log.warning("sql_count path=%s grant_type=%s statements=%d", request.path,
                    request.form.get("grant_type", "-") if request.method == "POST" else "-", g.get("sql_count", 0))
        return resp
