# The interface for people and CI alike: make demo, make test, make lint, make bench.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DYNALITE_VERSION := 4.0.0
SERVERS := $(PY) tests/servers.py

# Credentials for the local servers only; they accept any.
# Loopback bypasses any proxy of the machine's (the tests that need one set their own).
LOCAL_AWS := env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL \
	-u AWS_ENDPOINT_URL_DYNAMODB -u AWS_REGION AWS_ACCESS_KEY_ID=local \
	AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null \
	AWS_SHARED_CREDENTIALS_FILE=/dev/null NO_PROXY="127.0.0.1,localhost,$$NO_PROXY" \
	no_proxy="127.0.0.1,localhost,$$no_proxy"

.PHONY: install demo demo-fastapi walkthrough test unit integration soak browser lint bench bench-quick bench-cost servers-up servers-down clean

install: $(VENV)/.installed .tools/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.tools/.installed:
	mkdir -p .tools
	npm install --prefix .tools --no-save --no-package-lock --no-audit --no-fund \
		--loglevel=error dynalite@$(DYNALITE_VERSION)
	touch $@

# The demo app on 127.0.0.1:$(PORT): on dynalite with its data on disk (sessions survive
# restarts of both), or on real DynamoDB when CYCLIC_DB and AWS credentials are set.
PORT ?= 8080
# Debian's Chromium for the browser test (as root, as CI runs; skipped when present).
CHROMIUM ?= /usr/bin/chromium
export CYCLICSESS_CHROMIUM := $(CHROMIUM)
.tools/chromium:
	mkdir -p .tools
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }
	touch $@

# `exec`: the shell steps aside, so Ctrl-C stops the demo without an error from make.
demo: install
ifdef CYCLIC_DB
	exec $(PY) -m examples.app --port $(PORT)
else
	exec $(LOCAL_AWS) $(SERVERS) run --only dynalite --data-dir .run/demo-data -- \
		$(PY) -m examples.app --port $(PORT)
endif

# The same shop on FastAPI and the ASGI middleware.
demo-fastapi: install
ifdef CYCLIC_DB
	exec $(PY) -m examples.fastapi_app --port $(PORT)
else
	exec $(LOCAL_AWS) $(SERVERS) run --only dynalite --data-dir .run/demo-data -- \
		$(PY) -m examples.fastapi_app --port $(PORT)
endif

# One session's life, step by step, printed.
walkthrough: install
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(PY) -m examples.walkthrough

test: install .tools/chromium lint unit
	$(LOCAL_AWS) $(SERVERS) run -- $(PY) -m pytest -q -m integration tests/integration \
		tests/contract tests/browser

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(LOCAL_AWS) $(SERVERS) run -- $(PY) -m pytest -q -m integration tests/integration \
		tests/contract

# The long runs: 500 model examples per config, 5 minutes of chaos per server
# (about 20 minutes); the chaos figures are appended to .run/chaos.jsonl.
soak: install
	mkdir -p .run
	$(LOCAL_AWS) CYCLICSESS_MODEL_EXAMPLES=500 CYCLICSESS_CHAOS_SECONDS=300 \
		CYCLICSESS_CHAOS_REPORT=.run/chaos.jsonl \
		$(SERVERS) run -- $(PY) -m pytest -q -s -m integration \
		tests/integration/test_model.py tests/integration/test_chaos.py

browser: install .tools/chromium
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(PY) -m pytest -q -m integration tests/browser

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check cyclicsess tests bench examples
	$(VENV)/bin/ruff format --check cyclicsess
	$(VENV)/bin/mypy --strict cyclicsess
	$(VENV)/bin/mypy --strict bench tests/harness.py tests/servers.py

# Benchmarks: the peers (aioboto3 pins an older aiobotocore) live in their own venv.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_OUT := .run/bench

$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e . -r bench/requirements.txt
	touch $@

# Debian's redis-server, for the middleware benchmark's peers (as root; skipped when present).
REDIS := /usr/bin/redis-server
.tools/redis:
	mkdir -p .tools
	test -x $(REDIS) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends redis-server; }
	touch $@

# All four tables, written to bench/RESULTS.md (about 10 minutes).
bench: install $(BENCH_VENV)/.installed .tools/redis
	mkdir -p $(BENCH_OUT)
	$(LOCAL_AWS) $(BENCH_PY) -m bench.client_cpu --out $(BENCH_OUT)/1-client-cpu.md
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- \
		$(BENCH_PY) -m bench.throughput --out $(BENCH_OUT)/2-throughput.md
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(PY) -m bench.cost --out $(BENCH_OUT)/3-cost.md
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- \
		$(BENCH_PY) -m bench.middleware --out $(BENCH_OUT)/4-middleware.md
	cat $(BENCH_OUT)/1-client-cpu.md $(BENCH_OUT)/2-throughput.md $(BENCH_OUT)/3-cost.md \
		$(BENCH_OUT)/4-middleware.md > bench/RESULTS.md
	@echo "wrote bench/RESULTS.md"

# A smoke run of every benchmark (about a minute).
bench-quick: install $(BENCH_VENV)/.installed .tools/redis
	$(LOCAL_AWS) $(BENCH_PY) -m bench.client_cpu --quick
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(BENCH_PY) -m bench.throughput --quick
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(PY) -m bench.cost --quick
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(BENCH_PY) -m bench.middleware --quick

bench-cost: install
	$(LOCAL_AWS) $(SERVERS) run --only dynalite -- $(PY) -m bench.cost

servers-up: install
	$(SERVERS) up
	@cat .run/servers.env

# The standard library is enough to stop servers: no venv needed (make clean).
servers-down:
	$(PYTHON) tests/servers.py down

clean: servers-down
	rm -rf $(VENV) $(BENCH_VENV) .tools .run .mypy_cache .ruff_cache .pytest_cache
