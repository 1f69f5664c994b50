"""The device verification page (RFC 8628 §3.3, §5.1, §5.4; docs/requirements.md: A.17
item 87): behind the Stytch login, the code entered or carried by the link,
a confirmation naming the client, wrong-code lockout, CSRF, no open redirect."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from authz_server.models import Consent, DeviceAuthorization
from tests.browser import Browser, CSRF
from tests.helpers import audit_rows, device_confirm_page, device_decide, DEVICE_GRANT, device_start, REDIS_URL


def _cli(make_client, **kw):
    return make_client(client_type="third_party_public", redirect_uris=(),
                       grant_types=(DEVICE_GRANT, "refresh_token"), **kw)


def _start(live, make_client, **kw):
    cli = _cli(make_client, **kw)
    resp = device_start(live, cli, scope="openid email")
    assert resp.status_code == 200, resp.text
    return cli, resp.json()


def _status(live) -> str:
    s = live.db.session
    try:
        return s.scalars(select(DeviceAuthorization)).one().status
    finally:
        s.remove()


def test_a17_87_login_first_then_back_to_the_code(live, make_client):
    """The link the device shows leads through the login and back to the
    confirmation of that very code."""
    _, started = _start(live, make_client, name="Deploy Bot")
    browser = Browser(live)
    first = browser.get(started["verification_uri_complete"])
    assert first.status_code == 302 and first.headers["Location"].startswith("/login?next=")
    page = device_confirm_page(browser, started["verification_uri_complete"])
    assert page.status_code == 200
    assert "Deploy Bot" in page.text and started["user_code"] in page.text
    assert "Confirm who you are" in page.text and "See your email address" in page.text
    assert "alice@acme.test" in page.text


def test_a17_87_typed_code_ignores_case_spaces_and_dash(live, make_client):
    _, started = _start(live, make_client)
    browser = Browser(live)
    entry = device_confirm_page(browser, "/device")
    assert entry.status_code == 200 and 'name="user_code"' in entry.text
    typed = " " + started["user_code"].replace("-", " ").lower() + " "
    page = browser.post("/device", {"csrf_token": CSRF.search(entry.text).group(1), "user_code": typed})
    assert page.status_code == 200 and started["user_code"] in page.text
    assert device_decide(browser, page).status_code == 200
    assert _status(live) == "approved"


def test_a17_87_ten_wrong_codes_lock_out(live, make_client):
    """§5.1: brute-forcing user codes is rate-limited per member; the lockout
    holds even for a right code until it lifts."""
    _, started = _start(live, make_client)
    browser = Browser(live)
    entry = device_confirm_page(browser, "/device")
    token = CSRF.search(entry.text).group(1)
    for i in range(10):
        wrong = browser.post("/device", {"csrf_token": token, "user_code": f"BCDF-GHJ{'KLMNPQRSTV'[i]}"})
        assert wrong.status_code == 400 and "not valid or has expired" in wrong.text
    locked = browser.post("/device", {"csrf_token": token, "user_code": started["user_code"]})
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text
    # Another member is not locked out by alice's mistakes.
    other = Browser(live, email="bob@acme.test")
    page = device_confirm_page(other, started["verification_uri_complete"])
    assert page.status_code == 200 and started["user_code"] in page.text


def test_wrong_codes_posted_to_device_decision_are_limited_like_device_and_share_the_bucket(live, make_client):
    """RFC 8628 §5.1: /device/decision approves a code directly, so guessing codes
    there is limited as at /device, with the same per-member bucket: wrong codes
    at either page count together, and once locked both pages refuse, even the
    right code, and approve nothing."""
    _, started = _start(live, make_client)
    browser = Browser(live)
    entry = device_confirm_page(browser, "/device")
    token = CSRF.search(entry.text).group(1)
    wrong = (f"BCDF-GHJ{c}" for c in "KLMNPQRSTVWXZ")
    for _ in range(5):
        resp = browser.post("/device", {"csrf_token": token, "user_code": next(wrong)})
        assert resp.status_code == 400
    for _ in range(5):
        resp = browser.post("/device/decision", {"csrf_token": token, "user_code": next(wrong), "decision": "allow"})
        assert resp.status_code == 400 and "no longer pending" in resp.text
    for path in ("/device", "/device/decision"):
        locked = browser.post(path, {"csrf_token": token, "user_code": started["user_code"], "decision": "allow"})
        assert locked.status_code == 429 and "Too many wrong codes" in locked.text, (path, locked.status_code)
        assert int(locked.headers["Retry-After"]) > 0
    assert _status(live) == "pending"

    # Ten wrong codes at /device/decision alone lock /device too; another member is not locked out.
    live.server.limits.device_code.reset()
    for _ in range(10):
        resp = browser.post("/device/decision", {"csrf_token": token, "user_code": "BCDF-GHJK", "decision": "deny"})
        assert resp.status_code == 400
    locked = browser.post("/device", {"csrf_token": token, "user_code": started["user_code"]})
    assert locked.status_code == 429
    other = Browser(live, email="bob@acme.test")
    page = device_confirm_page(other, started["verification_uri_complete"])
    assert device_decide(other, page).status_code == 200
    assert _status(live) == "approved"


@pytest.mark.parametrize("store", ["process", "redis"])
def test_parallel_wrong_codes_are_evaluated_at_most_up_to_the_limit(live, make_server_with, request, store):
    """RFC 8628 §5.1: the wrong-code limit is spent in the same atomic step that
    checks it, so wrong codes sent in parallel (threads; with Redis, to two
    servers sharing the bucket) are evaluated at most as often as the limit
    allows, and the rest get 429."""
    limit = live.settings.device_code_attempts
    servers = [live]
    if store == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        servers = [make_server_with(redis_url=REDIS_URL, rate_limit_prefix=prefix) for _ in range(2)]
    browser = Browser(servers[0])
    entry = device_confirm_page(browser, "/device")
    token = CSRF.search(entry.text).group(1)
    attempts = 60
    LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # the user-code alphabet (RFC 8628 §6.1): real lookups, no match
    start = threading.Barrier(attempts)

    def guess(i):
        http = requests.Session()
        http.cookies.update(browser.http.cookies)
        start.wait(timeout=30)
        return http.post(servers[i % len(servers)].url + "/device", allow_redirects=False, timeout=30,
                         data={"csrf_token": token, "user_code": "BCDF-" + "".join(LETTERS[i // 20 ** k % 20] for k in range(4))})

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        answers = list(pool.map(guess, range(attempts)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {400, 429}, statuses
    evaluated = [a for a in answers if a.status_code == 400]
    assert all("not valid or has expired" in a.text for a in evaluated)
    assert len(evaluated) <= limit, (len(evaluated), limit)


def test_a17_87_approval_is_remembered_and_audited(live, make_client):
    cli, started = _start(live, make_client)
    browser = Browser(live)
    done = device_decide(browser, device_confirm_page(browser, started["verification_uri_complete"]))
    assert "Device connected" in done.text
    s = live.db.session
    try:
        consent = s.scalars(select(Consent).where(Consent.client_id == cli.client_id)).one()
        assert set(consent.scopes) == {"openid", "email"}
    finally:
        s.remove()
    (event,) = audit_rows(live, "consent_granted")
    assert event.details.get("flow") == "device"


def test_a17_87_a_code_is_decided_once(live, make_client):
    _, started = _start(live, make_client)
    browser = Browser(live)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    assert device_decide(browser, page, "allow").status_code == 200
    again = device_decide(browser, page, "deny")
    assert again.status_code == 400 and "expired" in again.text
    assert _status(live) == "approved"


def test_csrf_is_required(live, make_client):
    _, started = _start(live, make_client)
    browser = Browser(live)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    resp = browser.post("/device/decision", {"user_code": started["user_code"], "decision": "allow"})
    assert resp.status_code == 400
    resp = browser.post("/device", {"user_code": started["user_code"]})
    assert resp.status_code == 400
    assert _status(live) == "pending" and page.status_code == 200


def test_decision_without_choice_or_session(live, make_client):
    _, started = _start(live, make_client)
    browser = Browser(live)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    resp = device_decide(browser, page, "maybe")
    assert resp.status_code == 400 and "Choose Allow or Deny" in resp.text
    anon = requests.post(live.url + "/device/decision", data={"user_code": started["user_code"], "decision": "allow"},
                         allow_redirects=False, timeout=10)
    assert anon.status_code == 400  # no CSRF token without a session
    assert _status(live) == "pending"


def test_organization_bound_client_needs_a_member_of_it(live, make_client):
    _, started = _start(live, make_client, organization_id="organization-test-globex")
    browser = Browser(live)
    page = device_confirm_page(browser, started["verification_uri_complete"])
    assert page.status_code == 403 and "another organization" in page.text
    assert _status(live) == "pending"


def test_login_next_is_not_an_open_redirect(live):
    browser = Browser(live)
    for target in ("https://evil.example/device", "//evil.example/device", "/oauth/token", "/device\\@evil"):
        resp = browser.login(start="/login?next=" + requests.utils.quote(target, safe=""))
        assert resp.status_code == 303 and resp.headers["Location"] == "/login/done", (target, resp.headers)
