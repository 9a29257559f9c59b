"""The bounded load run of benchmarks/load.py as a behaviour test: under 32 concurrent clients,
400 accepted jobs all succeed, each exactly once, none lost, with hostile requests mixed in.
(Its timings are reported by the benchmark, not asserted here.)"""

import asyncio
import pathlib
import signal
import tempfile

import pytest

from app.redis_server import free_port
from benchmarks.load import run_load, serve

pytestmark = pytest.mark.slow  # 450 jobs through spikeserve serve


def test_four_hundred_jobs_and_fifty_hostile_ones_from_32_clients(tmp_path: pathlib.Path) -> None:
    """400 ordinary jobs each succeed exactly once; 50 hostile ones mixed in are each refused or
    end failed; nothing is restarted, since nothing was killed."""
    log_path = tmp_path / "serve.log"
    with tempfile.TemporaryDirectory() as data_dir, open(log_path, "wb") as log:
        port = free_port()
        process = serve(port, data_dir, log)
        try:
            report = asyncio.run(run_load(f"http://127.0.0.1:{port}", jobs=400, clients=32, hostile=50, timeout_s=300))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    assert report["submitted"] == 400
    assert report["unfinished"] == 0
    assert report["succeeded"] == 400
    assert report["succeeded_transitions"] == 400, "no job ran to success twice, and no hostile job succeeded"
    assert report["hostile"] == 50
    refused = sum(report["hostile_refused"].values())
    failed = sum(count for key, count in report["hostile_ended"].items() if key.endswith(": failed"))
    assert refused + failed == 50, report
    assert set(report["hostile_refused"]) == {
        "result too large to store",
        "NIR weight declaring 400 million values",
        "NIR weight stored in /proc/self/environ",
        "a 65-dimensional tensor",
    }
    assert "restarting" not in log_path.read_text(), "no process of serve exited"
