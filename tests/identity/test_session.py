"""The member session cookie (authz_server/identity/session.py), over HTTP against
the live server and the Stytch emulator: what a sign-in renews (the session id,
the CSRF token) and what a logout ends for every copy of the cookie
(storage/member_sessions.py)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from tests.browser import CSRF, Browser
from tests.login import BOB, assert_page, cookie_session, later, prompt_none, signed_in

ALICE = "alice@acme.test"


def ended_rows(live) -> list:
    from authz_server.models import EndedMemberSession

    s = live.db.session
    try:
        return list(s.scalars(select(EndedMemberSession)))
    finally:
        s.remove()


def log_out(b: Browser):
    page = b.get("/logout")
    resp = b.post("/logout", {"csrf_token": CSRF.search(page.text).group(1)})
    assert resp.status_code == 200 and "You are signed out" in resp.text, resp.text[:300]
    return resp


def copy_of(b: Browser, email: str) -> Browser:
    """Another browser holding a copy of ``b``'s cookies as they are now."""
    thief = Browser(b.live, email)
    thief.http.cookies.update(b.http.cookies)
    return thief


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


def test_session_cookie_copy_stops_working_after_logout(live, make_client):
    """A copy of the session cookie taken before a logout no longer signs anyone in
    afterwards, although its Stytch session JWT is still fresh: the logout recorded
    the session id (as a digest, never in clear) as ended until the cookie's own
    lifetime is over. A second logout with the copy is fine. Rows past their expiry
    go when the next logout is recorded."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    sid = cookie_session(b).get("sid")
    thief = copy_of(b, BOB)
    assert "code" in prompt_none(thief, c)
    lifetime = timedelta(minutes=live.settings.member_session_minutes)

    log_out(b)
    p = prompt_none(thief, c, state="s-copy")
    assert (p["error"], p["state"]) == ("login_required", "s-copy")
    assert "member" not in cookie_session(thief)
    [row] = ended_rows(live)
    assert row.session_id_hash == hashlib.sha256(sid.encode()).hexdigest() != sid
    assert abs(row.expires_at - (datetime.now(timezone.utc) + lifetime)) < timedelta(minutes=1)

    second = copy_of(b, BOB)  # b's cookie after the logout: signed out
    assert prompt_none(second, c)["error"] == "login_required"
    again = signed_in(live, BOB)
    thief2 = copy_of(again, BOB)
    log_out(again)
    log_out(thief2)  # the same session ended twice: no error, one row
    earlier = {r.session_id_hash for r in ended_rows(live)}
    assert len(earlier) == 2

    with later(lifetime.total_seconds() + 120):
        late = signed_in(live, ALICE)
        late_sid = cookie_session(late)["sid"]
        log_out(late)
        [left] = ended_rows(live)  # the expired rows went in passing
        assert left.session_id_hash == hashlib.sha256(late_sid.encode()).hexdigest()
        assert left.session_id_hash not in earlier


def test_session_cookie_without_a_session_id_counts_as_signed_out(live, make_client):
    """A member cookie with no session id (issued before session ids existed) cannot
    be checked against the ended sessions: it is treated as signed out."""
    c = make_client(client_type="first_party")
    b = signed_in(live, BOB)
    data = cookie_session(b)
    serializer = live.app.session_interface.get_signing_serializer(live.app)

    def browser_with(payload) -> Browser:
        other = Browser(live, BOB)
        other.http.cookies.set("authz_session", serializer.dumps(payload), domain="127.0.0.1", path="/")
        return other

    assert "code" in prompt_none(browser_with(data), c)  # the same cookie, signed again, works
    data.pop("sid")
    assert prompt_none(browser_with(data), c)["error"] == "login_required"
    assert "code" in prompt_none(b, c)
