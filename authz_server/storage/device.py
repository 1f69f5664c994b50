"""Device authorizations (RFC 8628): start, decide on the verification page, and
poll from the token endpoint. Each state change is one UPDATE whose WHERE clause
names the state it leaves, so two racing requests cannot both make it."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import utcnow
from ..models import DeviceAuthorization
from ..models.device import APPROVED, DENIED, ISSUED, PENDING
from ..rules import user_codes
from ..security import digest, new_secret


def start(session, *, client_id: str, scope: str, resource: list, ttl: int, interval: int) -> tuple[str, str, int]:
    """Store a new device authorization; returns (device_code, user_code, ttl)."""
    now = utcnow()
    # Expired rows go in passing, so the table stays small without a cron job,
    # and an expired user code becomes free for reuse.
    session.execute(delete(DeviceAuthorization).where(DeviceAuthorization.expires_at < now)
                    .execution_options(synchronize_session=False))
    device_code = new_secret(32)
    for _ in range(5):
        user_code = user_codes.generate()
        row = DeviceAuthorization(
            device_code_hash=digest(device_code), user_code_hash=_user_hash(user_code), client_id=client_id,
            scope=scope, resource=list(resource), status=PENDING, interval=interval, claims={},
            created_at=now, expires_at=now + dt.timedelta(seconds=ttl),
        )
        try:
            # A user code equal to a live one (about 1 in 10^10 per live code) is
            # drawn again rather than refused.
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return device_code, user_code, ttl
    raise RuntimeError("could not draw a free user code")  # pragma: no cover - 5 collisions in a row


def _user_hash(user_code: str) -> str:
    return digest("user_code:" + (user_codes.canonical_code(user_code) or ""))


def find_pending(session, entered: str) -> DeviceAuthorization | None:
    """The live, undecided authorization for a code a person typed."""
    raw = user_codes.canonical_code(entered)
    if raw is None:
        return None
    return session.scalar(select(DeviceAuthorization).where(
        DeviceAuthorization.user_code_hash == _user_hash(raw),
        DeviceAuthorization.status == PENDING,
        DeviceAuthorization.expires_at > utcnow(),
    ))


def decide(session, entered: str, *, approve: bool, member=None) -> DeviceAuthorization | None:
    """Approve (for ``member``) or deny a pending authorization, once."""
    raw = user_codes.canonical_code(entered)
    if raw is None:
        return None
    now = utcnow()
    values = dict(status=DENIED, decided_at=now)
    if approve:
        values.update(
            status=APPROVED, subject=member.member_id, organization_id=member.organization_id,
            claims=member.claims(), auth_time=dt.datetime.fromtimestamp(member.auth_time, dt.timezone.utc),
        )
    return session.execute(
        update(DeviceAuthorization)
        .where(DeviceAuthorization.user_code_hash == _user_hash(raw), DeviceAuthorization.status == PENDING,
               DeviceAuthorization.expires_at > now)
        .values(**values)
        .returning(DeviceAuthorization)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


@dataclass
class Poll:
    """What a token request with a device_code finds (RFC 8628 §3.5):
    ``issued`` (this request gets the tokens), ``pending``, ``slow_down``,
    ``denied``, ``expired``, ``replayed`` (tokens were issued already) or
    ``unknown``."""

    outcome: str
    row: DeviceAuthorization | None = None


def poll(session, device_code, client_id: str) -> Poll:
    if not isinstance(device_code, str) or not device_code or len(device_code) > 512:
        return Poll("unknown")
    h = digest(device_code)
    now = utcnow()
    # The one transition that must happen once: approved → issued.
    row = session.execute(
        update(DeviceAuthorization)
        .where(DeviceAuthorization.device_code_hash == h, DeviceAuthorization.client_id == client_id,
               DeviceAuthorization.status == APPROVED, DeviceAuthorization.expires_at > now)
        .values(status=ISSUED, last_polled_at=now)
        .returning(DeviceAuthorization)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if row is not None:
        return Poll("issued", row)
    row = session.scalar(
        select(DeviceAuthorization)
        .where(DeviceAuthorization.device_code_hash == h, DeviceAuthorization.client_id == client_id)
        .with_for_update()
    )
    if row is None:
        return Poll("unknown")
    if row.status == ISSUED:
        return Poll("replayed", row)
    if row.expires_at <= now:
        return Poll("expired", row)
    if row.status == DENIED:
        return Poll("denied", row)
    if row.status == APPROVED:  # approved between the two statements: poll again
        return Poll("pending", row)
    # RFC 8628 §3.5: a poll sooner than the interval after the previous one is
    # told to slow down, and the interval grows by 5 s for all later polls.
    too_soon = row.last_polled_at is not None and now - row.last_polled_at < dt.timedelta(seconds=row.interval)
    row.last_polled_at = now
    if too_soon:
        row.interval += 5
        return Poll("slow_down", row)
    return Poll("pending", row)


def attach_grant(session, device_code_hash: str, grant_id: str) -> None:
    session.execute(
        update(DeviceAuthorization).where(DeviceAuthorization.device_code_hash == device_code_hash)
        .values(grant_id=grant_id).execution_options(synchronize_session=False)
    )
