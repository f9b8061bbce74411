# The two quick-start commands: `make demo` (the pipeline end to end on the embedded default) and
# `make test`. Each creates the virtualenv it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch (the CUDA build of a newer, unpinned torch is several GB); set TORCH= to skip.
TORCH ?= torch==2.13.0
RUN ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test test-all bench clean-venv

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/cp-preprocess run --output $(RUN)

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_stream.py

clean-venv:
	rm -rf $(VENV)
