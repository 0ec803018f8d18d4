# Two commands do all set-up on a fresh machine:
#   make test   creates .venv, installs the project with its test extras, runs the tests
#   make demo   creates .venv, installs the project, runs the whole demo job
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# torch/torchvision pins that install fast here (see the file); `make ... TORCH_CONSTRAINTS=` lets pip
# resolve torch freely.
TORCH_CONSTRAINTS ?= constraints.txt
CONSTRAINT_FLAG := $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS),)
PYTEST_ARGS ?=

.PHONY: test demo install clean

$(VENV)/.installed: pyproject.toml $(TORCH_CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q $(CONSTRAINT_FLAG) -e ".[test]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# Ray (a test extra, so installed here) runs independent cells side by side on both cores;
# `make demo DEMO_ARGS=` runs the stages one after another through DVC instead.
DEMO_ARGS ?= --executor ray
demo: $(VENV)/.installed
	$(VENV)/bin/midg run --profile demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
