"""Contract: the real ``stytch`` SDK parses every emulator response the gateway
relies on, and the parsed models carry the right values. Errors arrive as
``StytchError`` with Stytch's ``error_type`` and status."""
from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

import aiohttp
import jwt as pyjwt
import pytest
import stytch
from stytch.core.response_base import StytchError

from tests.helpers import pkce_pair
from tests.stytch_emulator.helpers import outbox, sdk_client, set_step_up, sign_in

ACME_DOMAIN = "acme.test"


@contextmanager
def expect_error(error_type: str, status: int):
    with pytest.raises(StytchError) as info:
        yield info
    details = info.value.details
    assert (details.error_type, details.status_code) == (error_type, status), details
    assert details.request_id.startswith("request-id-test-")
    assert details.error_url.endswith(f"#{error_type}")


def discovery_ist(client, emu, email: str, provider: str = "google"):
    token = sign_in(emu, email, provider)["token"]
    return client.oauth.discovery.authenticate(discovery_oauth_token=token)


def acme_session(client, emu, email="alice@acme.test", **kwargs):
    resp = discovery_ist(client, emu, email)
    return client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=resp.intermediate_session_token,
        organization_id=resp.discovered_organizations[0].organization.organization_id, **kwargs)


def methods(member_session):
    return [(f.type, f.delivery_method) for f in member_session.authentication_factors]


# --------------------------------------------------------------------- transport
def test_bad_basic_auth_is_unauthorized_credentials(emu):
    wrong = sdk_client(emu, secret="secret-test-wrong")
    with expect_error("unauthorized_credentials", 401):
        wrong.organizations.get(organization_id="acme")


# ------------------------------------------------------------------ OAuth + discovery
def test_oauth_discovery_authenticate(client, emu):
    resp = discovery_ist(client, emu, "alice@acme.test")
    assert resp.status_code == 200 and resp.request_id.startswith("request-id-test-")
    assert resp.email_address == "alice@acme.test"
    assert resp.full_name == "Alice Admin" and resp.provider_type == "Google"
    assert len(resp.intermediate_session_token) == 44
    assert resp.intermediate_session_token_expires_at.timestamp() == pytest.approx(time.time() + 600, abs=5)
    [acme] = resp.discovered_organizations
    assert acme.organization.organization_slug == "acme"
    assert acme.membership.type == "active_member"
    assert acme.membership.member.email_address == "alice@acme.test"
    assert acme.member_authenticated is True and acme.primary_required is None


def test_discovery_offers_jit_by_email_domain(client, emu):
    resp = discovery_ist(client, emu, "carol@globex.test", provider="microsoft")
    assert resp.provider_type == "Microsoft"
    [globex] = resp.discovered_organizations
    assert globex.organization.organization_slug == "globex"
    assert globex.membership.type == "eligible_to_join_by_email_domain"
    assert globex.membership.member is None
    assert discovery_ist(client, emu, "nobody@elsewhere.test").discovered_organizations == []


def test_oauth_tokens_are_single_use_and_unknown_ones_fail(client, emu):
    token = sign_in(emu, "alice@acme.test")["token"]
    client.oauth.discovery.authenticate(discovery_oauth_token=token)
    with expect_error("oauth_token_not_found", 404):
        client.oauth.discovery.authenticate(discovery_oauth_token=token)
    with expect_error("oauth_token_not_found", 404):
        client.oauth.discovery.authenticate(discovery_oauth_token="x" * 44)


def test_exchange_authenticated(client, emu):
    disc = discovery_ist(client, emu, "alice@acme.test")
    acme_id = disc.discovered_organizations[0].organization.organization_id
    resp = client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=disc.intermediate_session_token, organization_id=acme_id,
        session_duration_minutes=30, session_custom_claims={"tier": "gold"})
    assert resp.member_authenticated is True
    assert resp.intermediate_session_token == "" and resp.session_token and resp.session_jwt
    assert resp.member.is_admin is True and resp.organization.organization_id == acme_id
    session = resp.member_session
    assert session.member_id == resp.member_id and session.organization_slug == "acme"
    assert sorted(session.roles) == ["stytch_admin", "stytch_member"]
    assert session.custom_claims == {"tier": "gold"}
    assert (session.expires_at - session.started_at).total_seconds() == 30 * 60
    [factor] = session.authentication_factors
    assert (factor.type, factor.delivery_method) == ("oauth", "oauth_google")
    assert factor.google_oauth_factor.provider_subject == resp.member.oauth_registrations[0].provider_subject
    # The IST is consumed by a successful exchange.
    with expect_error("intermediate_session_not_found", 404):
        client.discovery.intermediate_sessions.exchange(
            intermediate_session_token=disc.intermediate_session_token, organization_id=acme_id)


