# The two set-up commands of README.md:
#   make quickstart   install everything into .venv and run the main job (SQLite, no Redis)
#   make test         install everything into .venv and run the whole test suite
.PHONY: quickstart test venv services browser

venv:
	@./scripts/bootstrap.sh

quickstart: venv
	.venv/bin/catalog-ai quickstart

services:
	@./scripts/services.sh

browser:
	@./scripts/browser.sh

test: venv services browser
	.venv/bin/python -m pytest $(PYTEST_ARGS)
