# Two entry points, each self-sufficient on a fresh machine:
#   make demo   set up, then map ResNet-18 (ImageNet shapes) on the MARS-like system
#   make test   set up, then run the test suite
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cimco-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (pyenv: .python-version selects 3.12)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,torch]'
	$(BIN)/cimco doctor --repair
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; else \
	  echo "hint: install chromium (apt-get install chromium) for the report.html screenshot test"; fi; }
	touch $(STAMP)

demo: setup
	$(BIN)/cimco map --system arch_specs/mars_system.yaml \
	  --workload workloads/resnet18_imagenet.yaml --out out/demo

test: setup
	$(BIN)/ruff check plugin tests scripts
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_map.py
	$(BIN)/python scripts/bench_sweep.py
	$(BIN)/python scripts/bench_sparse.py
	$(BIN)/python scripts/bench_export.py
	$(BIN)/python scripts/lrmp_table.py
	$(BIN)/python scripts/anchor_consistency.py
	$(BIN)/python scripts/fuzz_specs.py
	$(BIN)/python scripts/mars_table.py

clean:
	rm -rf out .pytest_cache
