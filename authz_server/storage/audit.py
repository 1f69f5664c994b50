"""Append-only audit log."""
from __future__ import annotations

from ..models import AuditEvent


def record(session, event: str, *, ip: str | None = None, client_id=None, subject=None, organization_id=None,
           grant_id=None, actor=None, **details) -> None:
    """Append one event. ``ip`` is the caller's address (``sources.client_address()``)
    when the event comes from an HTTP request, None for the CLI and background work."""
    session.add(
        AuditEvent(
            event=event,
            client_id=client_id,
            subject=subject,
            organization_id=organization_id,
            grant_id=grant_id,
            actor=actor,
            ip=ip or None,
            details={k: v for k, v in details.items() if v is not None},
        )
    )
