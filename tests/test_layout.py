"""The floors of the house, declared once here and checked against every import in the source.

packproof installs as one namespace, `packproof.*`: the kernel lives in `packproof/`, and
setuptools' `package-dir` (pyproject.toml) maps each top-level folder of the flow into it.
From the ground up:

    kernel            packproof/    the reading contract, canonical bytes, keys, errors,
                                    RFC 6962 leaf hashing, delivery watermarks, the store
    stage 1           simulators/   devices: signals, scenarios, the publisher
    stage 2           broker/       MQTT broker, logins and ACLs
    stage 3           edge/         the ingestor: decode, verify, check, settle
    stage 4           anchor/       sealer, ledger, proofs, audit
    stage 5           api/          the REST API
    composition root  app/          the CLI, configuration, services, the runner
    tools             benchmarks/   scripts that drive the whole

A module may import its own floor and the floors below it, never one above; no import
closes a cycle between modules; a stage is imported as `packproof.<stage>`, never by its
folder's name. The imports are read with `ast` from the source tree, function-local ones and
those under `if TYPE_CHECKING:` included (a type-only import is still a dependency of the
reader). A function-local import carries a comment saying why it is not at the top.
Each failure names the file and line of the import.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The installed namespace: module prefix -> folder in the repository.
PACKAGE_DIRS: dict[str, str] = {
    "packproof": "packproof",
    "packproof.simulators": "simulators",
    "packproof.broker": "broker",
    "packproof.edge": "edge",
    "packproof.anchor": "anchor",
    "packproof.api": "api",
    "packproof.app": "app",
}
TOOLS = {"benchmarks": "benchmarks"}  # walked, never installed

# The floors, ground first: a module stands on the floor of its longest matching prefix.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kernel", ("packproof",)),
    ("stage 1: simulators", ("packproof.simulators",)),
    ("stage 2: broker", ("packproof.broker",)),
    ("stage 3: edge", ("packproof.edge",)),
    ("stage 4: anchor", ("packproof.anchor",)),
    ("stage 5: api", ("packproof.api",)),
    ("composition root", ("packproof.app", "packproof.__main__")),
    ("tools", ("benchmarks",)),
)
# Folder names that must never be imported as top-level modules (they exist only as packproof.*).
FOLDER_NAMES = {folder for prefix, folder in PACKAGE_DIRS.items() if prefix != "packproof"}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it stands and whether it runs inside a function."""

    source: str  # importing module
    path: Path
    line: int
    target: str  # imported module (as written, made absolute)
    local: bool


def _modules() -> dict[str, Path]:
    """Every module of the source tree by its dotted name in the installed namespace."""
    found: dict[str, Path] = {}
    for prefix, folder in {**PACKAGE_DIRS, **TOOLS}.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            if any(part in {"__pycache__"} for part in rel.parts):
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            # A module of a folder that is itself mapped elsewhere belongs to that mapping.
            if name in found:
                continue
            found[name] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _local_import_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    inside.add(id(sub))
    return inside


def _imports(modules: dict[str, Path]) -> Iterator[Import]:
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        local = _local_import_nodes(tree)
        package = name if _is_package(path) else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(name, path, node.lineno, alias.name, id(node) in local)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    yield Import(name, path, node.lineno, submodule if submodule in modules else target,
                                 id(node) in local)


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module of the tree an import names (a folder's bare name counts as its namespace)."""
    top, _, rest = target.partition(".")
    if top in FOLDER_NAMES:
        target = f"packproof.{target}"
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def _floor(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for level, (floor, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), level, floor)
    assert best is not None, f"{module} stands on no floor: declare it in FLOORS"
    return best[1], best[2]


def _where(imp: Import) -> str:
    return f"{imp.path.relative_to(ROOT)}:{imp.line}"


def test_pyproject_installs_one_namespace() -> None:
    """pyproject.toml maps exactly the folders declared here, and installs nothing but packproof.*."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools.get("package-dir") == PACKAGE_DIRS, (
        f"pyproject.toml [tool.setuptools] package-dir is {setuptools.get('package-dir')}, expected {PACKAGE_DIRS}")
    packages = setuptools.get("packages", [])
    outside = [p for p in packages if p != "packproof" and not p.startswith("packproof.")]
    assert packages and not outside, f"pyproject.toml installs top-level packages {outside or packages}"
    missing = sorted({m for m, p in _modules().items() if _is_package(p) and not m.startswith("benchmarks")}
                     - set(packages))
    assert not missing, f"packages in the tree that pyproject.toml does not install: {missing}"


def test_every_stage_is_imported_through_the_namespace() -> None:
    modules = _modules()
    bad = [f"{_where(i)}: `{i.target}` is a folder's name; import it as `packproof.{i.target}`"
           for i in _imports(modules) if i.target.partition(".")[0] in FOLDER_NAMES]
    assert not bad, "imports outside the packproof namespace:\n" + "\n".join(bad)


def test_no_import_runs_up_a_floor() -> None:
    modules = _modules()
    bad = []
    for imp in _imports(modules):
        target = _resolve(imp.target, modules)
        if target is None:
            continue  # the standard library or a dependency
        (low, low_name), (high, high_name) = _floor(imp.source), _floor(target)
        if high > low:
            bad.append(f"{_where(imp)}: {imp.source} ({low_name}) imports {target} ({high_name})")
    assert not bad, "imports that run from a lower floor up to a higher one:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_closes_a_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    edges: list[tuple[Import, str]] = []
    for imp in _imports(modules):
        target = _resolve(imp.target, modules)
        if target is None or target == imp.source:
            continue
        graph.setdefault(imp.source, set()).add(target)
        edges.append((imp, target))
    bad = []
    for component in _cycles(graph):
        members = set(component)
        bad.append("cycle: " + " <-> ".join(component))
        bad += [f"  {_where(i)}: {i.source} imports {t}" for i, t in edges if i.source in members and t in members]
    assert not bad, "imports that close a cycle:\n" + "\n".join(bad)


def _says_why(lines: list[str], line: int) -> bool:
    here, above = lines[line - 1], lines[line - 2] if line >= 2 else ""
    return "#" in here or above.strip().startswith("#")


def test_function_local_imports_say_why() -> None:
    modules = _modules()
    bad = []
    texts = {path: path.read_text().splitlines() for path in modules.values()}
    for imp in _imports(modules):
        if imp.local and not _says_why(texts[imp.path], imp.line):
            bad.append(f"{_where(imp)}: `{imp.target}` imported inside a function with no comment saying why")
    assert not bad, "function-local imports must say why they are not at the top:\n" + "\n".join(sorted(set(bad)))