def test_exchange_jit_provisions_an_active_member(client, emu):
    disc = discovery_ist(client, emu, "carol@globex.test")
    resp = client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=disc.intermediate_session_token, organization_id="globex")
    assert resp.member_authenticated is True
    assert resp.member.status == "active" and resp.member.is_admin is False
    assert resp.member.email_address == "carol@globex.test" and resp.member.name == "Carol"
    got = client.organizations.members.get(organization_id="globex", email_address="carol@globex.test")
    assert got.member_id == resp.member_id


def test_exchange_step_up_then_email_otp_with_the_ist(client, emu):
    set_step_up(emu, ACME_DOMAIN)
    disc = discovery_ist(client, emu, "bob@acme.test")
    [acme] = disc.discovered_organizations
    assert acme.member_authenticated is False
    assert acme.primary_required.allowed_auth_methods == ["email_otp"]
    ist = disc.intermediate_session_token

    resp = client.discovery.intermediate_sessions.exchange(intermediate_session_token=ist, organization_id="acme")
    assert resp.member_authenticated is False
    assert (resp.session_token, resp.session_jwt, resp.member_session) == ("", "", None)
    assert resp.intermediate_session_token == ist  # unchanged, still usable
    assert resp.primary_required.allowed_auth_methods == ["email_otp"]

    acme_id = resp.organization.organization_id
    sent = client.otps.email.login_or_signup(organization_id=acme_id, email_address="bob@acme.test")
    assert sent.member_created is False and sent.member_id == resp.member_id
    code = outbox(emu, "bob@acme.test")["code"]
    done = client.otps.email.authenticate(organization_id=acme_id, email_address="bob@acme.test", code=code,
                                          intermediate_session_token=ist)
    assert done.member_authenticated is True and done.intermediate_session_token == ""
    assert done.method_id and done.session_token
    assert methods(done.member_session) == [("oauth", "oauth_google"), ("email_otp", "email")]
    assert done.member_session.authentication_factors[1].email_factor.email_address == "bob@acme.test"
    with expect_error("intermediate_session_not_found", 404):
        client.discovery.organizations.list(intermediate_session_token=ist)


def test_malformed_ist_is_invalid_session_token(client, emu):
    with expect_error("invalid_session_token", 400):
        client.discovery.intermediate_sessions.exchange(intermediate_session_token="nope", organization_id="acme")


def test_create_organization_makes_the_creator_admin(client, emu):
    disc = discovery_ist(client, emu, "dave@initech.test")
    resp = client.discovery.organizations.create(
        intermediate_session_token=disc.intermediate_session_token, organization_name="Initech",
        organization_slug="initech", email_allowed_domains=["initech.test"], email_jit_provisioning="RESTRICTED")
    assert resp.member_authenticated is True and resp.session_jwt
    assert resp.organization.organization_slug == "initech" and resp.organization.organization_name == "Initech"
    assert resp.organization.email_jit_provisioning == "RESTRICTED"
    assert resp.member.is_admin is True
    assert [r.role_id for r in resp.member.roles] == ["stytch_member", "stytch_admin"]
    assert client.organizations.get(organization_id="initech").organization.organization_id == \
        resp.organization.organization_id

    again = discovery_ist(client, emu, "erin@initech.test")
    assert [o.organization.organization_slug for o in again.discovered_organizations] == ["initech"]
    with expect_error("organization_slug_already_used", 400):
        client.discovery.organizations.create(intermediate_session_token=again.intermediate_session_token,
                                              organization_name="Acme again", organization_slug="acme")


