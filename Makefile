# The two quick-start commands: `make demo` (the pipeline end to end on the embedded default) and
# `make test`. Each creates the virtualenv it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch (the CUDA build of a newer, unpinned torch is several GB); set TORCH= to skip.
TORCH ?= torch==2.13.0
RUN ?= runs/demo
DEMO_STEPS ?= 600
PYTEST_ARGS ?=

.PHONY: demo evaluate test test-all test-deps bench clean-venv

$(VENV)/.installed: setup.cfg setup.py pyproject.toml preprocessing/dedup/_cminhash.c
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# stream -> dedup -> tokenizer -> pack -> report, then the tiny model on the CPU, then a completion
demo: $(VENV)/.installed
	$(VENV)/bin/cp-preprocess run configs/preprocess/demo.yaml --output $(RUN) --workers 2
	$(PY) training/run.py --config configs/training/tiny.yaml data_dir=$(RUN)/shards \
	  tokenizer_dir=$(RUN)/tokenizer output_dir=$(RUN)/model max_steps=$(DEMO_STEPS)
	$(PY) training/generate.py $(RUN)/model/final --prompt 'def fibonacci(n):' --max-new-tokens 64
	@echo "\nWhere everything went:"; \
	echo "  $(RUN)/clean     filtered, exact-deduplicated JSONL shards + stats.json"; \
	echo "  $(RUN)/dedup     near-deduplicated shards, clusters.jsonl.zst, stats.json"; \
	echo "  $(RUN)/tokenizer the BPE tokenizer (AutoTokenizer.from_pretrained loads it) + stats.json"; \
	echo "  $(RUN)/shards    train/ and valid/ token shards (index.json) + stats.json"; \
	echo "  $(RUN)/model     checkpoints, TensorBoard logs, metrics.jsonl; final/ is the HF model"; \
	echo "  $(RUN)/report/report.html  open it in a browser"

# HumanEval on the demo's model (run `make demo` first): the harness self-test, then EVAL_SAMPLES
# completions per problem executed in the sandbox. The tiny model scores ~0; the point is the machinery.
# One torch thread: for a model this small, two threads wait on each other. EVAL_ARGS="--limit 20": quicker.
EVAL_SAMPLES ?= 10
EVAL_ARGS ?=
evaluate: $(VENV)/.installed
	$(VENV)/bin/cp-evaluate humaneval --self-test
	OMP_NUM_THREADS=1 $(VENV)/bin/cp-evaluate humaneval $(RUN)/model/final --n-samples $(EVAL_SAMPLES) \
	  --batch-size $(EVAL_SAMPLES) --max-new-tokens 64 $(EVAL_ARGS)

# The report's browser test renders the page in Debian's chromium, and the reader's tests compare
# with the zstd CLI (and pzstd) of Debian's zstd package; installed here when we may (root with
# apt-get), otherwise the tests that need them skip and say why.
test-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "chromium not installed: the report's browser test will be skipped"; }
	@command -v zstd >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zstd >/dev/null) \
	  || echo "zstd not installed: the reader's tests against the zstd CLI will be skipped"; }

test: $(VENV)/.installed test-deps
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed test-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_stream.py

clean-venv:
	rm -rf $(VENV)
