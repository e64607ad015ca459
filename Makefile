# IronCurtain: `make up TASK="..."` runs a session; `make test` runs the tests.
# Every target sets up what it needs (idempotently) and is quick when nothing is missing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Settings (BASE_IMAGE, EXTRA_CA_CERT, IRONCURTAIN_IMAGE_TAG): environment > user config file >
# .env > default, read by one loader (`ironcurtain settings`, docs/operations.md) for make and the
# CLI alike; make does not read .env itself, so it cannot shadow the user config with a default.
export VENV

STAMP := $(VENV)/.installed

.PHONY: help deps venv install engine base images browser node conformance lua test test-unit test-container lint up bench clean-venv shared-up shared-down

help: ## list the targets
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: venv engine ## set up everything: .venv, Docker engine (+ compose plugin)

venv: $(STAMP) ## create .venv with the package and its dev tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

engine: $(STAMP) ## make sure a Docker engine answers and `docker compose` works (+ gVisor for ours)
	@IRONCURTAIN_RUNTIME="$$($(BIN)/ironcurtain settings IRONCURTAIN_RUNTIME)" scripts/engine.sh

base: engine ## provide the base image (`ironcurtain settings`): local, pulled, or built with debootstrap
	@BASE_IMAGE="$$($(BIN)/ironcurtain settings BASE_IMAGE)" && export BASE_IMAGE && scripts/base.sh

images: base ## build our images whose content hash changed
	@$(BIN)/ironcurtain images build

browser: ## make sure Chromium exists for the browser tests (Debian's chromium)
	@scripts/browser.sh

node: ## make sure node and npm exist (the MCP proxy tests run an npm MCP server)
	@scripts/node.sh

shared-up: images ## start the team-shared Redis, approval service and worker (makes secrets)
	@$(BIN)/ironcurtain shared up

shared-down: $(STAMP) ## stop the team-shared infrastructure (secret files stay)
	@$(BIN)/ironcurtain shared down

conformance: node ## provide Node 22 and the MCP conformance suite in .cache/conformance
	@scripts/conformance.sh

lint: $(STAMP) ## ruff, the import contracts and mypy (their settings: pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

lua: ## make sure lua5.3 exists (the socket proxy's Lua is unit-tested outside HAProxy)
	@scripts/lua.sh

test-unit: $(STAMP) node lua ## fast tests, no Docker
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-container: images browser ## tests against the real engine and our images
	$(BIN)/pytest -m container tests/container $(PYTEST_ARGS)

test: images browser node conformance lua ## all tests (sets up the engine and images first)
	$(BIN)/pytest $(PYTEST_ARGS)

# The agent works on WORKSPACE; never a default (the checkout itself is refused: protected paths).
ifneq ($(filter up,$(MAKECMDGOALS)),)
ifeq ($(strip $(WORKSPACE)),)
$(error up: say which folder the agent works on: make up WORKSPACE=~/src/project TASK="..." (the IronCurtain checkout itself is refused))
endif
endif

up: images ## run a session: make up WORKSPACE=path TASK="fix the failing test" [AGENT=codex] [SIBLINGS=file]; no TASK: interactive
	@echo "up: workspace $(abspath $(WORKSPACE))"
	@$(BIN)/ironcurtain run --no-build --workspace "$(abspath $(WORKSPACE))" \
	  $(if $(AGENT),--agent "$(AGENT)") $(if $(TASK),--task "$(TASK)",--pty) \
	  $(if $(SIBLINGS),--siblings "$(SIBLINGS)")

# The installed command: a venv of its own (not this checkout's .venv), the package as a wheel
# carrying compose files, image contexts and the default policy, linked onto PATH.
INSTALL_DIR ?= $(HOME)/.local/share/ironcurtain/venv
BIN_DIR ?= $(HOME)/.local/bin

install: base ## install `ironcurtain` for use in any repository (INSTALL_DIR, linked into BIN_DIR)
	@test -x $(INSTALL_DIR)/bin/python || $(PYTHON) -m venv $(INSTALL_DIR)
	$(INSTALL_DIR)/bin/pip install -q --upgrade .
	@test ! -f .env || echo "install: note: the installed command does not read this checkout's .env; put its settings in ~/.config/ironcurtain/config.toml"
	@mkdir -p $(BIN_DIR) && ln -sf $(INSTALL_DIR)/bin/ironcurtain $(BIN_DIR)/ironcurtain
	@echo "install: $(BIN_DIR)/ironcurtain -> $(INSTALL_DIR); in a repository: ironcurtain run \"fix the failing test\""

bench: images ## run every benchmark, figures in bench/results/
	@$(BIN)/python -m bench

bench-%: images ## run one benchmark: make bench-NAME
	@$(BIN)/python -m bench $*

clean-venv: ## remove .venv
	rm -rf $(VENV)
