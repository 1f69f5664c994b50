"""Unit tests of the redirect URI rules (authz_server/rules/redirect_uris.py,
docs/requirements.md: A4-24, 25, 26, 28 and 30). The same rules are exercised
over HTTP in tests/web/test_authorize.py; these cover the corner cases cheaply."""
from __future__ import annotations

import pytest

from authz_server.rules.redirect_uris import all_loopback, matches, validate_registration
from authz_server.storage.clients import ClientInputError

# --- A.4 #24 exact string comparison ------------------------------------------------


@pytest.mark.parametrize("requested", [
    "https://app.example/cb/",
    "https://APP.example/cb",
    "HTTPS://app.example/cb",
    "https://app.example/CB",
    "https://app.example/cb?",
    "https://app.example/cb?x=1",
    "https://app.example/cb#",
    "https://app.example:443/cb",
    "https://app.example/%63b",
    "https://app.example/cb/.",
    "https://app.example//cb",
    "https://app.example/cb ",
    " https://app.example/cb",
    "https://app.example.evil.example/cb",
    "https://evil.example/?https://app.example/cb",
    "",
])
def test_a4_24_only_the_identical_string_matches(requested):
    """A.4 #24: simple string comparison (RFC 3986 §6.2.1): no normalization at all."""
    registered = ["https://app.example/cb"]
    assert matches(registered, "https://app.example/cb")
    assert not matches(registered, requested)


def test_a4_24_each_registered_uri_is_its_own_candidate():
    """A.4 #24: a request matches one registered entry, not a mix of several."""
    registered = ["https://a.example/cb", "https://b.example/other"]
    assert matches(registered, "https://a.example/cb") and matches(registered, "https://b.example/other")
    assert not matches(registered, "https://a.example/other")
    assert not matches(registered, "https://b.example/cb")
    assert not matches([], "https://a.example/cb")


# --- A.4 #25 loopback port exception -------------------------------------------------


@pytest.mark.parametrize("registered,requested", [
    ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"),
    ("http://127.0.0.1:8080/callback", "http://127.0.0.1:51234/callback"),
    ("http://127.0.0.1:8080/callback", "http://127.0.0.1/callback"),
    ("http://[::1]/callback", "http://[::1]:51234/callback"),
    ("http://[::1]:3000/callback", "http://[::1]:65535/callback"),
    ("http://localhost/callback", "http://localhost:1/callback"),
    ("http://127.0.0.1/cb?a=1&b=2", "http://127.0.0.1:4000/cb?a=1&b=2"),
    ("http://127.0.0.1", "http://127.0.0.1:4000"),
])
def test_a4_25_loopback_port_may_vary(registered, requested):
    """A.4 #25: for http loopback redirect URIs any port is accepted (RFC 8252 §7.3),
    whether the registered URI has a port or not."""
    assert matches([registered], requested)


@pytest.mark.parametrize("requested", [
    "http://127.0.0.1:51234/other",
    "http://127.0.0.1:51234/callback/",
    "http://127.0.0.1:51234/Callback",
    "http://127.0.0.1:51234/callback?",
    "http://127.0.0.1:51234/callback?x=1",
    "http://127.0.0.1:51234/callback#x",
    "http://evil:51234/callback",
    "http://localhost:51234/callback",
    "http://[::1]:51234/callback",
    "http://127.0.0.2:51234/callback",
    "http://127.1:51234/callback",
    "http://2130706433:51234/callback",
    "https://127.0.0.1:51234/callback",
    "HTTP://127.0.0.1:51234/callback",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.1:port/callback",
    "http://127.0.0.1:-1/callback",
    "http://user@127.0.0.1:51234/callback",
    "http://127.0.0.1.evil.example:51234/callback",
    "http://127.0.0.1:51234@evil.example/callback",
    "http://127.0.0.1:51234\\@evil.example/callback",
])
def test_a4_25_only_the_port_may_vary(requested):
    """A.4 #25: scheme, host, path and query still match exactly; nothing else varies."""
    assert not matches(["http://127.0.0.1/callback"], requested)


