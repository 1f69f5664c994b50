"""The layers of authz_server point one way (docs/architecture.md, "Layers"):

    web  ->  oauth, identity  ->  storage  ->  models  ->  db

Every module under authz_server/ has a rank; it may import modules of its own
rank or below, never above. Imports inside functions count too: a lazy import
is still a dependency. On top of the ranks:

- only `storage` (and the wiring at the top: the app factory, the CLI, the demo
  seed) reaches `models` and `db`: `oauth`, `identity` and `web` go through
  `storage`;
- the layers below `oauth` import neither Flask, Werkzeug, Authlib nor the Stytch
  SDK, and only `identity/gateway.py` imports the Stytch SDK;
- `stytch_emulator` is a separate app: it imports nothing else of authz_server,
  and of the app only the CLI (which starts it for development) imports it;
- no two modules import each other, directly or round a longer loop;
- no module changes the process environment when it is imported.

What the code still does against these rules is listed below, each entry with
why it is still there. The lists may only shrink: a new violation fails, and so
does an entry that no longer happens (remove it).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "authz_server"

# Modules below every layer, usable from all of them: pure rules and helpers
# that import nothing of the app but each other.
BASE = 0
DB, MODELS, STORAGE, PROTOCOL, WEB, APP = 1, 2, 3, 4, 5, 6

RANKS = {
    "clock": BASE,        # utcnow
    "config": BASE,       # Settings; its checks use rules.resource_uris
    "security": BASE,     # digests, random identifiers
    "rules": BASE,        # pure rules shared by storage and oauth (redirect URIs, resource URIs, user codes)
    "ratelimit": BASE,    # counters in Redis or memory, keyed by the caller
    "db": DB,
    "models": MODELS,
    "storage": STORAGE,
    "oauth": PROTOCOL,
    "identity": PROTOCOL,
    "errors": PROTOCOL,   # maps errors (Authlib's, the identity gateway's) to HTTP responses
    "sources": PROTOCOL,  # reads the caller's address from the Flask request
    "web": WEB,
    "__init__": APP,      # create_app wires every layer together
    "cli": APP,
    "demo": APP,
    "migrate": APP,
}
EMULATOR = "stytch_emulator"
FRAMEWORKS = ("flask", "werkzeug", "authlib", "stytch")

# (importer, imported) pairs that break the rules and are not fixed yet.
KNOWN_VIOLATIONS = {
    # The client object Authlib sees wraps the Client model (and RegisteredVia).
    ("authz_server.oauth.clients", "authz_server.models"),
    # The key store loads and writes SigningKey rows itself.
    ("authz_server.oauth.keys", "authz_server.models"),
    # The scope policy compares the client's RegisteredVia (a model enum).
    ("authz_server.oauth.scopes", "authz_server.models"),
    # CIMD checks the client's RegisteredVia (a model enum).
    ("authz_server.oauth.registration.cimd", "authz_server.models"),
}
# Import cycles not broken yet, each as the sorted modules of the loop.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from x import name`` counts as x, or as
    x.name when that is a module), relative imports resolved, nested ones included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                inner = f"{module}.{alias.name}"
                found.add(inner if module.startswith("authz_server") and _is_module(inner) else module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _top(name: str) -> str:
    """The first component under authz_server ("__init__" for the package itself)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _broken_rules(importer: str, imported: str) -> list[str]:
    mine = _top(importer)
    if imported.split(".")[0] in FRAMEWORKS:
        if mine == EMULATOR:
            return []
        if RANKS[mine] < PROTOCOL:
            return [f"{mine} must not depend on {imported.split('.')[0]}"]
        if imported.split(".")[0] == "stytch" and importer != "authz_server.identity.gateway":
            return ["only identity/gateway.py imports the Stytch SDK"]
        return []
    if not imported.startswith("authz_server"):
        return []
    theirs = _top(imported)
    if mine == EMULATOR or theirs == EMULATOR:
        if mine == theirs or (importer == "authz_server.cli" and theirs == EMULATOR):
            return []
        return ["stytch_emulator is a separate app"]
    if RANKS[theirs] > RANKS[mine]:
        return [f"{mine} (a lower layer) imports {theirs}"]
    if RANKS[theirs] in (DB, MODELS) and RANKS[mine] in (PROTOCOL, WEB):
        return [f"{mine} reaches the database only through storage"]
    return []


