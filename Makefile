# One command for the demo, one for the tests: each sets up what it needs first.
#
# `make test` lints once (ruff, mypy on .venv) and then runs the whole pytest suite under each
# Python of PYTHONS, one after the other: 3.11 in .venv, the others in .venv-X.Y. All of them
# run even when one fails; the summary at the end says which failed. `make test PYTHONS=3.11`
# runs one of them only. The run on COVERAGE_PYTHON is the coverage run (the suite is not run
# twice there): `coverage run -m pytest`, child processes included ([tool.coverage] in
# pyproject.toml), then `coverage combine` and `coverage report`, which fails below its
# fail_under. `make test-fast` is the inner loop: .venv only, without the tests marked slow.
.PHONY: setup setup-test setup-oldest setup-structlog demo test test-fast coverage lint lint-only \
	docs docs-only pytest pytest-oldest pytest-structlog bench clean

PYTHONS ?= 3.11 3.12 3.13
COVERAGE_PYTHON ?= 3.11

# The oldest FastAPI and Starlette that pyproject.toml admits (fastapi>=0.110, starlette>=0.37;
# FastAPI 0.110.0 wants Starlette <0.37, so 0.110.1 is the oldest pair), and the tests that
# depend on them: `make test` also runs these in .venv-oldest (tests/test_middleware_routes.py
# checks the pins against pyproject.toml).
OLDEST_PINS = fastapi==0.110.1 starlette==0.37.2
OLDEST_TESTS = tests/test_middleware.py tests/test_middleware_instrument.py \
	tests/test_middleware_routes.py tests/guarantees/test_otel.py

# The structlog front-end's tests (alkana_logging/_structlog_compat.py lists the structlog
# internals it relies on) under the oldest structlog pyproject.toml admits and the newest on
# PyPI: `make test` runs them in .venv with each structlog alone (it has no dependencies) under
# .venv-structlog/, ahead of .venv's own on PYTHONPATH (tests/test_structlog_compat.py checks
# the pin against pyproject.toml).
STRUCTLOG_OLDEST = 25.1.0
STRUCTLOG_TESTS = tests/test_structlog_compat.py tests/test_levels.py tests/test_structlog.py \
	tests/test_stdlib.py tests/test_state.py tests/test_testing.py tests/test_console.py

setup:
	@bash scripts/bootstrap.sh

# .venv, plus .venv-X.Y for every other Python of PYTHONS.
setup-test:
	@bash scripts/bootstrap.sh $(PYTHONS)

demo: setup
	.venv/bin/python integrations/examples/demo.py

lint: setup lint-only

lint-only:
	.tools/bin/uv lock --check --quiet
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	@$(MAKE) --no-print-directory docs-only

# The documentation site (mkdocs.yml, docs/) into site/. --strict: a broken link, a missing page
# or an API page's ::: target that does not resolve fails the build (and so `make test`); a
# docstring's :func: role that names nothing is shown as code, not failed. Nothing is
# fetched: no plugin that downloads, the theme's web fonts off. NO_MKDOCS_2_WARNING quiets the
# theme's banner about MkDocs 2, which is not a warning of the build.
docs: setup docs-only

docs-only:
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

test: setup-test setup-oldest setup-structlog
	@$(MAKE) --no-print-directory lint-only
	@status=0; \
	$(MAKE) --no-print-directory pytest || status=1; \
	$(MAKE) --no-print-directory pytest-oldest || status=1; \
	$(MAKE) --no-print-directory pytest-structlog || status=1; \
	exit $$status

# .venv-oldest: Python 3.11 with the package and its dev tools from uv.lock, then OLDEST_PINS.
setup-oldest: setup
	@[ -x .venv-oldest/bin/python ] || .venv/bin/python -m venv --without-pip .venv-oldest
	@UV_PROJECT_ENVIRONMENT=.venv-oldest .tools/bin/uv sync --quiet --locked --extra dev \
	  --python .venv-oldest/bin/python
	@.tools/bin/uv pip install --quiet --python .venv-oldest/bin/python $(OLDEST_PINS)

pytest-oldest:
	@echo "== pytest on $$(.venv-oldest/bin/python -c 'import fastapi, starlette; \
	  print("FastAPI", fastapi.__version__, "and Starlette", starlette.__version__)') (.venv-oldest)"
	.venv-oldest/bin/python -m pytest -q $(OLDEST_TESTS)

