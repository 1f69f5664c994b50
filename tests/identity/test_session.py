"""The member session cookie (authz_server/identity/session.py), over HTTP against
the live server and the Stytch emulator: what a sign-in renews."""
from __future__ import annotations

from tests.conftest import CSRF, Browser
from tests.web.test_login import assert_page, prompt_none

ALICE = "alice@acme.test"


def test_csrf_token_is_renewed_at_sign_in(live, make_client):
    """RFC 6749 §10.12: a CSRF token seen before the sign-in (here on the sign-out
    form of the anonymous session) is refused afterwards; the signed-in session
    gets a new one, which works."""
    c = make_client(client_type="first_party")
    b = Browser(live, ALICE)
    before = CSRF.search(b.get("/logout").text).group(1)
    done = b.login()
    assert done.status_code == 303 and done.headers["Location"] == "/login/done"
    assert_page(b.post("/logout", {"csrf_token": before}), 400, "This form has expired")
    assert "code" in prompt_none(b, c)  # nothing happened
    after = CSRF.search(b.get("/logout").text).group(1)
    assert after != before
    assert "You are signed out" in b.post("/logout", {"csrf_token": after}).text
    assert prompt_none(b, c)["error"] == "login_required"
