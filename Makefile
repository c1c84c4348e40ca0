# Overwatch: the two commands a newcomer needs are `make demo` and `make test`.
# Every target creates the virtual environment and installs what it needs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: demo test bench lint venv system-deps node-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the browser, JSROOT and PostgreSQL tests need (CI runs as root on a bare
# machine; the tests start their own PostgreSQL server, not the package's).
# apt waits up to APT_LOCK_WAIT seconds for a busy lock (unattended upgrades at boot)
# instead of failing at once.
APT_LOCK_WAIT ?= 300
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT)

system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium (Debian package) for the browser tests"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq chromium >/dev/null; \
	fi
	@if ! command -v node >/dev/null 2>&1; then \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq nodejs npm >/dev/null; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql (Debian package) for the postgresql:// backend tests"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq postgresql >/dev/null; \
	fi

node-deps: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json
	cd $(NODE_DIR) && npm install --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(NODE_STAMP)

test: $(STAMP) system-deps node-deps
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m tests.bench.run

demo: $(STAMP)
	$(VENV)/bin/overwatch demo

lint: $(STAMP)
	$(VENV)/bin/ruff check overwatch receivers processing webapp tests
	$(VENV)/bin/ruff format --check overwatch receivers processing webapp tests

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
