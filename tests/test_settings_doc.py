"""The README's settings table is the one the declarations make.

``authz_server.config.SETTINGS`` declares every setting once; the README's table
(between its markers) is generated from it, so a setting added, renamed, given
another default or described differently without regenerating the README fails
here.
"""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from authz_server.cli import main as cli
from authz_server.config import SETTINGS, readme_table_of, render_readme_table, with_readme_table

README = Path(__file__).resolve().parent.parent / "README.md"
REGENERATE = "authz-server config readme-table --write README.md"


def test_readme_settings_table_matches_the_declarations():
    table = readme_table_of(README.read_text(encoding="utf-8"))
    assert table is not None, f"README.md lost the settings table markers; put them back and run `{REGENERATE}`"
    assert table == render_readme_table(), (
        f"README.md's settings table and authz_server/config.py SETTINGS disagree; run `{REGENERATE}`")


def test_readme_table_names_every_environment_variable_once():
    """Each variable has exactly one row, and every AUTHZ_*/STYTCH_* name the README
    mentions anywhere is a declared setting."""
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z_]+)` \|", readme_table_of(text), re.M)
    declared = [s.env for s in SETTINGS if s.env]
    assert rows == declared
    mentioned = set(re.findall(r"\b((?:AUTHZ|STYTCH)_[A-Z_]*[A-Z])\b", text))
    assert mentioned <= set(declared), sorted(mentioned - set(declared))


def test_readme_table_command_prints_and_rewrites_the_table(tmp_path):
    res = CliRunner().invoke(cli, ["config", "readme-table"])
    assert res.exit_code == 0 and res.output.strip() == render_readme_table()
    stale = tmp_path / "README.md"
    stale.write_text(with_readme_table(README.read_text(encoding="utf-8")).replace("`1200`", "`1`"),
                     encoding="utf-8")
    assert readme_table_of(stale.read_text(encoding="utf-8")) != render_readme_table()
    res = CliRunner().invoke(cli, ["config", "readme-table", "--write", str(stale)])
    assert res.exit_code == 0, res.output
    assert stale.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")
