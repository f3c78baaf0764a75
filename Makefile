# Two commands do everything on a fresh machine with python3 and pip:
#   make figures   regenerate figures/ (the main job; PROFILE=quick by default)
#   make test      run the test suite (executes every notebook in the smoke profile)
# Each bootstraps the environment (.venv, from uv.lock) and the offline data on first use.

PYTHON ?= python3
PROFILE ?= quick
# e.g. make figures SUITE_ARGS="--force" (re-execute unchanged notebooks) or "--only 02 03"
SUITE_ARGS ?=
# e.g. make lab LAB_ARGS="--port 8899"
LAB_ARGS ?=
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.drsl-installed
# Some machines set PYTHONDONTWRITEBYTECODE, and then every kernel, worker and test
# process compiles torch, pandas and scipy from source again (about 7 s each, measured).
# Our commands let Python keep its bytecode in the environment and __pycache__ (ignored).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: figures test lab bench book data env gitfilter lint clean-cache help

help:
	@echo "make figures  - regenerate figures/ from real Fashion-MNIST (PROFILE=$(PROFILE))"
	@echo "make test     - run the tests (smoke-profile notebooks included)"
	@echo "make lab      - JupyterLab on 127.0.0.1 with a token"
	@echo "make bench    - the benchmark suite"
	@echo "make book     - the walkthrough book in build/book/ (from the last make figures)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --all-extras
	@touch $@

# Saving a notebook in JupyterLab must not put outputs into git: a clean filter
# (nbstripout) strips them on `git add`; the committed .gitattributes names the filter.
# These are the settings `nbstripout --install` writes, plus --keep-id, which keeps the
# committed cell ids so that a fresh clone reads as unchanged.
NBSTRIP := "$(abspath $(PY))" -m nbstripout --keep-id
gitfilter: $(STAMP)
	@if [ -d .git ]; then \
	  git config filter.nbstripout.clean '$(NBSTRIP)' && \
	  git config filter.nbstripout.smudge cat && \
	  git config filter.nbstripout.required true && \
	  git config diff.ipynb.textconv '$(NBSTRIP) -t'; fi

env: $(STAMP) gitfilter

data:
	@bash scripts/fetch_data.sh

figures: $(STAMP) gitfilter data
	$(PY) -m drsl_utils.suite --profile $(PROFILE) $(SUITE_ARGS)

test: $(STAMP) gitfilter data
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

# Token on (printed in the log), bound to 127.0.0.1, opened on notebooks/. Containers
# often run as root, where JupyterLab insists on --allow-root; only then is it added.
# lab-config/ holds the project's lab settings (no news prompt, no news or update
# requests); JUPYTER_CONFIG_PATH adds it to Jupyter's search path, after the user's own
# ~/.jupyter, so nothing in the home is touched. The browser test starts the lab here
# (with LAB_ROOT set to its own copy of a notebook).
LAB_ROOT ?= notebooks
lab: $(STAMP) gitfilter data
	JUPYTER_CONFIG_PATH="$(CURDIR)/lab-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=$(LAB_ROOT) \
	  $$(if [ "$$(id -u)" = 0 ]; then echo --allow-root; fi) $(LAB_ARGS)

# The walkthrough book (build/book/index.html): the executed notebooks of the last
# `make figures` for PROFILE, the claims report, the gallery and the API. It never
# executes a notebook; a missing or stale one is named with the command that refreshes
# it. e.g. make book BOOK_ARGS=--allow-stale
BOOK_ARGS ?=
book: $(STAMP)
	$(PY) scripts/build_book.py --profile $(PROFILE) $(BOOK_ARGS)

bench: $(STAMP) data
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check drsl_utils tests benchmarks notebooks

clean-cache:
	rm -rf data/cache build
