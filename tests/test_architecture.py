"""The layer rule of docs/ARCHITECTURE.md, checked against the code.

The import graph of ``catalog_ai/`` and ``dashboards/`` is built with ``ast``: imports inside
functions count (a lazy import is still a dependency), imports under ``if TYPE_CHECKING:`` do not
(they never run), relative imports are resolved. ``from package import name`` is an edge to
``package.name`` when that is a module, else to ``package`` (as grimp, import-linter's graph,
reads it); the parent packages that Python runs on the way to a submodule are no edges, or every
package that re-exports its modules would be a cycle.

The layers and the module table are read from docs/ARCHITECTURE.md, so the document and the code
cannot drift apart: a module the table does not cover, a row that covers nothing, an import that
goes up a layer and any cycle all fail here, each naming the modules involved.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("catalog_ai", "dashboards")
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 400

Graph = dict[str, set[str]]


# --- the checker ------------------------------------------------------------------------------


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file below ``root/<package>``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _owner(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` lives in: itself, or the nearest enclosing module we know."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: Mapping[str, Path]) -> Graph:
    """Module -> the modules of ``modules`` it imports (external packages left out)."""
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in modules else source)
            for target in targets:
                owner = _owner(target, modules)
                if owner is not None and owner != name:
                    graph[name].add(owner)
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative (no recursion limit)
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_a_cycle_in(graph, component) for component in components)


def _a_cycle_in(graph: Graph, component: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


@dataclass(frozen=True)
class Row:
    """One row of the module table: ``name`` is that module, ``name.*`` it and all below it."""

    pattern: str
    layer: int
    owns: str

    def covers(self, module: str) -> bool:
        if self.pattern.endswith(".*"):
            base = self.pattern[:-2]
            return module == base or module.startswith(base + ".")
        return module == self.pattern

    @property
    def specificity(self) -> int:
        return len(self.pattern.removesuffix(".*")) * 2 + (not self.pattern.endswith(".*"))


@dataclass(frozen=True)
class Architecture:
    layers: dict[int, str]  # number (1 = the top) -> name
    rows: list[Row]

    def row_of(self, module: str) -> Row | None:
        """The most specific row that covers ``module``."""
        covering = [row for row in self.rows if row.covers(module)]
        return max(covering, key=lambda row: row.specificity, default=None)

    def describe(self, module: str) -> str:
        row = self.row_of(module)
        assert row is not None
        return f"{module} (layer {row.layer}, {self.layers[row.layer]})"


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells (header first, the |---| line dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        if line.strip().startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def read_architecture(markdown: str) -> Architecture:
    """The layer table (``layer | name | ...``) and the module table (``module | layer | owns``)."""
    layers: dict[int, str] = {}
    rows: list[Row] = []
    for table in _tables(markdown):
        header = [cell.lower() for cell in table[0]]
        if header[:2] == ["layer", "name"]:
            layers.update({int(cells[0]): cells[1] for cells in table[1:]})
        elif header[:3] == ["module", "layer", "owns"]:
            rows += [Row(c[0].strip("`"), int(c[1]), c[2]) for c in table[1:]]
    if not layers or not rows:
        raise AssertionError(
            "no layer table (layer | name) or module table (module | layer | owns)"
        )
    unknown = sorted({row.layer for row in rows} - set(layers))
    assert not unknown, f"the module table uses layers the layer table does not define: {unknown}"
    return Architecture(layers, rows)


def upward_imports(graph: Graph, architecture: Architecture) -> list[str]:
    """``a (layer 9, db) -> b (layer 4, services)`` for every import of a higher layer."""
    found = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        low, high = architecture.row_of(importer), architecture.row_of(imported)
        if low is not None and high is not None and high.layer < low.layer:
            found.append(f"{architecture.describe(importer)} -> {architecture.describe(imported)}")
    return found


# --- the project ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return find_modules(ROOT, PACKAGES)


@pytest.fixture(scope="module")
def graph(modules: dict[str, Path]) -> Graph:
    return import_graph(modules)


@pytest.fixture(scope="module")
def architecture() -> Architecture:
    return read_architecture(ARCHITECTURE.read_text(encoding="utf-8"))


def test_no_import_cycles(graph: Graph) -> None:
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_goes_up_a_layer(graph: Graph, architecture: Architecture) -> None:
    found = upward_imports(graph, architecture)
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(found)


def test_the_module_table_covers_every_module(
    modules: dict[str, Path], architecture: Architecture
) -> None:
    missing = sorted(m for m in modules if architecture.row_of(m) is None)
    assert not missing, f"modules no row of {ARCHITECTURE.name}'s module table covers: {missing}"
    stale = [row.pattern for row in architecture.rows if not any(map(row.covers, modules))]
    assert not stale, f"rows of {ARCHITECTURE.name}'s module table that cover nothing: {stale}"


# Other helpers of issue 14 are splitting these modules; remove the mark once they have landed.
def test_no_module_is_over_400_lines(modules: dict[str, Path]) -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()
    }
    long = sorted(((n, name) for name, n in sizes.items() if n > MAX_LINES), reverse=True)
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{m} ({n})" for n, m in long)


def test_import_linter_contracts_are_kept() -> None:
    # The same rule as declared in pyproject.toml ([tool.importlinter]), plus its `forbidden`
    # contract: no web framework or Celery in services and the domain, even indirectly.
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    # import-linter is in the test extra (pyproject.toml): missing, the set-up is broken
    assert lint_imports is not None, "lint-imports not found: run `make venv` (the test extra)"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# --- the checker on a package made for it -----------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return find_modules(root, ["shop"])


_SHOP = {
    "shop/__init__.py": "",
    "shop/high/__init__.py": "from shop.high.view import show\n",
    "shop/high/view.py": "from ..low import store\n\ndef show():\n    return store\n",
    "shop/low/__init__.py": "",
    "shop/low/store.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from shop.high.view import show  # types only: no edge\n"
        "def save():\n"
        "    from shop.low import util  # inside a function: an edge\n"
        "    return util\n"
    ),
    "shop/low/util.py": "def helper():\n    import shop.high.view  # up a layer, and a cycle\n",
}
_SHOP_DOC = """
| layer | name |
|---|---|
| 1 | high |
| 2 | low |

