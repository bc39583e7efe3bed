# One command for the demo, one for the tests: each sets up what it needs first.
.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/python integrations/examples/demo.py

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/bench_logging.py
	.venv/bin/python benchmarks/bench_middleware.py
	.venv/bin/python benchmarks/bench_loki.py

clean:
	rm -rf .venv tests/logql/node_modules .pytest_cache .mypy_cache .ruff_cache logs
