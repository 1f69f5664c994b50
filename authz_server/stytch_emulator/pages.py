"""The public OAuth start URLs and the identity-provider page behind them.

Real Stytch redirects the browser from a start URL to Google or Microsoft and,
once the user signs in there, back to the app with a one-time token. Here the
start URL itself renders a stand-in identity-provider page (docs/architecture.md#page-hooks): a
``<form method="post">`` with ``<input name="email">``. Posting it mints the
single-use token (bound to provider, email, name, organization and PKCE
challenge) and answers 302 to the app's redirect URL with ``stytch_token_type``
and ``token``, exactly as Stytch would.

No Basic auth on these routes: browsers open them, with ``public_token`` in the
query. The request parameters travel as hidden form fields, so the POST carries
them even when a client posts to the bare path.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template_string, request

from . import errors
from .context import current, with_query
from .shapes import PROVIDERS
from .records import provider_subject

bp = Blueprint("stytch_pages", __name__)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Parameters Stytch's public start URLs take; anything `provider_*` passes too.
_CARRIED = ("public_token", "discovery_redirect_url", "organization_id", "slug", "login_redirect_url",
            "signup_redirect_url", "pkce_code_challenge", "custom_scopes")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in with {{ provider.display }} · Stytch emulator</title>
<style>
  body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background: #f4f5f7;
         color: #1f2328; margin: 0; display: flex; min-height: 100vh; align-items: center; justify-content: center; }
  main { background: #fff; border: 1px solid #d0d7de; border-radius: 10px; padding: 2rem 2.25rem;
         width: 100%; max-width: 24rem; box-shadow: 0 1px 3px rgba(0,0,0,.06); }
  h1 { font-size: 1.25rem; margin: 0 0 .25rem; }
  .sub { color: #57606a; margin: 0 0 1.5rem; font-size: .9rem; }
  label { display: block; font-weight: 600; font-size: .9rem; margin: 1rem 0 .35rem; }
  input[type=email], input[type=text] { box-sizing: border-box; width: 100%; padding: .55rem .7rem;
         border: 1px solid #d0d7de; border-radius: 6px; font: inherit; }
  button { margin-top: 1.5rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px;
           background: #1f6feb; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
  .error { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: .5rem .75rem; font-size: .9rem; }
  .optional { font-weight: 400; color: #57606a; }
  .note { color: #57606a; font-size: .8rem; margin-top: 1.25rem; }
  code { font-size: .85em; }
</style>
</head>
<body>
<main>
  <h1>Sign in with {{ provider.display }}</h1>
  <p class="sub">{% if organization %}to {{ organization.name }}{% else %}to continue to the application{% endif %}</p>
  {% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
  <form method="post" action="{{ action }}">
    {% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">
    {% endfor %}
    <label for="email">Email</label>
    <input id="email" type="email" name="email" value="{{ email }}" required autofocus autocomplete="email">
    <label for="name">Full name <span class="optional">(optional)</span></label>
    <input id="name" type="text" name="name" value="{{ name }}" autocomplete="name">
    <button type="submit">Continue</button>
  </form>
  <p class="note">Stytch emulator: this page stands in for {{ provider.display }}. No password is asked;
  any address signs in.{% if examples %} Members: {% for e in examples %}<code>{{ e }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.{% endif %}</p>
</main>
</body>
</html>
"""


def _param(name: str) -> str | None:
    """Form first (the hidden fields), then the query string."""
    return request.form.get(name) or request.args.get(name) or None


def _http_url(value: str | None, error_type: str, label: str) -> str:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.bad_request(f"{label} must be an absolute http(s) URL.", error_type)
    return value


def _check_public_token() -> None:
    token = _param("public_token")
    if not token:
        raise errors.bad_request("public_token is required.", "public_token_required")
    if token != current().public_token:
        raise errors.ApiError(404, "public_token_not_found", "The public token could not be found.")


