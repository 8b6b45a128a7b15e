# moaa — a Kubernetes-native weather speed layer.
# `make demo` and `make test` are the two commands; both set everything up first and are
# idempotent: downloads are cached in $(MOAA_CACHE_DIR) (default ~/.cache/moaa) and reused.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON        ?= python3
UV_VERSION    := 0.13.8
MOAA_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/moaa
export MOAA_CACHE_DIR
UV_HOME       := $(MOAA_CACHE_DIR)/uv-$(UV_VERSION)
UV            := $(UV_HOME)/bin/uv
VENV          := .venv
MOAA          := $(VENV)/bin/moaa
# Never let uv fetch a Python build: the machine's Python 3.11+ is the one to use.
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit("moaa needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every `moaa` start
# would otherwise compile pyspark and pandas from source again (seconds per process).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml apps/*/pyproject.toml
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## Create .venv with every app installed editable plus the test tools

.PHONY: setup
setup: venv ## venv + the cached toolchain (Kafka jars, FerretDB, helm, Spark connector)
	$(MOAA) local toolchain

.PHONY: lint
lint: venv ## ruff lint and format check, mypy type check (never modifies files)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: venv ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: docs
docs: venv ## Regenerate docs/settings.md, docs/metrics.md and docs/schemas/ from the code
	$(VENV)/bin/python -m moaa.localstack.reference docs
	$(VENV)/bin/python -m moaa.common.records docs/schemas

.PHONY: schemas
schemas: docs ## Same as `make docs` (the records' JSON Schemas are part of it)

.PHONY: test
test: setup lint ## Set up, then run every test (unit + real Kafka/FerretDB/Spark integration)
	$(VENV)/bin/pytest

DEMO_TICK ?= 1
DEMO_ENV  := MOAA_REPLAY_YEAR=2013 MOAA_DATASET_DIR=$(CURDIR)/.local/dataset \
             MOAA_SOCKET_PATH=$(CURDIR)/.local/run/producer.sock \
             MOAA_CHECKPOINT_PATH=$(CURDIR)/.local/feeder/checkpoint.json

.PHONY: demo
demo: setup ## Set up, start the stack and replay the bundled sample (2013) hour by hour
	$(MOAA) local up
	$(DEMO_ENV) $(MOAA) prepare data/sample/2013 --out .local/dataset
	$(MOAA) local up producer stats forecast insert dashboard
	@echo
	@echo "Replaying the bundled sample (Newark + JFK, 2013): one hour every $(DEMO_TICK) s."
	@echo "Ctrl-C stops the feeder; \`make demo\` again resumes from its checkpoint."
	@echo "  $(MOAA) local status            # health of every service and job"
	@echo "  open http://localhost:8080      # the MOAA website: map, live hour, stations, pipeline"
	@echo "  $(MOAA) show stats --station 72502014734   # hourly stats stored in MongoDB"
	@echo "  $(MOAA) local logs producer -f  # the producer's JSON log"
	@echo "  curl -s localhost:9301/metrics | grep ^weather_   # producer metrics"
	@echo "  make down                       # stop everything (data kept in .local/)"
	@echo
	$(DEMO_ENV) $(MOAA) feeder --tick $(DEMO_TICK)

.PHONY: demo-reset
demo-reset: ## Forget the demo's replay position (the next `make demo` starts at 1 January)
	rm -f .local/feeder/checkpoint.json

.PHONY: up down status
up: setup ## Start Kafka and FerretDB
	$(MOAA) local up
down: ## Stop the producer, Kafka and FerretDB (data kept)
	@if [ -x $(MOAA) ]; then $(MOAA) local down; fi
status: venv ## Show the local stack's health
	$(MOAA) local status

.PHONY: clean
clean: down ## Stop the stack and delete its state (.local/); caches are kept
	rm -rf .local

.PHONY: bench-ingest
bench-ingest: setup ## Ingest throughput against a plain producer (prints the ratio)
	$(VENV)/bin/python bench/ingest.py

.PHONY: bench-ingest-scale
bench-ingest-scale: setup ## Ingest of a realistic synthetic week of every active station against a plain producer
	$(VENV)/bin/python bench/ingest.py --stations all --days 7 --rounds 1

.PHONY: bench-prepare
bench-prepare: venv ## moaa prepare against DuckDB's own read_csv + group-by of the same files (ratio)
	$(VENV)/bin/python bench/prepare.py --stations 300 --days 120

.PHONY: bench-throughput
bench-throughput: setup ## Hourly stats at full speed: streaming end to end against DuckDB in batch (ratio)
	$(VENV)/bin/python bench/throughput.py --stations 1000 --days 7

.PHONY: chaos
chaos: setup ## Seeded chaos run: kill -9 every component during a replay; results compared with a run without faults
	$(VENV)/bin/python bench/chaos.py

.PHONY: bench-latency
bench-latency: setup ## End-to-end latency, feeder → stats in MongoDB, at a 1 s tick (p50, p95)
	$(VENV)/bin/python bench/latency.py --hours 120

# Stage-specific targets (Kubernetes, dashboard assets, notebook) live in mk/*.mk; a file there
# may also add prerequisites to `setup` (e.g. `setup: dashboard-assets`).
include $(sort $(wildcard mk/*.mk))

.PHONY: bench-scale-forecast
bench-scale-forecast: setup ## The forecast job through Kafka and MongoDB at 1,000, 4,000 and 13,836 synthetic stations
	$(VENV)/bin/python bench/forecast_chain.py --sizes 1000,4000,13836
