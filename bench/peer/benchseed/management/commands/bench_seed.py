"""Seed the benchmark peer: clients and refresh tokens, printed as JSON.

  manage.py bench_seed --create-clients
      -> {"client_credentials": {"client_id", "client_secret"},
          "refresh_token": {"client_id", "client_secret"}}
  manage.py bench_seed --refresh-client-id ID --refresh-tokens N [--scope S]
      -> {"refresh_tokens": [...]}

django-oauth-toolkit gives an Application one grant type, so the bench uses two
applications: a client-credentials one and an authorization-code one (which is
what refresh tokens hang off). Refresh tokens are minted directly in the
database, each as its own token family, exactly as the authorization-code grant
would leave them (an access token plus a refresh token bound to it); this is
the peer's equivalent of `authz-server tokens issue-refresh`.
"""
import json
import os
import secrets
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value
from oauth2_provider.settings import oauth2_settings


class Command(BaseCommand):
    help = "Create bench clients and/or mint refresh tokens (JSON on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--create-clients", action="store_true")
        parser.add_argument("--refresh-client-id")
        parser.add_argument("--refresh-tokens", type=int, default=0)
        parser.add_argument("--scope", default="openid offline_access")
        parser.add_argument("--subject", default="bench-member")

    def handle(self, *args, **opts):
        out = {}
        hashed = os.environ.get("PEER_CLIENT_SECRET_HASHER", "plain") != "plain"
        if opts["create_clients"]:
            out["client_credentials"] = self._create_app(
                "bench-cc", Application.GRANT_CLIENT_CREDENTIALS, hashed, algorithm=""
            )
            out["refresh_token"] = self._create_app(
                "bench-refresh",
                Application.GRANT_AUTHORIZATION_CODE,
                hashed,
                algorithm=Application.RS256_ALGORITHM if oauth2_settings.OIDC_ENABLED else "",
            )
        if opts["refresh_tokens"]:
            app = Application.objects.get(client_id=opts["refresh_client_id"])
            out["refresh_tokens"] = self._mint(app, opts["refresh_tokens"], opts["scope"], opts["subject"])
        self.stdout.write(json.dumps(out))

    def _create_app(self, name, grant_type, hashed, algorithm):
        secret = secrets.token_urlsafe(48)
        app = Application(
            name=name,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=grant_type,
            redirect_uris="https://app.example/cb" if grant_type == Application.GRANT_AUTHORIZATION_CODE else "",
            client_secret=secret,
            hash_client_secret=hashed,
            algorithm=algorithm,
            skip_authorization=True,
        )
        app.full_clean()
        app.save()
        return {"client_id": app.client_id, "client_secret": secret}

    @transaction.atomic
    def _mint(self, app, n, scope, subject):
        user, _ = get_user_model().objects.get_or_create(username=subject)
        expires = timezone.now() + timedelta(seconds=oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)
        tokens = []
        for _ in range(n):
            at = AccessToken(user=user, application=app, expires=expires, scope=scope)
            set_token_value(at, secrets.token_urlsafe(32))
            at.save()
            raw = secrets.token_urlsafe(32)
            rt = RefreshToken(user=user, application=app, access_token=at, token_family=uuid.uuid4())
            set_token_value(rt, raw)
            rt.save()
            tokens.append(raw)
        return tokens
