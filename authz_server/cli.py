"""``authz-server`` — run, migrate and administer the server.

Configuration comes from the environment (``authz_server.config``); see README.
"""
from __future__ import annotations

import json
import os
import sys

import click

from .config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


class _Ctx:
    def __init__(self):
        from .db import Database

        self.settings = _settings()
        self.db = Database(self.settings.database_url)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.session.commit()
        else:
            self.db.session.rollback()
        self.db.dispose()


@click.group()
def main():
    """OAuth 2.1 / OpenID Connect authorization server."""


# --- db ------------------------------------------------------------------------
@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision):
    """Apply migrations (alembic upgrade)."""
    from . import migrate

    migrate.upgrade(_settings().database_url, revision)
    click.echo("database is at " + revision)


@db.command("downgrade")
@click.option("--revision", default="base")
def db_downgrade(revision):
    """Revert migrations (alembic downgrade)."""
    from . import migrate

    migrate.downgrade(_settings().database_url, revision)
    click.echo("database is at " + revision)


# --- config ------------------------------------------------------------------------
@main.group("config")
def config_group():
    """Settings, read from the environment (see README)."""


@config_group.command("show")
def config_show():
    """Each setting's variable, effective value (secrets masked) and source (env or default).

    Needs no database. An invalid configuration is listed, then refused (exit 1)."""
    from .config import SETTINGS

    try:
        settings, sources = Settings.read_env()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    rows = [("VARIABLE", "VALUE", "SOURCE")]
    rows += [(s.env, s.show(getattr(settings, s.field)), sources[s.env]) for s in SETTINGS if s.env]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, value, source in rows:
        click.echo(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    try:
        settings.validate()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@config_group.command("readme-table")
@click.option("--write", "readme", metavar="README.md", type=click.Path(exists=True, dir_okay=False),
              help="regenerate the table between the markers of this README instead of printing it")
def config_readme_table(readme):
    """The README's settings table, generated from the declarations in authz_server/config.py."""
    from .config import render_readme_table, with_readme_table

    if readme is None:
        click.echo(render_readme_table())
        return
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    try:
        text = with_readme_table(text)
    except ValueError:
        raise click.ClickException(f"{readme} has no settings table markers") from None
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)


# --- clients -------------------------------------------------------------------
@main.group()
def clients():
    """Register and manage clients."""


def _print_client(c, secret=None, as_json=False):
    data = c.to_public_dict()
    if secret:
        data["client_secret"] = secret
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for k, v in data.items():
        click.echo(f"{k:28} {' '.join(v) if isinstance(v, list) else v}")
    if secret:
        click.echo("\nThe client secret is shown only once: store it now.")


DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPE_CHOICES = ["authorization_code", "refresh_token", "client_credentials", "device_code", DEVICE_CODE_GRANT]


def _grant_types(ctx, param, values):
    """``device_code`` is short for the RFC 8628 grant type URN."""
    return tuple(DEVICE_CODE_GRANT if v == "device_code" else v for v in values)


def _split_scopes(values):
    out = []
    for v in values:
        out.extend(v.split())
    return out


def _client_or_fail(ctx, client_id):
    from .storage import clients as store

    c = store.get(ctx.db.session, client_id)
    if c is None:
        raise click.ClickException(f"no client {client_id!r}")
    return c


@clients.command("create")
@click.option("--name", required=True)
@click.option("--type", "client_type", required=True,
              type=click.Choice(["first_party", "first_party_public", "third_party", "third_party_public"]))
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--scope", "scopes", multiple=True, help="allowed scopes (repeat or space-separate)")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(GRANT_TYPE_CHOICES), callback=_grant_types,
              help="repeat for several; device_code = urn:ietf:params:oauth:grant-type:device_code (RFC 8628)")
@click.option("--auth-method", type=click.Choice(["client_secret_basic", "client_secret_post", "none"]))
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
@click.option("--logo-uri")
@click.option("--client-uri")
@click.option("--organization-id", help="bind the client to one organization")
@click.option("--resource", "allowed_resources", multiple=True, metavar="URL",
              help="a registered resource the client may ask for, with its scopes (repeat for several); "
                   "none: client_credentials gets only the default audience")