def _redirects(discovery: bool):
    """(organization, where to send an existing member, where to send a new one)."""
    emu = current()
    default = emu.default_redirect_url
    if discovery:
        url = _param("discovery_redirect_url") or default
        if not url:
            raise errors.bad_request("discovery_redirect_url is required (the emulator has no dashboard default).",
                                     "no_discovery_redirect_url")
        url = _http_url(url, "invalid_discovery_redirect_url", "discovery_redirect_url")
        return None, url, url
    org_id, slug = _param("organization_id"), _param("slug")
    if org_id and slug:
        raise errors.bad_request("Send organization_id or slug, not both.", "too_many_oauth_organization_locators")
    if not org_id and not slug:
        raise errors.bad_request("Send organization_id or slug.", "missing_oauth_organization_locator")
    org = emu.store.organization(org_id or slug)
    login = _param("login_redirect_url") or _param("signup_redirect_url") or default
    signup = _param("signup_redirect_url") or login
    if not login:
        raise errors.bad_request("login_redirect_url is required (the emulator has no dashboard default).",
                                 "no_login_redirect_url")
    return (org, _http_url(login, "invalid_login_redirect_url", "login_redirect_url"),
            _http_url(signup, "invalid_signup_redirect_url", "signup_redirect_url"))


def _page(provider, organization, email: str, name: str, error: str | None = None, status: int = 200):
    store = current().store
    carried = [(k, v) for k, v in {**request.args, **request.form}.items()
               if (k in _CARRIED or k.startswith("provider_")) and v]
    with store.lock:
        examples = sorted(m.email for m in store.members.values() if m.status == "active")[:4]
    html = render_template_string(PAGE, provider=provider, organization=organization, hidden=carried,
                                  action=request.path, email=email, name=name, error=error, examples=examples)
    return html, status, {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    }


def _start(provider_slug: str, discovery: bool):
    provider = PROVIDERS.get(provider_slug)
    if provider is None:
        raise errors.bad_request(f"The emulator offers {', '.join(PROVIDERS)}; not {provider_slug!r}.",
                                 "invalid_oauth_provider")
    _check_public_token()
    organization, login_url, signup_url = _redirects(discovery)
    challenge = _param("pkce_code_challenge")
    if challenge and not _CHALLENGE_RE.match(challenge):
        raise errors.bad_request("pkce_code_challenge must be base64url(SHA-256(verifier)) without padding.",
                                 "invalid_pkce_code_challenge")

    if request.method == "GET":
        return _page(provider, organization, _param("provider_login_hint") or "", "")

    email = (request.form.get("email") or "").strip().lower()
    name = (request.form.get("name") or "").strip()
    if not _EMAIL_RE.match(email):
        return _page(provider, organization, email, name, "Enter an email address.", 400)

    store = current().store
    with store.lock:
        known = store.members_by_email(email)
        name = name or (known[0].name if known else email.partition("@")[0].replace(".", " ").title())
        token = store.add_oauth_token(
            discovery=discovery, provider=provider.slug, email=email, name=name,
            provider_subject=provider_subject(provider.slug, email),
            organization_id=organization.organization_id if organization else None,
            pkce_challenge=challenge,
        )
        member = store.find_member(organization, email=email) if organization else None
    if discovery:
        target = with_query(login_url, stytch_token_type="discovery_oauth", token=token.token)
    else:
        # Stytch sends new members to the signup URL and existing ones to the login URL.
        target = with_query(login_url if member else signup_url, stytch_token_type="oauth", token=token.token)
    return redirect(target, 302)


@bp.route("/v1/b2b/public/oauth/<provider_slug>/discovery/start", methods=["GET", "POST"])
def discovery_start(provider_slug: str):
    return _start(provider_slug, discovery=True)


@bp.route("/v1/b2b/public/oauth/<provider_slug>/start", methods=["GET", "POST"])
def organization_start(provider_slug: str):
    return _start(provider_slug, discovery=False)
