PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test peers lint bench docs clean

$(BIN)/mailkeep: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(BIN)/mailkeep
	$(BIN)/mailkeep --data ./mailkeep-data serve

# The system packages the tests need (Dovecot, Postfix, Chromium, ...): installed when run as
# root with apt-get, otherwise the run stops here and names the command that installs them.
peers:
	@PY='$(PY)' sh tests/peers/install.sh

# pip-audit checks the installed packages against the vulnerability database of the package
# index: a known vulnerability fails the run; where the database cannot be reached it says
# which packages it could not check and the run goes on.
# The whole suite on the embedded default (SQLite), then the search suite again with the master
# database and the catalogs in PostgreSQL (tests/conftest.py: MAILKEEP_TEST_ENGINE).
test: peers $(BIN)/mailkeep
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pip-audit --progress-spinner off --skip-editable
	$(BIN)/pytest
	MAILKEEP_TEST_ENGINE=postgresql $(BIN)/pytest -q tests/core/test_search.py \
		tests/core/test_search_spread.py

docs: $(BIN)/mailkeep
	$(BIN)/python -m mailkeep.functions.reference > docs/functions.md
	$(BIN)/python -m mailkeep.web.openapi > docs/openapi.json
	$(BIN)/python -m mailkeep.cli.group > src/mailkeep/cli/help_text.py

bench: $(BIN)/mailkeep
	$(BIN)/python bench/import_search.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