@click.option("--introspect", "introspection_resources", multiple=True, metavar="URL",
              help="a resource (or the default audience) whose access tokens the client may introspect: "
                   "a resource server's credentials (repeat for several)")
@click.option("--json", "as_json", is_flag=True)
def clients_create(name, client_type, redirect_uris, scopes, grant_types, auth_method, post_logout, logo_uri,
                   client_uri, organization_id, allowed_resources, introspection_resources, as_json):
    """Register a client; prints its id (and, for confidential clients, its secret)."""
    from .storage import clients as store

    with _Ctx() as ctx:
        try:
            c, secret = store.create(
                ctx.db.session, name=name, client_type=client_type, redirect_uris=redirect_uris,
                scopes=_split_scopes(scopes), grant_types=grant_types or None, auth_method=auth_method,
                logo_uri=logo_uri, client_uri=client_uri, organization_id=organization_id,
                post_logout_redirect_uris=post_logout, allowed_resources=allowed_resources,
                introspection_resources=introspection_resources, default_audience=ctx.settings.audience,
            )
        except store.ClientInputError as e:
            raise click.ClickException(str(e)) from None
        ctx.db.session.flush()
        _print_client(c, secret, as_json)


@clients.command("list")
@click.option("--json", "as_json", is_flag=True)
def clients_list(as_json):
    from .storage import clients as store

    with _Ctx() as ctx:
        rows = store.all_clients(ctx.db.session)
        if as_json:
            click.echo(json.dumps([c.to_public_dict() for c in rows], indent=2))
            return
        for c in rows:
            state = "disabled" if c.disabled_at else "active"
            click.echo(f"{c.client_id}  {c.client_type:20} {state:9} {c.name}")


@clients.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def clients_show(client_id, as_json):
    with _Ctx() as ctx:
        _print_client(_client_or_fail(ctx, client_id), as_json=as_json)


@clients.command("update")
@click.argument("client_id")
@click.option("--name")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--scope", "scopes", multiple=True)
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(GRANT_TYPE_CHOICES), callback=_grant_types,
              help="repeat for several; device_code = urn:ietf:params:oauth:grant-type:device_code (RFC 8628)")
@click.option("--logo-uri")
@click.option("--client-uri")
@click.option("--resource", "allowed_resources", multiple=True, metavar="URL",
              help="replace the resources the client may ask for (repeat for several)")
@click.option("--no-resources", is_flag=True, help="allow the client no resource any more")
@click.option("--introspect", "introspection_resources", multiple=True, metavar="URL",
              help="replace the resources whose access tokens the client may introspect (repeat for several)")
@click.option("--no-introspection", is_flag=True, help="the client may no longer introspect")
@click.option("--json", "as_json", is_flag=True)
def clients_update(client_id, name, redirect_uris, scopes, grant_types, logo_uri, client_uri, allowed_resources,
                   no_resources, introspection_resources, no_introspection, as_json):
    """Change a client's metadata (only the options given)."""
    from .storage import clients as store

    if (allowed_resources and no_resources) or (introspection_resources and no_introspection):
        raise click.UsageError("--no-resources and --no-introspection cannot go with --resource and --introspect")
    with _Ctx() as ctx:
        c = _client_or_fail(ctx, client_id)
        try:
            store.update(ctx.db.session, c, name=name, redirect_uris=redirect_uris or None,
                         scopes=_split_scopes(scopes) or None, grant_types=grant_types or None,
                         logo_uri=logo_uri, client_uri=client_uri,
                         allowed_resources=[] if no_resources else (list(allowed_resources) or None),
                         introspection_resources=[] if no_introspection else (list(introspection_resources) or None),
                         default_audience=ctx.settings.audience)
        except store.ClientInputError as e:
            raise click.ClickException(str(e)) from None
        _print_client(c, as_json=as_json)


