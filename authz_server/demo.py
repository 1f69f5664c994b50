"""The demo seeded by `make run`: a confidential web client and a public CLI
client (device flow, RFC 8628), with fixed ids.

The web client's secret is regenerated at every start (only the digest is
stored) and printed once to the console, with a PKCE pair (RFC 7636) drawn at
the same time, the authorization URL that uses it, and the `curl` line of the
code exchange."""
from __future__ import annotations

import secrets
from urllib.parse import quote, urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .db import Database
from .storage import clients as store

DEMO_CLIENT_ID = "demo-client"
DEMO_REDIRECT_URI = "http://127.0.0.1:8765/callback"
DEMO_MEMBER = "alice@acme.test"
DEMO_CLI_ID = "demo-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def seed(settings) -> str:
    db = Database(settings.database_url)
    s = db.session
    client = store.get(s, DEMO_CLIENT_ID)
    if client is None:
        client, _ = store.create(s, name="Demo App", client_type="third_party", redirect_uris=[DEMO_REDIRECT_URI],
                                 scopes=["openid", "profile", "email", "offline_access"],
                                 grant_types=["authorization_code", "refresh_token", "client_credentials"],
                                 actor="demo")
        client.client_id = DEMO_CLIENT_ID
        s.flush()
    if store.get(s, DEMO_CLI_ID) is None:
        cli, _ = store.create(s, name="Demo CLI", client_type="third_party_public",
                              scopes=["openid", "profile", "email", "offline_access"],
                              grant_types=[DEVICE_GRANT, "refresh_token"], actor="demo")
        cli.client_id = DEMO_CLI_ID
        s.flush()
    secret = store.rotate_secret(s, client, actor="demo")
    s.commit()
    db.dispose()
    iss = settings.issuer
    # RFC 7636 §4.1-4.2: a fresh verifier each start, and its S256 challenge.
    verifier = secrets.token_urlsafe(48)
    authorize = f"{iss}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": DEMO_CLIENT_ID, "redirect_uri": DEMO_REDIRECT_URI,
        "scope": "openid profile email", "state": "demo", "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }, quote_via=quote)
    exchange = (f"curl -u {DEMO_CLIENT_ID}:{secret} -d grant_type=authorization_code -d code=CODE "
                f"-d redirect_uri={DEMO_REDIRECT_URI} -d code_verifier={verifier} {iss}/oauth/token")
    return f"""
  authz_server is running at {iss}
  Discovery:      {iss}/.well-known/openid-configuration
  Sign in as:     {DEMO_MEMBER}  (Acme admin; bob@acme.test is a member too)
  Demo client:    client_id     = {DEMO_CLIENT_ID}
                  client_secret = {secret}
                  redirect_uri  = {DEMO_REDIRECT_URI}
  Try it:         {authorize}
                  (code_verifier = {verifier})
                  sign in and allow; the browser then goes to {DEMO_REDIRECT_URI}?code=…
                  (nothing listens there: copy the code from the address bar; it lives {settings.code_ttl} s) and run
                  {exchange}
                  with CODE replaced by that code.
  Device flow:    curl -d client_id={DEMO_CLI_ID} {iss}/oauth/device_authorization
                  open the verification_uri_complete it returns, then poll:
                  curl -d client_id={DEMO_CLI_ID} -d grant_type={DEVICE_GRANT} -d device_code=… {iss}/oauth/token
"""
