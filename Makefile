# sae-checks: one command from a fresh clone.
#   make demo   install into .venv, then run the gate on the embedded tiny zoo (offline)
#   make test   install into .venv, then run the whole test suite (offline)
#   make lint   ruff, mypy and the import layers of docs/architecture.md (lint-imports)
#   make realscale  the README's gate command against gpt2-small-sized, pythia and gemma-2-2b offline worlds (minutes, ~20 GB)
# The install step re-runs only when constraints.txt or pyproject.toml change (the stamp holds their hash).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := $(shell cat constraints.txt pyproject.toml | sha1sum | cut -c1-12)
STAMP  := $(VENV)/.installed-$(LOCK)
OUT    ?= out
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install demo test realscale lint bench zoo clean

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: a CPU build lies on this machine's disk; an unpinned torch pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sae_checks.demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

realscale: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist -s --realscale -m realscale tests

lint: $(STAMP)
	$(BIN)/ruff check sae_checks zoo_builder tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -p no:xdist -s

zoo: $(STAMP)
	$(BIN)/python -m zoo_builder.build

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis .benchmarks
