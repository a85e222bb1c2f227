# passkt — the two commands:  `make reproduce` (whole pipeline, tiny profile)  and  `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= tiny
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: reproduce sweep test test-slow test-gpu lint strip venv profile bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

# Switch params.yaml to a profile: tiny = as committed, quick = configs/quick.yaml (the tiny study at smaller,
# not decisive settings; reuses the tiny base model), paper = configs/paper.yaml (undo with `git checkout params.yaml`).
profile:
	@if [ "$(PROFILE)" = paper ] || [ "$(PROFILE)" = quick ]; then cp configs/$(PROFILE).yaml params.yaml; echo "params.yaml <- configs/$(PROFILE).yaml"; \
	elif [ "$(PROFILE)" != tiny ]; then echo "unknown PROFILE=$(PROFILE) (tiny | quick | paper)"; exit 2; fi

# dvc repro, then the README's and docs' generated blocks (wall times, verdicts) from the new results/.
# LANES=N runs up to N independent units side by side (tools/repro_lanes.py; same results where bf16 training does
# not depend on the thread count: not on a CPU with AMX, tests/test_lanes.py; on this 2-core machine
# measured no faster than one at a time: docs/wall_times.md)
LANES ?= 1
reproduce: $(STAMP) profile
	@if [ "$(LANES)" -gt 1 ]; then PATH=$(abspath $(BIN)):$$PATH $(BIN)/python tools/repro_lanes.py --lanes $(LANES); \
	else PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro; fi
	$(BIN)/python tools/readme_results.py

# The support sweep (issue #21; docs/support_sweep.md): beyond the paper, separate from `reproduce`. Every point
# and replicate is its own cached, resumable DVC unit (sweep/dvc.yaml); a second invocation is a no-op.
sweep: $(STAMP)
	$(BIN)/python tools/sweep_dvc.py --write
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro sweep/dvc.yaml
	$(BIN)/python tools/readme_results.py

# pytest exit 5 ("no tests collected") is a failure here, never a silent pass.
test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-slow: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# tests/test_gpu.py: skips (with its reason) where there is no CUDA device; see docs/testing.md
test-gpu: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m gpu; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-gpu: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check lib tests bench

strip: $(STAMP)
	$(BIN)/nbstripout --keep-id --keep-metadata-keys cell.metadata.tags notebooks/*.ipynb

bench: $(STAMP)
	for b in bench/bench_*.py; do PATH=$(abspath $(BIN)):$$PATH $(BIN)/python $$b || exit 1; done
