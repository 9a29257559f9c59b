#!/usr/bin/env bash
# Creates .venv and installs spikeserve with its test tools and the peer libraries.
# Usage: bash scripts/setup.sh              everything, for development and tests
#        bash scripts/setup.sh --runtime    only what `spikeserve serve` needs
# Idempotent: safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

pip install --upgrade pip
# torch first, pinned: this machine has the CPU build of 2.13.0 on disk; anything else pulls GBs of CUDA.
pip install "torch==2.13.0"
build_viewer() {
  # The viewer: uPlot from the npm registry, copied with our sources into frontend/dist (no bundler).
  if command -v npm >/dev/null; then
    (cd frontend && npm ci --no-audit --no-fund --silent && npm run --silent build)
  else
    echo "npm not found: the viewer is not built, and / will redirect to the API docs" >&2
  fi
}

if [[ ${1:-} == --runtime ]]; then
  pip install -e .
  build_viewer
  echo "set-up done (runtime only)"
  exit 0
fi
pip install -e ".[dev]"
build_viewer
# The browser tests drive Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium >/dev/null
fi
# The peers (Norse, snnTorch, SpikingJelly, NIR) for parity tests and benchmarks, without letting
# them swap torch: their metadata asks for torchvision/torchaudio, which we neither need nor want.
pip install setuptools setuptools_scm wheel
pip install --no-build-isolation --no-deps -r requirements/peers.txt
pip install -r requirements/peers-runtime.txt
.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was replaced by {torch.__version__}"
import norse.torch, snntorch, spikingjelly.activation_based.neuron, nir  # noqa: F401  the peers import
print(f"set-up done: torch {torch.__version__}")
PY
