"""Where a request comes from: the one place that reads the caller's address
(rate-limit keys, registration deduplication, the audit log).

``request.remote_addr`` is the peer of the TCP connection, unless the app runs
behind ``AUTHZ_TRUSTED_PROXIES`` proxies: then werkzeug's ProxyFix (installed by
``create_app``) has replaced it with the address that many hops back in
``X-Forwarded-For``. With 0 trusted proxies the header is ignored: any client
can send it, so trusting it would let a caller pick its own rate-limit key (and
drain someone else's) and write any address into the audit log.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import request


def client_address() -> str:
    """The caller's IP address as this server can trust it ("" outside a socket).
    Capped at 64 characters (the audit column): ProxyFix copies the forwarded
    entry unchecked, and with more proxies configured than there are, that entry
    is the client's to write."""
    return (request.remote_addr or "")[:64]


def source_network(address: str) -> str:
    """The unit a source is counted by: an IPv4 address, or the /64 of an IPv6
    one (RFC 4291 §2.5.4: a /64 is one link, and a single host is routinely
    given a whole /64, so counting per IPv6 address would let it mint sources)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def source_key(secret_key: str) -> str:
    """A keyed digest of the caller's ``source_network``: enough to recognise a
    source, and the address itself is not kept (a plain digest of an IPv4
    address is trivially reversed). Registration stores it, so it must stay
    stable for a given secret key."""
    return hmac.new(secret_key.encode("utf-8"), source_network(client_address()).encode("utf-8"),
                    hashlib.sha256).hexdigest()
