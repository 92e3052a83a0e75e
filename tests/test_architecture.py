"""The floors of webapp/ (docs/architecture.md), read from the source: no import circle,
features never import each other, imports at the top of files.

entry (app, cli, demo) → features → floor (access, answers, auth, events, notify, …) → models, tokens
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "webapp"
# What a person does; each may import the floor, never another feature.
FEATURES = {"agenda", "today", "records", "admin", "patient", "visit", "closing", "payments", "site", "profile",
            "booking"}
ENTRY = {"app", "cli", "demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]):
    """(imported webapp module, line, at top level) for every import in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from . import bridge" names a module; "from .models import db" names the module itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno, id(node) in top


def graph() -> dict[str, set[str]]:
    found = modules()
    edges = {}
    for name, path in found.items():
        edges[name] = set()
        for target, _line, _top in imports(path, set(found)):
            # A submodule registering its routes on its own package's blueprint (``from . import bp``)
            # is how a package gathers its views: the package is loaded first, by Python's rules.
            if name.startswith(target + "."):
                continue
            edges[name].add(target)
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circle_among_webapp_modules():
    assert cycle(graph()) is None, " → ".join(cycle(graph()))


def test_the_circle_finder_finds_circles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def feature_of(module: str) -> str | None:
    part = module.split(".")[1] if module.count(".") else None
    return part if part in FEATURES else None


def test_features_never_import_each_other():
    crossings = []
    for name, targets in graph().items():
        mine = feature_of(name)
        for target in targets:
            theirs = feature_of(target)
            if theirs and theirs != mine and (mine or name.split(".")[1] not in ENTRY):
                crossings.append(f"{name} imports {target}")
    assert crossings == []


def test_the_floor_never_imports_a_feature():
    floor = [n for n in modules() if n != "webapp" and not feature_of(n) and n.split(".")[1] not in ENTRY]
    edges = graph()
    assert [f"{n} imports {t}" for n in floor for t in edges[n] if feature_of(t)] == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_sit_at_the_top_unless_a_comment_says_why(name):
    path = modules()[name]
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    top = {id(node) for node in tree.body}
    hidden = [node.lineno for node in ast.walk(tree)
              if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top
              and "#" not in lines[node.lineno - 1]]
    assert hidden == [], f"{path.relative_to(ROOT)}: imports inside functions at lines {hidden} without a why"
