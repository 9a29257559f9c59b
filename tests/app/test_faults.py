"""Fault injection with real processes: workers killed mid-job, Redis and the API restarted.

Each test is bounded in time. The service here has short leases (2 s) so that a dead worker's
job is recovered in seconds; the mechanism is the same with production's 20 s. Time limits have
tests of their own (test_time_limits.py).
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from app.redis_server import RedisServer, free_port
from tests.app.conftest import SPIKESERVE, wait_ready
from tests.helpers import assert_same_recordings, wait_gone
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.slow  # starts a service and kills its processes

# About 0.4-0.6 s of work on a quiet 2-core VM (2 s on a slow day, more under a loaded test run),
# in 8 chunks: long enough to be caught running and killed mid-run.
MEDIUM = {
    "network": {"layers": [{"type": "lif", "name": "n", "params": {"tau_mem_inv": 50.0}}]},
    "input": {"type": "poisson", "rates": 50.0, "shape": [16_384], "steps": 8_000},
}
SHORT = {**MEDIUM, "input": {**MEDIUM["input"], "shape": [4_096]}}  # a quarter of that, for runs of many jobs


class Faulty:
    """A private Redis, an API, and a worker that tests may kill and restart."""

    def __init__(self, root: pathlib.Path, **settings: str) -> None:
        """``settings`` (SPIKESERVE_ variables without the prefix) override the defaults below; an
        empty value removes one (the service's own default applies)."""
        self.root = root
        self.redis = RedisServer(root / "redis").start()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")} | {
            "SPIKESERVE_REDIS_URL": self.redis.url,
            "SPIKESERVE_LEASE_S": "2",
            # far above any run here (10x and more on a busy machine): the 8 s limit this had was
            # 5x the Redis restart test's 1.6 s run (quiet), and a worker's first run of a model
            # also compiles its kernels (6 s here)
            "SPIKESERVE_SOFT_TIME_LIMIT_S": "120",
            "SPIKESERVE_HARD_TIME_LIMIT_S": "150",
            "SPIKESERVE_MAX_STEPS": "2000000",
            "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": "100",
        }
        for name, value in settings.items():
            self.env[f"SPIKESERVE_{name.upper()}"] = value
            if not value:
                del self.env[f"SPIKESERVE_{name.upper()}"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self._spawn([str(SPIKESERVE), "api", "--port", str(self.port)], "api.log")
        self.worker = self.start_worker()
        wait_ready(self.url, [self.api, self.worker])
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.client = redis.Redis.from_url(self.redis.url)

    def _spawn(self, command: list[str], log: str) -> subprocess.Popen:
        with open(self.root / log, "ab") as out:
            return subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self) -> subprocess.Popen:
        self.worker = self._spawn([str(SPIKESERVE), "worker"], "worker.log")
        return self.worker

    def kill_worker(self) -> None:
        """SIGKILL to the worker's whole process group: supervisor, Celery parent and pool child."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)

    def pool_children(self) -> list[int]:
        """PIDs of the Celery pool processes (`spikeserve worker` becomes the Celery parent)."""
        path = pathlib.Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
        return [int(child) for child in path.read_text().split()] if path.exists() else []

    def submit(self, request: dict) -> str:
        response = self.http.post("/api/v1/jobs", json=request)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def status(self, job_id: str) -> dict:
        return self.http.get(f"/api/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, predicate: Callable[[dict], bool], timeout_s: float = 90) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status(job_id)
            if predicate(status):
                return status
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id}: {self.status(job_id)}")

    def running_one_of(self, job_ids: list[str], min_steps: int, timeout_s: float = 120) -> dict | None:
        """The status of one of ``job_ids`` once it runs with ``min_steps`` done; None when all
        have ended."""
        wanted, deadline = set(job_ids), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            page = self.http.get("/api/v1/jobs", params={"limit": 200}).json()["jobs"]
            mine = [job for job in page if job["id"] in wanted]
            for job in mine:
                if job["status"] == "running" and job["progress"]["steps_done"] >= min_steps:
                    return job
            if len(mine) == len(wanted) and all(job["status"] in ("succeeded", "failed", "cancelled") for job in mine):
                return None
            time.sleep(0.01)
        raise TimeoutError(f"none of {len(wanted)} jobs ran {min_steps} steps within {timeout_s} s")

    def wait_final(self, job_id: str, timeout_s: float = 90) -> dict:
        return self.wait(job_id, lambda s: s["status"] in ("succeeded", "failed", "cancelled"), timeout_s)

    def result(self, job_id: str) -> Result:
        return Result.from_npz(self.http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content)

    def transitions(self, state: str) -> int:
        """How many times any job entered ``state``."""
        return int(float(self.client.hget("ss:stats", f"entered:{state}") or 0))

    def succeeded_transitions(self) -> int:
        return self.transitions("succeeded")

    def close(self) -> None:
        for process in (self.api, self.worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        self.http.close()
        assert wait_gone(self.redis.url) == [], "no worker or API outlives the test"
        self.redis.stop()


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    service = Faulty(pathlib.Path(tmp_path_factory.mktemp("faults")))
    try:
        yield service
    finally:
        service.close()


def unsuccessful(finals: list[dict]) -> list[tuple]:
    """What went wrong, for an assertion's message: each job that did not succeed, its state,
    attempts and reason."""
    return [(job["id"], job["status"], job["attempts"], job.get("error")) for job in finals if job["status"] != "succeeded"]


def undisturbed(request: dict) -> Result:
    return simulate(*parse_request(request))


def test_a_killed_pool_process_is_replaced_and_the_job_rerun(faulty: Faulty) -> None:
    job_id = faulty.submit(MEDIUM)
    faulty.wait(job_id, lambda s: s["status"] == "running" and s["progress"]["steps_done"] >= 500)
    children = faulty.pool_children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    final = faulty.wait_final(job_id)
    assert final["status"] == "succeeded" and final["attempts"] >= 2
    assert_same_recordings(faulty.result(job_id), undisturbed(MEDIUM))


def test_a_job_of_a_killed_worker_is_finished_by_the_restarted_one(faulty: Faulty) -> None:
    job_id = faulty.submit(MEDIUM)
    faulty.wait(job_id, lambda s: s["status"] == "running" and s["progress"]["steps_done"] >= 500)
    faulty.kill_worker()
    assert faulty.status(job_id)["status"] == "running", "nobody knows yet"
    faulty.start_worker()
    final = faulty.wait_final(job_id)
    assert final["status"] == "succeeded" and final["attempts"] == 2
    assert_same_recordings(faulty.result(job_id), undisturbed(MEDIUM))


def test_twelve_jobs_through_three_worker_kills_each_succeed_exactly_once(faulty: Faulty) -> None:
    # long enough (about 0.3 s each here) that a kill can be aimed at a job halfway through
    requests = [{**SHORT, "seed": seed, "input": {**SHORT["input"], "steps": 32_000}} for seed in range(12)]
    before = faulty.succeeded_transitions()
    ids = [faulty.submit(request) for request in requests]
    killed: list[str] = []
    for _ in range(3):
        # a job not killed before: three kills of one job are its three attempts, and it fails
        # (max_attempts); a killed job also shows as running until its lease lapses
        running = faulty.running_one_of([job for job in ids if job not in killed], min_steps=4_000)
        if running is None:
            break
        faulty.kill_worker()
        killed.append(running["id"])
        faulty.start_worker()
    interrupted = len(killed)
    finals = [faulty.wait_final(job, timeout_s=180) for job in ids]
    assert [final["status"] for final in finals] == ["succeeded"] * 12, unsuccessful(finals)
    assert faulty.succeeded_transitions() - before == 12, "each job succeeded exactly once"
    assert interrupted == 3 and sum(final["attempts"] for final in finals) >= 12 + interrupted, "each kill cut a run short"
    for job, request in list(zip(ids, requests, strict=True))[::4]:
        assert_same_recordings(faulty.result(job), undisturbed(request))


def test_a_redis_restart_loses_no_accepted_job(faulty: Faulty) -> None:
    """Redis stops (flushing its append-only file) with one job running and others queued. The
    first runs about 2.5 s, and is watched from its submission until it runs: beside three
    spinning processes a run once waited 90 s in vain for it to be seen running, most likely
    because the submissions after it took long enough for it to end before the watch began."""
    first = {**MEDIUM, "input": {**MEDIUM["input"], "steps": 30_000}, "seed": 100}
    ids = [faulty.submit(first)]
    faulty.wait(ids[0], lambda s: s["status"] == "running" and s["progress"]["steps_done"] >= 300)
    ids += [faulty.submit({**MEDIUM, "seed": 100 + i}) for i in range(1, 4)]
    sweep_body = {"base": SHORT, "axes": [{"path": "seed", "values": [7, 8, 9]}], "batched": False}
    sweep = faulty.http.post("/api/v1/sweeps", json=sweep_body).json()["links"]["self"]
    faulty.redis.stop()
    time.sleep(1.0)
    faulty.redis = RedisServer(faulty.root / "redis", port=faulty.redis.port).start()
    finals = [faulty.wait_final(job, timeout_s=120) for job in ids]
    assert [final["status"] for final in finals] == ["succeeded"] * 4, unsuccessful(finals)
    deadline = time.monotonic() + 60
    while (status := faulty.http.get(sweep).json())["status"] != "succeeded":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["points"]["succeeded"] == 3, "a sweep queued before the restart runs every point"
    assert_same_recordings(faulty.result(ids[0]), undisturbed(first))


def test_the_api_restarts_while_jobs_run_and_everything_works_again(faulty: Faulty) -> None:
    job_id = faulty.submit({**MEDIUM, "input": {**MEDIUM["input"], "steps": 12_000}})
    faulty.wait(job_id, lambda s: s["status"] == "running")
    os.killpg(faulty.api.pid, signal.SIGKILL)
    faulty.api.wait(10)
    faulty.api = faulty._spawn([str(SPIKESERVE), "api", "--port", str(faulty.port)], "api.log")
    wait_ready(faulty.url, [faulty.api, faulty.worker])
    events = []
    with faulty.http.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events[-1]["status"] == "succeeded", "the SSE stream works again and ends with the final state"
    assert faulty.status(job_id)["status"] == "succeeded"
    assert faulty.result(job_id).steps == 12_000


def test_cancels_at_random_moments_never_leave_a_job_running(faulty: Faulty) -> None:
    rng = random.Random(7)
    ids = []
    for i in range(12):
        job_id = faulty.submit({**MEDIUM, "seed": 200 + i, "input": {**MEDIUM["input"], "steps": 2_000}})
        ids.append(job_id)
        time.sleep(rng.choice([0.0, 0.01, 0.05, 0.1, 0.2, 0.3]))  # queued, starting, mid-chunk, finishing
        faulty.http.delete(f"/api/v1/jobs/{job_id}")
    finals = [faulty.wait_final(job, timeout_s=60) for job in ids]
    assert {final["status"] for final in finals} <= {"cancelled", "succeeded"}
    assert any(final["status"] == "cancelled" for final in finals)
    for final in finals:
        has_result = faulty.http.get(f"/api/v1/jobs/{final['id']}/result").status_code == 200
        assert has_result == (final["status"] == "succeeded")
    assert faulty.client.scard("ss:state:running") == 0 and faulty.client.scard("ss:state:queued") == 0


def test_a_diverging_job_fails_clearly_and_its_neighbours_do_not_notice(faulty: Faulty) -> None:
    examples = pathlib.Path(__file__).parents[2] / "examples"
    diverging = json.loads((examples / "izhikevich_tonic_bursting.json").read_text())
    diverging["network"]["layers"][0]["params"] = {"sq": 5.0, "v_th": 1e30}
    before = faulty.submit(MEDIUM)
    bad = faulty.submit(diverging)
    after = faulty.submit({**MEDIUM, "seed": 1})
    assert faulty.wait_final(bad)["error"].startswith("layer 'neurons' (izhikevich) reached a non-finite voltage")
    assert faulty.wait_final(before)["status"] == faulty.wait_final(after)["status"] == "succeeded"
    assert_same_recordings(faulty.result(after), undisturbed({**MEDIUM, "seed": 1}))


TINY = {**MEDIUM, "input": {**MEDIUM["input"], "shape": [1_024], "steps": 6_000}}  # about 40 ms a point alone


def test_a_120_point_sweep_through_two_worker_kills_runs_every_point_exactly_once(faulty: Faulty) -> None:
    before = faulty.succeeded_transitions()
    body = {"base": TINY, "axes": [{"path": "seed", "values": list(range(120))}]}
    created = faulty.http.post("/api/v1/sweeps", json=body)
    assert created.status_code == 202, created.text
    sweep = created.json()["links"]["self"]
    points = [raw.decode() for raw in faulty.client.lrange(f"ss:sweep:{created.json()['id']}:points", 0, -1)]
    restarted = 0.0
    for kill in range(2):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill while the current worker runs points, after a few more have ended
            status = faulty.http.get(sweep).json()
            if status["points"]["ended"] >= 40 * (kill + 1) and running_since(faulty, points, restarted):
                break
            time.sleep(0.01)
        faulty.kill_worker()
        faulty.start_worker()
        restarted = time.time()
    deadline = time.monotonic() + 180
    while (status := faulty.http.get(sweep).json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    table = faulty.http.get(f"{sweep}/summary").json()
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    unsuccessful = [(row["status"], row["error"]) for row in rows if row["status"] != "succeeded"]
    assert status["points"] == {"total": 120, "ended": 120, "succeeded": 120, "failed": 0, "cancelled": 0, "running": 0}, (
        unsuccessful
    )
    assert faulty.succeeded_transitions() - before == 120, "each point succeeded exactly once"
    attempts = [int(faulty.client.hget(f"ss:job:{row['job_id']}", "attempts")) for row in rows]
    assert sum(attempts) > 120, "a point was interrupted by a kill and ran again"
    for row in rows:
        alone = undisturbed({**TINY, "seed": row["seed"]})
        assert (row["status"], row["n.spikes"]) == ("succeeded", alone.layers["n"].spike_count), row
    # the points run in batches of 64; those of a batch whose worker was killed (or that ran out of
    # time on a loaded machine) ran again alone
    rerun = next(row for row, count in zip(rows, attempts, strict=True) if count > 1)
    assert faulty.result(rerun["job_id"]).stats.get("batched_with") is None
    assert_same_recordings(faulty.result(rerun["job_id"]), undisturbed({**TINY, "seed": rerun["seed"]}))


def running_since(faulty: Faulty, job_ids: list[str], since: float) -> bool:
    """Whether one of ``job_ids`` was started after ``since`` and after the last point ended, and
    runs: the worker started then holds it, and its batch is simulating. A batch's results are
    stored a few at a time, so a point still marked running beside points that have ended is
    being stored, and a kill that arrives a moment later finds nothing left to interrupt (CI saw
    that). A kill between a worker taking a message and starting its points is recovered too, by
    the reaper's ``restore_untaken``, a lease's length later."""
    pipe = faulty.client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(f"ss:job:{job_id}", "state", "started_at", "finished_at")
    fields = pipe.execute()
    last_end = max((float(finished) for _, _, finished in fields if finished), default=0.0)
    return any(state == b"running" and float(started or 0) > max(since, last_end) for state, started, _ in fields)


def test_cancelling_a_sweep_midway_stops_every_unfinished_point_and_keeps_the_finished(faulty: Faulty) -> None:
    body = {"base": MEDIUM, "axes": [{"path": "seed", "values": list(range(40))}]}
    sweep = faulty.http.post("/api/v1/sweeps", json=body).json()["links"]["self"]
    deadline = time.monotonic() + 60
    while faulty.http.get(sweep).json()["points"]["ended"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert faulty.http.delete(sweep).json()["status"] in ("cancelling", "cancelled")
    deadline = time.monotonic() + 30
    while (status := faulty.http.get(sweep).json())["status"] != "cancelled":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    points = status["points"]
    assert points["succeeded"] >= 2 and points["cancelled"] >= 30 and points["failed"] == 0 and points["running"] == 0
    assert points["succeeded"] + points["cancelled"] == 40
    table = faulty.http.get(f"{sweep}/summary").json()
    finished = [row for row in table["rows"] if row[2] == "succeeded"]
    assert len(finished) == points["succeeded"]
    assert faulty.http.get(f"/api/v1/jobs/{finished[0][1]}/result").status_code == 200, "finished points keep their results"
