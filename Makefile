# falconet — set-up, run, test. `make run` and `make test` are the two commands in README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and the run need (docker-registry: real OCI registry; skopeo: interop
# checks; apache2-utils: htpasswd; openssl: independent signature checks).
DEB_PKGS := docker-registry skopeo apache2-utils openssl ca-certificates
PYTEST_ARGS ?= -n 2

.PHONY: install run test lint format bench clean debs venv

install: debs venv

# Idempotent: only calls apt when a package is missing.
debs:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.stamp-installed

$(VENV)/.stamp-installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# The main job on its embedded default: install (and verify) the default ruleset from the feed
# shipped inside falconet, offline, and print what was installed.
run: install
	$(BIN)/falconet artifact install

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
