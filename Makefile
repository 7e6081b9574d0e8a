# Two commands do all set-up on a fresh machine:  make bench   and   make test
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= $(if $(GNNBENCH_DATA),$(GNNBENCH_DATA),$(abspath ../shared/datasets))

.PHONY: install bench test overhead clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes (a second run does nothing costly).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

bench: install
	GNNBENCH_DATA=$(DATA) $(BIN)/gnnbench run --suite quick

test: install
	GNNBENCH_DATA=$(DATA) $(BIN)/python -m pytest -q tests

overhead: install
	GNNBENCH_DATA=$(DATA) $(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
