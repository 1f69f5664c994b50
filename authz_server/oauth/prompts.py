"""``prompt`` and ``max_age`` (OIDC Core §3.1.2.1): when to log in again and when
to ask for consent. Authlib handles neither max_age nor stored consent (docs/requirements.md: D-11)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ClientRedirect
from .requests import shown

KNOWN_PROMPTS = {"none", "login", "consent", "select_account"}


class Interaction(ClientRedirect):
    """An error that goes back to the validated redirect URI (OIDC Core §3.1.2.6);
    web.authorize names the URI (``at``) and errors.render redirects."""


@dataclass(frozen=True)
class PromptRequest:
    prompts: frozenset
    max_age: int | None
    # The organization the request names (extra parameter ``organization_slug``
    # or ``organization_id``, the organization login flow), if any.
    organization_slug: str | None = None
    organization_id: str | None = None

    @property
    def none(self) -> bool:
        return "none" in self.prompts


def parse(single: dict, duplicates: list[str]):
    """Validate the parameters checked after the redirect URI is trusted."""
    if duplicates:
        raise Interaction("invalid_request", f"Parameter sent more than once: {shown(duplicates[0])}")
    if "request" in single:
        raise Interaction("request_not_supported", "Request objects are not supported")
    if "request_uri" in single:
        raise Interaction("request_uri_not_supported", "request_uri is not supported")
    prompts = frozenset((single.get("prompt") or "").split())
    if prompts - KNOWN_PROMPTS:
        raise Interaction("invalid_request", "Unknown prompt value")
    if "none" in prompts and len(prompts) > 1:
        raise Interaction("invalid_request", "prompt=none cannot be combined with other values")
    max_age = single.get("max_age")
    if max_age is not None:
        if not max_age.isdigit() or len(max_age) > 10:
            raise Interaction("invalid_request", "max_age must be a non-negative integer")
        max_age = int(max_age)
    return PromptRequest(prompts, max_age, single.get("organization_slug"), single.get("organization_id"))


def needs_login(req: PromptRequest, member, client, fresh_login: bool, now: float) -> bool:
    """Default policy: log in when there is no member session; when prompt=login
    or max_age asks for a newer authentication than the session has (unless the
    member just logged in for this very request); or when the client is bound to
    another organization than the member's, or the request names another one."""
    if member is None:
        return True
    if client.organization_id and member.organization_id != client.organization_id:
        return True
    if req.organization_id and member.organization_id != req.organization_id:
        return True
    if req.organization_slug and member.organization_slug != req.organization_slug:
        return True
    if fresh_login:
        return False
    # OIDC Core §3.1.2.1: "max_age=0 is equivalent to prompt=login", even for a
    # session authenticated within the same second (auth_time has whole seconds).
    if "login" in req.prompts or req.max_age == 0:
        return True
    return req.max_age is not None and now - member.auth_time > req.max_age


def needs_consent(req: PromptRequest, client, remembered: bool, redirect_uri: str | None = None) -> bool:
    """Default policy: first-party clients never ask; others ask unless a
    remembered consent covers every requested scope; prompt=consent always asks.
    A remembered consent is not reused for a client that cannot prove who it is
    (RFC 8252 §8.6, OIDC Core §3.1.2.4)."""
    if client.is_first_party:
        return False
    if "consent" in req.prompts:
        return True
    return not remembered or not identity_assured(client, redirect_uri)


def identity_assured(client, redirect_uri: str | None) -> bool:
    """RFC 8252 §8.6: a public client whose redirect goes to loopback or a
    private-use scheme can be impersonated by any local app listening there; a
    confidential client proves itself at the token endpoint, and an https
    redirect belongs to its host."""
    if not client.is_public or redirect_uri is None:
        return True
    return urlsplit(redirect_uri).scheme == "https"
