# Two commands on a fresh machine: `make run` (the demo storefront, with recsdk's REST API
# in the same process) and `make test` (the whole suite). Both install what they need
# first, into the project's own virtualenv $(VENV) (created when missing), never into the
# Python on PATH.
BASE_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
EVENTS ?= 50000
# the Women's E-Commerce Clothing Reviews CSV, for a second catalogue in the demo shop
CLOTHING ?=
# reinstalled when the packaging files change (an editable install covers code changes)
INSTALLED := $(VENV)/.recsdk-installed

.PHONY: install services run test lint bench

$(PYTHON):
	$(BASE_PYTHON) -m venv $(VENV)

$(INSTALLED): setup.cfg setup.py pyproject.toml | $(PYTHON)
	# torch pinned first: an unpinned torch pulls a multi-GB CUDA build, while 2.13.0
	# takes the CPU build where the machine offers one
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[postgres,spark,test,text,torch]"
	touch $@

install: $(INSTALLED)

services:
	bash scripts/services.sh

# the quick start's settings; the tests keep their own. The demo shop migrates, loads
# the synthetic shop and trains (each only when missing), then serves (docs/demo_shop.md).
run: export RECSDK_CONFIG ?= config/demo.toml
run: install
	$(PYTHON) -m demo_shop --host $(HOST) --port $(PORT) --events $(EVENTS) --seed 42 \
		$(if $(CLOTHING),--clothing $(CLOTHING))

test: install services
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check .

# the peers the benchmarks compare with (scikit-surprise) are not needed to use or test recsdk
bench: install
	$(PIP) install -q -e ".[bench]"
	$(PYTHON) benchmarks/core_ingest_latency.py
