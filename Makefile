# Cabinet: `make run` starts a demo practice, `make test` passes every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FLASK  := $(VENV)/bin/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test setup test-setup system-test-deps translations screenshots bench clean

.DELETE_ON_ERROR:

# axe-core, the accessibility checker the browser tests inject (tests/test_browser_a11y.py), from the
# npm registry: this version, this file (its SHA-256), kept outside git under tests/.axe/.
AXE_VERSION := 4.14.1
AXE_SHA256  := 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
AXE         := tests/.axe/axe-core-$(AXE_VERSION)/axe.min.js

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed translations

translations: $(VENV)/.installed
	$(FLASK) translate compile >/dev/null

run: setup
	$(FLASK) init-db
	$(FLASK) demo
	@echo "Cabinet is at http://$(HOST):$(PORT)/"
	$(FLASK) run --host $(HOST) --port $(PORT)

# Chromium (browser tests), PostgreSQL (the suite again on PostgreSQL), iproute2 and nftables (the relay
# on a lossy network: tests/test_relay_lossy_network.py), from Debian's packages.
system-test-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v ip >/dev/null \
	    || ! command -v nft >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver postgresql iproute2 util-linux nftables >/dev/null; \
	  else echo "Install chromium chromium-driver postgresql iproute2 nftables (as root) for the full test suite"; exit 1; fi; \
	fi

$(AXE):
	mkdir -p $(@D)
	cd $(@D) && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null \
	  && tar -xzf axe-core-$(AXE_VERSION).tgz --strip-components=1 package/axe.min.js package/LICENSE \
	  && rm axe-core-$(AXE_VERSION).tgz \
	  && echo "$(AXE_SHA256)  axe.min.js" | sha256sum --check --quiet

test: setup system-test-deps $(AXE)
	tests/run_all.sh $(PY)

# Every accessibility-checked page as a picture, per language and width, in test-artifacts/a11y/.
screenshots: setup system-test-deps $(AXE)
	A11Y_SCREENSHOTS=1 tests/isolated.sh $(PY) -m pytest tests/test_browser_a11y.py -q

bench: setup
	$(PY) bench/agenda.py
	$(PY) bench/waiting_room.py

clean:
	rm -rf $(VENV) instance
