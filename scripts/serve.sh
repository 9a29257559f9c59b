#!/usr/bin/env bash
# Sets up .venv (runtime only) and starts spikeserve on this machine: API, worker and a private Redis.
# Usage: bash scripts/serve.sh [spikeserve serve options, e.g. --port 8080]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --runtime
exec .venv/bin/spikeserve serve "$@"
