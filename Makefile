PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench docs clean

$(BIN)/mailkeep: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(BIN)/mailkeep
	$(BIN)/mailkeep --data ./mailkeep-data serve

test: $(BIN)/mailkeep
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

docs: $(BIN)/mailkeep
	$(BIN)/python -m mailkeep.functions.reference > docs/functions.md

bench: $(BIN)/mailkeep
	$(BIN)/python bench/import_search.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
