"""The audit log (every admin and consent action lands in the audit
log; no secret is stored or logged in clear).

Each flow runs against the live server (or, for admin actions, through the
`authz-server` CLI on the same database); the test then reads the
``audit_events`` rows and checks the event name, who and what they name, and
that no secret or token value appears anywhere in any row."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from authz_server.cli import main as cli
from authz_server.models import AuditEvent
from authz_server.security import digest
from tests.helpers import auth_params, pkce_pair, redirect_params


def _events(live, name=None):
    s = live.db.session
    try:
        q = select(AuditEvent).order_by(AuditEvent.id)
        if name:
            q = q.where(AuditEvent.event == name)
        return [
            {"event": e.event, "client_id": e.client_id, "subject": e.subject, "organization_id": e.organization_id,
             "grant_id": e.grant_id, "actor": e.actor, "ip": e.ip, "details": dict(e.details or {}),
             "created_at": e.created_at}
            for e in s.scalars(q).all()
        ]
    finally:
        s.remove()


def _one(live, name):
    rows = _events(live, name)
    assert len(rows) == 1, (name, [r["event"] for r in _events(live)])
    return rows[0]


def _claims(token):
    import base64

    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _assert_no_secrets(live, secrets):
    """No secret, token, code or verifier, nor its SHA-256 digest, in any column of any row."""
    needles = {s for s in secrets if isinstance(s, str) and len(s) >= 16}
    needles |= {digest(s) for s in needles}
    # Token fragments too: a JWT's signature or payload alone would be as bad.
    for s in list(needles):
        if s.count(".") == 2:
            needles |= {part for part in s.split(".") if len(part) > 16}
    rows = _events(live)
    assert rows
    for row in rows:
        text = json.dumps({k: v for k, v in row.items() if k != "created_at"}, default=str)
        leaked = [n[:12] + "…" for n in needles if n in text]
        assert not leaked, (row["event"], leaked)


def _tokens(body):
    """The secret values of a token response (not its scope or lifetime)."""
    return [body[k] for k in ("access_token", "refresh_token", "id_token") if k in body]


def _code_flow(live, browser, token_post, client, **extra):
    verifier, challenge = pkce_pair()
    p = redirect_params(browser.authorize(auth_params(client, challenge, **extra)))
    r = token_post({"grant_type": "authorization_code", "code": p["code"], "redirect_uri": client.redirect_uri,
                    "code_verifier": verifier}, auth=(client.client_id, client.client_secret))
    assert r.status_code == 200, r.text
    return p["code"], verifier, r.json()


def test_audit_token_issued(live, make_client, browser, token_post):
    """Each issuance is logged with client, member, organization, grant and grant type."""
    c = make_client(scopes=("openid", "profile", "email", "offline_access"))
    code, verifier, t = _code_flow(live, browser, token_post, c, scope="openid email offline_access")
    row = _one(live, "token_issued")
    claims = _claims(t["access_token"])
    assert row["client_id"] == c.client_id
    assert row["subject"] == claims["sub"]
    assert row["organization_id"] == claims["organization_id"]
    assert row["grant_id"] == claims["gid"]
    assert row["details"]["grant_type"] == "authorization_code"
    assert row["details"]["jti"] == claims["jti"]
    assert row["details"]["refresh_token"] is True and row["details"]["id_token"] is True
    assert row["ip"] == "127.0.0.1"
    assert row["created_at"].tzinfo is not None

    r = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]},
                   auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text
    rows = _events(live, "token_issued")
    assert [x["details"]["grant_type"] for x in rows] == ["authorization_code", "refresh_token"]
    assert rows[1]["grant_id"] == row["grant_id"]
    _assert_no_secrets(live, [c.client_secret, code, verifier, *_tokens(t), *_tokens(r.json())])


def test_audit_token_issued_client_credentials(live, make_client, token_post):
    """Machine tokens are logged too; the subject is the client itself."""
    c = make_client(grant_types=("client_credentials",), redirect_uris=())
    r = token_post({"grant_type": "client_credentials"}, auth=(c.client_id, c.client_secret))
    assert r.status_code == 200, r.text
    row = _one(live, "token_issued")
    assert row["client_id"] == row["subject"] == c.client_id
    assert row["details"]["grant_type"] == "client_credentials"
    assert row["details"]["refresh_token"] is False
    _assert_no_secrets(live, [c.client_secret, r.json()["access_token"]])


def test_audit_refresh_token_reused(live, make_client, browser, token_post):
    """RFC 9700 §4.14.2: reuse of a rotated refresh token (after the grace window) is logged with its grant."""
    c = make_client(scopes=("openid", "offline_access"))
    code, verifier, t = _code_flow(live, browser, token_post, c, scope="openid offline_access")
    auth = (c.client_id, c.client_secret)
    r1 = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, auth=auth)
    assert r1.status_code == 200, r1.text
    later = datetime.now(timezone.utc) + timedelta(seconds=live.settings.refresh_grace_seconds + 5)
    with time_machine.travel(later, tick=True):
        r2 = token_post({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, auth=auth)
    assert r2.status_code == 400 and r2.json()["error"] == "invalid_grant"
    row = _one(live, "refresh_token_reused")
    assert row["client_id"] == c.client_id
    assert row["grant_id"] == _claims(t["access_token"])["gid"]
    assert row["subject"] == _claims(t["access_token"])["sub"]
    assert row["organization_id"]
    _assert_no_secrets(live, [c.client_secret, code, verifier, *_tokens(t), *_tokens(r1.json())])


def test_audit_code_replayed(live, make_client, browser, token_post):
    """RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a valid second redemption of a code is logged (once)."""
    c = make_client()
    code, verifier, t = _code_flow(live, browser, token_post, c)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": c.redirect_uri,
            "code_verifier": verifier}
    r = token_post(data, auth=(c.client_id, c.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    row = _one(live, "code_replayed")
    assert row["client_id"] == c.client_id
    assert row["grant_id"] == _claims(t["access_token"])["gid"]
    assert row["subject"] == _claims(t["access_token"])["sub"]
    # A replay with a wrong verifier is not a valid redemption: no event, nothing revoked (§7.5.3).
    r = token_post({**data, "code_verifier": "x" * 50}, auth=(c.client_id, c.client_secret))
    assert r.status_code == 400
    assert len(_events(live, "code_replayed")) == 1
    _assert_no_secrets(live, [c.client_secret, code, verifier, *_tokens(t)])


def test_audit_consent_granted_and_denied(live, make_client, browser):
    """Every consent decision is logged with client, member, organization (and the scopes granted)."""
    c = make_client(client_type="third_party")
    verifier, challenge = pkce_pair()
    p = redirect_params(browser.authorize(auth_params(c, challenge, scope="openid email"), decision="deny"))
    assert p["error"] == "access_denied"
    denied = _one(live, "consent_denied")
    assert denied["client_id"] == c.client_id and denied["subject"].startswith("member-")
    assert denied["organization_id"]
    assert _events(live, "consent_granted") == []

    verifier, challenge = pkce_pair()
    p = redirect_params(browser.authorize(auth_params(c, challenge, scope="openid email"), decision="allow"))
    assert "code" in p
    granted = _one(live, "consent_granted")
    assert granted["client_id"] == c.client_id
    assert granted["subject"] == denied["subject"]
    assert granted["organization_id"] == denied["organization_id"]
    assert granted["details"]["scope"] == "openid email"
    assert granted["ip"] == "127.0.0.1"
    _assert_no_secrets(live, [c.client_secret, p["code"], verifier, *browser.http.cookies.values()])


def test_audit_first_party_skips_consent_and_logs_none(live, make_client, browser):
    """First-party clients skip consent, so no consent event is written."""
    c = make_client(client_type="first_party")
    _, challenge = pkce_pair()
    assert "code" in redirect_params(browser.authorize(auth_params(c, challenge), decision=None))
    assert _events(live, "consent_granted") == [] and _events(live, "consent_denied") == []


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
def test_audit_token_revoked(live, make_client, browser, token_post, which):
    """RFC 7009 §2.1: a revocation is logged with the kind of token and its grant."""
    c = make_client(scopes=("openid", "offline_access"))
    code, verifier, t = _code_flow(live, browser, token_post, c, scope="openid offline_access")
    r = requests.post(live.url + "/oauth/revoke", data={"token": t[which]}, auth=(c.client_id, c.client_secret),
                      timeout=10)
    assert r.status_code == 200, r.text
    row = _one(live, "token_revoked")
    assert row["client_id"] == c.client_id
    assert row["details"]["kind"] == which
    assert row["grant_id"] == _claims(t["access_token"])["gid"]
    # Revoking an unknown token logs nothing (nothing was revoked).
    requests.post(live.url + "/oauth/revoke", data={"token": "not-a-token"}, auth=(c.client_id, c.client_secret),
                  timeout=10)
    assert len(_events(live, "token_revoked")) == 1
    _assert_no_secrets(live, [c.client_secret, code, verifier, *_tokens(t)])


def test_audit_client_administration(live, database_url):
    """Create, update, disable, rotate the secret and delete a client each
    land in the audit log with the actor; the secrets never do."""
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "AUTHZ_ENV": "test", "AUTHZ_ISSUER": live.url,
           "AUTHZ_KEY_ENCRYPTION_KEY": live.settings.key_encryption_key}

    def run(*args):
        res = runner.invoke(cli, list(args), env=env)
        assert res.exit_code == 0, res.output
        return res.output

    created = json.loads(run("clients", "create", "--name", "Audited", "--type", "third_party",
                             "--redirect-uri", "https://app.example/cb", "--json"))
    cid = created["client_id"]
    run("clients", "update", cid, "--name", "Audited 2", "--redirect-uri", "https://app.example/cb2")
    run("clients", "disable", cid)
    run("clients", "disable", cid, "--enable")
    rotated = json.loads(run("clients", "rotate-secret", cid, "--json"))
    run("clients", "delete", cid, "--yes")
    # A refused change logs nothing.
    assert runner.invoke(cli, ["clients", "update", "client-nope", "--name", "x"], env=env).exit_code == 1

    rows = _events(live)
    assert [r["event"] for r in rows] == ["client_created", "client_updated", "client_disabled", "client_enabled",
                                          "client_secret_rotated", "client_deleted"]
    for r in rows:
        assert r["client_id"] == cid and r["actor"] == "cli"
    assert rows[0]["details"]["client_type"] == "third_party"
    assert rows[1]["details"]["fields"] == ["name", "redirect_uris"]
    _assert_no_secrets(live, [created["client_secret"], rotated["client_secret"]])
