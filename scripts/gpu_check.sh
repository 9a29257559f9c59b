#!/usr/bin/env bash
# Issue 6's device checks in one run, for a machine with an NVIDIA GPU whose python3 already has
# PyTorch and Triton (the lent H200's image has both; nothing is installed here):
#   1. the Triton kernels, compiled for the GPU, against the eager engine (tests/worker/engine/
#      test_fused.py picks CUDA when it is there), forward and backward;
#      and the event kernels (tests/worker/engine/test_events.py: synapses, Poisson input drawn
#      bit for bit as on the CPU);
#   2. benchmarks/engine.py and benchmarks/runner.py on CUDA (peers that are not installed are
#      reported, not hidden; the runner needs the request format's packages, pydantic and numpy);
#   3. Brunel's network as a graph request on CUDA (issue 15: N = 10,000 under 0.1 s for 1 s of
#      network time; N = 100,000 with the in-degrees kept), its statistics beside the CPU's.
# Logs go to $OUT when set (the device tool's folder), else to the current folder.
set -uo pipefail
out="${OUT:-.}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee "$out/gpu_env.txt"
# --noconftest: the suite's conftest needs the service's packages, which these kernel tests do not
python3 -m pytest --noconftest -p no:cacheprovider -q tests/worker/engine/test_fused.py tests/worker/engine/test_events.py \
    2>&1 | tee "$out/gpu_tests.txt"
tests=${PIPESTATUS[0]}
python3 -m benchmarks.engine --device cuda --repeats 5 --json "$out/gpu_engine.json" 2>&1 | tee "$out/gpu_engine.txt"
python3 -m benchmarks.runner --device cuda --repeats 5 2>&1 | tee "$out/gpu_runner.txt"
python3 -m benchmarks.brunel --device cuda --sizes 10000,100000 --repeats 2 --seeds 1 2>&1 | tee "$out/gpu_brunel.txt"
exit "$tests"
