"""The one mapping of errors to responses (authz_server.errors): each kind of
error gives its status, content type, body shape and cache headers, and no other
module builds error responses or sets no-store itself."""
from __future__ import annotations

import ast
import pathlib
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from werkzeug.exceptions import MethodNotAllowed, NotFound

from authz_server import create_app, errors
from authz_server.config import Settings
from authz_server.db import Database
from authz_server.identity.gateway import IdentityUnavailable
from authz_server.oauth.prompts import Interaction

PACKAGE = pathlib.Path(errors.__file__).parent
ISSUER = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('errors') / 'authz.db'}"
    return create_app(Settings(issuer=ISSUER, database_url=url, environment="test"), Database(url))


def _answer(app, path, exc, method="GET", headers=None):
    """What the server sends for ``exc`` raised on ``path``: the mapping, then
    the after-request hook (security and cache headers)."""
    with app.test_request_context(path, method=method, headers=headers or {}):
        if not isinstance(exc, BaseException):  # built in the request context
            exc = exc()
        return app.process_response(errors.render(errors.to_app_error(exc)))


def _json(resp, status, error):
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["error"] == error and isinstance(body["error_description"], str)
    return body


def _page(resp, status):
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    assert "<html" in resp.get_data(as_text=True).lower()


def test_page_error_is_the_html_page_on_any_endpoint(app):
    resp = _answer(app, "/oauth/revoke", errors.PageError("Title here", "Message here", hint="Hint here", status=403))
    _page(resp, 403)
    text = resp.get_data(as_text=True)
    assert "Title here" in text and "Message here" in text and "Hint here" in text


def test_api_error_is_the_json_error_and_never_stored(app):
    resp = _answer(app, "/oauth/introspect", errors.ApiError("invalid_token", "bad", 401,
                                                              {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    assert _json(resp, 401, "invalid_token") == {"error": "invalid_token", "error_description": "bad"}
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"


def test_registration_error_has_the_rfc7591_shape(app):
    resp = _answer(app, "/oauth/register", errors.RegistrationError("invalid_redirect_uri", "no", 400), method="POST")
    assert _json(resp, 400, "invalid_redirect_uri") == {"error": "invalid_redirect_uri", "error_description": "no"}
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"


def test_interaction_redirects_to_the_client_with_state_and_iss(app):
    err = Interaction("login_required", "The member is not signed in").at("https://app.example/cb?x=1", "s1")
    resp = _answer(app, "/oauth/authorize", err)
    assert resp.status_code == 302
    loc = urlsplit(resp.headers["Location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "app.example", "/cb")
    assert parse_qs(loc.query) == {"x": ["1"], "error": ["login_required"],
                                   "error_description": ["The member is not signed in"], "state": ["s1"],
                                   "iss": [ISSUER]}
    assert resp.headers["Cache-Control"] == "no-store"
    # RFC 9700 §4.12: 303 after a POST.
    assert _answer(app, "/oauth/authorize", err, method="POST").status_code == 303


@pytest.mark.parametrize("path,kind", [("/oauth/token", "json"), ("/.well-known/jwks.json", "json"),
                                       ("/login", "page"), ("/org/acme/login", "page")])
def test_throttled_is_429_with_retry_after_by_endpoint_kind(app, path, kind):
    resp = _answer(app, path, errors.Throttled(7, "Too many"))
    if kind == "json":
        _json(resp, 429, "temporarily_unavailable")
    else:
        _page(resp, 429)
        assert "Wait 7 seconds" in resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "7"
    assert resp.headers["Cache-Control"] == "no-store"


def test_authlib_error_with_a_validated_redirect_uri_goes_back_to_the_client(app):
    e = InvalidRequestError("Missing code_challenge", redirect_uri="https://app.example/cb")
    resp = _answer(app, "/oauth/authorize", lambda: errors.from_oauth2(e, "s2"))
    assert resp.status_code == 302
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["state"] == ["s2"]


def test_authlib_error_without_redirect_uri_is_a_page_never_a_redirect(app):
    resp = _answer(app, "/oauth/authorize", InvalidRequestError("bad client"))
    _page(resp, 400)
    assert "Location" not in resp.headers
    assert "error: invalid_request" in resp.get_data(as_text=True)


def test_authlib_error_at_an_api_endpoint_is_its_json_error(app):
    resp = _answer(app, "/oauth/revoke", InvalidClientError(status_code=401, description="who?"))
    _json(resp, 401, "invalid_client")
    assert resp.headers["Cache-Control"] == "no-store"


def test_http_errors_by_endpoint_kind(app):
    resp = _answer(app, "/oauth/token", MethodNotAllowed(valid_methods=["POST"]))
    _json(resp, 405, "invalid_request")
    assert resp.headers["Allow"] == "POST"
    assert resp.headers["Cache-Control"] == "no-store"
    assert _json(_answer(app, "/oauth/nothing", NotFound()), 404, "not_found")["error_description"] == "Not found"
    _page(_answer(app, "/login/nothing", NotFound()), 404)


def test_identity_outage_is_503_with_retry_after(app):
    e = IdentityUnavailable("Sign-in is unavailable", "Try later")
    _json(_answer(app, "/oauth/token", e), 503, "temporarily_unavailable")
    resp = _answer(app, "/oauth/authorize", e)
    _page(resp, 503)
    assert resp.headers["Retry-After"] == "5"


def test_unexpected_error_is_500_server_error(app):
    _json(_answer(app, "/oauth/token", RuntimeError("boom")), 500, "server_error")
    _page(_answer(app, "/login", RuntimeError("boom")), 500)


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "stytch_emulator" not in path.parts:
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _is_error_body(node) -> bool:
    """jsonify(error=...) or a dict literal with an "error" key."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "jsonify":
        return any(k.arg == "error" for k in node.keywords)
    return isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "error" for k in node.keys)


def test_only_errors_builds_error_responses_and_registers_error_handlers():
    offenders = []
    for path, tree in _modules():
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("errorhandler",
                                                                                  "register_error_handler"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} registers an error handler")
        if "web" in path.relative_to(PACKAGE).parts:
            for node in ast.walk(tree):
                if _is_error_body(node):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} builds an error body")
    assert offenders == []


def test_no_store_is_set_only_by_errors():
    # registration.cimd reads the Cache-Control of fetched documents; it sets nothing.
    allowed = {PACKAGE / "errors.py", PACKAGE / "oauth" / "registration" / "cimd.py"}
    offenders = []
    for path, tree in _modules():
        if path in allowed:
            continue
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and "no-store" in node.value and id(node) not in docstrings]
    assert offenders == []