def test_list_discovered_organizations_by_ist_and_by_session(client, emu):
    disc = discovery_ist(client, emu, "alice@acme.test")
    listed = client.discovery.organizations.list(intermediate_session_token=disc.intermediate_session_token)
    assert listed.email_address == "alice@acme.test" and listed.organization_id_hint is None
    assert [o.membership.type for o in listed.discovered_organizations] == ["active_member"]
    session = client.discovery.intermediate_sessions.exchange(
        intermediate_session_token=disc.intermediate_session_token, organization_id="acme")
    by_session = client.discovery.organizations.list(session_token=session.session_token)
    assert by_session.organization_id_hint == session.organization.organization_id
    by_jwt = client.discovery.organizations.list(session_jwt=session.session_jwt)
    assert by_jwt.discovered_organizations[0].organization.organization_slug == "acme"


# ------------------------------------------------------------ OAuth organization flow
def test_oauth_authenticate_organization_flow(client, emu):
    token = sign_in(emu, "bob@acme.test", "microsoft", slug="acme")["token"]
    resp = client.oauth.authenticate(oauth_token=token, session_duration_minutes=120)
    assert resp.member_authenticated is True and resp.reset_sessions is False
    assert resp.provider_type == "Microsoft" and resp.provider_subject
    assert resp.member.email_address == "bob@acme.test" and resp.member.is_admin is False
    assert resp.organization_id == resp.organization.organization_id
    assert methods(resp.member_session) == [("oauth", "oauth_microsoft")]
    factor = resp.member_session.authentication_factors[0]
    assert factor.microsoft_oauth_factor.provider_subject == resp.provider_subject
    assert (resp.member_session.expires_at - resp.member_session.started_at).total_seconds() == 7200
    assert resp.provider_values.scopes
    with expect_error("oauth_token_not_found", 404):
        client.oauth.authenticate(oauth_token=token)


def test_oauth_authenticate_step_up_mode(client, emu):
    set_step_up(emu, ACME_DOMAIN)
    token = sign_in(emu, "alice@acme.test", slug="acme")["token"]
    resp = client.oauth.authenticate(oauth_token=token)
    assert resp.member_authenticated is False
    assert (resp.session_token, resp.session_jwt, resp.member_session) == ("", "", None)
    assert resp.primary_required.allowed_auth_methods == ["email_otp"]
    ist = resp.intermediate_session_token
    assert ist and resp.intermediate_session_token_expires_at is not None

    client.otps.email.login_or_signup(organization_id=resp.organization_id, email_address="alice@acme.test")
    code = outbox(emu, "alice@acme.test")["code"]
    done = client.otps.email.authenticate(organization_id=resp.organization_id, email_address="alice@acme.test",
                                          code=code, intermediate_session_token=ist)
    assert done.member_authenticated is True
    assert methods(done.member_session) == [("oauth", "oauth_google"), ("email_otp", "email")]


def test_step_up_ist_is_bound_to_its_organization_and_email(client, emu):
    set_step_up(emu, ACME_DOMAIN)
    resp = client.oauth.authenticate(oauth_token=sign_in(emu, "alice@acme.test", slug="acme")["token"])
    ist = resp.intermediate_session_token
    with expect_error("invalid_intermediate_session_token_for_organization", 400):
        client.discovery.intermediate_sessions.exchange(intermediate_session_token=ist, organization_id="globex")
    client.otps.email.login_or_signup(organization_id="acme", email_address="bob@acme.test")
    with expect_error("invalid_exchange_primary_factor_user", 400):
        client.otps.email.authenticate(organization_id="acme", email_address="bob@acme.test",
                                       code=outbox(emu, "bob@acme.test")["code"], intermediate_session_token=ist)
    # A magic link completes the same step-up.
    client.magic_links.email.login_or_signup(organization_id="acme", email_address="alice@acme.test",
                                             login_redirect_url="http://app.test/ml")
    link = outbox(emu, "alice@acme.test")["messages"][-1]["link"]
    done = client.magic_links.authenticate(magic_links_token=link.rpartition("token=")[2],
                                           intermediate_session_token=ist)
    assert done.member_authenticated is True
    assert methods(done.member_session) == [("oauth", "oauth_google"), ("magic_link", "email")]


