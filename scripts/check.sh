#!/usr/bin/env bash
# Static checks the README's test command runs before the tests (`make test` → here → pytest):
# ruff lint, ruff format, mypy (strictness documented in pyproject.toml) and import-linter's layer
# contracts. The layer and cycle test with imports inside functions is tests/test_architecture.py.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
paths=(catalog_ai dashboards plugins)
echo "catalog_ai: ruff check";  "$VENV/bin/ruff" check "${paths[@]}"
echo "catalog_ai: ruff format"; "$VENV/bin/ruff" format --check "${paths[@]}"
echo "catalog_ai: mypy";        "$VENV/bin/mypy"
echo "catalog_ai: import-linter"; "$VENV/bin/lint-imports"
