"""SQLAlchemy models, one module per aggregate."""
from .assertions import UsedClientAssertion
from .audit import AuditEvent
from .clients import Client, ClientType, RegisteredVia
from .consents import Consent
from .device import DeviceAuthorization
from .grants import AuthorizationCode, Grant, PendingAuthorization, RefreshToken, RevokedAccessToken
from .keys import SigningKey
from .resources import Resource
from .sessions import EndedMemberSession

__all__ = [
    "AuditEvent",
    "AuthorizationCode",
    "Client",
    "ClientType",
    "RegisteredVia",
    "Consent",
    "DeviceAuthorization",
    "EndedMemberSession",
    "Grant",
    "PendingAuthorization",
    "RefreshToken",
    "Resource",
    "RevokedAccessToken",
    "SigningKey",
    "UsedClientAssertion",
]
