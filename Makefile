# evonas: set-up, demo and tests. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.evonas-installed
DOCSTAMP := $(VENV)/.evonas-docs-installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
RUN    ?= runs/demo
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup dataset postgres demo test bench docs clean-demo help

help:
	@echo "make demo   set up, then run the whole job on Fashion-MNIST into $(RUN)"
	@echo "make test   set up, then run the test suite (one pytest-xdist worker per core; TEST_WORKERS=N to choose)"
	@echo "make setup  create $(VENV) and install evonas (editable), the dataset and PostgreSQL (for the tests)"
	@echo "make bench  run the benchmark scripts in benchmarks/"
	@echo "make docs   build the API reference from the docstrings into site/ (mkdocs, strict)"

setup: $(STAMP) dataset postgres

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test,onnx,postgres]'
	touch $(STAMP)

dataset:
	@if [ ! -f $(FMNIST) ]; then \
	  echo "Installing Fashion-MNIST from Debian (dataset-fashion-mnist)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi

# the PostgreSQL server that tests/pg.py starts on loopback for the shared-search tests
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "Installing PostgreSQL from Debian (postgresql)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi

demo: setup
	bash scripts/demo.sh $(RUN)

# the suite in pytest-xdist workers, one per core (TEST_WORKERS=0: in this process); loadgroup keeps each
# xdist_group (the PostgreSQL tests) on one worker
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

bench: setup
	$(BIN)/python benchmarks/supernet_speed.py

# the API reference (docs/, mkdocs.yml): mkdocs + mkdocstrings from the docs extra; a warning fails it
docs: $(DOCSTAMP)
	$(BIN)/mkdocs build --strict -d site

$(DOCSTAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[docs]'
	touch $(DOCSTAMP)
