"""Run Alembic migrations programmatically (``authz-server db upgrade``)."""
from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alembic_config(url: str) -> Config:
    cfg = Config(os.path.join(ROOT, "alembic.ini"))
    cfg.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    cfg.attributes["url"] = url
    return cfg


def _ensure_sqlite_dir(url: str):
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = url[len("sqlite:///"):]
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)


def upgrade(url: str, revision: str = "head"):
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base"):
    command.downgrade(alembic_config(url), revision)
