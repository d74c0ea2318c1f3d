# gan-geometry: `make book` builds the executed Jupyter Book, `make test` runs the tests, `make lab` opens the
# chapters in JupyterLab, `make explore` serves the explorer app (Voilà).
# All set up .venv and fetch the verified weights first; every step is a no-op when already done.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
BOOK_ARGS ?=
LAB_ARGS ?=
LAB_ROOT ?= $(CURDIR)
VOILA_ARGS ?=
# jupyter/ is a Jupyter config and data directory for this project: labconfig/ has JupyterLab setting defaults
# (jupytext sources open as notebooks, no news or update checks); jupyter_server_config.py makes chapters open
# unmodified; kernels/python3 is the usual Python kernel started in the repository root, where the book runs its
# notebooks, so that a chapter run in JupyterLab or Voilà finds the same stores (runs/) and files; voila.json loads
# only Voilà's own widget manager into its page (the JupyterLab extensions installed here are built for a newer
# JupyterLab than Voilà's page) and shuts down kernels left idle without a page for a minute;
# voila/templates/offline/ is a Voilà page with no CDN links that frees its kernel when closed, reloaded or left.
# Adding it to the search paths leaves the user's own settings, in their home, untouched and in charge (except the
# python3 kernel, which these commands replace with the one above).
# JupyterLab refuses to run as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
JUPYTER_ENV := JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	JUPYTER_PATH="$(CURDIR)/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}"
# The explorer's page for Voilà: a notebook generated from its jupytext source, apps/explorer.py (which, like the
# chapters, opens in JupyterLab as a notebook that saving never rewrites).
EXPLORER := _build/apps/explorer.ipynb

# Headless plotting, and no debugpy "frozen modules" warning from the notebook kernels.
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install weights book test lab explore clean distclean

install: $(STAMP)

# Re-run only when pyproject.toml changes (or the venv is gone).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[book,lab,test]"
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

# JupyterLab at the repository root, its file browser in notebooks/: double-click a chapter to open it as a notebook.
lab: weights
	$(JUPYTER_ENV) $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(LAB_ROOT)" \
		--LabApp.default_url=/lab/tree/notebooks $(ALLOW_ROOT) $(LAB_ARGS)

# The explorer alone, as a web app without notebook cells, on http://127.0.0.1:8866.
explore: weights
	mkdir -p $(dir $(EXPLORER)) && $(VENV)/bin/jupytext --quiet --to ipynb --output $(EXPLORER) apps/explorer.py && \
		$(JUPYTER_ENV) $(VENV)/bin/voila $(EXPLORER) --template=offline --Voila.ip=127.0.0.1 $(VOILA_ARGS)

clean:
	rm -rf _build book/notebooks .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
