"""Poison jobs, each through a real API, Redis and Celery worker: every one ends `failed` exactly
once with its reason (or is refused before it is queued), its attempts counted, and the worker
goes on running other jobs."""

import json
import os
import pathlib
import signal
import time
from collections.abc import Iterator

import pytest

from tests.app.test_faults import MEDIUM, Faulty

pytestmark = pytest.mark.slow  # starts a service

ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    service = Faulty(
        pathlib.Path(tmp_path_factory.mktemp("poison")),
        soft_time_limit_s="60",
        hard_time_limit_s="90",
        max_attempts="3",
        worker_memory_bytes=str(2 * 2**30),  # the pool process's address space: beyond it, out of memory
        max_chunk_bytes=str(16 * 2**30),
    )
    try:
        yield service
    finally:
        service.close()


def ends_once(service: Faulty, request: dict, state: str = "failed") -> dict:
    before = service.transitions(state)
    final = service.wait_final(service.submit(request), timeout_s=120)
    assert final["status"] == state, final
    time.sleep(0.5)  # a second ending would come from a redelivered message or the reaper
    assert service.transitions(state) - before == 1
    assert service.status(final["id"]) == final, "nothing changes after the end"
    return final


def still_serves(service: Faulty) -> None:
    assert service.wait_final(service.submit(SEED))["status"] == "succeeded"


def test_a_job_needing_more_memory_than_the_worker_has_fails_as_out_of_memory(poisoned: Faulty) -> None:
    # 16 x 50,000,000 outputs: 3.2 GB for one step, over the worker's 2 GiB
    request = {
        "network": {
            "layers": [
                {"type": "linear", "in_features": 1, "out_features": 50_000_000, "weight": {"init": "constant", "value": 1.0}}
            ]
        },
        "input": {"type": "constant", "value": [1.0], "steps": 3},
        "batch": 16,
    }
    final = ends_once(poisoned, request)
    assert final["error"] == "the job ran out of memory on cpu while simulating" and final["attempts"] == 1
    still_serves(poisoned)


def test_a_job_whose_worker_is_killed_on_every_attempt_fails_after_three(poisoned: Faulty) -> None:
    before = poisoned.transitions("failed")
    job_id = poisoned.submit({**MEDIUM, "input": {**MEDIUM["input"], "steps": 60_000}})
    for attempt in (1, 2, 3):  # as the kernel's out-of-memory killer would
        poisoned.wait(
            job_id, lambda s, n=attempt: s["status"] == "running" and s["attempts"] == n and s["progress"]["steps_done"] > 0
        )
        (child,) = poisoned.pool_children()
        os.kill(child, signal.SIGKILL)
    final = poisoned.wait_final(job_id)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"] == "the worker died 3 times while running this job (out of memory or killed)"
    assert poisoned.transitions("failed") - before == 1
    still_serves(poisoned)


def test_a_run_over_its_spike_event_limit_fails_with_the_reason(poisoned: Faulty) -> None:
    final = ends_once(poisoned, {**MEDIUM, "record": {"max_spike_events": 1000}})
    assert final["error"].startswith("the recorded layers produced more than 1000 spike events by step ")
    assert final["attempts"] == 1


def test_a_result_too_large_to_store_is_refused_before_it_is_queued(poisoned: Faulty) -> None:
    # 300,000 read-out neurons x 100 steps of voltages: 120 MB of float32, about 700 MB as JSON
    request = {
        "network": {"layers": [{"type": "li", "name": "readout"}]},
        "input": {"type": "constant", "value": 1.0, "shape": [300_000], "steps": 100},
        "record": {"voltages": ["readout"]},
    }
    queued = poisoned.client.llen("celery")
    response = poisoned.http.post("/api/v1/jobs", json=request)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["record"] and "30000000 voltage values" in error["msg"] and "over the limit of" in error["msg"]
    assert poisoned.client.llen("celery") == queued
