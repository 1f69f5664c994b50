"""Small helpers shared by the test modules (the fixtures live in conftest.py)."""
from __future__ import annotations

import base64
import json

import requests
from sqlalchemy import select

from authz_server.models import AuditEvent


def introspect(live, resource_server, token: str) -> dict:
    """RFC 7662 introspection as a confidential resource server; asserts a 200."""
    resp = requests.post(live.url + "/oauth/introspect", data={"token": token},
                         auth=(resource_server.client_id, resource_server.client_secret), timeout=15)
    assert resp.status_code == 200, resp.text
    return resp.json()


def audit_rows(live, event: str) -> list:
    s = live.db.session
    try:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event)).all())
    finally:
        s.remove()


def jwt_claims(token: str) -> dict:
    """The claims of a JWT, unverified (the tests that need it verify elsewhere)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
