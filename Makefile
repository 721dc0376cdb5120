# The two commands the README asks for: `make run` and `make test`. Both set up what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test venv clean

$(STAMP): pyproject.toml
	@bash deploy/system-packages.sh run
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> installing iotcloud and its Python packages into $(VENV)"
	@$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

run: venv
	@$(VENV)/bin/iotcloud run

test: venv simulators/node/node_modules/.installed
	@bash deploy/system-packages.sh test
	@bash deploy/test-services.sh .state/test-services
	@eval "$$(bash deploy/test-postgres.sh .state/test-pg)" && $(PY) -m pytest -q $(PYTEST_ARGS)

simulators/node/node_modules/.installed: simulators/node/package-lock.json
	@bash deploy/system-packages.sh test
	@echo "==> installing the Node.js simulator's packages"
	@cd simulators/node && npm ci --silent --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) .state .pytest_cache
