#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then runs the linters (ruff, mypy) and the whole test suite.
# Usage: bash scripts/test.sh [--quick] [pytest args...]
#        --quick leaves out the tests marked `slow` (services, the browser, Triton's interpreter).
#
# Most tests wait on processes (services started, killed and restarted), so they run in
# parallel: PYTEST_WORKERS pytest processes (default 3), each test file on one of them (its
# module's service is then started once), the longest files first (tests/conftest.py). Tests
# marked `serial` time the service (latency, time limits) and run afterwards, alone.
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
# mypy (the packages named in pyproject.toml's [tool.mypy]; half a minute of one core from cold)
# checks beside the parallel tests, which spend much of their time waiting on the processes they
# start; its report follows theirs.
mypy_log=$(mktemp)
trap 'rm -f "$mypy_log"' EXIT
.venv/bin/python -m mypy >"$mypy_log" 2>&1 &
mypy_pid=$!

parallel=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder -m "not serial$quick" "$@" \
  || parallel=$?
typed=0
wait "$mypy_pid" || typed=$?
echo "mypy: $(cat "$mypy_log")"
serial=0
.venv/bin/python -m pytest -m "serial$quick" "$@" || serial=$?
# 5 is pytest's "collected nothing": fine for one phase (arguments may select only the other)
if [[ $parallel -eq 5 && $serial -eq 5 ]]; then
  echo "pytest collected no tests: treating as failure, a test run must test something" >&2
  exit 1
fi
for status in $typed $parallel $serial; do
  if [[ $status -ne 0 && $status -ne 5 ]]; then
    exit "$status"
  fi
done
