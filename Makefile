# The two commands: `make demo` and `make test`. Each creates .venv (if missing) and installs the project
# with its test extras into it; reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(INSTALLED)
	$(PY) -m pynet_tf.summary --base-filters 32 --input 224x224
	@echo "Training, export and the phone benchmark are not built yet: README's Status table says what is."

test: $(INSTALLED)
	$(PY) -m pytest
