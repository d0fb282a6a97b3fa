# make demo: run what exists end to end on the bundled model.
# make test: the full test suite (fails on any failure, and when nothing is collected).
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.f8hw-bootstrap-stamp
# YoWASP's JIT cache lives outside the repo so fresh clones reuse it.
export YOWASP_CACHE_DIR ?= $(HOME)/.cache/YoWASP
# only test directories that exist (sim/ appears later)
TEST_DIRS := $(wildcard tests sim)

.PHONY: demo test bootstrap

bootstrap: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh

demo: $(STAMP)
	$(VENV)/bin/f8hw demo

# pytest exits 5 when no test was collected: a nonzero exit, so make fails.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 -p no:cacheprovider $(TEST_DIRS)
