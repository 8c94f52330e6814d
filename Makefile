# Two commands matter on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint template bench clean

$(BIN)/regbook: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "regbook needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,mlflow]'
	@touch $@

demo: $(BIN)/regbook
	$(BIN)/regbook demo

test: $(BIN)/regbook
	$(BIN)/python -m pytest -q

lint: $(BIN)/regbook
	$(BIN)/ruff check toolkit tests bench
	$(BIN)/ruff format --check toolkit tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

template: $(BIN)/regbook
	$(BIN)/python -m regbook.workbook.template templates/registry.xlsx

bench: $(BIN)/regbook
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build toolkit/*.egg-info regbook-demo bench/.out
