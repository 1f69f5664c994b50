"""Stytch-shaped API errors.

Every error leaves the emulator as the JSON object the SDK parses into
``StytchError`` (the SDK's ``StytchErrorDetails``): ``status_code``, ``request_id``,
``error_type``, ``error_message`` and ``error_url``. Statuses follow
Stytch's error reference; where Stytch's status is not documented we use its visible
convention (``*_not_found`` 404, ``unable_to_auth_*`` 401, ``invalid_*`` 400).
"""
from __future__ import annotations


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the error body."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message

    @property
    def url(self) -> str:
        return f"https://stytch.com/docs/api/errors/{self.status}#{self.error_type}"


def bad_request(message: str, error_type: str = "bad_request") -> ApiError:
    return ApiError(400, error_type, message)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized_credentials",
        "Unauthorized credentials: send HTTP Basic auth with the project ID and secret.",
    )


def oauth_token_not_found() -> ApiError:
    # Unknown, already used and expired tokens look the same, as with Stytch.
    return ApiError(404, "oauth_token_not_found", "The OAuth token could not be found, or was already used or expired.")


def intermediate_session_not_found() -> ApiError:
    return ApiError(
        404,
        "intermediate_session_not_found",
        "Intermediate session could not be found: it was never issued, is used up, or expired.",
    )


def invalid_session_token() -> ApiError:
    return ApiError(400, "invalid_session_token", "Session token format is invalid.")


def session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "Session could not be found.")


def organization_not_found() -> ApiError:
    return ApiError(404, "organization_not_found", "Organization could not be found.")


def member_not_found() -> ApiError:
    return ApiError(404, "member_not_found", "Member could not be found.")


def invalid_email_for_jit() -> ApiError:
    return ApiError(
        400,
        "invalid_email_for_jit_provisioning",
        "This email address is not a member of the organization, and its domain does not allow "
        "just-in-time provisioning.",
    )
