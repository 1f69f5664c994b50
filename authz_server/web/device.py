"""The device verification page (RFC 8628 §3.3): a signed-in member enters the
user code (or follows ``verification_uri_complete``), sees who asks for what and
the code to compare with the device, and allows or denies (§5.4). The endpoint
the device calls is in web.endpoints."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..errors import PAGE, PageError, Throttled
from ..identity.session import current_member
from ..oauth import limits as limit_rules, scopes as scope_rules
from ..rules import user_codes
from ..sources import client_address
from ..storage import audit, consents, device as device_store
from . import csrf

bp = Blueprint("device", __name__)


def _server():
    return current_app.extensions["authz"]


def _member_or_login():
    member = current_member()
    if member is None:
        # Back here after the login, with the code the device's link carried.
        here = url_for("device.verify", user_code=request.values.get("user_code") or None)
        return None, redirect(url_for("login.login", next=here), 303 if request.method == "POST" else 302)
    return member, None


def _entry_page(member, user_code=None, error=None, status=200):
    return render_template("device.html", member=member, user_code=user_code, error=error,
                           csrf_token=csrf.token()), status


@bp.route("/device", methods=["GET", "POST"])
def verify():
    member, login = _member_or_login()
    if login is not None:
        return login
    if request.method == "POST":
        csrf.check()
    entered = request.values.get("user_code")
    if not entered:
        return _entry_page(member)
    attempt = _spend_code_attempt(member)
    row = device_store.find_pending(_server().db.session, entered)
    if row is None:
        return _entry_page(member, entered[:16], "That code is not valid or has expired. Check the code on your "
                                                 "device; if it has expired, start again there.", 400)
    _refund_code_attempt(attempt)
    return _confirm_page(member, row, user_codes.display(user_codes.canonical_code(entered)))


# RFC 8628 §5.1: user codes are short, so guessing them is limited. Every page
# that takes a code (this one and /device/decision, which approves one directly)
# spends the same per-member bucket on a code that matches no pending device.
# The attempt is spent before the code is looked up and given back when it
# matches: one atomic step per request, so parallel guesses cannot all pass a
# check before any of them is counted, and still only wrong codes count.
def _spend_code_attempt(member) -> str:
    key = limit_rules.device_code_key(member)
    wait = _server().limits.device_code.spend(key)
    if wait:
        raise Throttled(wait, "Too many wrong codes", title="Too many wrong codes",
                        message="You entered too many codes that did not match a device.",
                        hint=f"Wait {wait} seconds, then check the code on your device and try again.", kind=PAGE)
    return key


def _refund_code_attempt(key: str) -> None:
    _server().limits.device_code.refund(key)


def _client_for(member, row):
    """The client asking, if this member may connect it (an organization-bound
    client only for members of that organization, as at /authorize)."""
    client = _server().query_client(row.client_id)
    if client is None:
        raise PageError("This application is no longer available", "The application that asked was disabled or removed.")
    if client.organization_id and client.organization_id != member.organization_id:
        raise PageError("Sign in to the application's organization",
                        "This application belongs to another organization than the one you are signed in to.",
                        hint="Sign out, sign in to that organization, and enter the code again.", status=403)
    return client


def _confirm_page(member, row, user_code):
    return render_template(
        "device_confirm.html", client=_client_for(member, row), member=member, user_code=user_code,
        scopes=scope_rules.describe(_server().db.session, scope_rules.split(row.scope)), csrf_token=csrf.token(),
    )


@bp.route("/device/decision", methods=["POST"])
def decision():
    csrf.check()
    member, login = _member_or_login()
    if login is not None:
        return login
    choice = request.form.get("decision")
    if choice not in ("allow", "deny"):
        raise PageError("Choose Allow or Deny", "The form was submitted without a decision.")
    server = _server()
    session = server.db.session
    attempt = _spend_code_attempt(member)
    pending = device_store.find_pending(session, request.form.get("user_code"))
    if pending is None:
        raise PageError("This code has expired", "The request from your device is no longer pending.",
                        hint="Start again on your device to get a new code.")
    _refund_code_attempt(attempt)
    if choice == "allow":
        _client_for(member, pending)
    row = device_store.decide(session, request.form.get("user_code"), approve=choice == "allow", member=member)
    if row is None:  # decided by another request meanwhile
        raise PageError("This code has expired", "The request from your device is no longer pending.",
                        hint="Start again on your device to get a new code.")
    if choice == "allow":
        consents.remember(session, member.member_id, member.organization_id, row.client_id, scope_rules.split(row.scope))
        audit.record(session, "consent_granted", ip=client_address(), client_id=row.client_id, subject=member.member_id,
                     organization_id=member.organization_id, scope=row.scope, flow="device")
        session.commit()
        return render_template("message.html", title="Device connected",
                               message="You can go back to your device: it is signing in now.")
    audit.record(session, "consent_denied", ip=client_address(), client_id=row.client_id, subject=member.member_id,
                 organization_id=member.organization_id, flow="device")
    session.commit()
    return render_template("message.html", title="Request denied",
                           message="Your device was not connected. You can close this window.")
