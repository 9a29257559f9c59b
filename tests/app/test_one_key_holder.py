"""What one holder of a valid key can do to a running service, and cannot: stall the API with a
small request or with many reads, fill the job store, or run work it was never charged for."""

import base64
import contextlib
import json
import pathlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.app.conftest import KEYS, Service, running_service

pytestmark = pytest.mark.slow  # starts services

ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(
        pathlib.Path(tmp_path_factory.mktemp("one-key")),
        max_body_bytes=str(16 * 2**20),
        validation_timeout_s="60",  # the 15 MB sweep of lists validates in 5 s quiet, more on a busy machine
    ) as running:
        yield running


@contextlib.contextmanager
def healthz_latencies(service: Service) -> Iterator[list[float]]:
    """/healthz asked every 10 ms from another thread for as long as the block runs: its answer times."""
    times: list[float] = []
    stop = threading.Event()

    def ask() -> None:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                times.append(time.perf_counter() - started)
                time.sleep(0.01)

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        time.sleep(0.2)
        yield times
    finally:
        stop.set()
        thread.join()


def at_once(count: int, call: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * count

    def run(index: int) -> None:
        results[index] = call()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.serial  # it times /healthz: nothing else runs beside it
def test_a_two_kilobyte_request_for_huge_inputs_never_stalls_the_api(service: Service) -> None:
    """24 Poisson nodes of 12,000,000 features each, eight such requests at once: each took the
    event loop 3-5 s when its inputs were expanded; now each is a 422 naming the memory."""
    nodes = [{"name": f"in{i}", "type": "poisson", "rates": 5.0, "sources": 40, "shape": [12_000_000]} for i in range(24)]
    body = {"steps": 10, "network": {"nodes": [*nodes, {"name": "P", "type": "lif", "size": 1}], "edges": []}}
    assert len(json.dumps(body)) < 3000
    with service.http() as http, healthz_latencies(service) as latencies:
        answers = at_once(8, lambda: http.post("/api/v1/jobs", json=body))
    for answer in answers:
        assert isinstance(answer, httpx.Response) and answer.status_code == 422
        assert "of memory (poisson 'in0'" in answer.json()["detail"][0]["msg"]
    assert max(latencies) < 0.1, f"/healthz took up to {max(latencies):.3f} s"


def test_a_cancel_stops_a_large_connectivity_build_within_seconds(service: Service) -> None:
    """20 million synapses drawn (about 1.2 s here): cancelled while drawing, it ends cancelled
    (0.3 s after the request on a quiet machine; the bound leaves room for a busy one)."""
    build = {
        "steps": 1,
        "network": {
            "nodes": [{"name": "P", "type": "lifbox", "size": 10_000}, {"name": "Q", "type": "lifbox", "size": 20_000}],
            "edges": [{"from": "P", "to": "Q", "type": "pairwise_bernoulli", "p": 0.1, "delay": 1}],
        },
    }
    with service.http() as http:
        job_id = http.post("/api/v1/jobs", json=build).json()["id"]
        service.wait_running(job_id, min_steps=0)
        asked = time.monotonic()
        assert http.delete(f"/api/v1/jobs/{job_id}").json()["status"] in ("cancelling", "cancelled")
        ended = service.wait_final(job_id)
    assert ended["status"] == "cancelled" and time.monotonic() - asked < 5.0


def test_a_running_brunel_job_is_cancelled_within_the_documented_time(service: Service) -> None:
    brunel = json.loads((ROOT / "examples" / "brunel.json").read_text())
    with service.http() as http:
        job_id = http.post("/api/v1/jobs", json=brunel).json()["id"]
        service.wait_running(job_id, min_steps=1)
        asked = time.monotonic()
        http.delete(f"/api/v1/jobs/{job_id}")
        ended = service.wait_final(job_id)
    assert ended["status"] == "cancelled" and ended["progress"]["steps_done"] < 10_000
    assert time.monotonic() - asked < 5.0  # about 0.15 s here; docs/api.md says about half a second


def tensor_sweep(points: int, floats: int, as_lists: bool = False) -> dict:
    """``points`` points, each with its own input tensor of ``floats`` values (base64, or nested
    lists of numbers) as an axis value."""
    shape = [floats // 5, 5]
    data = (
        [[0.25] * 5] * shape[0]
        if as_lists
        else {"dtype": "float32", "shape": shape, "base64": base64.b64encode(bytes(4 * floats)).decode()}
    )
    values = [{"type": "tensor", "shape": shape, "data": data} for _ in range(points)]
    return {"base": SEED, "axes": [{"path": "input", "values": values}], "batched": False}


def test_a_sweep_whose_axes_carry_large_values_is_refused_with_its_byte_figure(service: Service) -> None:
    """8 base64 tensors of 1 MiB x 100 seeds, a small base: 800 points of 1.4 MB each."""
    sweep = tensor_sweep(8, 2**18)
    sweep["axes"].append({"path": "seed", "values": list(range(100))})
    with service.http() as http:
        answer = http.post("/api/v1/sweeps", json=sweep)
    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["axes"] and "bytes of axis values set in them), over the limit of 67,108,864" in error["msg"]


@pytest.mark.serial  # it times /healthz: nothing else runs beside it
def test_summaries_and_event_streams_of_a_large_sweep_leave_the_api_responsive(service: Service) -> None:
    """Six summaries at once of a 14 MB sweep (each re-parsed it on the event loop: /healthz
    0.6-1.4 s), and 64 event streams of a running 1,000-point sweep of short points (each
    re-read every point every 25 ms: /healthz up to 0.8 s). Fixed, quiet, on a 2-core VM: at most
    0.02-0.03 s during the summaries, p99 0.04 s beside the streams. The summaries' bound is 0.3 s.
    Beside the streams /healthz varies far more from run to run on a slow machine (a VM 2.7x
    slower: p99 0.04, 0.32, 0.36, 0.43 and 0.66 s, with 0.008-0.010 s for the same sweep without
    the streams): their bound is 1 s, which the re-reading bug passes on such a machine but may
    not on a fast one; the streams' reads are what tests/app/test_events.py counts."""
    with service.http() as http:
        large = http.post("/api/v1/sweeps", json=tensor_sweep(6, 400_000, as_lists=True))
        assert large.status_code == 202, large.text
        http.delete(f"/api/v1/sweeps/{large.json()['id']}")  # its summary is what counts here, not its runs
        with healthz_latencies(service) as summaries:
            at_once(6, lambda: http.get(f"/api/v1/sweeps/{large.json()['id']}/summary").raise_for_status())
            at_once(6, lambda: http.get(f"/api/v1/sweeps/{large.json()['id']}/summary").raise_for_status())

        many = {"base": {**SEED, "steps": 20_000, "input": {"type": "constant", "value": [0.5] * 5}}, "batched": False}
        many["axes"] = [{"path": "seed", "values": list(range(1000))}]
        running = http.post("/api/v1/sweeps", json=many).json()["id"]  # points end every 10 ms or so here
        with healthz_latencies(service) as without_streams:
            time.sleep(2)

        stop = threading.Event()
        opened = threading.Barrier(65)

        def stream() -> None:
            headers = {"Authorization": f"Bearer {KEYS['alice']}"}
            with (
                httpx.Client(base_url=service.url, headers=headers, timeout=30) as client,
                client.stream("GET", f"/api/v1/sweeps/{running}/events") as events,
            ):
                assert events.status_code == 200
                opened.wait()
                for _ in events.iter_bytes():
                    if stop.is_set():
                        return

        threads = [threading.Thread(target=stream) for _ in range(64)]
        for thread in threads:
            thread.start()
        opened.wait()
        with healthz_latencies(service) as streams:
            time.sleep(3)
        points = http.get(f"/api/v1/sweeps/{running}").json()["points"]
        stop.set()
        http.delete(f"/api/v1/sweeps/{running}")
        for thread in threads:
            thread.join()
    assert max(summaries) < 0.3, f"/healthz took up to {max(summaries):.3f} s during the summaries"
    assert 0 < points["ended"] < points["total"], "the sweep ran, its points ending, while the streams were measured"
    p99, alone = (statistics.quantiles(times, n=100)[98] for times in (streams, without_streams))
    assert p99 < 1.0, f"/healthz p99 {p99:.3f} s beside 64 sweep streams, {alone:.3f} s without them"


# --- the job store: a quota per key, and room kept for the jobs already accepted --------------------


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A Redis of 64 MiB that the API stops filling at 30 % of it (19.2 MiB), and a quota of 6 MiB
    per key: one key's quota fits under that share with room to spare, four keys' quotas (24 MiB
    of requests and results, plus Redis's own overhead) do not. At half of Redis (32 MiB) a quiet
    run was refused with 28.8 MB in use, and a busy CI run let all four quotas run out first."""
    with running_service(
        pathlib.Path(tmp_path_factory.mktemp("small-store")),
        redis_options={"maxmemory_bytes": 64 * 2**20},
        max_stored_bytes_per_key=str(6 * 2**20),
        store_full_fraction="0.3",
        max_body_bytes=str(2 * 2**20),
    ) as running:
        yield running


def megabyte_job(steps: int = 50_000) -> dict:
    """The seed network on a 1 MB tensor input."""
    data = {"dtype": "float32", "shape": [steps, 5], "base64": base64.b64encode(bytes(20 * steps)).decode()}
    return {**SEED, "input": {"type": "tensor", "shape": [steps, 5], "data": data}}


def test_a_keys_quota_refuses_what_would_pass_it_and_purging_gives_the_bytes_back(small_store: Service) -> None:
    job = megabyte_job()
    with small_store.http("bob") as bob, small_store.http("carol") as carol:
        accepted = []
        for _ in range(8):
            answer = bob.post("/api/v1/jobs", json=job)
            if answer.status_code != 202:
                break
            accepted.append(answer.json()["id"])
            small_store.wait_final(accepted[-1], "bob")
        assert answer.status_code == 403 and "over its quota of 6,291,456 bytes" in answer.json()["detail"]
        stored = bob.get("/api/v1/storage").json()
        assert stored["quota_bytes"] == 6 * 2**20 and stored["stored_bytes"] > 4 * 2**20
        assert carol.post("/api/v1/jobs", json=job).status_code == 202  # another key has its own
        assert bob.delete(f"/api/v1/jobs/{accepted[0]}", params={"purge": "true"}).status_code == 204
        assert bob.get(f"/api/v1/jobs/{accepted[0]}").status_code == 404
        assert bob.get("/api/v1/storage").json()["stored_bytes"] < stored["stored_bytes"] - 10**6
        assert bob.post("/api/v1/jobs", json=job).status_code == 202


def test_the_api_refuses_new_jobs_before_redis_refuses_writes_and_accepted_jobs_still_finish(small_store: Service) -> None:
    job = megabyte_job()
    keys = ["alice", "bob", "carol", "dave"]
    refused = None
    accepted: list[tuple[str, str]] = []
    for _ in range(10):
        for user in keys:
            with small_store.http(user) as http:
                answer = http.post("/api/v1/jobs", json=job)
                if answer.status_code == 202:
                    accepted.append((user, answer.json()["id"]))
                    http.delete(f"/api/v1/jobs/{accepted[-1][1]}")  # cancelled at once: its request stays
                elif answer.status_code == 507:
                    refused = answer
                    break
                else:
                    assert answer.status_code == 403, answer.text  # a key's quota first
        if refused is not None:
            break
    client = redis.Redis.from_url(small_store.redis_url)
    memory = client.info("memory")
    assert refused is not None, f"{len(accepted)} jobs accepted, none refused; Redis uses {memory['used_memory']:,} bytes"
    assert "the job store is full" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    assert memory["used_memory"] < memory["maxmemory"], "Redis itself never got full"
    with small_store.http("alice") as alice:  # what was accepted before still runs, its result stored
        for user, job_id in accepted:
            with small_store.http(user) as owner:
                owner.delete(f"/api/v1/jobs/{job_id}", params={"purge": "true"})
        time.sleep(0.6)  # the API reads Redis's memory at most every half second
        again = alice.post("/api/v1/jobs", json=SEED)
        assert again.status_code == 202
        assert small_store.wait_final(again.json()["id"])["status"] == "succeeded"
