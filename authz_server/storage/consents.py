"""Remembered consents."""
from __future__ import annotations

from sqlalchemy import select

from ..clock import utcnow
from ..models import Consent


def find(session, subject, organization_id, client_id) -> Consent | None:
    return session.scalar(
        select(Consent).where(
            Consent.subject == subject,
            Consent.organization_id == (organization_id or ""),
            Consent.client_id == client_id,
            Consent.revoked_at.is_(None),
        )
    )


def covers(session, subject, organization_id, client_id, scopes) -> bool:
    c = find(session, subject, organization_id, client_id)
    return c is not None and set(scopes) <= set(c.scopes or [])


def remember(session, subject, organization_id, client_id, scopes) -> Consent:
    """Add the scopes to the member's consent for this client (one row per
    member × organization × client, enforced by a unique constraint)."""
    c = session.scalar(
        select(Consent).where(
            Consent.subject == subject,
            Consent.organization_id == (organization_id or ""),
            Consent.client_id == client_id,
        ).with_for_update()
    )
    now = utcnow()
    if c is None:
        c = Consent(subject=subject, organization_id=organization_id or "", client_id=client_id,
                    scopes=sorted(set(scopes)), created_at=now, updated_at=now)
        session.add(c)
    else:
        base = [] if c.revoked_at is not None else list(c.scopes or [])
        c.scopes = sorted(set(base) | set(scopes))
        c.revoked_at = None
        c.updated_at = now
    return c
