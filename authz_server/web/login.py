"""Member login through Stytch B2B (docs/architecture.md#login-through-stytch, #page-hooks).

Discovery: login page → Stytch discovery start → /login/callback
(``discovery_oauth``) → organization picker → exchange or create → session.
Organization: /org/<slug>/login, or an authorization request naming the
organization, or a client bound to one → Stytch start with the slug →
/login/callback (``oauth``) → session. Either may end in a step-up: Stytch says
``member_authenticated: false`` and the member proves the email with a passcode.

The login in progress (the parked authorization request, the intermediate
session, the discovered organizations) rides in the signed session cookie; it
never reaches the database, so a failed step stores nothing.

Each login is bound to the browser that started it (RFC 9700 §4.7.1, RFC 6749
§10.12: no login CSRF): each login page starts a login with its own PKCE
verifier, kept in the session with a random login id; the page's provider links
go to /login/start/<login id>/<provider>, which marks that login as the one
this browser set off and sends it to Stytch with the verifier's challenge. The
callback hands the verifier of the login started last to Stytch, so a Stytch
token minted for another browser's login is refused. Stytch matches redirect
URLs exactly, query included, so the login id cannot ride on the callback URL;
the start link is how the callback knows which of this browser's logins came
back. The last ``LOGINS_KEPT`` logins are kept, so a second tab (or a mistyped
organization address) does not break a login already going.
"""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ..errors import PAGE, PageError, Throttled
from ..identity.gateway import (PROVIDER_NAMES, IdentityError, MemberSession, StepUp, WrongCode, new_pkce_pair,
                                pkce_challenge)
from ..identity.session import browser_binding, sign_in, sign_out, stytch_session_token
from ..oauth import limits as limit_rules
from ..security import new_secret
from ..sources import source_key
from ..storage import pending as pending_store
from . import csrf

bp = Blueprint("login", __name__)

LOGIN_KEY = "login"
# The logins started in this browser whose Stytch callback has not come back yet.
LOGINS_KEY = "logins"
# How many of them are kept (newest first): enough for a few tabs or a reload,
# few enough that the session cookie stays small (each costs ~150 bytes).
LOGINS_KEPT = 3

# The pages under AUTHZ_LOGIN_RATE (oauth.limits): each may cost a Stytch call,
# and the step-up page takes passcodes. Logout is not limited.
RATE_LIMITED_PAGES = frozenset({"login.login", "login.org_login", "login.callback", "login.organizations",
                                "login.step_up"})


def _gateway():
    gw = current_app.extensions.get("identity")
    if gw is None:
        raise PageError("Sign-in is not configured", "This server has no member login configured.",
                        status=503, hint="The administrator must set the Stytch settings.")
    return gw


def _server():
    return current_app.extensions["authz"]


def _callback_url() -> str:
    return _server().settings.issuer + url_for("login.callback")


def _state() -> dict:
    data = session.get(LOGIN_KEY)
    return dict(data) if isinstance(data, dict) else {}


def _save(**changes) -> None:
    data = _state()
    data.update(changes)
    session[LOGIN_KEY] = data


def _logins() -> list[dict]:
    """The logins in progress in this browser, the one active last first."""
    data = session.get(LOGINS_KEY)
    if not isinstance(data, list):
        return []
    return [dict(e) for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)
            and isinstance(e.get("verifier"), str) and e["verifier"]]


def _new_login(pending_id: str, organization: dict | None, next_url: str | None) -> dict:
    verifier, _ = new_pkce_pair()
    entry = {"id": new_secret(12), "verifier": verifier, "pending": pending_id, "organization": organization,
             "next": next_url}
    session[LOGINS_KEY] = ([entry] + _logins())[:LOGINS_KEPT]
    return entry


def _login_to_finish() -> dict | None:
    """The login a Stytch callback belongs to: the one this browser sent to Stytch
    last. Only if none went through the start link, the newest one (Stytch's
    PKCE check refuses a token that is not its)."""
    logins = _logins()
    started = [e for e in logins if e.get("started")]
    return (started or logins or [None])[0]


