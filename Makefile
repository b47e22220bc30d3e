# Two commands on a fresh machine: `make run` (the demo shop's recommender over REST)
# and `make test` (the whole suite). Both install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
EVENTS ?= 50000

.PHONY: install services run test lint bench

install:
	# torch pinned first: an unpinned torch pulls a multi-GB CUDA build
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[postgres,test,text,torch]"

services:
	bash scripts/services.sh

# the quick start's settings; the tests keep their own
run: export RECSDK_CONFIG ?= config/demo.toml
run: install
	recsdk db upgrade
	recsdk demo-data --events $(EVENTS) --seed 42
	recsdk train
	recsdk serve --host $(HOST) --port $(PORT)

test: install services
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	ruff check .

bench:
	$(PYTHON) benchmarks/core_ingest_latency.py