@clients.command("disable")
@click.argument("client_id")
@click.option("--enable", is_flag=True, help="re-enable instead")
def clients_disable(client_id, enable):
    from .storage import clients as store

    with _Ctx() as ctx:
        store.set_disabled(ctx.db.session, _client_or_fail(ctx, client_id), not enable)
        click.echo(("enabled " if enable else "disabled ") + client_id)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def clients_rotate(client_id, as_json):
    from .storage import clients as store

    with _Ctx() as ctx:
        try:
            secret = store.rotate_secret(ctx.db.session, _client_or_fail(ctx, client_id))
        except store.ClientInputError as e:
            raise click.ClickException(str(e)) from None
        if as_json:
            click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        else:
            click.echo(f"client_secret {secret}\nThe client secret is shown only once: store it now.")


@clients.command("delete")
@click.argument("client_id")
@click.option("--yes", is_flag=True)
def clients_delete(client_id, yes):
    from .storage import clients as store

    if not yes:
        click.confirm(f"Delete {client_id} and every grant it holds?", abort=True)
    with _Ctx() as ctx:
        store.delete(ctx.db.session, _client_or_fail(ctx, client_id))
        click.echo("deleted " + client_id)


@clients.command("gc")
@click.option("--dry-run", is_flag=True, help="list what would be deleted, delete nothing")
@click.option("--older-than-days", type=click.IntRange(min=1),
              help="never-used clients; default: AUTHZ_DCR_CLIENT_TTL_DAYS (7)")
@click.option("--idle-days", type=click.IntRange(min=1),
              help="clients whose grants all lapsed; default: AUTHZ_DCR_CLIENT_IDLE_DAYS (90)")
@click.option("--cimd-days", type=click.IntRange(min=2),
              help="metadata-document clients without grants, not fetched for this long; "
                   "default: AUTHZ_CIMD_CLIENT_TTL_DAYS (7)")
def clients_gc(dry_run, older_than_days, idle_days, cimd_days):
    """Delete dynamically registered clients that never got a token, or whose
    grants all lapsed and that have been idle since, and client ID metadata
    document clients that never got a grant (run it daily)."""
    from .storage import clients as store

    with _Ctx() as ctx:
        days = older_than_days or ctx.settings.dcr_client_ttl_days
        idle = idle_days or ctx.settings.dcr_client_idle_days
        cimd = cimd_days or ctx.settings.cimd_client_ttl_days
        found = store.collect_garbage(ctx.db.session, ttl_days=days, idle_days=idle, cimd_ttl_days=cimd,
                                      dry_run=dry_run)
        for client_id in found.never_used + found.idle + found.cimd:
            click.echo(("would delete " if dry_run else "deleted ") + client_id)
        suffix = " (dry run)" if dry_run else ""
        click.echo(f"{len(found.never_used)} never-used dynamically registered client(s) older than {days} day(s)"
                   + suffix)
        if idle:
            click.echo(f"{len(found.idle)} dynamically registered client(s) with every grant lapsed, "
                       f"idle for {idle} day(s)" + suffix)
        else:
            click.echo("idle clients are kept (AUTHZ_DCR_CLIENT_IDLE_DAYS=0)")
        if cimd:
            click.echo(f"{len(found.cimd)} client metadata document client(s) without grants, "
                       f"not fetched for {cimd} day(s)" + suffix)
        else:
            click.echo("client metadata document clients are kept (AUTHZ_CIMD_CLIENT_TTL_DAYS=0)")


# --- resources -------------------------------------------------------------------
@main.group()
def resources():
    """Protected resources (RFC 8707 audiences) and their scopes."""


def _print_resource(r, as_json=False):
    data = {"resource": r.identifier, "name": r.name, "scopes": list(r.scopes or [])}
    if r.description:
        data["description"] = r.description
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"{r.identifier}  {r.name}  scopes: {' '.join(r.scopes or []) or '-'}")


@resources.command("add")
@click.argument("identifier")
@click.option("--name", default=None)
@click.option("--scope", "scopes", multiple=True, help="scopes the resource defines (repeat or space-separate)")
@click.option("--description")
@click.option("--json", "as_json", is_flag=True)
def resources_add(identifier, name, scopes, description, as_json):
    """Register a resource, e.g. an MCP server: `resources add https://mcp.example.com --scope tools:read`."""
    from .storage import resources as store

    with _Ctx() as ctx:
        try:
            r = store.add(ctx.db.session, identifier, name, _split_scopes(scopes), description)
        except store.ResourceInputError as e:
            raise click.ClickException(str(e)) from None
        _print_resource(r, as_json)