def _finish_start(entry: dict) -> None:
    """Stytch accepted the token of ``entry``: it leaves the logins in progress
    and becomes the sign-in being finished (organization picker, step-up)."""
    session[LOGINS_KEY] = [e for e in _logins() if e["id"] != entry["id"]]
    session[LOGIN_KEY] = {"pending": entry.get("pending"), "organization": entry.get("organization"),
                          "next": entry.get("next")}


def _organization_of_pending(pending_id: str) -> dict | None:
    """The organization an authorization request names (``organization_slug`` or
    ``organization_id``), or the one its client is bound to."""
    if not pending_id:
        return None
    row = pending_store.load(_server().db.session, pending_id, browser_binding(create=False))
    if row is None:
        return None
    single = row.params.get("single", {})
    if single.get("organization_slug"):
        return {"slug": single["organization_slug"][:128]}
    if single.get("organization_id"):
        return {"organization_id": single["organization_id"][:128]}
    client = _server().query_client(single.get("client_id"))
    if client is not None and client.organization_id:
        return {"organization_id": client.organization_id}
    return None


# Pages a login may return to besides a parked authorization request: only our
# own, by path, so ``next`` cannot become an open redirect.
RESUMABLE_PATHS = ("/device",)


def _safe_next(value: str | None) -> str | None:
    from urllib.parse import urlsplit

    if not value or len(value) > 256:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.fragment or parts.path not in RESUMABLE_PATHS or "\\" in value:
        return None
    return value


@bp.before_request
def _rate_limit():
    if request.endpoint not in RATE_LIMITED_PAGES:
        return None
    wait = _server().limits.login.spend(limit_rules.login_key(source_key(_server().settings.secret_key)))
    if wait:
        # RFC 6585 §4: 429 with Retry-After, as a page for the person at the browser.
        raise Throttled(wait, "Too many sign-in attempts", title="Too many sign-in attempts",
                        message="There have been too many sign-in requests from your network.", kind=PAGE)
    return None


def _login_page(pending_id: str, organization: dict | None, login_hint: str | None, next_url: str | None = None):
    gw = _gateway()
    org_name = None
    if organization:
        # Before anything is written: a mistyped organization address must not
        # disturb a login going on in another tab.
        try:
            org = gw.organization(organization.get("slug") or organization.get("organization_id"))
        except IdentityError as e:
            raise PageError(e.title, e.message, hint=e.hint, status=e.status) from None
        org_name = org.name
    entry = _new_login(pending_id, organization, next_url)
    issuer = _server().settings.issuer
    links = [(provider, PROVIDER_NAMES[provider],
              issuer + url_for("login.start", login_id=entry["id"], provider=provider, login_hint=login_hint or None))
             for provider in _server().settings.login_providers]
    return render_template("login.html", links=links, organization_name=org_name)


@bp.route("/login")
def login():
    pending_id = request.args.get("pending", "")[:64]
    return _login_page(pending_id, _organization_of_pending(pending_id), request.args.get("login_hint"),
                       _safe_next(request.args.get("next")))


@bp.route("/org/<slug>/login")
def org_login(slug):
    return _login_page(request.args.get("pending", "")[:64], {"slug": slug[:128]}, request.args.get("login_hint"))


@bp.route("/login/start/<login_id>/<provider>")
def start(login_id, provider):
    """A provider link of a login page: this login is now the one the browser set
    off, and goes to Stytch with its PKCE challenge."""
    gw = _gateway()
    if provider not in _server().settings.login_providers:
        raise PageError("Unknown sign-in method", "This sign-in method is not offered here.",
                        hint="Start the sign-in again.", status=404)
    logins = _logins()
    entry = next((e for e in logins if e["id"] == login_id), None)
    if entry is None:
        raise PageError("This sign-in page has expired",
                        "The sign-in it started already finished, or newer sign-ins in this browser replaced it.",
                        hint="Start the sign-in again.")
    entry["started"] = True
    session[LOGINS_KEY] = [entry] + [e for e in logins if e["id"] != login_id]
    cb, challenge, hint = _callback_url(), pkce_challenge(entry["verifier"]), request.args.get("login_hint")
    if entry.get("organization"):
        url = gw.organization_start_url(provider, cb, pkce_code_challenge=challenge, login_hint=hint,
                                        **entry["organization"])
    else:
        url = gw.discovery_start_url(provider, cb, pkce_code_challenge=challenge, login_hint=hint)
    return redirect(url, 303)


