"""Layout checks of docs/architecture.md: no import cycles between biomlff's modules (module-level
and function-level imports alike), the pillars do not import the thin layers above them, and every
import from one room (core, a pillar, the front door, the calculators, the CLI) into another is on the
allow-list below."""

from __future__ import annotations

import ast
from pathlib import Path

import biomlff

SRC = Path(biomlff.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """biomlff modules imported anywhere in ``path`` (``from . import x`` resolved to the module x
    when x is a module, else to the package)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("biomlff"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("biomlff"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = list(SRC.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert cycles == [], f"import cycles: {cycles}"


def test_pillars_do_not_import_cli_or_calculators_at_module_level():
    pillars = ("data", "labels", "gdml", "so3lr", "md", "analysis", "training")
    bad = []
    for p in SRC.rglob("*.py"):
        name = _module_name(p)
        if name.split(".")[1:2] and name.split(".")[1] in pillars:
            for node in ast.parse(p.read_text()).body:  # module level only
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and (node.module.startswith("cli") or ".cli" in ("." * node.level + node.module))
                ):
                    bad.append(f"{name}: from {'.' * node.level}{node.module}")
    assert bad == []


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


PILLARS = ("data", "labels", "gdml", "so3lr", "md", "analysis", "training")

#: room → the rooms it may import (anywhere in a module, function-level imports included). ``core`` is
#: every top-level module but the front door (``models``); the front door builds the models of the
#: model pillars; the calculators and the CLI sit on top.
ALLOWED = {
    "core": {"core"},
    "data": {"core"},
    "labels": {"core", "data"},
    "gdml": {"core", "data"},
    "so3lr": {"core", "data"},
    "md": {"core", "data"},
    "analysis": {"core", "data"},
    "training": {"core", "data", "so3lr"},
    "models": {"core", "so3lr", "gdml"},
    "calculators": {"core", "models", "so3lr", "gdml"},
    "cli": {"core", "models", "calculators", *PILLARS},
}


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in (*PILLARS, "calculators", "cli", "models"):
        return parts[1]
    return "core"


def _sideways(graph) -> list[str]:
    bad = []
    for a, targets in graph.items():
        if a == "biomlff.__main__":
            continue  # ``python -m biomlff`` runs the CLI
        for b in targets:
            ra, rb = _room(a), _room(b)
            if ra != rb and rb not in ALLOWED[ra]:
                bad.append(f"{a} ({ra}) imports {b} ({rb})")
    return sorted(bad)


def test_pillar_imports_follow_the_allow_list():
    assert _sideways(_graph()) == []


def test_the_allow_list_check_finds_a_sideways_import():
    assert _sideways({"biomlff.analysis.x": {"biomlff.md.y"}, "biomlff.md.y": set()}) == [
        "biomlff.analysis.x (analysis) imports biomlff.md.y (md)"
    ]
    assert _sideways({"biomlff.geometry": {"biomlff.models"}}) == [
        "biomlff.geometry (core) imports biomlff.models (models)"
    ]