@resources.command("list")
@click.option("--json", "as_json", is_flag=True)
def resources_list(as_json):
    from .storage import resources as store

    with _Ctx() as ctx:
        rows = store.all_resources(ctx.db.session)
        if as_json:
            click.echo(json.dumps([{"resource": r.identifier, "name": r.name, "scopes": list(r.scopes or [])}
                                   for r in rows], indent=2))
            return
        for r in rows:
            _print_resource(r)


@resources.command("remove")
@click.argument("identifier")
def resources_remove(identifier):
    from .storage import resources as store

    with _Ctx() as ctx:
        r = store.get(ctx.db.session, identifier)
        if r is None:
            raise click.ClickException(f"no resource {identifier!r}")
        store.remove(ctx.db.session, r)
        click.echo("removed " + r.identifier)


# --- keys ----------------------------------------------------------------------
@main.group()
def keys():
    """Signing keys."""


def _keystore(ctx):
    from .oauth.keys import KeyStore

    return KeyStore(ctx.db, ctx.settings.key_encryption_key, retired_publish_seconds=10**9)


@keys.command("rotate")
@click.option("--alg", type=click.Choice(["ES256", "RS256"]))
@click.option("--force", is_flag=True,
              help="a compromised active key: rotate although the next key is freshly published, and revoke "
                   "the old key (it leaves the JWKS and the tokens it signed stop verifying)")
def keys_rotate(alg, force):
    """next → active → retired, and a new next key (with --force the old key is revoked, not retired)."""
    from .oauth.keys import RotationTooSoon

    with _Ctx() as ctx:
        try:
            changes = _keystore(ctx).rotate(ctx.db.session, alg, force=force, actor="cli")
        except RotationTooSoon as e:
            raise click.ClickException(f"{e} (--force)") from None
        for a, old, new in changes:
            click.echo(f"{a}: active {new} ({'revoked' if force else 'retired'} {old or '-'})")


@keys.command("revoke")
@click.argument("kid")
def keys_revoke(kid):
    """Revoke a compromised key of any state: it leaves the JWKS and the tokens it
    signed stop verifying (every node within a minute). An active key is first
    replaced by the next key, so signing goes on."""
    from .oauth.keys import UnknownKey

    with _Ctx() as ctx:
        try:
            done = _keystore(ctx).revoke(ctx.db.session, kid, actor="cli")
        except UnknownKey:
            raise click.ClickException(f"no signing key {kid!r} (see 'keys list')") from None
        if done is None:
            click.echo(f"{kid} was already revoked")
            return
        click.echo(f"{done.alg}: revoked {kid} (was {done.previous_state})")
        if done.previous_state == "active":
            click.echo(f"{done.alg}: active {done.replaced_by}")
        elif done.previous_state == "next":
            click.echo(f"{done.alg}: next {done.replaced_by}")


@keys.command("list")
def keys_list():
    from sqlalchemy import select

    from .models import SigningKey

    with _Ctx() as ctx:
        _keystore(ctx).ensure(ctx.db.session)
        # A key and its successor can share a creation time: the kid keeps the order stable.
        rows = select(SigningKey).order_by(SigningKey.alg, SigningKey.created_at, SigningKey.kid)
        for k in ctx.db.session.scalars(rows):
            click.echo(f"{k.kid:28} {k.alg:6} {k.state:8} created {k.created_at:%Y-%m-%d %H:%M}")


# --- tokens (operators and benchmarks) -------------------------------------------
@main.group()
def tokens():
    """Operator tools for grants."""