def _fail(e: IdentityError):
    raise PageError(e.title, e.message, hint=e.hint, status=e.status)


@bp.route("/login/callback")
def callback():
    """Stytch sends the browser back here with ``stytch_token_type`` and ``token``."""
    gw = _gateway()
    token_type = request.args.get("stytch_token_type")
    token = request.args.get("token", "")
    if not token or len(token) > 512 or token_type not in ("discovery_oauth", "oauth"):
        raise PageError("This sign-in link is not valid", "The sign-in came back without a usable token.",
                        hint="Start the sign-in again.")
    entry = _login_to_finish()
    if entry is None:
        # No login was started in this browser (or it already came back): a
        # token from elsewhere must not sign this browser in, nor resume its
        # parked request (RFC 9700 §4.7.1). Stytch is not asked.
        raise PageError("This sign-in was not started here",
                        "This browser has no sign-in in progress, so the sign-in that came back was not accepted.",
                        hint="Start the sign-in again in this browser.")
    # The verifier is spent once Stytch accepts a token; a refused one (another
    # browser's token, Stytch unreachable) leaves this browser's logins going.
    try:
        if token_type == "discovery_oauth":
            found = gw.discovery_authenticate(token, pkce_code_verifier=entry["verifier"])
            _finish_start(entry)
            _save(ist=found.intermediate_session_token, email=found.email,
                  orgs=[{"id": d.organization.organization_id, "slug": d.organization.slug,
                         "name": d.organization.name, "membership": d.membership} for d in found.organizations])
            return redirect(url_for("login.organizations"), 303)
        result = gw.oauth_authenticate(token, pkce_code_verifier=entry["verifier"])
        _finish_start(entry)
        return _complete(result)
    except IdentityError as e:
        _fail(e)


@bp.route("/login/organizations", methods=["GET", "POST"])
def organizations():
    state = _state()
    if not state.get("ist"):
        raise PageError("Your sign-in has expired", "There is no sign-in in progress.", hint="Start the sign-in again.")
    allow_create = _server().settings.allow_organization_creation
    if request.method == "GET":
        return render_template("organizations.html", orgs=state.get("orgs", []), email=state.get("email"),
                               allow_create=allow_create, csrf_token=csrf.token())
    csrf.check()
    gw = _gateway()
    try:
        if "create_organization" in request.form:
            if not allow_create:
                raise PageError("Creating organizations is turned off", "You can only join an existing organization.",
                                hint="Pick one of the organizations listed for you, or ask an administrator to invite you.")
            name = (request.form.get("organization_name") or "").strip()
            if not 2 <= len(name) <= 128:
                return render_template("organizations.html", orgs=state.get("orgs", []), email=state.get("email"),
                                       allow_create=allow_create, csrf_token=csrf.token(),
                                       error="Give the organization a name of 2 to 128 characters."), 400
            result = gw.create_organization(state["ist"], name)
        else:
            org_id = request.form.get("organization_id", "")
            # Only an organization Stytch discovered for this sign-in may be picked.
            if org_id not in {o["id"] for o in state.get("orgs", [])}:
                raise PageError("You cannot join that organization",
                                "Your sign-in does not give access to the organization you picked.",
                                hint="Pick one of the organizations listed for you.")
            result = gw.exchange(state["ist"], org_id)
    except IdentityError as e:
        _fail(e)
    return _complete(result)


