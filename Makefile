# The two set-up commands of README.md:
#   make quickstart   install everything into .venv and run the main job (SQLite, no Redis)
#   make test         install everything into .venv, run the static checks (ruff, mypy,
#                     import-linter) and the whole test suite
.PHONY: quickstart test venv services browser check

venv:
	@./scripts/bootstrap.sh

quickstart: venv
	.venv/bin/catalog-ai quickstart

services:
	@./scripts/services.sh

browser:
	@./scripts/browser.sh

check: venv
	@./scripts/check.sh

test: venv services browser check
	.venv/bin/python -m pytest $(PYTEST_ARGS)
