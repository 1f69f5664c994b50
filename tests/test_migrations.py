"""Migrations (policy): `upgrade` then `downgrade` then `upgrade` works on
SQLite and on Postgres, and the migrated schema is exactly what the models
declare (Alembic's autogenerate comparison finds nothing to do).

Each run uses a fresh database of its own: a temporary SQLite file, and, when
TEST_DATABASE_URL points at Postgres, a new database created (and dropped) on
that server, so the shared test database is never touched."""
from __future__ import annotations

import secrets

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from authz_server import migrate, models  # noqa: F401  (register every table)
from authz_server.db import Base
from tests.helpers import TEST_DATABASE_URL


def _head() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def _state(url):
    """(current revision, table names, schema differences against the models)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
            return ctx.get_current_revision(), set(inspect(conn).get_table_names()), diffs
    finally:
        engine.dispose()


def _round_trip(url):
    model_tables = set(Base.metadata.tables)
    migrate.upgrade(url, "head")
    rev, tables, diffs = _state(url)
    assert rev == _head()
    assert model_tables <= tables
    assert diffs == [], diffs

    migrate.downgrade(url, "base")
    rev, tables, _ = _state(url)
    assert rev is None
    assert tables - {"alembic_version"} == set(), tables

    migrate.upgrade(url, "head")
    rev, tables, diffs = _state(url)
    assert rev == _head()
    assert model_tables <= tables
    assert diffs == [], diffs


def test_migrations_round_trip_on_a_fresh_sqlite_file(tmp_path):
    """Upgrade head → downgrade base → upgrade head on SQLite; schema matches the models."""
    _round_trip(f"sqlite:///{tmp_path / 'sub' / 'fresh.db'}")


@pytest.fixture
def fresh_postgres():
    if not (TEST_DATABASE_URL or "").startswith("postgresql"):
        pytest.skip("set TEST_DATABASE_URL=postgresql+psycopg://… to run the Postgres migration test")
    import psycopg

    base = make_url(TEST_DATABASE_URL)
    name = "authz_mig_" + secrets.token_hex(6)
    admin = dict(host=base.host or "127.0.0.1", port=base.port or 5432, user=base.username,
                 password=base.password, dbname="postgres", autocommit=True)
    with psycopg.connect(**{k: v for k, v in admin.items() if v is not None}) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**{k: v for k, v in admin.items() if v is not None}) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_round_trip_on_a_fresh_postgres_database(fresh_postgres):
    """Upgrade head → downgrade base → upgrade head on Postgres; schema matches the models."""
    _round_trip(fresh_postgres)


def test_migrated_schema_serves_the_app(tmp_path):
    """The migrated (not create_all) schema is the one the app runs on:
    the models' own tables and indexes all exist after `upgrade head`."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        for table in Base.metadata.sorted_tables:
            have = {ix["name"] for ix in insp.get_indexes(table.name)}
            want = {ix.name for ix in table.indexes}
            assert want <= have, (table.name, want - have)
            cols = {c["name"] for c in insp.get_columns(table.name)}
            assert {c.name for c in table.columns} == cols, table.name
    finally:
        engine.dispose()
