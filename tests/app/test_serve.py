"""`spikeserve serve` supervises what it starts: a worker that dies is restarted and its job
finished, a SIGKILL of serve takes Redis and the worker along, and a data directory is used by
one serve at a time."""

import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from app.redis_server import free_port
from tests.app.conftest import SPIKESERVE, wait_ready
from tests.helpers import processes_using, wait_gone

pytestmark = pytest.mark.slow  # starts spikeserve serve several times

ROOT = pathlib.Path(__file__).parents[2]
# About 6 s of work in 100-step chunks: long enough to kill its worker mid-run.
LONG = {  # about 2.5 s on the 2-core VM, in 30 chunks
    "network": {"layers": [{"type": "lif", "name": "n", "params": {"tau_mem_inv": 50.0}}]},
    "input": {"type": "poisson", "rates": 50.0, "shape": [16_384], "steps": 30_000},
}


class Serve:
    """One `spikeserve serve` on a data directory, in a session of its own."""

    def __init__(self, data_dir: pathlib.Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
        env |= {"SPIKESERVE_LEASE_S": "2", "PYTHONUNBUFFERED": "1", **settings}
        self.log = data_dir.parent / f"serve-{self.port}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(SPIKESERVE), "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True,
            )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def ready(self) -> "Serve":
        try:
            wait_ready(self.url, [self.process])
        except RuntimeError as error:  # what serve printed says why
            raise RuntimeError(f"{error}; its output:\n{self.output[-3000:]}") from None
        return self

    @property
    def output(self) -> str:
        return self.log.read_text()

    @property
    def redis_url(self) -> str:
        return self.output.split("Redis on ")[1].split()[0]

    @property
    def redis_pid(self) -> int:
        return int((self.data_dir / "redis" / "redis.pid").read_text())

    def worker_pid(self) -> int:
        return int(self.output.rsplit("worker pid ", 1)[1].split()[0])

    def status(self, job_id: str, wait: float = 0) -> dict:
        return self.http.get(f"/api/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 30).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(60)
        self.http.close()


@pytest.fixture
def serves(tmp_path: pathlib.Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    try:
        yield started
    finally:
        for serve in started:
            serve.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def wait_running(serve: Serve, job_id: str, min_steps: int = 300) -> None:
    deadline = time.monotonic() + 60
    while (status := serve.status(job_id))["progress"]["steps_done"] < min_steps or status["status"] != "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_a_killed_worker_is_restarted_and_its_job_finished(tmp_path: pathlib.Path, serves: list[Serve]) -> None:
    serve = Serve(tmp_path / "data").ready()
    serves.append(serve)
    job_id = serve.http.post("/api/v1/jobs", json=LONG).json()["id"]
    wait_running(serve, job_id)
    worker = serve.worker_pid()
    os.kill(worker, signal.SIGKILL)  # its pool process dies with it (parent-death signal)
    deadline = time.monotonic() + 60
    while "the worker exited (code -9); restarting it" not in serve.output:
        assert time.monotonic() < deadline, serve.output
        time.sleep(0.1)
    final = serve.status(job_id, wait=60)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    assert serve.process.poll() is None and not alive(worker)


def test_sigkill_of_serve_takes_its_children_along_and_a_new_serve_finishes_the_job(
    tmp_path: pathlib.Path, serves: list[Serve]
) -> None:
    first = Serve(tmp_path / "data").ready()
    serves.append(first)
    job_id = first.http.post("/api/v1/jobs", json=LONG).json()["id"]
    wait_running(first, job_id)
    children = [first.redis_pid, *processes_using(first.redis_url)]
    assert len(children) >= 3, "Redis, the Celery worker and its pool process"
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in children):
        assert time.monotonic() < deadline, [pid for pid in children if alive(pid)]
        time.sleep(0.1)
    second = Serve(tmp_path / "data").ready()  # the same data directory: the job is still there
    serves.append(second)
    final = second.status(job_id, wait=60)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    assert wait_gone(first.redis_url, timeout_s=0) == []


def test_a_second_serve_on_the_same_data_directory_refuses_to_start(tmp_path: pathlib.Path, serves: list[Serve]) -> None:
    first = Serve(tmp_path / "data").ready()
    serves.append(first)
    second = Serve(tmp_path / "data")
    serves.append(second)
    assert second.process.wait(30) == 2
    assert f"another spikeserve serve (pid {first.process.pid}) is using {tmp_path / 'data'}" in second.output
    assert first.http.get("/readyz").status_code == 200, "the first one is untouched"


def test_serve_starts_its_redis_with_a_memory_limit(tmp_path: pathlib.Path, serves: list[Serve]) -> None:
    """Beyond it Redis refuses writes rather than evicting jobs; the API stops accepting before."""
    serve = Serve(tmp_path / "data", SPIKESERVE_REDIS_MAXMEMORY_BYTES=str(96 * 2**20)).ready()
    serves.append(serve)
    config = redis.Redis.from_url(serve.redis_url).config_get("maxmemory*")
    assert config["maxmemory"] == str(96 * 2**20) and config["maxmemory-policy"] == "noeviction"


def test_ctrl_c_with_a_job_running_says_so_and_a_second_ctrl_c_stops_at_once(tmp_path: pathlib.Path, serves: list[Serve]) -> None:
    serve = Serve(tmp_path / "data").ready()
    serves.append(serve)
    job_id = serve.http.post("/api/v1/jobs", json=LONG).json()["id"]
    wait_running(serve, job_id)
    serve.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    while "stopping: waiting up to 15 s for 1 running job(s)" not in serve.output:
        assert time.monotonic() < deadline, serve.output
        time.sleep(0.1)
    asked = time.monotonic()
    serve.process.send_signal(signal.SIGINT)
    assert serve.process.wait(10) == 0
    assert time.monotonic() - asked < 5 and "spikeserve: stopping now" in serve.output
    second = Serve(tmp_path / "data").ready()  # the job was accepted: it runs again at the next start
    serves.append(second)
    assert second.status(job_id, wait=60)["status"] == "succeeded"
