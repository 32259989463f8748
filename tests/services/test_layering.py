"""Services never import the worker, the command line, Celery or a web framework: entry points
supply what they need (a session, a dispatcher), so a service runs the same under each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "catalog_ai"
FORBIDDEN = ("catalog_ai.worker", "catalog_ai.cli", "celery", "kombu", "streamlit", "click")
#: The service modules, and the low-layer port they dispatch through.
MODULES = sorted((PACKAGE / "services").rglob("*.py")) + [PACKAGE / "dispatch.py"]


def _imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` names, at any depth (function-level and
    ``TYPE_CHECKING`` imports included), with its line."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package it sits in
                parts = path.relative_to(package.parent).with_suffix("").parts[: -node.level]
                base = ".".join(parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append((node.lineno, module))
            names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_a_service_imports_no_entry_point_and_no_framework(path):
    bad = [f"line {line}: {module}" for line, module in _imports(path) if _forbidden(module)]
    assert bad == [], f"{path.name} imports what an entry point must supply: {bad}"


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "catalog_ai"
    sample = package / "services" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "def f():\n    from catalog_ai.worker.tasks import x\n"
        "def g():\n    from ..cli import cli\n    import celery.app\n"
    )
    found = [m for _, m in _imports(sample, package) if _forbidden(m)]
    assert "catalog_ai.worker.tasks" in found and "catalog_ai.cli" in found
    assert "celery.app" in found