def test_oauth_authenticate_checks_pkce(client, emu):
    verifier, challenge = pkce_pair()
    token = sign_in(emu, "bob@acme.test", slug="acme", pkce_code_challenge=challenge)["token"]
    with expect_error("pkce_expected_code_verifier", 400):
        client.oauth.authenticate(oauth_token=token)
    with expect_error("pkce_mismatch", 400):
        client.oauth.authenticate(oauth_token=token, pkce_code_verifier=verifier + "x")
    assert client.oauth.authenticate(oauth_token=token, pkce_code_verifier=verifier).member_authenticated
    plain = sign_in(emu, "bob@acme.test", slug="acme")["token"]
    with expect_error("pkce_did_not_expect_code_verifier", 400):
        client.oauth.authenticate(oauth_token=plain, pkce_code_verifier=verifier)


def test_oauth_discovery_authenticate_checks_pkce(client, emu):
    """The discovery token is bound to its start's challenge like the organization
    one: no verifier, a wrong one, or one for a start without a challenge are
    refused with Stytch's error types, and a refusal does not use the token up."""
    verifier, challenge = pkce_pair()
    token = sign_in(emu, "alice@acme.test", pkce_code_challenge=challenge)["token"]
    with expect_error("pkce_expected_code_verifier", 400):
        client.oauth.discovery.authenticate(discovery_oauth_token=token)
    with expect_error("pkce_mismatch", 400):
        client.oauth.discovery.authenticate(discovery_oauth_token=token, pkce_code_verifier=pkce_pair()[0])
    resp = client.oauth.discovery.authenticate(discovery_oauth_token=token, pkce_code_verifier=verifier)
    assert resp.email_address == "alice@acme.test"
    plain = sign_in(emu, "alice@acme.test")["token"]
    with expect_error("pkce_did_not_expect_code_verifier", 400):
        client.oauth.discovery.authenticate(discovery_oauth_token=plain, pkce_code_verifier=verifier)


def test_oauth_authenticate_refuses_outsiders_without_jit(client, emu):
    token = sign_in(emu, "eve@evil.test", slug="acme")["token"]
    with expect_error("invalid_email_for_jit_provisioning", 400):
        client.oauth.authenticate(oauth_token=token)


# --------------------------------------------------------------------- email OTP
def test_email_otp_login_or_signup_and_authenticate(client, emu):
    sent = client.otps.email.login_or_signup(organization_id="acme", email_address="frank@acme.test")
    assert sent.member_created is True and sent.member.status == "pending"
    code = outbox(emu, "frank@acme.test")["code"]
    assert len(code) == 6 and code.isdigit()
    resp = client.otps.email.authenticate(organization_id="acme", email_address="frank@acme.test", code=code)
    assert resp.member_authenticated is True and resp.member.status == "active"
    assert methods(resp.member_session) == [("email_otp", "email")]
    assert resp.method_id == resp.member_session.authentication_factors[0].email_factor.email_id
    with expect_error("unable_to_auth_otp_code", 401):  # used
        client.otps.email.authenticate(organization_id="acme", email_address="frank@acme.test", code=code)


def test_email_otp_wrong_codes_newest_only_and_burn(client, emu, clock):
    acme = "acme"
    client.otps.email.login_or_signup(organization_id=acme, email_address="bob@acme.test")
    first = outbox(emu, "bob@acme.test")["code"]
    client.otps.email.login_or_signup(organization_id=acme, email_address="bob@acme.test")
    newest = outbox(emu, "bob@acme.test")["code"]
    if first != newest:  # one chance in a million they coincide
        with expect_error("otp_code_not_found", 404):
            client.otps.email.authenticate(organization_id=acme, email_address="bob@acme.test", code=first)
    wrong = f"{(int(newest) + 1) % 10**6:06d}"
    for _ in range(4 if first != newest else 5):
        with expect_error("otp_code_not_found", 404):
            client.otps.email.authenticate(organization_id=acme, email_address="bob@acme.test", code=wrong)
    with expect_error("unable_to_auth_otp_code", 401):  # burned after 5 wrong tries
        client.otps.email.authenticate(organization_id=acme, email_address="bob@acme.test", code=newest)

    client.otps.email.login_or_signup(organization_id=acme, email_address="bob@acme.test")
    code = outbox(emu, "bob@acme.test")["code"]
    clock.advance(601)
    with expect_error("unable_to_auth_otp_code", 401):  # expired after 10 minutes
        client.otps.email.authenticate(organization_id=acme, email_address="bob@acme.test", code=code)


