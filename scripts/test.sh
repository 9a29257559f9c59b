#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then runs the linters (ruff, mypy) and the whole test suite.
# Usage: bash scripts/test.sh [--quick] [pytest args...]
#        --quick leaves out the tests marked `slow` (services, the browser, Triton's interpreter).
#
# Most tests wait on processes (services started, killed and restarted), so they run in
# parallel: PYTEST_WORKERS pytest processes (default 3), each test file on one of them (its
# module's service is then started once). Tests marked `serial` time the service (latency, time
# limits) and run afterwards, alone.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=
if [[ ${1:-} == --quick ]]; then
  quick=" and not slow"
  shift
fi

bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m mypy  # the packages named in pyproject.toml's [tool.mypy]

parallel=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" --dist loadfile -m "not serial$quick" "$@" || parallel=$?
serial=0
.venv/bin/python -m pytest -m "serial$quick" "$@" || serial=$?
# 5 is pytest's "collected nothing": fine for one phase (arguments may select only the other)
if [[ $parallel -eq 5 && $serial -eq 5 ]]; then
  echo "pytest collected no tests: treating as failure, a test run must test something" >&2
  exit 1
fi
for status in $parallel $serial; do
  if [[ $status -ne 0 && $status -ne 5 ]]; then
    exit "$status"
  fi
done
