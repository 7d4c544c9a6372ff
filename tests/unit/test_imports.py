"""The package's import graph has no cycle, and every import goes the way the
layering allows (issue 22): the rules are data, LAYER_RULES below."""

import ast
import pathlib

import mpmserver

PACKAGE = pathlib.Path(mpmserver.__file__).parent


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """Modules of the package this file imports, at any depth (lazy imports count)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c == "mpmserver" or c.startswith("mpmserver."))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    g = {}
    for name, path in modules.items():
        # "from . import x" names a module when x is one; else it is the package.
        g[name] = {m for m in imports_of(path) if m in modules and m != name}
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(g):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    g = graph()
    assert "mpmserver.child.child" in g and "mpmserver.child.listener.listener" in g["mpmserver.child.child"]
    cycle = find_cycle(g)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# -- the directions of the layering --------------------------------------------

FOUNDATION = {"scoreboard", "logs", "titles", "eventloop", "safefiles", "appspec", "demo"}
SUBPACKAGES = {"master", "child", "http", "modules", "deploy", "bench"}


def layer(module: str) -> str:
    """The layer a module of the package belongs to: a subpackage's name,
    "foundation" for the top-level foundation modules, else the module's own
    name (config, cli, testing, pytest_plugin, __main__), "" for the package."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    if parts[1] in SUBPACKAGES:
        return parts[1]
    return "foundation" if parts[1] in FOUNDATION else parts[1]


ENTRY_POINTS = {"cli", "testing", "pytest_plugin"}

# (importing layer, imported layers it must never import, why)
LAYER_RULES: list[tuple[str, set[str], str]] = [
    ("http", {"child", "master", "deploy"}, "HTTP is the protocol; who runs it is above it"),
    ("modules", {"child", "master", "http"}, "a module owns its directives' meaning, not the mechanisms"),
    ("deploy", {"child", "master", "http", "modules"}, "deployment hands sockets and ids to the MPM"),
    ("child", {"master"}, "a child knows its master only through the scoreboard and signals"),
    ("foundation", SUBPACKAGES | {"config"} | ENTRY_POINTS, "the foundation is below every room"),
    ("config", {"child", "master", "http", "deploy", "bench"} | ENTRY_POINTS,
     "the configuration asks only the modules to parse their directives"),
]
# Who may import an entry point (cli, testing, pytest_plugin): nothing else does.
ENTRY_POINT_IMPORTERS = {"cli": {"__main__"}, "testing": {"pytest_plugin"}, "pytest_plugin": set()}


def violations(g: dict[str, set[str]]) -> list[str]:
    """Every import of g that a rule forbids, as "importer -> imported (rule)"."""
    found = []
    for importer in sorted(g):
        here = layer(importer)
        for imported in sorted(g[importer]):
            there = layer(imported)
            if there == here:
                continue
            for source, forbidden, why in LAYER_RULES:
                if here == source and there in forbidden:
                    found.append(f"{importer} -> {imported} ({source}/ never imports {there}: {why})")
            if there in ENTRY_POINT_IMPORTERS and here not in ENTRY_POINT_IMPORTERS[there]:
                found.append(f"{importer} -> {imported} (only {sorted(ENTRY_POINT_IMPORTERS[there]) or 'nothing'} "
                             f"may import {there})")
    return found


def test_every_import_goes_the_way_the_layering_allows():
    g = graph()
    # The layers the rules name exist: a rule about nothing would pass forever.
    layers = {layer(m) for m in g}
    assert {"http", "modules", "deploy", "child", "master", "foundation", "config", "cli", "testing",
            "pytest_plugin", "__main__"} <= layers, layers
    assert FOUNDATION <= {m.split(".")[1] for m in g if layer(m) == "foundation"}
    assert violations(g) == []


def test_the_layering_checker_finds_a_violation():
    g = {"mpmserver.http.request": {"mpmserver.child.worker", "mpmserver.http.errors", "mpmserver.logs"},
         "mpmserver.child.worker": {"mpmserver.http.request"},
         "mpmserver.modules.status": {"mpmserver.http.response"},
         "mpmserver.logs": {"mpmserver.config"},
         "mpmserver.scoreboard": {"mpmserver"},
         "mpmserver.master.master": {"mpmserver.testing"},
         "mpmserver.pytest_plugin": {"mpmserver.testing"},
         "mpmserver.__main__": {"mpmserver.cli"},
         "mpmserver.bench.cli": {"mpmserver.cli"}}
    assert [v.split(" (")[0] for v in violations(g)] == [
        "mpmserver.bench.cli -> mpmserver.cli",
        "mpmserver.http.request -> mpmserver.child.worker",
        "mpmserver.logs -> mpmserver.config",
        "mpmserver.master.master -> mpmserver.testing",
        "mpmserver.modules.status -> mpmserver.http.response",
    ]


# -- inside the listener: rooms around a loop core -----------------------------

LISTENER = "mpmserver.child.listener"
ROOMS = {f"{LISTENER}.{room}" for room in ("accept", "reading", "parking", "siblings", "completion", "handshake",
                                             "static", "spooling")}


def room_violations(g: dict[str, set[str]]) -> list[str]:
    """A listener room importing another room: rooms know each other only
    through core.py's interfaces, bound by listener.py."""
    return [f"{importer} -> {imported}" for importer in sorted(ROOMS & g.keys())
            for imported in sorted(g[importer] & ROOMS)]


def test_the_listener_rooms_import_only_the_core():
    g = graph()
    assert ROOMS <= g.keys(), ROOMS - g.keys()
    assert f"{LISTENER}.core" in g[f"{LISTENER}.reading"]
    assert room_violations(g) == []


def test_the_room_checker_finds_a_violation():
    g = {f"{LISTENER}.accept": {f"{LISTENER}.siblings", f"{LISTENER}.core"},
         f"{LISTENER}.listener": {f"{LISTENER}.accept"}}
    assert room_violations(g) == [f"{LISTENER}.accept -> {LISTENER}.siblings"]
