"""The Stytch gateway: the only module that imports ``stytch``.

It wraps one ``stytch.B2BClient`` and speaks our own terms to the web layer:
discovered organizations, a member session, a step-up requirement. Stytch
errors become ``IdentityError``s whose message a person can act on; a network
failure or timeout becomes ``IdentityUnavailable``.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pydantic
import requests

from .session import Member

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# Stytch B2B OAuth providers (stytch-api.md §3.1); the login page offers those
# enabled by AUTHZ_LOGIN_PROVIDERS, Google and Microsoft by default.
PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft", "github": "GitHub", "slack": "Slack",
                  "hubspot": "HubSpot"}


class IdentityError(Exception):
    """A login step failed; ``title``/``message``/``hint`` are for the person."""

    status = 400

    def __init__(self, title: str, message: str, hint: str | None = None, *, error_type: str | None = None):
        super().__init__(message)
        self.title, self.message, self.hint, self.error_type = title, message, hint, error_type


class IdentityUnavailable(IdentityError):
    status = 503


class WrongCode(IdentityError):
    """An email passcode that did not match: the member may try again."""


class _TimeoutSession(requests.Session):
    """The SDK sets no timeout; a hung Stytch must not hang our workers."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class Organization:
    organization_id: str
    slug: str
    name: str
    logo_url: str = ""


@dataclass(frozen=True)
class DiscoveredOrganization:
    organization: Organization
    membership: str  # active_member | eligible_to_join_by_email_domain | invited_member | …
    member_authenticated: bool


@dataclass(frozen=True)
class Discovery:
    intermediate_session_token: str
    email: str
    full_name: str
    organizations: list = field(default_factory=list)


@dataclass(frozen=True)
class MemberSession:
    """A full Stytch member session and the member it belongs to."""

    session_token: str
    session_jwt: str
    member: Member


@dataclass(frozen=True)
class StepUp:
    """Stytch said ``member_authenticated: false``: a primary factor is missing."""

    intermediate_session_token: str
    organization: Organization
    email: str
    methods: tuple


# What each Stytch error means for the person in front of the login page.
_MESSAGES = {
    "oauth_token_not_found": ("This sign-in link was already used",
                              "The sign-in came back with a token that is unknown or already used.",
                              "Start the sign-in again."),
    # The token was minted for a login started in another browser (or the start
    # URL was not ours), or this browser started another login after it (the
    # callback finishes the one started last): its PKCE challenge does not match.
    "pkce_mismatch": ("This sign-in was started elsewhere",
                      "The sign-in came back to a different browser from the one that started it, "
                      "or a sign-in started later in another tab of this browser replaced it.",
                      "Start the sign-in again in this browser."),
    "pkce_expected_code_verifier": ("This sign-in was started elsewhere",
                                    "The sign-in came back to a different browser from the one that started it.",
                                    "Start the sign-in again in this browser."),
    "pkce_did_not_expect_code_verifier": ("This sign-in was started elsewhere",
                                          "The sign-in was not started from this site's sign-in page.",
                                          "Start the sign-in again in this browser."),
    "intermediate_session_not_found": ("Your sign-in has expired",
                                       "The sign-in took too long or was already finished.",
                                       "Start the sign-in again."),
    "invalid_intermediate_session_token_for_organization": (
        "You cannot join that organization",
        "Your sign-in does not give access to the organization you picked.",
        "Pick one of the organizations listed for you, or start again."),
    "organization_not_found": ("Unknown organization", "That organization does not exist.",
                               "Check the address, or sign in without naming an organization."),
    "member_not_found": ("Not a member", "You are not a member of this organization.",
                         "Ask an administrator of the organization to invite you."),
    "unable_to_auth_otp_code": ("This code has expired",
                                "The passcode expired, was already used, or was entered wrongly too often.",
                                "Send a new code."),
    "organization_slug_already_used": ("That name is taken", "Another organization already uses that name.",
                                       "Choose a different name."),
    "invalid_organization_name": ("Invalid organization name", "The organization name is not allowed.",
                                  "Choose a different name."),
    "invalid_organization_slug": ("Invalid organization name", "The organization name is not allowed.",
                                  "Choose a different name."),
}


