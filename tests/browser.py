"""A person's browser as the tests drive it: the form regexes of our pages and
the client that signs in through the Stytch emulator and answers consent."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from tests.helpers import form_fields

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PENDING = re.compile(r'name="pending" value="([^"]+)"')
PROVIDER_LINK = re.compile(r'<a[^>]*data-provider="([^"]+)"[^>]*href="([^"]+)"')
ORG_BUTTON = re.compile(r'name="organization_id" value="([^"]+)" data-organization-slug="([^"]+)"')


class Browser:
    """A person's browser: follows the server's own redirects, stops at the
    client's redirect URI, signs in through the login page, answers consent."""

    def __init__(self, live, email="alice@acme.test"):
        self.live = live
        self.email = email
        self.http = requests.Session()

    def get(self, path_or_url, **kw):
        url = path_or_url if path_or_url.startswith("http") else self.live.url + path_or_url
        return self.http.get(url, allow_redirects=False, timeout=10, **kw)

    def post(self, path, data, **kw):
        return self.http.post(self.live.url + path, data=data, allow_redirects=False, timeout=10, **kw)

    def login(self, email=None, pending="", organization_slug=None, provider="google", start=None):
        """Sign in as a person does: the login page, the identity-provider page of
        the Stytch emulator, back to /login/callback, the organization picker (the
        organization of ``organization_slug``, or the first one; created when none
        is offered), and a step-up passcode from the emulator's outbox if asked.
        ``start`` is the login URL a page redirected to, if not the plain one.
        Returns the response that leaves the login pages."""
        import html as htmllib

        email = email or self.email
        page = self.get(start or ("/login" + (f"?pending={pending}" if pending else "")))
        assert page.status_code == 200, (page.status_code, page.text[:300])
        links = {p: htmllib.unescape(h) for p, h in PROVIDER_LINK.findall(page.text)}
        idp = self.http.get(links[provider], timeout=10)
        fields = form_fields(idp.text)
        fields["email"] = email
        back = self.http.post(idp.url, data=fields, allow_redirects=False, timeout=10)
        assert back.status_code in (302, 303), back.text[:300]
        resp = self.get(back.headers["Location"])
        return self.finish_login(resp, email, organization_slug)

    def finish_login(self, resp, email, organization_slug=None):
        for _ in range(6):
            loc = resp.headers.get("Location", "")
            if resp.status_code in (302, 303) and loc.startswith("/login/organizations"):
                resp = self.get(loc)
                continue
            if resp.status_code == 200 and ('name="organization_id"' in resp.text or 'name="create_organization"' in resp.text):
                token = CSRF.search(resp.text).group(1)
                orgs = ORG_BUTTON.findall(resp.text)
                chosen = [o for o, slug in orgs if organization_slug in (None, slug)]
                if chosen:
                    resp = self.post("/login/organizations", {"csrf_token": token, "organization_id": chosen[0]})
                else:
                    name = organization_slug or email.split("@")[1].split(".")[0].capitalize()
                    resp = self.post("/login/organizations", {"csrf_token": token, "create_organization": "1",
                                                              "organization_name": name})
                continue
            if resp.status_code in (302, 303) and loc.startswith("/login/step-up"):
                page = self.get(loc)
                code = requests.get(self.live.stytch_url + "/emulator/outbox", params={"email": email},
                                    timeout=10).json()["code"]
                resp = self.post("/login/step-up", {"csrf_token": CSRF.search(page.text).group(1), "code": code})
                continue
            return resp
        raise AssertionError("login did not finish")

    def authorize(self, params: dict, decision="allow", email=None):
        """Drive /oauth/authorize to the client's redirect; returns the last response
        (a redirect to the client) or the page where the flow stopped."""
        resp = self.get("/oauth/authorize?" + urlencode(params, doseq=True))
        for _ in range(10):
            loc = resp.headers.get("Location", "")
            if resp.status_code in (302, 303) and loc.startswith("/login"):
                pending = parse_qs(urlsplit(loc).query)["pending"][0]
                resp = self.login(email, pending)
                continue
            if resp.status_code in (302, 303) and loc.startswith("/oauth/authorize"):
                resp = self.get(loc)
                continue
            if resp.status_code == 200 and 'name="decision"' in resp.text and decision:
                resp = self.post("/oauth/authorize/consent", {
                    "csrf_token": CSRF.search(resp.text).group(1),
                    "pending": PENDING.search(resp.text).group(1),
                    "decision": decision,
                })
                continue
            return resp
        raise AssertionError("too many hops")
