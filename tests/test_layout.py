"""The layout of the tests themselves: test modules share code through the
helper modules (tests/helpers.py, tests/browser.py, ...), never by importing a
conftest.py (pytest loads those itself; their fixtures are requested by name)
or another test module (which would collect its tests twice and tie unrelated
files together)."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _package(path: Path) -> tuple[str, ...]:
    return path.relative_to(TESTS.parent).with_suffix("").parts[:-1]


def _imported_modules(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, dotted name) of every module a source imports, relative imports
    resolved against its package, including imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # ``from tests.oauth import test_cimd`` imports a module too.
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _forbidden(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and any(p == "conftest" or p.startswith("test_") for p in parts[1:])


def test_no_module_under_tests_imports_a_conftest_or_a_test_module():
    offenders = [f"{path.relative_to(TESTS.parent)}:{line}: {name}"
                 for path in sorted(TESTS.rglob("*.py"))
                 for line, name in _imported_modules(path.read_text(), _package(path)) if _forbidden(name)]
    assert not offenders, "import shared code from tests/helpers.py (or another helper module):\n" + "\n".join(offenders)


def test_the_check_sees_absolute_relative_and_nested_imports():
    source = """
from .conftest import pkce_pair
from tests.oauth.test_cimd import DocServer
from tests.web import test_login
import tests.conftest
from tests.helpers import pkce_pair
from . import helpers

def later():
    from ..oauth.test_tokens import something
"""
    names = {name for _, name in _imported_modules(source, ("tests", "stytch_emulator"))}
    assert {n for n in names if _forbidden(n)} == {
        "tests.stytch_emulator.conftest", "tests.stytch_emulator.conftest.pkce_pair",
        "tests.oauth.test_cimd", "tests.oauth.test_cimd.DocServer", "tests.web.test_login",
        "tests.conftest", "tests.oauth.test_tokens", "tests.oauth.test_tokens.something"}
    assert "tests.stytch_emulator.helpers" in names and "tests.helpers.pkce_pair" in names
