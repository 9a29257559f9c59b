"""`spikeserve run`: every example through the real command, its errors, and its progress bar."""

import fcntl
import json
import os
import pathlib
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from worker.results import LayerResult, Result
from worker.runner import simulate
from worker.schema import parse_request

ROOT = pathlib.Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
SPIKESERVE = pathlib.Path(sys.executable).parent / "spikeserve"


def spikeserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SPIKESERVE), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_console_script_is_installed() -> None:
    assert SPIKESERVE.exists(), "pip install -e . must install the spikeserve command"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_and_matches_the_in_process_runner(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    output = tmp_path / "result.npz"
    done = spikeserve("run", str(path), "-o", str(output), "--chunk", "64")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip()
    assert summary.count("\n") == 0 and "neuron-steps/s" in summary and f"wrote {output}" in summary
    from_cli = Result.from_npz(output.read_bytes())
    request, plan = parse_request(path.read_bytes())
    in_process = simulate(request, plan)
    assert from_cli.steps == plan.steps and from_cli.layers.keys() == in_process.layers.keys()
    for name, layer in in_process.layers.items():
        for key in LayerResult.ARRAYS:
            expected, got = getattr(layer, key), getattr(from_cli.layers[name], key)
            assert (expected is None) == (got is None)
            if expected is not None:
                assert np.array_equal(expected, got), (name, key)
        if layer.times is not None:
            assert f"{name}={layer.spike_count}" in summary


def test_json_output_and_the_seed_network(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "seed.json"
    done = spikeserve("run", str(ROOT / "examples" / "seed.json"), "-o", str(output))
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    assert result["steps"] == 4 and result["layers"]["out"]["spikes"]["times"] == []
    assert result["layers"]["out"]["voltages"]["shape"] == [4, 1]


def write(tmp_path: pathlib.Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["run", str(tmp / "missing.json")], "missing.json: No such file or directory"),
        (lambda tmp: ["run", write(tmp, "broken.json", "{not json")], "broken.json: not valid JSON"),
        (
            lambda tmp: ["run", write(tmp, "bad.json", json.dumps({"network": {"layers": []}, "input": {"type": "constant"}}))],
            "bad.json: network.layers: List should have at least 1 item",
        ),
        (lambda tmp: ["run", str(ROOT / "examples" / "seed.json"), "-o", str(tmp / "out.csv")], "must end in .npz or .json"),
        (lambda tmp: ["run", str(ROOT / "examples" / "seed.json"), "--chunk", "0"], "--chunk must be at least 1"),
    ],
    ids=["missing file", "invalid JSON", "invalid request", "unknown output format", "bad chunk"],
)
def test_errors_are_one_line_with_exit_code_2(make_args, message: str, tmp_path: pathlib.Path) -> None:
    done = spikeserve(*make_args(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("spikeserve: error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr


def test_a_terminal_gets_a_progress_bar() -> None:
    controller, terminal = pty.openpty()
    # A new pty is 0x0 and tqdm would draw a zero-width bar; give it a real terminal's size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    path = str(ROOT / "examples" / "poisson_population.json")
    process = subprocess.Popen(
        [str(SPIKESERVE), "run", path, "--chunk", "100"], stdout=subprocess.PIPE, stderr=terminal, cwd=ROOT
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = process.communicate(timeout=120)
    os.close(controller)
    assert process.returncode == 0
    assert b"step" in seen and b"%|" in seen, seen[:200]
    assert b"%|" not in stdout, "the summary on stdout stays clean"