# ------------------------------------------------------------------ magic links
def test_magic_links(client, emu):
    sent = client.magic_links.email.login_or_signup(organization_id="acme", email_address="bob@acme.test",
                                                    login_redirect_url="http://app.test/ml?x=1")
    assert sent.member_created is False
    [message] = outbox(emu, "bob@acme.test")["messages"]
    assert message["type"] == "magic_link"
    assert message["link"].startswith("http://app.test/ml?x=1&stytch_token_type=multi_tenant_magic_links&token=")
    token = message["link"].rpartition("token=")[2]
    resp = client.magic_links.authenticate(magic_links_token=token)
    assert resp.member_authenticated is True and resp.reset_sessions is False
    assert methods(resp.member_session) == [("magic_link", "email")]
    with expect_error("unable_to_auth_magic_link", 401):
        client.magic_links.authenticate(magic_links_token=token)
    with expect_error("magic_link_not_found", 404):
        client.magic_links.authenticate(magic_links_token="y" * 44)


# --------------------------------------------------------------------- sessions
def test_sessions_authenticate_by_token_and_jwt(client, emu):
    login = acme_session(client, emu)
    by_token = client.sessions.authenticate(session_token=login.session_token)
    assert by_token.member_session.member_session_id == login.member_session.member_session_id
    assert by_token.member.member_id == login.member_id and by_token.organization.organization_slug == "acme"
    assert by_token.session_token == login.session_token and by_token.session_jwt
    by_jwt = client.sessions.authenticate(session_jwt=login.session_jwt)
    assert by_jwt.member_session.member_session_id == login.member_session.member_session_id
    # Without session_duration_minutes the expiry stays; with it, it moves.
    assert by_jwt.member_session.expires_at == login.member_session.expires_at
    extended = client.sessions.authenticate(session_token=login.session_token, session_duration_minutes=600)
    assert extended.member_session.expires_at > login.member_session.expires_at
    with expect_error("session_not_found", 404):
        client.sessions.authenticate(session_token="z" * 44)
    with expect_error("unable_to_parse_session_jwt", 400):
        client.sessions.authenticate(session_jwt="not.a.jwt")


def test_expired_jwt_of_a_live_session_is_reminted(client, emu, clock):
    clock.advance(-600)  # log in "ten minutes ago": the JWT is already expired in real time
    login = acme_session(client, emu)
    clock.advance(600)
    assert client.sessions.authenticate_jwt_local(session_jwt=login.session_jwt) is None
    fresh = client.sessions.authenticate(session_jwt=login.session_jwt)
    assert fresh.session_jwt != login.session_jwt
    local = client.sessions.authenticate_jwt_local(session_jwt=fresh.session_jwt)
    assert local.member_session_id == login.member_session.member_session_id


def test_session_jwt_verifies_locally_through_the_jwks(client, emu):
    login = acme_session(client, emu, session_custom_claims={"plan": "pro"})
    local = client.sessions.authenticate_jwt_local(session_jwt=login.session_jwt)
    assert local.member_session_id == login.member_session.member_session_id
    assert local.member_id == login.member_id
    assert local.organization_id == login.organization.organization_id and local.organization_slug == "acme"
    assert sorted(local.roles) == ["stytch_admin", "stytch_member"]
    assert local.custom_claims == {"plan": "pro"}
    assert methods(local) == [("oauth", "oauth_google")]
    assert local.expires_at == login.member_session.expires_at

    via_jwt = client.sessions.authenticate_jwt(session_jwt=login.session_jwt)
    assert via_jwt.member_session.member_session_id == local.member_session_id

    claims = pyjwt.decode(login.session_jwt, options={"verify_signature": False})
    header = pyjwt.get_unverified_header(login.session_jwt)
    assert header == {"alg": "RS256", "kid": emu.emulator.signer.kid, "typ": "JWT"}
    assert claims["aud"] == [emu.project_id] and claims["iss"] == f"stytch.com/{emu.project_id}"
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"] <= time.time() - 4
    assert set(claims["https://stytch.com/session"]) >= {
        "id", "started_at", "last_accessed_at", "expires_at", "attributes", "authentication_factors", "roles"}
    assert claims["https://stytch.com/organization"] == {
        "organization_id": login.organization.organization_id, "slug": "acme"}


