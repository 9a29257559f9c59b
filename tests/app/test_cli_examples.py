"""`spikeserve run` on every shipped example gives what the in-process runner gives, and a
one-line summary. The commands run in a resident engine (`spikeserve engine`), which spares each
its second of importing torch; tests/app/test_resident.py shows a run there to be a run of its own,
and tests/app/test_cli.py runs the command alone."""

import json
import pathlib
import subprocess

import pytest

from tests.app.test_cli import ROOT, SPIKESERVE
from tests.helpers import assert_same_recordings
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.slow  # a command per example, and the engine

EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_and_matches_the_in_process_runner(
    path: pathlib.Path, tmp_path: pathlib.Path, resident_engine: dict[str, str]
) -> None:
    # Brunel's 30 ms of its second of network time (the graph path), Song's 2 s of its 100: in CI's time
    steps = {"brunel": 300, "stdp_song2000": 20_000}.get(path.stem)
    if steps is not None:
        shortened = json.loads(path.read_text()) | {"steps": steps}
        path = tmp_path / path.name
        path.write_text(json.dumps(shortened))
    output = tmp_path / "result.npz"
    command = [str(SPIKESERVE), "run", str(path), "-o", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=resident_engine)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    summary = done.stdout.strip()
    assert summary.count("\n") == 0 and "neuron-steps/s" in summary and f"wrote {output}" in summary
    from_cli = Result.from_npz(output.read_bytes())
    request, plan = parse_request(path.read_bytes())
    in_process = simulate(request, plan)
    assert_same_recordings(from_cli, in_process)
    for name, layer in in_process.layers.items():
        if layer.times is not None:
            assert f"{name}={layer.spike_count}" in summary