def new_pkce_pair() -> tuple[str, str]:
    """(verifier, challenge) binding a Stytch login to the browser that starts it.

    The challenge rides on the start URL, the verifier stays in the browser's
    signed session and goes to the authenticate call, so a Stytch token minted
    for another browser is refused (RFC 9700 §4.7.1; Stytch's PKCE: S256 only,
    base64url(SHA-256(verifier)) unpadded, as in RFC 7636 §4.2)."""
    verifier = secrets.token_urlsafe(32)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _iso_epoch(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    try:
        return int(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class StytchGateway:
    def __init__(self, project_id: str, secret: str, public_token: str, environment: str | None,
                 session_minutes: int | None = None):
        import stytch  # the only import of the SDK in the code base

        self._stytch = stytch
        self.project_id = project_id
        self.public_token = public_token
        # The Stytch session's lifetime at login, and again at each renewal (a
        # sliding session, like our cookie). None: Stytch's default, 60 minutes,
        # never extended (stytch-api.md §3.7).
        self._session = {"session_duration_minutes": session_minutes} if session_minutes else {}
        with warnings.catch_warnings():
            # stytch 15.3 builds an aiohttp.BasicAuth that newer aiohttp deprecates.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client = stytch.B2BClient(project_id, secret, environment=environment, suppress_warnings=True,
                                           sync_session=_TimeoutSession())
        # The public start URLs live on the same host as the API.
        self.base_url = self.client.api_base.base_url.rstrip("/")

    # --- Calling the SDK -------------------------------------------------------
    def _call(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except self._stytch.core.response_base.StytchError as e:
            details = e.details
            error_type = getattr(details, "error_type", None)
            status = getattr(details, "status_code", 500) or 500
            log.info("stytch error %s (%s)", error_type, status)
            if error_type == "unauthorized_credentials":
                # Stytch refused our project id/secret: our configuration, not the
                # person's sign-in, is wrong; "start again" would not help.
                log.error("stytch refused the project credentials")
            if status >= 500 or error_type in (None, "too_many_requests", "internal_server_error",
                                               "unauthorized_credentials"):
                raise IdentityUnavailable("Sign-in is unavailable", "Our sign-in provider did not answer properly.",
                                          "Wait a moment and try again.", error_type=error_type) from None
            if error_type == "otp_code_not_found":
                raise WrongCode("Wrong code", "That passcode is not right.", "Check the email and try again.",
                                error_type=error_type) from None
            title, message, hint = _MESSAGES.get(
                error_type, ("Sign-in failed", "The sign-in could not be completed.", "Start the sign-in again."))
            raise IdentityError(title, message, hint, error_type=error_type) from None
        except (requests.Timeout, requests.ConnectionError) as e:
            log.warning("stytch unreachable: %s", e.__class__.__name__)
            raise IdentityUnavailable("Sign-in is unavailable", "We could not reach our sign-in provider.",
                                      "Wait a moment and try again.") from None
        except pydantic.ValidationError:
            # A 2xx the SDK cannot parse (not Stytch's JSON: a proxy's or captive
            # portal's page); the SDK raises pydantic's error, which would be a 500.
            log.warning("stytch answered a body the SDK could not read")
            raise IdentityUnavailable("Sign-in is unavailable", "Our sign-in provider did not answer properly.",
                                      "Wait a moment and try again.") from None

    # --- Browser start URLs (docs/architecture.md#page-hooks) -----------------
    # Every start carries a PKCE challenge (``new_pkce_pair``); its authenticate
    # call must then send the verifier.
    def discovery_start_url(self, provider: str, redirect_url: str, *, pkce_code_challenge: str,
                            login_hint: str | None = None) -> str:
        q = {"public_token": self.public_token, "discovery_redirect_url": redirect_url,
             "pkce_code_challenge": pkce_code_challenge}
        if login_hint:
            q["provider_login_hint"] = login_hint
        return f"{self.base_url}/v1/b2b/public/oauth/{provider}/discovery/start?{urlencode(q)}"

    def organization_start_url(self, provider: str, redirect_url: str, *, pkce_code_challenge: str,
                               slug: str | None = None, organization_id: str | None = None,
                               login_hint: str | None = None) -> str:
        q = {"public_token": self.public_token}
        if slug:
            q["slug"] = slug
        else:
            q["organization_id"] = organization_id
        q["login_redirect_url"] = redirect_url
        q["signup_redirect_url"] = redirect_url
        q["pkce_code_challenge"] = pkce_code_challenge
        if login_hint:
            q["provider_login_hint"] = login_hint
        return f"{self.base_url}/v1/b2b/public/oauth/{provider}/start?{urlencode(q)}"

    # --- Discovery flow ----------------------------------------------------------
    def discovery_authenticate(self, token: str, *, pkce_code_verifier: str) -> Discovery:
        r = self._call(self.client.oauth.discovery.authenticate, discovery_oauth_token=token,
                       pkce_code_verifier=pkce_code_verifier)
        orgs = [
            DiscoveredOrganization(_org(d.organization), d.membership.type if d.membership else "",
                                   bool(d.member_authenticated))
            for d in r.discovered_organizations if d.organization is not None
        ]
        return Discovery(r.intermediate_session_token, r.email_address, r.full_name or "", orgs)

    def exchange(self, intermediate_session_token: str, organization_id: str):
        r = self._call(self.client.discovery.intermediate_sessions.exchange,
                       intermediate_session_token=intermediate_session_token, organization_id=organization_id,
                       **self._session)
        return self._login_result(r)

    def create_organization(self, intermediate_session_token: str, name: str):
        r = self._call(self.client.discovery.organizations.create,
                       intermediate_session_token=intermediate_session_token, organization_name=name,
                       **self._session)
        return self._login_result(r)

    # --- Organization flow -------------------------------------------------------
    def oauth_authenticate(self, token: str, *, pkce_code_verifier: str):
        r = self._call(self.client.oauth.authenticate, oauth_token=token, pkce_code_verifier=pkce_code_verifier,
                       **self._session)
        return self._login_result(r)

    def organization(self, slug_or_id: str) -> Organization:
        r = self._call(self.client.organizations.get, organization_id=slug_or_id)
        return _org(r.organization)

    # --- Step-up: email one-time passcode ---------------------------------------
    def send_email_otp(self, organization_id: str, email: str) -> None:
        self._call(self.client.otps.email.login_or_signup, organization_id=organization_id, email_address=email)

    def authenticate_email_otp(self, organization_id: str, email: str, code: str, intermediate_session_token: str):
        r = self._call(self.client.otps.email.authenticate, organization_id=organization_id, email_address=email,
                       code=code, intermediate_session_token=intermediate_session_token, **self._session)
        return self._login_result(r)

    # --- Member sessions -----------------------------------------------------------
    def verify_session_jwt(self, session_jwt: str) -> bool:
        """Local check against Stytch's JWKS (cached by the SDK; an unknown kid
        refetches it). False when the JWT is stale, forged or the JWKS unreachable."""
        import jwt  # PyJWT, the SDK's own verifier

        try:
            return self.client.sessions.authenticate_jwt_local(session_jwt=session_jwt) is not None
        except (jwt.PyJWTError, KeyError, ValueError):
            return False

    def refresh_session(self, session_token: str) -> MemberSession | None:
        """Network check (``sessions.authenticate``); None when the session is gone."""
        try:
            r = self._call(self.client.sessions.authenticate, session_token=session_token, **self._session)
        except IdentityError as e:
            if isinstance(e, IdentityUnavailable):
                raise
            return None
        return MemberSession(r.session_token, r.session_jwt, _member(r.member, r.organization, r.member_session))

    def revoke_session(self, session_token: str) -> None:
        try:
            self._call(self.client.sessions.revoke, session_token=session_token)
        except IdentityError as e:
            if isinstance(e, IdentityUnavailable):
                raise

    def member_is_active(self, organization_id: str, member_id: str) -> bool:
        """Is the member still an active member of the organization (network)?"""
        try:
            r = self._call(self.client.organizations.members.get, organization_id=organization_id, member_id=member_id)
        except IdentityUnavailable:
            raise
        except IdentityError:
            return False
        return r.member.status == "active"

    # --- Shapes ----------------------------------------------------------------------
    def _login_result(self, r):
        org = _org(r.organization)
        if r.member_authenticated and r.session_token:
            return MemberSession(r.session_token, r.session_jwt, _member(r.member, r.organization, r.member_session))
        methods = tuple(r.primary_required.allowed_auth_methods) if r.primary_required else ()
        if r.mfa_required is not None and not methods:
            raise IdentityError("Extra verification required",
                                "Your organization requires multi-factor authentication, which this sign-in "
                                "does not support yet.", "Ask your administrator.", error_type="mfa_required")
        return StepUp(r.intermediate_session_token, org, r.member.email_address, methods)


def _org(o) -> Organization:
    return Organization(o.organization_id, o.organization_slug, o.organization_name, o.organization_logo_url or "")


def _member(m, o, session) -> Member:
    """Our member from Stytch's; ``auth_time`` is the newest authentication factor's
    time (OIDC Core §2: when the member really authenticated), else the session start."""
    auth_time = None
    if session is not None:
        times = [_iso_epoch(f.last_authenticated_at) for f in session.authentication_factors or []]
        times = [t for t in times if t]
        auth_time = max(times) if times else _iso_epoch(session.started_at)
    return Member(
        member_id=m.member_id,
        organization_id=o.organization_id,
        email=m.email_address,
        email_verified=bool(m.email_address_verified),
        name=m.name or None,
        organization_slug=o.organization_slug,
        organization_name=o.organization_name,
        roles=tuple(r.role_id for r in m.roles or []),
        auth_time=auth_time or int(dt.datetime.now(dt.timezone.utc).timestamp()),
    )