@pytest.mark.parametrize("requested", ["http://LOCALHOST:5000/cb", "http://localhost.:5000/cb"])
def test_a4_25_loopback_host_is_compared_exactly(requested):
    """A.4 #25: the host is compared as a string too (no case folding, no trailing dot)."""
    assert not matches(["http://localhost/cb"], requested)


@pytest.mark.parametrize("registered,requested", [
    ("https://127.0.0.1/cb", "https://127.0.0.1:8443/cb"),
    ("https://app.example:8443/cb", "https://app.example:9443/cb"),
    ("https://app.example/cb", "https://app.example:8443/cb"),
    ("http://app.example/cb", "http://app.example:8080/cb"),
    ("com.example.app:/cb", "com.example.app:5/cb"),
])
def test_a4_25_port_exception_is_only_for_loopback_http(registered, requested):
    """A.4 #25: outside http loopback the port is part of the exact string."""
    assert not matches([registered], requested)


def test_a4_30_all_loopback():
    """A.4 #30: the consent warning fires only when every redirect URI is loopback."""
    assert all_loopback(["http://127.0.0.1/cb", "http://localhost:3000/cb", "http://[::1]/cb"])
    assert not all_loopback(["http://127.0.0.1/cb", "https://app.example/cb"])
    assert not all_loopback(["https://app.example/cb"])
    assert not all_loopback(["cursor://callback"])
    assert not all_loopback([])


# --- A.4 #26 and #28 registration rules ----------------------------------------------


@pytest.mark.parametrize("uri", [
    "https://app.example/cb",
    "https://app.example/cb?t=1",
    "http://127.0.0.1/callback",
    "http://127.0.0.1:8080/callback",
    "http://[::1]:8080/callback",
    "http://localhost:3000/callback",
    "com.example.app:/oauth2redirect",
    "cursor://anysphere.cursor-retrieval/oauth/callback",
])
def test_a4_28_acceptable_redirect_uris_register(uri):
    """A.4 #28: https, loopback http and (policy, C-13) private-use schemes of native apps
    (RFC 8252 §7.1) can be registered; a query is allowed (A.4 #26)."""
    assert validate_registration(uri) is None


@pytest.mark.parametrize("uri,why", [
    ("https://app.example/cb#x", "fragment"),
    ("https://app.example/cb#", "fragment"),
    ("/cb", "absolute"),
    ("app.example/cb", "absolute"),
    ("", "non-empty"),
    ("https://app.example/c b", "spaces"),
    ("http://example.com/cb", "http"),
    ("HTTP://example.com/cb", "http"),
    ("http://localhost.example.com/cb", "http"),
    ("http://127.0.0.1.nip.io/cb", "http"),
    ("javascript:alert(1)", "forbidden"),
    ("JavaScript:alert(1)", "forbidden"),
    ("data:text/html,hi", "forbidden"),
    ("vbscript:msgbox", "forbidden"),
    ("file:///etc/passwd", "forbidden"),
    ("https:///cb", "host"),
    ("https://" + "a" * 2000 + ".example/cb", ""),
])
def test_a4_26_28_unacceptable_redirect_uris_are_refused(uri, why):
    """A.4 #26: absolute, no fragment. A.4 #28: no plain http outside loopback and no
    javascript:, data:, vbscript: or file: URIs."""
    reason = validate_registration(uri)
    assert reason is not None and why in reason, reason


def test_a4_28_registration_goes_through_the_rules(live, make_client):
    """A.4 #26/#28: creating a client applies the same rules (no way around them)."""
    for bad in ("http://example.com/cb", "javascript:x", "https://app.example/cb#x"):
        with pytest.raises(ClientInputError):
            make_client(redirect_uris=(bad,))
    assert make_client(redirect_uris=("http://127.0.0.1/cb",)).client_id
