"""Client ID metadata documents (CIMD) for the tests: a local document server
on loopback, the document's defaults, and private_key_jwt assertions (RFC 7523)."""
from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.browser import Browser
from tests.helpers import pkce_pair, redirect_params, serve_in_thread

REDIRECT = "http://127.0.0.1:53682/callback"


class DocServer:
    """path -> (status, headers, body), or a function that writes the whole raw
    response itself; counts GETs per path. On 127.0.0.1 over http, unless told
    another address and a TLS server context."""

    def __init__(self, host="127.0.0.1", tls_context=None):
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: dict[str, int] = {}
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                docs.hits[self.path] = docs.hits.get(self.path, 0) + 1
                route = docs.routes.get(self.path, (404, {}, b"not found"))
                if callable(route):
                    try:
                        route(self.wfile)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                status, headers, body = route
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if callable(body):
                    self.end_headers()
                    try:
                        body(self.wfile)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.httpd = type("DocHTTPServer", (ThreadingHTTPServer,), {"address_family": family})((host, 0), Handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        serve_in_thread(self.httpd)

    def url(self, path):
        return self.base + path

    def serve_json(self, path, doc, headers=None):
        self.routes[path] = (200, {"Content-Type": "application/json", **(headers or {})},
                             json.dumps(doc).encode())

    def document(self, path, **overrides):
        doc = {
            "client_id": self.url(path),
            "client_name": "Agent CLI",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        doc.update(overrides)
        return {k: v for k, v in doc.items() if v is not None}


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def cimd_params(client_id, challenge, redirect_uri=REDIRECT, **extra):
    """Authorization request parameters for a CIMD client (its client_id is the document URL)."""
    p = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
         "scope": "openid profile", "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256"}
    p.update(extra)
    return p


def assertion(key, client_id, aud, **claims):
    """A private_key_jwt client assertion (RFC 7523 §3) signed by ``key``, good for two minutes."""
    import secrets
    import time as _time

    from joserfc import jwt

    now = int(_time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 120,
               "jti": secrets.token_hex(8)}
    payload.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, payload, key)


def ec_key(kid):
    """A new P-256 key pair named ``kid``."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256", parameters={"kid": kid})


def code_for(live, client_id):
    """An authorization code for a CIMD client, through a member's browser: (code, verifier)."""
    verifier, challenge = pkce_pair()
    params = redirect_params(Browser(live).authorize(cimd_params(client_id, challenge)))
    assert "code" in params, params
    return params["code"], verifier