def _violations(graph) -> set[tuple[str, str]]:
    return {(importer, imported.split(".")[0] if imported.split(".")[0] in FRAMEWORKS
             else ".".join(imported.split(".")[:2]))
            for importer, imports in graph.items() for imported in imports
            if _broken_rules(importer, imported)}


def _cycles(graph) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges = {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), set()

    def visit(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in edges[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for m in edges:
        if m not in index:
            visit(m)
    return found


def test_every_top_level_module_has_a_layer():
    unknown = {_top(m) for m in _graph()} - set(RANKS) - {EMULATOR}
    assert not unknown, f"give these a rank in RANKS (tests/test_layers.py): {sorted(unknown)}"


def test_no_lower_layer_imports_a_higher_one():
    graph = _graph()
    new = sorted(f"{importer} imports {imported}: {'; '.join(_broken_rules(importer, imported))}"
                 for importer, imports in graph.items() for imported in imports
                 if _broken_rules(importer, imported)
                 and (importer, ".".join(imported.split(".")[:2])) not in KNOWN_VIOLATIONS)
    assert not new, "imports against the layering (docs/architecture.md):\n" + "\n".join(new)


def test_known_violations_still_happen():
    fixed = KNOWN_VIOLATIONS - _violations(_graph())
    assert not fixed, f"fixed, so remove from KNOWN_VIOLATIONS: {sorted(fixed)}"


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert cycles <= KNOWN_CYCLES, f"import cycles: {sorted(cycles - KNOWN_CYCLES)}"
    assert KNOWN_CYCLES <= cycles, f"broken, so remove from KNOWN_CYCLES: {sorted(KNOWN_CYCLES - cycles)}"


def _sets_environment_on_import(source: str) -> list[int]:
    """Lines outside functions that write ``os.environ`` or call ``os.putenv``."""
    found = []

    def writes(node) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            return target in ("os.putenv", "os.unsetenv") or (
                target.startswith("os.environ.") and node.func.attr in ("setdefault", "update", "pop", "clear"))
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            return any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ" for t in targets)
        return False

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if writes(node):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_no_module_sets_environment_variables_on_import():
    offenders = [f"{p.relative_to(PACKAGE.parent)}:{line}" for p in sorted(PACKAGE.rglob("*.py"))
                 for line in _sets_environment_on_import(p.read_text())]
    assert not offenders, "set environment variables where they are needed, not on import:\n" + "\n".join(offenders)


def test_the_check_sees_what_it_should():
    assert _broken_rules("authz_server.storage.clients", "authz_server.oauth.resources")
    assert _broken_rules("authz_server.storage.audit", "flask")
    assert _broken_rules("authz_server.db", "authz_server.models")
    assert _broken_rules("authz_server.oauth.scopes", "authz_server.models")
    assert _broken_rules("authz_server.web.authorize", "stytch")
    assert _broken_rules("authz_server.stytch_emulator.api", "authz_server.storage.clients")
    assert _broken_rules("authz_server.web.device", "authz_server.stytch_emulator.app")
    assert not _broken_rules("authz_server.web.device", "authz_server.storage.device")
    assert not _broken_rules("authz_server.storage.device", "authz_server.rules.user_codes")
    assert not _broken_rules("authz_server.oauth.server", "authz_server.identity.gateway")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
    assert _sets_environment_on_import(
        'import os\nos.environ.setdefault("A", "1")\nos.environ["B"] = "2"\n'
        'class C:\n    os.putenv("C", "3")\ndef f():\n    os.environ.setdefault("D", "4")\n') == [2, 3, 5]
