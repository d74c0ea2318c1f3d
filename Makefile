# gan-geometry: `make book` builds the executed Jupyter Book, `make test` runs the tests.
# Both set up .venv and fetch the verified weights first; every step is a no-op when already done.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
BOOK_ARGS ?=

# Headless plotting, and no debugpy "frozen modules" warning from the notebook kernels.
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install weights book test clean distclean

install: $(STAMP)

# Re-run only when pyproject.toml changes (or the venv is gone).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[book,test]"
	$(PY) -m pip install --no-deps pytorch-pretrained-biggan==0.1.1
	@touch $@

# Verifies the cached weights and the book's MathJax by sha256 and downloads any that are missing
# (see helpers/assets.py).
weights: install
	$(PY) -m helpers.assets fetch --all

book: weights
	$(PY) -m helpers.book run --profile $(PROFILE) $(BOOK_ARGS)
	$(PY) -m helpers.book results
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going
	@echo "book: $(CURDIR)/_build/html/index.html"

test: weights
	$(PY) -m pytest

clean:
	rm -rf _build book/notebooks .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
