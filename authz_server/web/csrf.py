"""CSRF tokens for the HTML forms (RFC 6749 §10.12): one random token per
browser session, compared in constant time."""
from __future__ import annotations

import hmac

from flask import request, session

from ..errors import PageError
from ..security import new_secret


def token() -> str:
    if "csrf" not in session:
        session["csrf"] = new_secret(24)
    return session["csrf"]


def check() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise PageError(
            "This form has expired",
            "The page you submitted was out of date or did not come from this site, so nothing was done.",
            hint="Go back to the application and start again.",
        )
