"""The CLI as a job tool against a running service: submit prints the job's id first and cancels
it on Ctrl-C; status, cancel, watch, result and jobs work on a job by its id; exit codes say how
it went (0 succeeded, 1 the job failed or was cancelled, 2 refused, 3 unreachable, 130 Ctrl-C)."""

import json
import pathlib
import signal
import subprocess
import time

import httpx
import numpy as np
import pytest
from pynwb import NWBHDF5IO

from tests.app.conftest import KEYS, SPIKESERVE, Service
from tests.helpers import assert_same_recordings
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.slow  # talks to a service

LIVE = {  # a few hundred ms of spiking Poisson input in chunks, its spikes streamed live
    "network": {"layers": [{"type": "lif", "name": "out", "params": {"tau_mem_inv": 100.0}}]},
    "input": {"type": "poisson", "rates": 400.0, "shape": [2000], "steps": 3000},
    "seed": 2,
    "record": {"spikes": ["out"], "live": ["out"]},
}
LONG = {  # 50,000 silent LIF neurons for 400,000 steps: about 10 s of work
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {"type": "constant", "value": 0.1, "shape": [50_000], "steps": 400_000},
}


def cli(service: Service, *args: str, key: str | None = KEYS["carol"], timeout: float = 120) -> subprocess.CompletedProcess:
    keys = ["--key", key] if key else []
    return subprocess.run(
        [str(SPIKESERVE), *args, "--url", service.url, *keys], capture_output=True, text=True, timeout=timeout
    )  # fmt: skip


def write(tmp_path: pathlib.Path, request: dict) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return str(path)


def test_a_job_by_its_id_detached_watched_listed_and_fetched(service: Service, tmp_path: pathlib.Path) -> None:
    submitted = cli(service, "submit", write(tmp_path, LIVE), "--detach")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1]
    assert submitted.stdout == f"job {job_id} submitted\n"

    watched = cli(service, "watch", job_id)
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    chunks = [line for line in lines if line.startswith("steps ")]
    assert chunks and chunks[-1].startswith("steps ") and chunks[-1].split(":")[0].endswith("2,999"), lines
    assert lines[-1].startswith(f"job {job_id}: succeeded, 3,000/3,000 steps")

    output = tmp_path / "result.npz"
    fetched = cli(service, "result", job_id, "-o", str(output))
    assert fetched.returncode == 0, fetched.stderr
    assert_same_recordings(Result.from_npz(output.read_bytes()), simulate(*parse_request(LIVE)))
    live = sum(int(line.rsplit(" ", 1)[1].replace(",", "")) for line in chunks)
    assert live == Result.from_npz(output.read_bytes()).layers["out"].spike_count > 0, "the chunks add up to the result"

    as_nwb = tmp_path / "result.nwb"  # the same spikes, in seconds, in an NWB file's units table
    assert cli(service, "result", job_id, "-o", str(as_nwb)).returncode == 0
    with NWBHDF5IO(str(as_nwb), "r") as io:
        seconds = np.sort(np.concatenate(list(io.read().units["spike_times"][:])))
    np.testing.assert_allclose(seconds, np.sort(Result.from_npz(output.read_bytes()).layers["out"].times) * 0.001)

    status = cli(service, "status", job_id, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["id"] == job_id
    listed = cli(service, "jobs", "--limit", "5")
    assert listed.returncode == 0 and job_id in listed.stdout and "succeeded" in listed.stdout
    other = cli(service, "status", job_id, key=KEYS["dave"])
    assert other.returncode == 2 and "HTTP 404" in other.stderr, "another key's job is not there"


def test_ctrl_c_on_submit_cancels_the_job_it_started(service: Service, tmp_path: pathlib.Path) -> None:
    command = [str(SPIKESERVE), "submit", write(tmp_path, LONG), "--url", service.url, "--key", KEYS["carol"]]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = process.stderr.readline()  # the id comes before anything else
    job_id = first.split()[1]
    assert first == f"job {job_id} submitted\n"
    service.wait_running(job_id, user="carol")
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    assert rest == f"spikeserve: interrupted job {job_id} cancelled\n", "one line, no traceback"
    assert service.wait_final(job_id, user="carol")["status"] == "cancelled"


def test_cancel_ends_a_running_job_and_status_and_result_say_so(service: Service, tmp_path: pathlib.Path) -> None:
    job_id = cli(service, "submit", write(tmp_path, LONG), "--detach").stdout.split()[1]
    service.wait_running(job_id, user="carol")
    cancelled = cli(service, "cancel", job_id)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"job {job_id}: "), cancelled.stderr
    assert service.wait_final(job_id, user="carol")["status"] == "cancelled"
    status = cli(service, "status", job_id)
    assert status.returncode == 1 and status.stdout.startswith(f"job {job_id}: cancelled"), "the job ended without a result"
    result = cli(service, "result", job_id)
    assert result.returncode == 1 and result.stderr == f"spikeserve: error: job {job_id} cancelled\n"


def test_refusals_name_the_key_and_an_absent_server_has_its_own_code(service: Service, tmp_path: pathlib.Path) -> None:
    without = cli(service, "jobs", key=None)
    assert without.returncode == 2
    assert "HTTP 401" in without.stderr and "--key or SPIKESERVE_KEY" in without.stderr
    with httpx.Client() as http:
        assert http.get(f"{service.url}/healthz").status_code == 200
    started = time.monotonic()
    absent = subprocess.run(
        [str(SPIKESERVE), "status", "nope", "--url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert absent.returncode == 3 and "cannot reach the server at http://127.0.0.1:9" in absent.stderr
    assert time.monotonic() - started < 30


def test_a_refused_request_names_its_fields_as_spikeserve_run_does(service: Service, tmp_path: pathlib.Path) -> None:
    bad = {**LIVE, "network": {"layers": [{"type": "lif", "name": "out", "parms": {}}]}}
    submitted = cli(service, "submit", write(tmp_path, bad))
    local = subprocess.run([str(SPIKESERVE), "run", write(tmp_path, bad)], capture_output=True, text=True, timeout=120)
    assert submitted.returncode == local.returncode == 2
    assert "network.layers[0].parms: Extra inputs are not permitted" in submitted.stderr
    assert "network.layers[0].parms: Extra inputs are not permitted" in local.stderr