# .venv-structlog/oldest: STRUCTLOG_OLDEST; .venv-structlog/newest: the latest, looked up again.
setup-structlog: setup
	@[ -f .venv-structlog/oldest/structlog/__init__.py ] && \
	  [ -d .venv-structlog/oldest/structlog-$(STRUCTLOG_OLDEST).dist-info ] || \
	  .tools/bin/uv pip install --quiet --no-deps --reinstall --python .venv/bin/python \
	  --target .venv-structlog/oldest structlog==$(STRUCTLOG_OLDEST)
	@.tools/bin/uv pip install --quiet --no-deps --upgrade --python .venv/bin/python \
	  --target .venv-structlog/newest structlog

pytest-structlog:
	@PYTHONPATH=$(CURDIR)/.venv-structlog/oldest .venv/bin/python -c 'import structlog, sys; \
	  sys.exit(structlog.__version__ != "$(STRUCTLOG_OLDEST)" and "not structlog $(STRUCTLOG_OLDEST)" \
	  or not structlog.__file__.startswith("$(CURDIR)/.venv-structlog/oldest/") and "not its copy")'
	@status=0; for which in oldest newest; do \
	  echo "== pytest on structlog $$(PYTHONPATH=$(CURDIR)/.venv-structlog/$$which .venv/bin/python -c \
	    'import structlog; print(structlog.__version__)') ($$which: .venv-structlog/$$which)"; \
	  PYTHONPATH=$(CURDIR)/.venv-structlog/$$which .venv/bin/python -m pytest -q -p no:cacheprovider \
	    $(STRUCTLOG_TESTS) || status=1; \
	done; exit $$status

# The suite under each Python of PYTHONS (set up by setup-test): .venv if it is that version,
# else .venv-X.Y.
pytest:
	@failed=""; summary=""; \
	base=$$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	for version in $(PYTHONS); do \
	  venv=.venv-$$version; [ "$$version" = "$$base" ] && venv=.venv; \
	  if [ ! -x $$venv/bin/python ]; then \
	    echo "error: $$venv is missing: run 'make setup-test PYTHONS=\"$(PYTHONS)\"'" >&2; exit 1; \
	  fi; \
	  echo "== pytest on $$($$venv/bin/python -V) ($$venv)"; \
	  start=$$(date +%s); \
	  if [ "$$version" = "$(COVERAGE_PYTHON)" ]; then \
	    if $(MAKE) --no-print-directory coverage VENV=$$venv; then result="passed (coverage above the floor)"; \
	    else result="FAILED (tests or coverage floor)"; failed="$$failed $$version"; fi; \
	  elif $$venv/bin/python -m pytest -q; then result=passed; else result="FAILED"; failed="$$failed $$version"; fi; \
	  summary="$$summary\n   Python $$version: $$result in $$(( $$(date +%s) - start )) s"; \
	done; \
	printf "== pytest on each Python:$$summary\n"; \
	if [ -n "$$failed" ]; then echo "== pytest FAILED on Python$$failed" >&2; exit 1; fi

# The whole suite under coverage in VENV (.venv by default), subprocesses included; fails when a
# test fails or when the combined coverage is below fail_under (pyproject.toml).
VENV ?= .venv
coverage:
	@rm -f .coverage .coverage.*
	@status=0; $(VENV)/bin/python -m coverage run -m pytest -q || status=1; \
	$(VENV)/bin/python -m coverage combine -q && \
	$(VENV)/bin/python -m coverage report || status=1; \
	exit $$status

# The inner loop: the suite on .venv without the tests marked slow (CI runs them all). It sets
# .venv up only when it is missing (`make setup` brings it up to date).
test-fast:
	@[ -x .venv/bin/python ] || $(MAKE) --no-print-directory setup
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python benchmarks/bench_logging.py
	.venv/bin/python benchmarks/bench_middleware.py
	.venv/bin/python benchmarks/bench_loki.py
	.venv/bin/python benchmarks/bench_freshness.py

clean:
	rm -rf .venv .venv-3.* .venv-oldest .venv-structlog tests/logql/node_modules .pytest_cache \
	  .mypy_cache .ruff_cache logs site .coverage .coverage.* htmlcov
