# Every target bootstraps the project's own virtual environment first; a fresh machine needs
# only python3 (>= 3.11) and make. The venv is refreshed whenever pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.PHONY: all demo test venv
all: test

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[distributed]'
	touch $@

venv: $(STAMP)

test: $(STAMP)
	$(PYTEST) -q

demo: $(STAMP)
	$(VENV)/bin/lowbit demo
