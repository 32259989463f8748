#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv: core, every plugin under
# plugins/, and the test tools. Re-running is cheap: it only reinstalls when a pyproject.toml
# or constraints.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.catalog-ai-installed"

shopt -s nullglob
plugin_dirs=()
for p in plugins/*/pyproject.toml; do plugin_dirs+=("$(dirname "$p")"); done

inputs=(pyproject.toml)
[[ -f constraints.txt ]] && inputs+=(constraints.txt)
for d in "${plugin_dirs[@]}"; do inputs+=("$d/pyproject.toml"); done
want=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/catalog-ai" ]]; then
  exit 0
fi

echo "catalog_ai: setting up $VENV (torch comes from local disk; this takes a few minutes the first time)"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
editable=(-e ".[test]")
for d in "${plugin_dirs[@]}"; do editable+=(-e "$d"); done
constraint=()
[[ -f constraints.txt ]] && constraint=(-c constraints.txt)
"$VENV/bin/python" -m pip install --quiet --progress-bar off "${constraint[@]}" "${editable[@]}"
echo "$want" > "$stamp"
echo "catalog_ai: $VENV ready"
