#!/usr/bin/env bash
# Set up everything (Debian packages, .venv, PostgreSQL) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/setup.sh
export ADVLEGIT_TEST_DATABASE_URL=${ADVLEGIT_TEST_DATABASE_URL:-$(bash scripts/start-postgres.sh | tail -1)}
echo "PostgreSQL for tests: $ADVLEGIT_TEST_DATABASE_URL"
# Lint first (pyproject's [tool.ruff]): a lint error fails the run before the tests start.
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest -q -ra --durations=30 "$@"
rc=$?
set -e
# pytest exit 5 = no tests collected: that is a failure, never a pass.
if [ "$rc" = 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
