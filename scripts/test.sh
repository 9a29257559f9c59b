#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then runs the linters and the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: treating as failure, a test run must test something" >&2
  exit 1
fi
exit $status
