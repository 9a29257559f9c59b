"""The bounded load run of benchmarks/load.py as a behaviour test: under 32 concurrent clients,
1,000 accepted jobs all succeed, each exactly once, none lost. (Its timings are reported by the
benchmark, not asserted here.)"""

import asyncio
import signal
import tempfile

from app.redis_server import free_port
from benchmarks.load import run_load, serve


def test_a_thousand_jobs_from_32_clients_each_succeed_exactly_once() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        process = serve(port, data_dir)
        try:
            report = asyncio.run(run_load(f"http://127.0.0.1:{port}", jobs=1000, clients=32, timeout_s=300))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    assert report["submitted"] == 1000
    assert report["unfinished"] == 0
    assert report["succeeded"] == 1000
    assert report["succeeded_transitions"] == 1000, "no job ran to success twice"
