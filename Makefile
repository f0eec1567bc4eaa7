# The two commands a fresh machine needs: `make run` (the research loop on the defaults) and `make test`.
# Each creates .venv and installs what it needs on first use.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: install install-dev run prepare test test-fast mutation bench clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# A CUDA or ROCm GPU gets PyPI's default (GPU) torch; elsewhere the CPU build, which is a local file on
	@# the project's machines (an unpinned torch would pull a multi-GB CUDA build for nothing).
	@if $(PY) -c "import torch" 2>/dev/null; then echo "torch already installed";              \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then        \
	  echo "NVIDIA GPU found: installing the CUDA build of torch"; $(PIP) install "torch>=2.5" "nvidia-ml-py>=12"; \
	elif [ -e /dev/kfd ]; then                                                                  \
	  echo "AMD GPU found: install the ROCm build of torch (see README), then re-run make"; exit 1; \
	else echo "no GPU found: installing the CPU build of torch"; $(PIP) install "torch==2.13.0"; fi
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e ".[dev]"
	@# MLX parity tests run mlx's CPU build on Linux; on a Mac the real mlx is used instead.
	@if [ "$$(uname -s)" = "Linux" ]; then $(PIP) install -q -e ".[mlx-cpu]"; else $(PIP) install -q -e ".[mlx]"; fi
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/autoresearch run $(ARGS)

prepare: install
	$(VENV)/bin/autoresearch prepare $(ARGS)

# The tests run in a shuffled order (pytest-randomly; the seed is printed at the top). TEST_SEED fixes the
# shuffle so CI repeats an order that was checked; `make test TEST_SEED=` draws a fresh one.
# Two workers (pytest-xdist; a worker that runs out takes queued tests from the other): the slow tests wait on
# processes and servers much of the time, so two at once on 2 cores cut the wall time. TEST_WORKERS=0: one process.
TEST_SEED ?= 20261205
TEST_WORKERS ?= 2
test: install-dev
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist worksteal $(if $(TEST_SEED),--randomly-seed=$(TEST_SEED)) $(ARGS)

test-fast: install-dev
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist worksteal $(ARGS)

# Mutation testing (scripts/mutation.py, docs/MUTATION.md): each module of the judgement and its neighbours against the
# fast tests that claim it. `make mutation MODULES="research/judging/sprt.py hardware/cpu.py"` runs those only;
# `make mutation BASE=origin/main` the modules a change touches. Exits 1 when a module scores under 90%.
MODULES ?=
BASE ?=
mutation: install-dev
	$(PY) scripts/mutation.py $(if $(BASE),--changed $(BASE)) $(MODULES) $(ARGS)

bench: install-dev
	$(PY) bench/data_bench.py
	$(PY) bench/cpu_train.py

clean:
	rm -rf $(VENV) .pytest_cache