def _complete(result):
    if isinstance(result, StepUp):
        _save(step_up={"ist": result.intermediate_session_token, "organization_id": result.organization.organization_id,
                       "organization_name": result.organization.name, "email": result.email,
                       "methods": list(result.methods)})
        if "email_otp" not in result.methods and "magic_link" not in result.methods:
            raise PageError("Another sign-in method is required",
                            f"{result.organization.name} requires a sign-in method this page does not offer.",
                            hint="Ask your administrator which sign-in methods are allowed.")
        try:
            _gateway().send_email_otp(result.organization.organization_id, result.email)
        except IdentityError as e:
            _fail(e)
        return redirect(url_for("login.step_up"), 303)
    assert isinstance(result, MemberSession)
    pending_id, next_url = _state().get("pending"), _state().get("next")
    others = _logins()
    sign_in(result.member, result.session_token, result.session_jwt)
    if others:
        # Logins other tabs of this browser started stay: they belong to the
        # same browser and end in a sign-in of their own.
        session[LOGINS_KEY] = others
    if pending_id and pending_store.load(_server().db.session, pending_id, browser_binding(create=False)):
        return redirect(url_for("authorize.authorize", pending=pending_id), 303)
    if _safe_next(next_url):
        return redirect(next_url, 303)
    return redirect(url_for("login.signed_in"), 303)


@bp.route("/login/step-up", methods=["GET", "POST"])
def step_up():
    step = _state().get("step_up")
    if not step:
        raise PageError("Your sign-in has expired", "There is no sign-in in progress.", hint="Start the sign-in again.")
    page = dict(email=step["email"], organization_name=step["organization_name"], csrf_token=csrf.token())
    if request.method == "GET":
        return render_template("step_up.html", **page)
    csrf.check()
    gw = _gateway()
    try:
        if "resend" in request.form:
            gw.send_email_otp(step["organization_id"], step["email"])
            return render_template("step_up.html", notice="We sent a new code.", **page)
        code = (request.form.get("code") or "").strip()
        if not (code.isdigit() and len(code) == 6):
            return render_template("step_up.html", error="Enter the 6-digit code from the email.", **page), 400
        result = gw.authenticate_email_otp(step["organization_id"], step["email"], code, step["ist"])
    except WrongCode as e:
        return render_template("step_up.html", error=f"{e.message} {e.hint}", **page), 400
    except IdentityError as e:
        if e.error_type == "unable_to_auth_otp_code":
            # The passcode expired or was tried wrongly too often: stay on this page,
            # whose "Send a new code" button is the way on.
            return render_template("step_up.html", error=f"{e.message} {e.hint}", **page), 400
        _fail(e)
    if isinstance(result, StepUp):
        raise PageError("Further verification required", "Your organization asks for another factor we do not support.",
                        hint="Ask your administrator.")
    return _complete(result)


@bp.route("/login/done")
def signed_in():
    return render_template("message.html", title="You are signed in", message="You can close this window.")


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "POST":
        csrf.check()
        end_member_session()
        return render_template("message.html", title="You are signed out", message="You can close this window.")
    return render_template("logout.html", csrf_token=csrf.token())


@bp.route("/oauth/logout", methods=["GET", "POST"])
def end_session():
    """The ``end_session_endpoint`` (OIDC RP-Initiated Logout §2). Without a valid
    ``id_token_hint`` of the signed-in member the member confirms first (§6: a
    forged logout is a DoS), and then sees our signed-out page, not the RP's. An
    invalid request is Authlib's OAuth2Error, answered with the page by errors."""
    server = _server()
    if request.method == "POST" and request.form.get("confirm"):
        csrf.check()
    req = server.validate_endpoint_request("end_session")
    if req.needs_confirmation and not (request.method == "POST" and request.form.get("confirm")):
        return render_template("logout.html", csrf_token=csrf.token(), client=req.client,
                               params={k: v for k, v in request.values.items() if k != "csrf_token"})
    response = server.create_endpoint_response("end_session", req)
    if response is not None:
        if request.method == "POST":
            response.status_code = 303
        return response
    return render_template("message.html", title="You are signed out", message="You can close this window.")


def end_member_session():
    """Revoke the Stytch session (best effort) and forget ours."""
    token = stytch_session_token()
    gw = current_app.extensions.get("identity")
    if token and gw is not None:
        try:
            gw.revoke_session(token)
        except IdentityError:
            pass  # our cookie goes regardless; Stytch's JWT dies within 5 minutes
    sign_out()
    _server().db.session.commit()
