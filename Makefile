# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each creates its own .venv from nothing the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck unit sanitize system-deps keras broker bench clean

# The C kernels are built by the editable install: a change to them reinstalls.
$(STAMP): pyproject.toml setup.py daemon/fast/_kernels.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: replay the bundled example stream and show what the model learned
run: $(STAMP)
	@rm -f out/example-dead-letters.jsonl out/example-predictions.jsonl  # --reset appends to them
	$(BIN)/streamlearn replay examples/stream.csv --state-dir out/example-state --reset \
		--dead-letter out/example-dead-letters.jsonl --predictions out/example-predictions.jsonl
	$(BIN)/streamlearn inspect out/example-state
	@echo "(the stream was made with weights x1=1.5 x2=-2 x3=0.5 and intercept 3)"
	@echo "dead letters:" && cat out/example-dead-letters.jsonl
	@echo "predictions for the unlabeled rows:" && cat out/example-predictions.jsonl

## test: lint, type-check and the whole test suite (real Kafka broker, real Prometheus, Keras)
test: $(STAMP) system-deps keras lint typecheck unit sanitize

## check: the quick inner loop (ruff, mypy, the tests that need no broker or Prometheus)
# Under two minutes on two cores: mypy keeps its cache between runs (the typecheck target starts
# cold), the tests run on TEST_WORKERS processes, and `slow` ones (over ~1.5 s of CPU) are left out.
TEST_WORKERS ?= 2
check: $(STAMP) lint
	MYPY_CACHE_DIR=$(CURDIR)/.mypy_cache bash scripts/typecheck.sh $(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto --maxprocesses=$(TEST_WORKERS) \
		-m "not kafka and not prometheus and not slow"

# Keras (CPU, torch backend) for the tests that read real .keras files. torch is pinned:
# an unpinned one would pull a multi-GB CUDA build.
KERAS_STAMP := $(VENV)/.keras
keras: $(KERAS_STAMP)
$(KERAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet "torch==2.13.0" "keras>=3.10"
	touch $(KERAS_STAMP)

system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over the package as installed (streamlearn.*), and --strict on the loop, its seams
# and the state package: see scripts/typecheck.sh for why not over daemon/ directly.
typecheck: $(STAMP)
	bash scripts/typecheck.sh $(BIN)/mypy

# The whole suite on TEST_WORKERS processes: each starts a Kafka broker of its own, and the tests
# take free ports and tmp_path dirs of their own.
unit: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses=$(TEST_WORKERS)

# The C kernels again, built with AddressSanitizer and UBSan (about 20 s).
sanitize: $(STAMP)
	bash scripts/sanitize-kernels.sh $(BIN)/python

## broker: a local Kafka-protocol broker for trying things by hand
broker: $(STAMP)
	$(BIN)/streamlearn broker

## bench: the benchmarks in bench/ (prints tables with the commands that made them)
# The `bench` extra first: Vowpal Wabbit, confluent-kafka and matplotlib, which the benches use.
BENCH_STAMP := $(VENV)/.bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/bench_replay.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .mypy_cache .ruff_cache
