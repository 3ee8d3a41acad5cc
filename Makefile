# make run   : set up .venv (first time only) and train the default model on the bundled digits
# make test  : set up .venv (first time only), lint (ruff) and run the whole test suite, a test process per core
# make bench : the speed benchmarks in bench/ (ratios against baselines measured in the same run)
# make bench-gpu : the GPU benchmark (bench/gpu.py) on a CUDA machine

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test bench bench-gpu clean

install: $(STAMP)

# Reinstall only when the project's dependencies change; the editable install picks up code edits.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tensorboard]'
	touch $(STAMP)

run: install
	$(BIN)/sweepkit-train

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n auto

bench: install
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/sweep_pruning.py
	$(BIN)/python bench/scaling_law.py
	$(BIN)/python bench/sweep_cost.py

bench-gpu: install
	$(BIN)/python bench/gpu.py

clean:
	rm -rf outputs multirun/*/ mlflow.db mlflow.db-* mlartifacts mlruns optuna.journal* lr_find nightly