def test_sessions_revoke(client, emu):
    login = acme_session(client, emu)
    assert client.sessions.revoke(session_token=login.session_token).status_code == 200
    with expect_error("session_not_found", 404):
        client.sessions.authenticate(session_token=login.session_token)
    with expect_error("session_not_found", 404):
        client.sessions.revoke(member_session_id=login.member_session.member_session_id)

    other = acme_session(client, emu)
    client.sessions.revoke(member_id=other.member_id)
    with expect_error("session_not_found", 404):
        client.sessions.authenticate(session_jwt=other.session_jwt)
    with expect_error("no_session_revoke_arguments", 400):
        client.sessions.revoke()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's aiohttp auth= usage
def test_async_client_parses_too(client, emu):
    # aiohttp only parses bodies served as application/json (reference §1.3).
    login = acme_session(client, emu)

    async def calls():
        # The SDK keeps one aiohttp session bound to the loop that created it, so
        # give it ours and do every async call inside this one loop.
        async with aiohttp.ClientSession() as http:
            async_client = stytch.B2BClient(emu.project_id, emu.secret, environment=emu.url,
                                            suppress_warnings=True, async_session=http)
            resp = await async_client.sessions.authenticate_async(session_token=login.session_token)
            assert resp.member_session.member_session_id == login.member_session.member_session_id
            with expect_error("session_not_found", 404):
                await async_client.sessions.authenticate_async(session_token="q" * 44)

    asyncio.run(calls())


def test_get_jwks(client, emu):
    resp = client.sessions.get_jwks(project_id=emu.project_id)
    [key] = resp.keys
    assert (key.kty, key.alg, key.use, key.kid) == ("RSA", "RS256", "sig", emu.emulator.signer.kid)
    assert key.key_ops == ["verify"] and key.x5c == [] and key.x5tS256 == "" and key.e == "AQAB"


# ---------------------------------------------------------------- organizations
def test_organizations_get_by_id_and_slug(client, emu):
    by_slug = client.organizations.get(organization_id="acme").organization
    assert by_slug.organization_name == "Acme" and by_slug.organization_id.startswith("organization-test-")
    assert by_slug.email_allowed_domains == ["acme.test"] and by_slug.email_jit_provisioning == "RESTRICTED"
    by_id = client.organizations.get(organization_id=by_slug.organization_id).organization
    assert by_id.organization_slug == "acme"
    with expect_error("organization_not_found", 404):
        client.organizations.get(organization_id="organization-test-missing")


def test_members_get(client, emu):
    alice = client.organizations.members.get(organization_id="acme", email_address="alice@acme.test")
    assert alice.member.name == "Alice Admin" and alice.member.is_admin is True
    assert alice.member_id.startswith("member-test-") and alice.organization.organization_slug == "acme"
    by_id = client.organizations.members.get(organization_id=alice.organization.organization_id,
                                             member_id=alice.member_id)
    assert by_id.member.email_address == "alice@acme.test"
    bob = client.organizations.members.get(organization_id="acme", email_address="bob@acme.test").member
    assert bob.name == "Bob Builder" and bob.is_admin is False and bob.status == "active"
    with expect_error("member_not_found", 404):
        client.organizations.members.get(organization_id="globex", email_address="alice@acme.test")


def test_members_delete_revokes_sessions(client, emu):
    login = acme_session(client, emu, email="bob@acme.test")
    resp = client.organizations.members.delete(organization_id=login.organization.organization_id,
                                               member_id=login.member_id)
    assert resp.member_id == login.member_id
    with expect_error("session_not_found", 404):
        client.sessions.authenticate(session_token=login.session_token)
    with expect_error("member_not_found", 404):
        client.organizations.members.get(organization_id="acme", member_id=login.member_id)
    with expect_error("member_not_found", 404):
        client.organizations.members.delete(organization_id="acme", member_id=login.member_id)
