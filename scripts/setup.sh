#!/usr/bin/env bash
# Creates .venv and installs spikeserve with its test tools and the peer libraries.
# Usage: bash scripts/setup.sh              everything, for development and tests
#        bash scripts/setup.sh --runtime    only what `spikeserve serve` needs
# Idempotent and quick when nothing changed: each step is skipped while its inputs (the project's
# dependency files, the viewer's lock file) are what they were at its last success.
#
# SPIKESERVE_TORCH_INDEX: a package index for torch, e.g. https://download.pytorch.org/whl/cpu for
# the CPU-only build (PyPI's Linux build of torch carries CUDA: about 2.5 GB more to download).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=dev
[[ ${1:-} == --runtime ]] && mode=runtime
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# PYTHONWARNINGS: setuptools warns about every editable install, in red, although nothing is wrong
pip() { PYTHONWARNINGS=ignore .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# The large installs show pip's progress: all of it on a terminal (its download bars), a line per
# download and the summary in a log. A failing pip still fails the set-up (pipefail).
pip_install_showing() {
  if [[ -t 1 ]]; then
    PYTHONWARNINGS=ignore .venv/bin/python -m pip --disable-pip-version-check install "$@"
  else
    PYTHONWARNINGS=ignore .venv/bin/python -m pip --disable-pip-version-check install --progress-bar off "$@" \
      | { grep --line-buffered -E "^ *(Downloading|Successfully installed)" || true; }
  fi
}
say() { echo "set-up: $*" >&2; }
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
done_before() { [[ -f "$1" && $(cat "$1") == "$2" ]]; }

# torch first, pinned: a range elsewhere would let pip pick a newer, multi-GB CUDA build.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  torch_args=("torch==2.13.0")
  [[ -n ${SPIKESERVE_TORCH_INDEX:-} ]] && torch_args+=(--index-url "$SPIKESERVE_TORCH_INDEX")
  # where pip would take it from, without downloading it (empty: the index cannot be reached)
  source=$(pip install --dry-run --quiet --report - "${torch_args[@]}" 2>/dev/null \
    | .venv/bin/python -c 'import json, sys
text = sys.stdin.read()
report = json.loads(text) if text.strip() else {"install": []}
print(next((i["download_info"]["url"] for i in report["install"] if i["metadata"]["name"] == "torch"), ""))' 2>/dev/null \
    || true)
  if [[ -z $source && -n ${SPIKESERVE_TORCH_INDEX:-} ]]; then
    say "torch 2.13.0 cannot be had from $SPIKESERVE_TORCH_INDEX (unreachable from here?)."
    say "PyPI has no CPU-only build of torch for Linux: unset SPIKESERVE_TORCH_INDEX to install PyPI's,"
    say "which carries CUDA (about 2.5 GB more) and runs on the CPU as well."
    exit 1
  fi
  if [[ $source == http* ]]; then
    say "downloading ${source##*/} (pip's progress below)"
    if [[ $source != *cpu* && -z ${SPIKESERVE_TORCH_INDEX:-} ]]; then
      say "this build carries CUDA (about 2.5 GB); for the CPU-only build stop now (Ctrl-C) and rerun with"
      say "        SPIKESERVE_TORCH_INDEX=https://download.pytorch.org/whl/cpu  (PyTorch's own index, not PyPI)"
    fi
  fi
  pip_install_showing "${torch_args[@]}"
  .venv/bin/python -c 'import torch' 2>/dev/null || { say "installing torch failed (see pip's messages above)"; exit 1; }
fi

requirements_stamp=$(stamp_of pyproject.toml requirements/*.txt)
if ! done_before ".venv/.setup-$mode" "$requirements_stamp" && ! done_before .venv/.setup-dev "$requirements_stamp"; then
  say "installing spikeserve and its dependencies ($mode)"
  if [[ $mode == runtime ]]; then
    pip_install_showing -e ".[worker]"
  else
    pip_install_showing -e ".[dev]"
    say "installing the peer simulators (Norse, snnTorch, SpikingJelly) and NIR"
    # The peers (Norse, snnTorch, SpikingJelly, NIR) for parity tests and benchmarks, without
    # letting them swap torch: their metadata asks for torchvision and torchaudio, which we
    # neither need nor want. What they import at run time first, then they without their
    # dependencies (so pip does not report the ones left out as conflicts).
    pip install setuptools setuptools_scm wheel
    pip install -r requirements/peers-runtime.txt
    pip install --no-build-isolation --no-deps -r requirements/peers.txt
  fi
  echo "$requirements_stamp" > ".venv/.setup-$mode"
  installed=yes
fi

# The viewer: uPlot and CodeMirror from the npm registry, built with our sources into frontend/dist.
if command -v npm >/dev/null; then
  viewer_stamp=$(stamp_of frontend/package.json frontend/package-lock.json)
  if ! done_before frontend/node_modules/.setup "$viewer_stamp"; then
    say "installing the viewer's packages (npm)"
    (cd frontend && npm ci --no-audit --no-fund --silent)
    echo "$viewer_stamp" > frontend/node_modules/.setup
  fi
  (cd frontend && npm run --silent build)
else
  echo "npm not found: the viewer is not built, and / will redirect to the API docs" >&2
fi

# Our modules' bytecode, written now: where PYTHONDONTWRITEBYTECODE is set (as on some CI machines)
# every process would compile them again, a second of CPU for a worker on a slow 2-core machine.
# compileall skips what is current.
.venv/bin/python -m compileall -q -j 0 app worker tests benchmarks >/dev/null

if [[ $mode == runtime ]]; then
  echo "set-up done (runtime only)"
  exit 0
fi
# The browser tests drive Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  say "installing Chromium for the browser tests (apt-get)"
  "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium >/dev/null
fi
[[ -z ${installed:-} ]] && { echo "set-up is current"; exit 0; }
.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was replaced by {torch.__version__}"
import norse.torch, snntorch, spikingjelly.activation_based.neuron, nir  # noqa: F401  the peers import
print(f"set-up done: torch {torch.__version__}")
PY
