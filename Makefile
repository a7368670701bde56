# falconet — set-up, run, test. `make run` and `make test` are the two commands in README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and the run need: docker-registry (a real OCI registry), skopeo
# (interop checks), apache2-utils (htpasswd), openssl (independent signature checks), bcc and
# kernel headers (live eBPF capture), nftables and iproute2 (response actions in test network
# namespaces), chromium (the compliance HTML report rendered headless), chromium-driver (the web
# UI driven by selenium), postgresql (the UI's fleet alert store, started by the tests).
DEB_PKGS := docker-registry skopeo apache2-utils openssl ca-certificates \
	bpfcc-tools python3-bpfcc linux-headers-amd64 nftables iproute2 chromium chromium-driver \
	postgresql
PYTEST_ARGS ?= -n 2

.PHONY: install run test lint format bench clean debs venv bpf-setup

install: debs venv bpf-setup

# As root: mount tracefs and link Debian's kernel headers under /lib/modules/$(uname -r) so that
# bcc can compile the probe (`falconet bpf check` repairs both and reports what is missing).
bpf-setup: venv
	@if [ "$$(id -u)" = 0 ] && $(BIN)/falconet bpf --help >/dev/null 2>&1; then \
	  $(BIN)/falconet bpf check >/dev/null 2>&1 || $(BIN)/falconet bpf check || true; \
	fi

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
# shipped inside falconet, offline, then detect on live syscalls (eBPF) and print alerts until
# Ctrl-C. Where live capture is not possible it says why and how, and suggests --replay.
run: install
	$(BIN)/falconet run

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark, printing its figures. The replay benches read a generated stream
# (BENCH_EVENTS events, written once to bench/out/); the live-capture ones need root.
BENCH_EVENTS ?= 10000000
BENCH_STREAM := bench/out/busy-$(BENCH_EVENTS).fncap

$(BENCH_STREAM):
	@mkdir -p bench/out
	$(BIN)/python bench/gen_syscall_stream.py $@ --events $(BENCH_EVENTS)

bench: install $(BENCH_STREAM)
	@for b in bench/bench_*.py; do \
	  echo "== $$b"; \
	  case $$b in \
	    */bench_run.py|*/bench_replay.py) $(BIN)/python $$b $(BENCH_STREAM) || exit 1 ;; \
	    *) $(BIN)/python $$b || exit 1 ;; \
	  esac; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