| module | layer | owns |
|---|---|---|
| `shop` | 2 | the root |
| `shop.high.*` | 1 | views |
| `shop.low.*` | 2 | storage |
"""


def test_the_checker_reads_imports_as_python_runs_them(tmp_path: Path) -> None:
    graph = import_graph(_package(tmp_path, _SHOP))
    assert graph == {
        "shop": set(),
        "shop.high": {"shop.high.view"},
        "shop.high.view": {"shop.low.store"},  # relative import, resolved to the module
        "shop.low": set(),
        "shop.low.store": {"shop.low.util"},  # the TYPE_CHECKING import is not an edge
        "shop.low.util": {"shop.high.view"},
    }


def test_the_checker_finds_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    graph = import_graph(_package(tmp_path, _SHOP))
    assert find_cycles(graph) == [
        ["shop.high.view", "shop.low.store", "shop.low.util", "shop.high.view"]
    ]
    architecture = read_architecture(_SHOP_DOC)
    assert upward_imports(graph, architecture) == [
        "shop.low.util (layer 2, low) -> shop.high.view (layer 1, high)"
    ]
    patterns = {
        m: getattr(architecture.row_of(m), "pattern", None) for m in ("shop", "shop.high.view", "x")
    }
    # The exact row covers only the root; the most specific row wins; nothing covers "x".
    assert patterns == {"shop": "shop", "shop.high.view": "shop.high.*", "x": None}


def test_the_checker_passes_a_clean_package(tmp_path: Path) -> None:
    clean = {**_SHOP, "shop/low/util.py": "def helper():\n    return 1\n"}
    graph = import_graph(_package(tmp_path, clean))
    assert find_cycles(graph) == []
    assert upward_imports(graph, read_architecture(_SHOP_DOC)) == []
