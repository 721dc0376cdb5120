"""The import graph, read from the source (AST, nothing imported, no services): no module under
commands/, queries/, projections/ or gateways/ imports the composition root `iotcloud` (what they
need is passed in from iotcloud/), and no import cycle among the project's modules, counting
imports inside functions too."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INNER_LAYERS = ("commands", "queries", "projections", "gateways")
COMPOSITION_ROOT = "iotcloud"


def project_packages(repo: Path) -> list[str]:
    """The top-level packages pyproject.toml ships (its setuptools `include` patterns)."""
    config = tomllib.loads((repo / "pyproject.toml").read_text())
    return [pattern.rstrip("*") for pattern in config["tool"]["setuptools"]["packages"]["find"]["include"]]


def modules(repo: Path, packages: list[str]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in (repo / package).rglob("*.py"):
            parts = path.relative_to(repo).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path, tree: ast.AST) -> list[tuple[str, int]]:
    """Every module name `module` imports, at any depth (functions, classes, conditionals), with
    relative imports resolved; `from pkg import name` counts as `pkg.name` (a submodule or not)."""
    names = []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


def import_graph(repo: Path) -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """(edges between project modules, every (module, imported name, line) whose top level is iotcloud)."""
    known = modules(repo, project_packages(repo))
    edges: dict[str, set[str]] = {name: set() for name in known}
    upward = []
    for name, path in known.items():
        for imported, line in imported_names(name, path, ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in INNER_LAYERS and imported.split(".")[0] == COMPOSITION_ROOT:
                upward.append((name, imported, line))
            target = imported
            while target and target not in known:  # `pkg.attribute` is an import of pkg
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges, upward


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_inner_layers_never_import_the_composition_root():
    _, upward = import_graph(REPO)
    assert upward == [], "pass what these need in from iotcloud/ instead: " + ", ".join(
        f"{module} imports {name} (line {line})" for module, name, line in upward)


def test_no_import_cycles():
    edges, _ = import_graph(REPO)
    assert len(edges) > 50  # the whole project was read
    assert cycles(edges) == []


def test_the_checks_see_function_level_imports_and_relative_imports(tmp_path):
    """The same checks on a small tree with both faults, written the ways they hide."""
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.packages.find]\ninclude = ["gateways*", "iotcloud*"]\n')
    for package in ("gateways", "gateways/broker", "iotcloud"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "gateways/broker/admin.py").write_text("from .node import Node\n")
    (tmp_path / "gateways/broker/node.py").write_text(
        "class Node:\n    def provision(self):\n        from gateways.broker.admin import Admin\n")
    (tmp_path / "iotcloud/config.py").write_text("")
    (tmp_path / "gateways/resources.py").write_text("def f():\n    from iotcloud import config\n")
    edges, upward = import_graph(tmp_path)
    assert cycles(edges) == [["gateways.broker.admin", "gateways.broker.node"]]
    assert upward == [("gateways.resources", "iotcloud.config", 2)]
