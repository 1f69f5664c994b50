"""The login step in front of consent.

Until the Stytch B2B login lands (issue 4), development and test configurations
offer a plain sign-in form that fills the member session interface directly; a
production configuration has no way in here and says so.
"""
from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..errors import PageError
from ..identity.session import Member, sign_in, sign_out
from ..storage import pending as pending_store
from . import csrf

bp = Blueprint("login", __name__)

EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")


def _settings():
    return current_app.extensions["authz"].settings


def _dev_login_enabled() -> bool:
    return not _settings().is_production


def _member_for(email: str) -> Member:
    """A stable member per email: the same email always gets the same member id."""
    import hashlib

    local, domain = email.lower().split("@", 1)
    org_slug = domain.split(".")[0]
    h = hashlib.sha256(email.lower().encode()).hexdigest()[:24]
    org_h = hashlib.sha256(domain.encode()).hexdigest()[:24]
    return Member(
        member_id=f"member-test-{h}",
        organization_id=f"organization-test-{org_h}",
        organization_slug=org_slug,
        organization_name=org_slug.capitalize(),
        email=email.lower(),
        email_verified=True,
        name=local.replace(".", " ").title(),
        roles=("stytch_member",),
        auth_time=int(time.time()),
    )


@bp.route("/login", methods=["GET", "POST"])
def login():
    pending_id = request.values.get("pending", "")
    if not _dev_login_enabled():
        raise PageError("Sign-in is not configured", "This server has no member login configured yet.",
                        status=503, hint="The administrator must configure Stytch.")
    if request.method == "GET":
        return render_template("login.html", pending_id=pending_id, csrf_token=csrf.token(),
                               login_hint=request.args.get("login_hint", ""))
    csrf.check()
    email = (request.form.get("email") or "").strip()
    if not EMAIL.match(email):
        return render_template("login.html", pending_id=pending_id, csrf_token=csrf.token(),
                               error="Enter a valid email address.", login_hint=email[:254]), 400
    sign_in(_member_for(email))
    if pending_id and pending_store.load(current_app.extensions["authz"].db.session, pending_id):
        return redirect(url_for("authorize.authorize", pending=pending_id), 303)
    return redirect(url_for("login.signed_in"), 303)


@bp.route("/login/done")
def signed_in():
    return render_template("message.html", title="You are signed in", message="You can close this window.")


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "POST":
        csrf.check()
        sign_out()
        return render_template("message.html", title="You are signed out", message="You can close this window.")
    return render_template("logout.html", csrf_token=csrf.token())
