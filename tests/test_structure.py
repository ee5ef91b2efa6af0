"""The import graph of ``src/outreach``: no cycles between modules, and the kit sits
below everything else (it imports only itself and the settings).

Read from the source with ``ast``: an import under ``if TYPE_CHECKING:`` is not part
of the running program and is left out; an import inside a function is counted,
because it runs, and it is the usual way to hide a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "outreach"
# The kit may import these besides itself.
KIT_MAY_IMPORT = {"outreach.config"}


def module_names() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs, skipping the body of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt) and _is_type_checking(child):
            assert isinstance(child, ast.If)
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def imported_names(module: str, path: Path) -> set[str]:
    """Dotted names ``module`` imports (``from a import b`` gives ``a.b``: b may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.update(f"{base}.{alias.name}" for alias in node.names)
            names.add(base)
    return names


def import_graph() -> dict[str, set[str]]:
    """Each module of the package to the package's modules it imports."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("outreach") and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_the_kit_imports_no_domain_and_no_model() -> None:
    graph = import_graph()
    outside = {
        module: sorted(
            target
            for target in targets
            if not target.startswith("outreach.kit") and target not in KIT_MAY_IMPORT
        )
        for module, targets in graph.items()
        if module.startswith("outreach.kit")
    }
    assert {module: targets for module, targets in outside.items() if targets} == {}


class TestTheGraphReader:
    """The checks above would pass on an empty graph: show the reader sees imports."""

    def test_it_finds_a_cycle(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert cycles(graph) == [["a", "b", "c"]]

    def test_it_counts_function_local_imports_and_skips_type_checking_ones(
        self, tmp_path: Path
    ) -> None:
        source = tmp_path / "m.py"
        source.write_text(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from outreach.models import User\n"
            "def f():\n    from outreach.kit.gcs import GCSStorage\n"
            "from . import clock\n"
        )
        names = imported_names("outreach.kit.m", source)
        assert "outreach.kit.gcs.GCSStorage" in names
        assert "outreach.kit.clock" in names
        assert not any(name.startswith("outreach.models") for name in names)

    def test_it_sees_the_real_graph(self) -> None:
        graph = import_graph()
        assert "outreach.kit.gcs" in graph["outreach.kit.storage"]  # a local import
        assert "outreach.kit.db" in graph["outreach.models.base"] | graph["outreach.kit.tables"]
