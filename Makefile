# The two commands the README asks for: `make run` and `make test`. Both set up what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
# The interpreter .venv is built on (deploy/python.sh: an optimised build where the system has one).
BASE_PY := $(shell bash deploy/python.sh 2>/dev/null || echo python3)
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml $(LOCK); echo $(BASE_PY)) | md5sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test venv lock clean firmware webapp

# Every Python package comes from requirements.lock, pinned with hashes: a tampered or substituted
# wheel fails the install. The project itself is installed on top of it, without dependencies.
$(STAMP): pyproject.toml $(LOCK)
	@bash deploy/system-packages.sh run
	@base="$$(bash deploy/python.sh)"; \
	if [[ -x $(PY) && "$$($(PY) -c 'import os, sys; print(os.path.realpath(sys._base_executable))')" != "$$base" ]]; then \
	  echo "==> rebuilding $(VENV) on $$base"; rm -rf $(VENV); fi; \
	test -x $(PY) || "$$base" -m venv $(VENV)
	@echo "==> installing iotcloud and its Python packages into $(VENV) (hash-checked from $(LOCK))"
	@$(PY) -m pip install -q --require-hashes -r $(LOCK)
	@$(PY) -m pip install -q --no-deps -e .
	@$(PY) -m pip check >/dev/null || { $(PY) -m pip check; echo "$(LOCK) does not satisfy pyproject.toml: run make lock" >&2; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

run: venv webapp
	@$(VENV)/bin/iotcloud run

test: venv simulators/node/node_modules/.installed firmware webapp tests/webapp/node_modules/.installed
	@bash deploy/system-packages.sh test
	@echo "==> firmware: host unit tests (ASan/UBSan), cppcheck, differential check, fuzz smoke run, Cortex-M3 in QEMU"
	@$(MAKE) -s -C firmware test PYTHON=$(abspath $(PY))
	@bash deploy/test-services.sh .state/test-services
	@eval "$$(bash deploy/test-postgres.sh .state/test-pg)" && PYTHON=$(PY) bash deploy/run-tests.sh $(PYTEST_ARGS)

# The C device (firmware/README.md): the platform's device tests run it beside the simulators.
firmware:
	@bash deploy/system-packages.sh test
	@$(MAKE) -s -C firmware all build/replay

simulators/node/node_modules/.installed: simulators/node/package-lock.json
	@bash deploy/system-packages.sh test
	@echo "==> installing the Node.js simulator's packages"
	@cd simulators/node && npm ci --silent --no-audit --no-fund
	@touch $@

# The web app (webapp/): rebuilt when a source, the lockfile or the build config changed; the API serves webapp/dist.
WEBAPP_SOURCES := $(shell find webapp/src webapp/public -type f 2>/dev/null) webapp/index.html webapp/vite.config.js
webapp: webapp/dist/.built

webapp/node_modules/.installed: webapp/package-lock.json
	@bash deploy/system-packages.sh run
	@echo "==> installing the web app's build packages"
	@cd webapp && npm ci --silent --no-audit --no-fund
	@touch $@

webapp/dist/.built: webapp/node_modules/.installed $(WEBAPP_SOURCES)
	@echo "==> building the web app"
	@cd webapp && node_modules/.bin/vite build --logLevel warn
	@touch $@

# axe-core and Lighthouse for tests/webapp (the browser is Debian's chromium)
tests/webapp/node_modules/.installed: tests/webapp/package-lock.json
	@bash deploy/system-packages.sh test
	@cd tests/webapp && npm ci --silent --no-audit --no-fund
	@touch $@

# Re-pins every dependency of pyproject.toml (with the test and bench extras) to its newest allowed version, with hashes.
lock: venv
	@$(PY) -m pip install -q uv
	@$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header -q -o $(LOCK)
	@echo "==> $(LOCK) updated; run make test"

clean:
	rm -rf $(VENV) .state .pytest_cache
