# Shortcuts for the commands in README.md (Development). Everything runs from .venv.
PY := .venv/bin/python

.PHONY: dev test fast lint format bench clean

dev:            ## a virtualenv with the package (editable) and the test tools
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'

test:           ## the whole suite, as CI runs it
	$(PY) -m pytest

fast:           ## the suite without the slow tests (crash rounds, memory ceilings, bench smoke)
	$(PY) -m pytest -m 'not slow'

lint:           ## ruff, formatting, mypy and the import contracts
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench:          ## the benchmarks behind BENCHMARKS.md (minutes; run on a quiet machine)
	$(PY) -m bench.ingest
	$(PY) -m bench.ui_load
	$(PY) -m bench.scale
	$(PY) -m bench.import_export
	$(PY) -m bench.web

clean:
	rm -rf .venv build dist .mypy_cache .ruff_cache .pytest_cache
