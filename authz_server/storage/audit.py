"""Append-only audit log."""
from __future__ import annotations

from flask import has_request_context

from ..models import AuditEvent
from ..sources import client_address


def record(session, event: str, *, client_id=None, subject=None, organization_id=None, grant_id=None,
           actor=None, **details) -> None:
    ip = None
    if has_request_context():
        ip = client_address() or None
    session.add(
        AuditEvent(
            event=event,
            client_id=client_id,
            subject=subject,
            organization_id=organization_id,
            grant_id=grant_id,
            actor=actor,
            ip=ip,
            details={k: v for k, v in details.items() if v is not None},
        )
    )
