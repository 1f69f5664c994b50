"""OIDC RP-Initiated Logout 1.0 on Authlib's EndSessionEndpoint: the id token
hint is checked against our JWKS (an expired one is fine), ``client_id`` must
be in its ``aud``, and the browser goes back only to an exactly registered
``post_logout_redirect_uri`` (§3), with ``state``.

A valid hint is not enough on its own: any member's id token is a valid hint.
The member is signed out without being asked only when the hint names the
signed-in member and organization; otherwise they confirm first, and are never
sent to the RP afterwards (§2: a hint that does not belong to the session is
suspect; §6: an unconfirmed logout is a denial of service)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, fields

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from authlib.oidc.rpinitiated import EndSessionRequest


def hint_matches_member(id_token_claims: dict | None, member) -> bool:
    """Does the id token hint belong to ``member`` (its ``sub`` and organization)?"""
    if not id_token_claims or member is None:
        return False
    return (id_token_claims.get("sub") == member.member_id
            and id_token_claims.get("organization_id") == member.organization_id)


@dataclass
class MemberEndSessionRequest(EndSessionRequest):
    # False when a member is signed in and the hint is missing or someone else's.
    hint_matches_session: bool = True

    @property
    def needs_confirmation(self) -> bool:
        return self.id_token_claims is None or not self.hint_matches_session


class EndSessionEndpoint(_EndSessionEndpoint):
    def __init__(self, end_session, signed_in_member):
        super().__init__()
        self._end_session = end_session
        self._signed_in_member = signed_in_member

    def validate_request(self, request):
        req = super().validate_request(request)
        member = self._signed_in_member()
        # A browser with nobody signed in has no session to end and none a hint
        # could contradict: a valid hint still sends it back to the RP, e.g.
        # after our session expired (§2 accepts hints of a recent session).
        matches = member is None or hint_matches_member(req.id_token_claims, member)
        out = MemberEndSessionRequest(**{f.name: getattr(req, f.name) for f in fields(req)},
                                      hint_matches_session=matches)
        if not matches:
            out.redirect_uri = None  # §3: no redirect when the request's legitimacy is not established
        return out

    def get_server_jwks(self):
        return self.server.keys.verify_set()

    def get_algorithms(self):
        return ["RS256", "ES256"]

    def _validate_id_token_hint(self, id_token_hint):
        claims = super()._validate_id_token_hint(id_token_hint)
        # §2: the hint must be an ID Token this OP issued. Our access tokens are
        # signed with the same keys, so the signature alone would let a resource
        # server end the member's session without confirmation (§6); they are
        # typed at+jwt (RFC 9068 §2.1), id tokens are not.
        try:
            part = id_token_hint.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except ValueError:
            header = {}
        typ = str(header.get("typ", "")).lower()
        if typ in ("at+jwt", "application/at+jwt") or claims.get("iss") != self.server.settings.issuer:
            raise InvalidRequestError("The id_token_hint is not an ID Token issued by this server")
        return claims

    def _is_valid_post_logout_redirect_uri(self, client, post_logout_redirect_uri):
        return post_logout_redirect_uri in client.post_logout_redirect_uris

    def end_session(self, end_session_request):
        self._end_session()
