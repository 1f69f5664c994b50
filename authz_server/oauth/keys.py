"""Signing keys in the database, private parts encrypted at rest.

Each algorithm has its own chain next → active → retired (OIDC Core §10.1.1):
the JWKS publishes all three, so a key is published before it signs anything
and stays published after it stops. A compromised key is revoked instead (a
forced rotation, or ``revoke``): it leaves the JWKS and verification at once,
so the tokens it signed stop being accepted. Every node reads the same rows; a
node caches the loaded keys for ``CACHE_SECONDS`` so a rotation or revocation
on one node reaches the others within that time.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select

from ..clock import utcnow
from ..models import SigningKey
from ..security import new_id
from ..storage import audit

ALGS = ("ES256", "RS256")
CACHE_SECONDS = 60
# Resource servers may cache the JWKS for its max-age (RFC 9068 §4) and our nodes
# cache keys for CACHE_SECONDS: a next key must have been published that long
# before it signs, or a verifier holding a cached JWKS meets an unknown kid
# (OIDC Core §10.1.1; docs/requirements.md: A26-121).
JWKS_MAX_AGE = 300
MIN_PUBLISHED_SECONDS = JWKS_MAX_AGE + CACHE_SECONDS


class RotationTooSoon(RuntimeError):
    """The next key has not been published long enough to start signing."""


class KeyDecryptionError(RuntimeError):
    """The configured key-encryption key does not open the stored keys."""


class UnknownKey(LookupError):
    """No signing key has this kid."""


@dataclass
class Revocation:
    """A revoked key: its state before, and the key that took over its role (a
    promoted next key for an active one, a new next key for a next one)."""

    kid: str
    alg: str
    previous_state: str
    replaced_by: str | None = None


# The states whose keys are published and trusted; retired ones too until
# retired_publish_seconds have passed. Revoked keys never are.
LIVE_STATES = ("next", "active")


def _generate(alg: str, kid: str):
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params)
    raise ValueError(f"unsupported alg {alg}")


def _import(jwk: dict):
    return (ECKey if jwk["kty"] == "EC" else RSAKey).import_key(jwk)


class KeyStore:
    def __init__(self, db, key_encryption_key: str, retired_publish_seconds: int):
        self.db = db
        self.fernet = Fernet(key_encryption_key.encode())
        self.retired_publish_seconds = retired_publish_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._signing: dict[str, object] = {}
        self._public: list[dict] = []
        self._verify_set: KeySet | None = None

    # --- Writing ----------------------------------------------------------
    def _new_row(self, alg: str, state: str, now: dt.datetime) -> SigningKey:
        kid = new_id(f"{alg.lower()}-", 12)
        key = _generate(alg, kid)
        return SigningKey(
            kid=kid,
            alg=alg,
            state=state,
            public_jwk=key.as_dict(private=False),
            private_jwk_encrypted=self.fernet.encrypt(json.dumps(key.as_dict(private=True)).encode()).decode(),
            created_at=now,
            activated_at=now if state == "active" else None,
        )

    def ensure(self, session) -> bool:
        """Create an active and a next key for each algorithm that has none."""
        created = False
        now = utcnow()
        for alg in ALGS:
            states = set(session.scalars(select(SigningKey.state).where(SigningKey.alg == alg)).all())
            if "active" not in states:
                session.add(self._new_row(alg, "active", now))
                created = True
            if "next" not in states:
                session.add(self._new_row(alg, "next", now))
                created = True
        if created:
            session.flush()
            self.invalidate()
        return created

    def rotate(self, session, alg: str | None = None, force: bool = False,
               actor: str | None = None) -> list[tuple[str, str, str]]:
        """active → retired, next → active, and a new next. Returns (alg, old, new) kids.

        Refuses (RotationTooSoon) while the next key has been published for less
        than MIN_PUBLISHED_SECONDS, unless ``force`` or the key was only just
        created because the database had none (nothing has signed yet).

        ``force`` is for a compromised active key: the old key is revoked, not
        retired, so it leaves the JWKS and verification at once (every node
        within CACHE_SECONDS) instead of staying trusted until the tokens it
        signed expire. The rows are locked for the transaction."""
        existing = set(session.scalars(select(SigningKey.kid)).all())
        self.ensure(session)
        now = utcnow()
        plan = []
        for a in [alg] if alg else ALGS:
            rows = session.scalars(select(SigningKey).where(SigningKey.alg == a, SigningKey.state.in_(LIVE_STATES))
                                   .with_for_update()).all()
            active = [r for r in rows if r.state == "active"]
            promoted = sorted((r for r in rows if r.state == "next"), key=lambda r: r.created_at)[0]
            published_for = (now - promoted.created_at).total_seconds()
            # Checked for every alg before any row changes, so a refusal changes nothing.
            if not force and promoted.kid in existing and published_for < MIN_PUBLISHED_SECONDS:
                raise RotationTooSoon(
                    f"the next {a} key {promoted.kid} has been published for only {int(published_for)} s; "
                    f"verifiers may cache the JWKS for {MIN_PUBLISHED_SECONDS} s. Rotate again after that, "
                    "or force it if the active key is compromised"
                )
            plan.append((a, active, promoted))
        changes = []
        for a, active, promoted in plan:
            for r in active:
                if force:
                    self._revoke_row(session, r, now, "forced_rotation", actor, replaced_by=promoted.kid)
                else:
                    r.state, r.retired_at = "retired", now
            self._promote(session, a, promoted, now)
            old = ",".join(r.kid for r in active)
            audit.record(session, "signing_key_rotated", actor=actor, alg=a, active=promoted.kid,
                         **{"revoked" if force else "retired": old or None})
            changes.append((a, old, promoted.kid))
        session.flush()
        self.invalidate()
        return changes

    def revoke(self, session, kid: str, actor: str | None = None) -> Revocation | None:
        """Withdraw a compromised key, whatever its state: it leaves the JWKS and
        verification (every node within CACHE_SECONDS), so the tokens it signed
        stop verifying. An active key is first replaced by its algorithm's next
        key (and a new next key made), so signing never stops; a next key gets a
        new next key. None when the key was revoked already; UnknownKey when
        there is no such key. One transaction, the algorithm's rows locked."""
        row = session.get(SigningKey, kid)
        if row is None:
            raise UnknownKey(kid)
        self.ensure(session)
        now = utcnow()
        rows = session.scalars(select(SigningKey).where(SigningKey.alg == row.alg).with_for_update()).all()
        row = next(r for r in rows if r.kid == kid)
        if row.state == "revoked":
            return None
        previous, replaced_by = row.state, None
        if row.state == "active":
            promoted = sorted((r for r in rows if r.state == "next"), key=lambda r: r.created_at)[0]
            self._promote(session, row.alg, promoted, now)
            replaced_by = promoted.kid
        elif row.state == "next":
            fresh = self._new_row(row.alg, "next", now)
            session.add(fresh)
            replaced_by = fresh.kid
        self._revoke_row(session, row, now, "revoked", actor, replaced_by=replaced_by)
        session.flush()
        self.invalidate()
        return Revocation(kid, row.alg, previous, replaced_by)

    def _promote(self, session, alg: str, promoted: SigningKey, now: dt.datetime) -> None:
        promoted.state, promoted.activated_at = "active", now
        session.add(self._new_row(alg, "next", now))

    def _revoke_row(self, session, row: SigningKey, now: dt.datetime, reason: str, actor, replaced_by=None):
        previous = row.state
        row.state, row.revoked_at = "revoked", now
        audit.record(session, "signing_key_revoked", actor=actor, kid=row.kid, alg=row.alg,
                     previous_state=previous, reason=reason, replaced_by=replaced_by)

    def check_decryptable(self, session) -> None:
        """Fail at start, with a message, when AUTHZ_KEY_ENCRYPTION_KEY is not the
        key the stored private keys were encrypted with."""
        from cryptography.fernet import InvalidToken

        for row in session.scalars(select(SigningKey).where(SigningKey.state.in_(LIVE_STATES))).all():
            try:
                self.fernet.decrypt(row.private_jwk_encrypted.encode())
            except InvalidToken:
                raise KeyDecryptionError(
                    f"AUTHZ_KEY_ENCRYPTION_KEY cannot decrypt signing key {row.kid}: it is not the key the "
                    "database's signing keys were encrypted with. Restore the original key."
                ) from None

    # --- Reading ----------------------------------------------------------
    def invalidate(self):
        self._loaded_at = 0.0

    def _load(self):
        if time.monotonic() - self._loaded_at < CACHE_SECONDS and self._signing:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < CACHE_SECONDS and self._signing:
                return
            session = self.db.session
            rows = session.scalars(select(SigningKey)).all()
            cutoff = utcnow() - dt.timedelta(seconds=self.retired_publish_seconds)
            signing, public = {}, []
            for row in sorted(rows, key=lambda r: (r.activated_at or r.created_at)):
                if row.state == "revoked":
                    continue  # neither published nor trusted
                if row.state == "retired" and (row.retired_at or row.created_at) < cutoff:
                    continue
                public.append(dict(row.public_jwk))
                if row.state == "active":
                    # The newest active key per alg wins, deterministically.
                    signing[row.alg] = row
            self._signing = {
                alg: _import(json.loads(self.fernet.decrypt(row.private_jwk_encrypted.encode())))
                for alg, row in signing.items()
            }
            self._public = public
            self._verify_set = KeySet.import_key_set({"keys": public})
            self._loaded_at = time.monotonic()

    def signing_key(self, alg: str):
        """The one active private key for ``alg``: a single key, so the choice is
        deterministic and ``kid`` is set explicitly (docs/requirements.md: D-11)."""
        self._load()
        try:
            return self._signing[alg]
        except KeyError:
            raise RuntimeError(f"no active {alg} signing key; run 'authz-server keys rotate'") from None

    def verify_set(self) -> KeySet:
        self._load()
        return self._verify_set

    def jwks(self) -> dict:
        self._load()
        return {"keys": list(self._public)}
