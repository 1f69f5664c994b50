"""/oauth/authorize and the consent decision (RFC 6749 §4.1; docs/requirements.md A3).

Until the client and redirect URI are validated, errors render the HTML error
page; after that they go back to the client as RFC 6749 §4.1.2.1 redirects with
``state`` and ``iss`` (RFC 9207). Both are rendered by ``errors``.
"""
from __future__ import annotations

import time

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..errors import ClientRedirect, PageError, from_oauth2
from ..identity.gateway import IdentityUnavailable
from ..identity.session import browser_binding, current_member
from ..oauth import prompts, scopes as scope_rules
from ..oauth.prompts import Interaction
from ..oauth.requests import ParamsRequest, split_params
from ..rules import redirect_uris
from ..sources import client_address
from ..storage import audit, consents, pending as pending_store
from . import csrf

bp = Blueprint("authorize", __name__)


def _server():
    return current_app.extensions["authz"]


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    values = request.form if request.method == "POST" else request.args
    pending_id = values.get("pending")
    if pending_id:
        row = _pending_or_fail(pending_id)
        return process(row.params, pending=row)
    single, lists, dups = split_params(values)
    return process({"single": single, "lists": lists, "duplicates": dups})


def _pending_or_fail(pending_id):
    """The parked request, if this browser parked it and it is still live."""
    row = pending_store.load(_server().db.session, pending_id, browser_binding(create=False))
    if row is None:
        # Unknown, expired, or parked by another browser (whose cookie this one
        # does not have): the same page, and nothing is resumed.
        raise PageError("This sign-in has expired",
                        "The authorization request is no longer pending, or was started in another browser.",
                        hint="Go back to the application and start again.")
    return row


def process(params: dict, pending=None, consent_given: bool = False):
    server = _server()
    session = server.db.session
    single, lists = params["single"], params["lists"]
    state = single.get("state")
    oreq = ParamsRequest(request.method, request.url, request.headers, single, lists)
    try:
        grant = server.get_consent_grant(oreq, end_user=None)
    except OAuth2Error as e:
        if e.redirect_uri and _must_authenticate_first(current_member(), single):
            return _login(params, pending, single)
        raise from_oauth2(e, state) from None
    client = grant.request.client
    redirect_uri = grant.redirect_uri
    try:
        member = current_member()
    except IdentityUnavailable:
        # OIDC Core §3.1.2.6: a silent request gets its answer at the client,
        # which can retry later (RFC 6749 §4.1.2.1 temporarily_unavailable);
        # a person gets the 503 page.
        if "none" in (single.get("prompt") or "").split():
            raise ClientRedirect("temporarily_unavailable", "The identity provider is unreachable; try again shortly",
                                 redirect_uri=redirect_uri, state=state) from None
        raise

    try:
        try:
            req = prompts.parse(single, params.get("duplicates") or [])
        except Interaction:
            if _must_authenticate_first(member, single):
                return _login(params, pending, single)
            raise
        fresh_login = member is not None and pending is not None and member.auth_time >= int(
            pending.created_at.timestamp()
        )
        if prompts.needs_login(req, member, client, fresh_login, now=time.time()):
            if req.none:
                raise Interaction("login_required", "The member is not signed in")
            return _login(params, pending, single)
        scopes = scope_rules.split(grant.request.scope)
        needs_consent = not consent_given and prompts.needs_consent(
            req, client, consents.covers(session, member.member_id, member.organization_id, client.client_id, scopes),
            redirect_uri,
        )
        if needs_consent:
            if req.none:
                raise Interaction("consent_required", "The member has not approved this application")
            row = pending or pending_store.park(session, params, server.settings.pending_request_ttl,
                                                browser_binding())
            session.commit()
            return _consent_page(row, client, member, scopes, redirect_uri)
    except Interaction as i:
        raise i.at(redirect_uri, state) from None

    response = server.create_authorization_response(oreq, grant_user=member, grant=grant)
    if pending is not None:
        pending_store.finish(session, pending)
    session.commit()
    if request.method == "POST" and response.status_code == 302:
        response.status_code = 303
    return response


def _must_authenticate_first(member, single) -> bool:
    """OAuth 2.1 §7.12.2 / RFC 9700 §4.11.2: authenticate the member before sending
    an error to a redirect URI, so the server cannot be used as an open redirector;
    only a silent prompt=none request gets its error at once."""
    return member is None and "none" not in (single.get("prompt") or "").split()


def _login(params, pending, single):
    """Park the request and send the browser to the login page; it resumes here."""
    server = _server()
    row = pending or pending_store.park(server.db.session, params, server.settings.pending_request_ttl,
                                        browser_binding())
    server.db.session.commit()
    return redirect(url_for("login.login", pending=row.id, login_hint=single.get("login_hint")))


def _consent_page(row, client, member, scopes, redirect_uri):
    from urllib.parse import urlsplit

    session = _server().db.session
    return render_template(
        "consent.html",
        client=client,
        member=member,
        scopes=scope_rules.describe(session, scopes),
        redirect_host=urlsplit(redirect_uri).netloc,
        # RFC 8252 §7.1 (docs/requirements.md: C-13): a private-use scheme can be claimed by any app on the device.
        redirect_scheme=urlsplit(redirect_uri).scheme.lower(),
        loopback_only=redirect_uris.all_loopback(list(client.redirect_uris)),
        pending_id=row.id,
        csrf_token=csrf.token(),
    )


@bp.route("/oauth/authorize/consent", methods=["POST"])
def consent():
    csrf.check()
    server = _server()
    session = server.db.session
    row = _pending_or_fail(request.form.get("pending"))
    member = current_member()
    if member is None:
        return redirect(url_for("login.login", pending=row.id), 303)
    decision = request.form.get("decision")
    if decision not in ("allow", "deny"):
        raise PageError("Choose Allow or Deny", "The consent form was submitted without a decision.")
    single, lists = row.params["single"], row.params["lists"]
    if decision == "deny":
        oreq = ParamsRequest(request.method, request.url, request.headers, single, lists)
        try:
            grant = server.get_consent_grant(oreq, end_user=None)
        except OAuth2Error as e:
            raise from_oauth2(e, single.get("state")) from None
        pending_store.finish(session, row)
        audit.record(session, "consent_denied", ip=client_address(), client_id=grant.request.client.client_id,
                     subject=member.member_id, organization_id=member.organization_id)
        session.commit()
        raise ClientRedirect("access_denied", "The member denied the request", redirect_uri=grant.redirect_uri,
                             state=single.get("state"))
    oreq = ParamsRequest(request.method, request.url, request.headers, single, lists)
    try:
        grant = server.get_consent_grant(oreq, end_user=None)
    except OAuth2Error as e:
        raise from_oauth2(e, single.get("state")) from None
    scopes = scope_rules.split(grant.request.scope)
    consents.remember(session, member.member_id, member.organization_id, grant.request.client.client_id, scopes)
    audit.record(session, "consent_granted", ip=client_address(),
                 client_id=grant.request.client.client_id, subject=member.member_id,
                 organization_id=member.organization_id, scope=" ".join(scopes))
    return process(row.params, pending=row, consent_given=True)
