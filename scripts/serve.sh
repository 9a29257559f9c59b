#!/usr/bin/env bash
# Sets up .venv (runtime only) and starts spikeserve on this machine: API, worker and a private Redis.
# Usage: bash scripts/serve.sh [spikeserve serve options, e.g. --port 8080]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --runtime
cat >&2 <<'TEXT'
spikeserve is installed in .venv: `source .venv/bin/activate` puts the `spikeserve` command on
your PATH in this shell (or call .venv/bin/spikeserve); `spikeserve --help` lists the commands.
TEXT
exec .venv/bin/spikeserve serve "$@"
