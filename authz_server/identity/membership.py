"""Is a member still an active member of their organization in Stytch?

The refresh grant and introspection ask (a member removed or deactivated in
Stytch can no longer refresh, and their tokens introspect inactive). Answers are
cached per process for ``ttl`` seconds, so a busy member costs one Stytch call per
TTL (docs/architecture.md#caches-and-scale); when Stytch cannot be reached, a cached answer is used even if
stale, and without one the caller reports a temporary failure.
"""
from __future__ import annotations

import threading
import time

from .gateway import IdentityUnavailable


class MembershipCache:
    def __init__(self, gateway, ttl: int):
        self.gateway = gateway
        self.ttl = ttl
        self._items: dict[tuple[str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def is_active(self, organization_id: str, member_id: str) -> bool:
        key = (organization_id, member_id)
        now = time.monotonic()
        hit = self._items.get(key)
        if hit and 0 <= now - hit[0] < self.ttl:
            return hit[1]
        try:
            active = self.gateway.member_is_active(organization_id, member_id)
        except IdentityUnavailable:
            if hit:
                return hit[1]  # stale-if-error
            raise
        with self._lock:
            if len(self._items) > 50000:
                self._items.clear()
            self._items[key] = (now, active)
        return active

    def forget(self, organization_id: str, member_id: str) -> None:
        with self._lock:
            self._items.pop((organization_id, member_id), None)
