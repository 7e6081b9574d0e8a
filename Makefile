# Two commands do all set-up on a fresh machine:  make bench   and   make test
# (make test also builds the neighbour-sampling extras: make install-sampling, below)
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The data folder: GNNBENCH_DATA, else ../shared/datasets beside the checkout when it exists, else none
# (gnnbench then downloads the raw files into ~/.cache/gnnbench; a folder that does not exist is an error).
DATA    ?= $(if $(GNNBENCH_DATA),$(GNNBENCH_DATA),$(wildcard $(abspath ../shared/datasets)))

.PHONY: install install-sampling bench test test-fast overhead clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes (a second run does nothing costly).
# PYTHONWARNINGS drops setuptools' "Editable installation" notice (adapters/ is mapped to
# gnnbench.adapters, so setuptools installs a path finder and warns that folders named gnnbench in
# the working directory could shadow it: here that folder is the package itself).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

# PyG's neighbour sampler (the sage-sampled cells, tests/test_sampled.py) needs torch-sparse (or
# pyg-lib, which is not on PyPI); PyPI has only its source, which imports torch to build: no build
# isolation. ~13 min on 2 cores, once (pip caches the wheels). Not on `make bench`'s path: until it
# has run, PyG's sampled cells are `skipped` with a hint naming `make install-sampling`.
SAMPLING_STAMP := $(VENV)/.installed-sampling
install-sampling: $(SAMPLING_STAMP)

$(SAMPLING_STAMP): $(STAMP)
	MAX_JOBS=$$(nproc) $(BIN)/python -m pip install -q --no-build-isolation torch-scatter==2.1.2 torch-sparse==0.6.18
	touch $(SAMPLING_STAMP)

bench: install
	GNNBENCH_DATA=$(DATA) $(BIN)/gnnbench run --suite quick

test: install install-sampling
	GNNBENCH_DATA=$(DATA) $(BIN)/python -m pytest -q --durations=15 tests

# The fast loop while developing: every test not marked heavy (no training in child processes, no Ray,
# no CUDA compile, no GPU-check pipeline); about a minute here (49-63 s) once the native kernels are built.
test-fast: install
	GNNBENCH_DATA=$(DATA) $(BIN)/python -m pytest -q -m "not heavy" tests

overhead: install
	GNNBENCH_DATA=$(DATA) $(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info

# Performance regression check: run configs/ci.yaml into a fresh file and compare it with the
# committed baseline (times normalised by PyG's, so another machine's baseline still compares).
# Prints the markdown table; exits 1 when a cell regressed (see docs/regressions.md).
PERF_OUT ?= gnnbench-out/perf-check
.PHONY: perf-check
perf-check: install install-sampling
	rm -f $(PERF_OUT)/ci.jsonl $(PERF_OUT)/ci.md $(PERF_OUT)/compare.md
	GNNBENCH_DATA=$(DATA) $(BIN)/gnnbench run --suite ci --out $(PERF_OUT)/ci.jsonl --no-report
	@$(BIN)/gnnbench compare results/baseline/ci.jsonl $(PERF_OUT)/ci.jsonl --normalize-by pyg \
		--out $(PERF_OUT)/compare.md; rc=$$?; cat $(PERF_OUT)/compare.md 2>/dev/null; exit $$rc

# Compile the native adapter's CUDA kernels on their own (no GPU needed), so CI
# catches CUDA build errors: make native-cuda-check  (NVCC=/path/to/nvcc to override)
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),/usr/local/cuda/bin/nvcc)
.PHONY: native-cuda-check
native-cuda-check:
	$(NVCC) -c -arch=sm_90 -O3 -Iadapters/native/csrc adapters/native/csrc/native_cuda.cu -o $(or $(TMPDIR),/tmp)/gnnbench_native_cuda_check.o
	@echo "native CUDA kernels compile for sm_90"

# Every GPU check in one run, for a session lent a GPU (see scripts/gpu_check.py).
# On the device machine (no venv there): make gpu-check BIN=$(dirname $(which python3))
.PHONY: gpu-check
gpu-check:
	$(BIN)/python -c "import gnnbench.adapters" 2>/dev/null || $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	GNNBENCH_DATA=$(DATA) $(BIN)/python scripts/gpu_check.py

# Native vs the fastest library per cell, from results files (default: the committed citation run, dense
# features: the headline; and the sparse-feature variant of the quick suite from the same sitting: its own rows).
RESULTS ?= results/citation.jsonl results/quick-sparse.jsonl
.PHONY: native-ratios
native-ratios: install
	$(BIN)/python benchmarks/native_ratios.py $(RESULTS)