@tokens.command("issue-refresh")
@click.option("--client-id", required=True)
@click.option("--subject", required=True)
@click.option("--organization-id", required=True)
@click.option("--scope", default="openid offline_access")
@click.option("--json", "as_json", is_flag=True)
def tokens_issue_refresh(client_id, subject, organization_id, scope, as_json):
    """Create a grant directly and print its refresh token (benchmarks, migrations)."""
    import datetime as dt

    from .clock import utcnow
    from .storage import audit, grants as grant_store

    with _Ctx() as ctx:
        c = _client_or_fail(ctx, client_id)
        if "refresh_token" not in (c.grant_types or []):
            raise click.ClickException("the client is not registered for the refresh_token grant")
        g = grant_store.create(ctx.db.session, client_id=client_id, subject=subject, organization_id=organization_id,
                               scope=scope, resource=[], claims={"organization_id": organization_id},
                               auth_time=utcnow(), absolute_ttl=ctx.settings.refresh_token_absolute_ttl)
        ctx.db.session.flush()
        rt = grant_store.new_refresh_token(ctx.db.session, g, grant_id=g.id, grant_expires_at=g.expires_at,
                                           idle_ttl=ctx.settings.refresh_token_idle_ttl)
        audit.record(ctx.db.session, "grant_created_by_operator", client_id=client_id, subject=subject, grant_id=g.id)
        del dt
        click.echo(json.dumps({"refresh_token": rt, "grant_id": g.id}) if as_json else rt)


# --- serving ---------------------------------------------------------------------
def _prepare(settings):
    """Migrate and make sure signing keys exist, before any worker starts."""
    from . import migrate

    migrate.upgrade(settings.database_url)
    _ensure_keys(settings)


def _ensure_keys(settings):
    from .db import Database
    from .oauth.keys import KeyDecryptionError, KeyStore

    d = Database(settings.database_url)
    try:
        store = KeyStore(d, settings.key_encryption_key, 0)
        store.check_decryptable(d.session)
        store.ensure(d.session)
        d.session.commit()
    except KeyDecryptionError as e:
        raise click.ClickException(str(e)) from None
    finally:
        d.dispose()


@main.command()
@click.option("--host", default="0.0.0.0")
@click.option("--port", default=8000, type=int)
@click.option("--workers", default=lambda: (os.cpu_count() or 1) * 2 + 1, type=int)
@click.option("--no-migrate", is_flag=True, help="do not run migrations first")
def serve(host, port, workers, no_migrate):
    """Run under gunicorn with the production settings from the environment."""
    from gunicorn.app.base import BaseApplication

    settings = _settings()
    if no_migrate:
        _ensure_keys(settings)
    else:
        _prepare(settings)

    class App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 30)
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", None)

        def load(self):
            from . import create_app

            return create_app(settings)

    App().run()


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--stytch-port", default=8787, type=int, help="port of the embedded Stytch emulator")
def dev(host, port, stytch_port):
    """Start on the embedded defaults (SQLite, the Stytch emulator, a demo client): what `make run` calls."""
    from . import create_app
    from .demo import seed

    os.environ.setdefault("AUTHZ_ISSUER", f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}")
    settings = _settings()
    if settings.is_production:
        raise click.ClickException("'dev' refuses AUTHZ_ENV=production; use 'serve'")
    emulator = None
    if not settings.stytch_configured:
        # Unset Stytch settings in development mean "start the emulator" (refused in production).
        from .stytch_emulator import LiveProjectRefused, refuse_live, start_emulator

        try:
            refuse_live(settings.stytch_project_id, settings.stytch_environment, settings.stytch_secret)
        except LiveProjectRefused as e:
            raise click.ClickException(str(e)) from None
        emulator = start_emulator(port=stytch_port, host="127.0.0.1")
        settings = settings.with_overrides(stytch_project_id=emulator.project_id, stytch_secret=emulator.secret,
                                           stytch_public_token=emulator.public_token,
                                           stytch_environment=emulator.url)
    _prepare(settings)
    info = seed(settings)
    app = create_app(settings)
    click.echo(info)
    if emulator is not None:
        click.echo(f"  Stytch emulator: {emulator.url}  (identity page: type any email; "
                   f"passcodes at {emulator.url}/emulator/outbox?email=…)\n")
    sys.stdout.flush()
    app.run(host=host, port=port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
