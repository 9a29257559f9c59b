"""Assertions and helpers shared by several test modules."""

import pathlib

import numpy as np

from worker.simulation.results import LayerResult, Result, WeightResult


def assert_same_recordings(a: Result, b: Result) -> None:
    """Same steps, same layers, and every recorded array equal in value, dtype and presence."""
    assert a.steps == b.steps
    assert a.layers.keys() == b.layers.keys()
    for name, layer in a.layers.items():
        other = b.layers[name]
        assert layer.shape == other.shape, name
        for key in LayerResult.ARRAYS:
            x, y = getattr(layer, key), getattr(other, key)
            assert (x is None) == (y is None), (name, key)
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x, y), (name, key)
    assert a.weights.keys() == b.weights.keys()
    for name, weights in a.weights.items():
        for key in WeightResult.ARRAYS:
            x, y = getattr(weights, key), getattr(b.weights[name], key)
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), (name, key)


def processes_using(redis_url: str) -> list[int]:
    """PIDs of live processes whose environment points them at ``redis_url`` (workers, APIs)."""
    import pathlib

    marker = f"SPIKESERVE_REDIS_URL={redis_url}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def wait_gone(redis_url: str, timeout_s: float = 30.0) -> list[int]:
    """Waits for every process using ``redis_url`` to exit; returns those still alive."""
    import time

    deadline = time.monotonic() + timeout_s
    while (alive := processes_using(redis_url)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def new_venv(venv: pathlib.Path) -> None:
    """A new venv at ``venv`` whose pip is this venv's, linked (``python -m venv`` installs pip from
    its bundled wheel: 7 s of CPU per venv here), with a ``pip`` command as a venv has."""
    import subprocess
    import sys

    import pip

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _link(venv, pathlib.Path(pip.__file__).parent, f"pip-{pip.__version__}.dist-info")
    command = venv / "bin" / "pip"
    command.write_text('#!/bin/sh\nexec "$(dirname "$0")/python" -m pip "$@"\n')
    command.chmod(0o755)


def link_torch(venv: pathlib.Path) -> None:
    """This venv's torch in ``venv``, linked rather than unpacked again (a minute of CPU): for
    tests of install steps, where installing torch itself is what CI's set-up does anyway."""
    import torch

    package = pathlib.Path(torch.__file__).parent
    _link(venv, package, f"torch-{torch.__version__.split('+')[0]}*.dist-info", "torchgen")


def _link(venv: pathlib.Path, package: pathlib.Path, *others: str) -> None:
    """``package`` (a directory of this venv's site-packages) and the entries beside it that
    match ``others``, linked into ``venv``'s site-packages."""
    import subprocess

    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    )
    for entry in [package, *(found for pattern in others for found in package.parent.glob(pattern))]:
        (pathlib.Path(site.stdout.strip()) / entry.name).symlink_to(entry)


def compiled_ptx(module: str, summary: str) -> dict:
    """``{kernel: summary(ptx)}`` for every kernel ``module``'s ``compile_for(90)`` compiles for
    Hopper (no GPU needed), in a child process: a process with TRITON_INTERPRET set compiles
    nothing. ``summary`` is a Python expression of ``ptx`` whose value JSON can carry."""
    import json
    import os
    import subprocess
    import sys

    code = (
        f"import json; from {module} import compile_for; "
        f"print(json.dumps({{name: {summary} for name, ptx in compile_for(90).items()}}))"
    )
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
