# Two commands on a fresh machine: `make serve` runs the service, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= demo
PORT ?= 3000
HOST ?= 127.0.0.1
# Until trained demo models exist, the demo profile is served as a dry run (flagged in every answer).
DRY_RUN ?= $(if $(filter demo,$(PROFILE)),1,0)

.PHONY: install serve test models-build clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

serve: install
	$(BIN)/gore-censor models ensure --profile $(PROFILE)
	GORE_PROFILE=$(PROFILE) GORE_ALLOW_UNTRAINED=$(DRY_RUN) $(BIN)/bentoml serve service:Censor --host $(HOST) -p $(PORT)

models-build: install
	$(BIN)/gore-censor models build --profile $(PROFILE) --weights none

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
