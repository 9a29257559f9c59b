"""The service end to end: real Redis, a real Celery worker process, the API over HTTP."""

import copy
import io
import itertools
import json
import pathlib
import socket
import time

import httpx
import numpy as np
import pytest
import redis

from app.client import Client, JobFailed
from app.redis_server import RedisServer
from tests.app.conftest import KEYS, Service
from tests.helpers import assert_same_recordings
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.slow  # starts a service

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"
SEED = json.loads((EXAMPLES / "seed.json").read_text())
LONG = {  # 50,000 silent LIF neurons for 400,000 steps: about 10 s of work, in chunks of 30 ms
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {"type": "constant", "value": 0.1, "shape": [50_000], "steps": 400_000},
}


def submit(http: httpx.Client, request: dict) -> str:
    response = http.post("/api/v1/jobs", json=request)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued" and created["links"]["self"] == f"/api/v1/jobs/{created['id']}"
    return created["id"]


def test_seed_network_over_http_equals_the_local_runner(service: Service) -> None:
    with service.http() as http:
        job_id = submit(http, SEED)
        status = service.wait_final(job_id)
        assert status["status"] == "succeeded" and status["device"] == "cpu" and status["attempts"] == 1
        assert status["progress"] == {"steps_done": 4, "steps_total": 4}
        local = simulate(*parse_request(SEED))
        from_json = Result.from_json(http.get(f"/api/v1/jobs/{job_id}/result").content)
        npz = http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"})
        assert npz.headers["content-type"] == "application/octet-stream"
        assert_same_recordings(from_json, local)
        assert_same_recordings(Result.from_npz(npz.content), local)
        assert from_json.job_id == job_id


@pytest.mark.parametrize("name", ["conv_feedforward", "poisson_population"])
def test_examples_over_http_equal_the_local_runner(service: Service, name: str) -> None:
    request = json.loads((EXAMPLES / f"{name}.json").read_text())
    with service.http() as http:
        job_id = submit(http, request)
        assert service.wait_final(job_id)["status"] == "succeeded"
        served = Result.from_npz(http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content)
    assert_same_recordings(served, simulate(*parse_request(request)))


def test_a_graph_network_over_http_equals_the_local_runner(service: Service) -> None:
    request = json.loads((EXAMPLES / "brunel.json").read_text()) | {"steps": 600}
    with service.http() as http:
        checked = http.post("/api/v1/validate", json=request).json()
        assert checked["synapses"] == 10_010_000 and [layer["name"] for layer in checked["layers"]] == ["E", "I"]
        diagram = checked["network"]  # what the viewer draws: every node and edge, with their labels
        assert [(n["name"], n["kind"], n["size"]) for n in diagram["nodes"]] == [
            ("drive_E", "input", 8000), ("drive_I", "input", 2000), ("E", "population", 8000), ("I", "population", 2000),
        ]  # fmt: skip
        e_to_i = next(edge for edge in diagram["edges"] if (edge["from"], edge["to"]) == ("E", "I"))
        assert e_to_i == {
            "from": "E", "to": "I", "name": "E->I", "type": "fixed_in_degree", "k": 800, "p": None, "synapses": 1_600_000,
            "weight": "0.1", "delay": [15, 15], "synapse": "delta", "plastic": False,
        }  # fmt: skip
        assert len(diagram["edges"]) == len(request["network"]["edges"])
        job_id = submit(http, request)
        assert service.wait_final(job_id)["status"] == "succeeded"
        served = Result.from_npz(http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content)
    assert served.layers["E"].spike_count > 1000
    assert_same_recordings(served, simulate(*parse_request(request)))


@pytest.mark.parametrize("name", ["cuba", "coba", "stdp_song2000"])
def test_channels_and_plasticity_over_http_equal_the_local_runner(service: Service, name: str) -> None:
    """The examples with synaptic channels and STDP (their first 0.2 s) through the service: the
    same spikes and the same weights, final and snapshotted, in NPZ and in JSON."""
    request = json.loads((EXAMPLES / f"{name}.json").read_text()) | {"steps": 2000}
    if "weights" in request.get("record", {}):
        request["record"]["weights"]["plastic"] = {"every": 500}
    with service.http() as http:
        job_id = submit(http, request)
        assert service.wait_final(job_id)["status"] == "succeeded"
        served = Result.from_npz(http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content)
        as_json = http.get(f"/api/v1/jobs/{job_id}/result").json()
    local = simulate(*parse_request(request))
    assert_same_recordings(served, local)
    assert sum(layer.spike_count for layer in served.layers.values()) > 0
    if name == "stdp_song2000":
        weights = as_json["weights"]["plastic"]
        assert weights["steps"] == [499, 999, 1499, 1999] and len(weights["final"]) == 1000
        assert np.array_equal(np.asarray(weights["final"], dtype=np.float32), local.weights["plastic"].final)


def read_events(http: httpx.Client, job_id: str) -> list[dict]:
    events = []
    with http.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "status":
                events.append(json.loads(line.split(":", 1)[1]))
    return events


def test_progress_events_arrive_in_order_and_end_with_the_final_state(service: Service) -> None:
    request = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    request["input"]["steps"] = 20_000
    with service.http() as http:
        job_id = submit(http, request)
        events = read_events(http, job_id)
    assert events[-1] == {"status": "succeeded", "steps_done": 20_000, "steps_total": 20_000}
    order = {"queued": 0, "running": 1, "succeeded": 2}
    ranks = [(order[e["status"]], e["steps_done"]) for e in events]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks), "in order, no repeats"
    assert len([e for e in events if e["status"] == "running"]) >= 3, "several progress events over 200 chunks"


def test_cancel_a_running_job_and_a_queued_one(service: Service) -> None:
    with service.http() as http:
        running = submit(http, LONG)
        queued = submit(http, LONG)
        service.wait_running(running)
        assert http.get(f"/api/v1/jobs/{queued}").json()["status"] == "queued"  # the one worker is busy
        cancelled = http.delete(f"/api/v1/jobs/{queued}").json()
        assert cancelled["status"] == "cancelled"
        assert http.delete(f"/api/v1/jobs/{running}").json()["status"] in ("cancelling", "cancelled")  # stops at its next chunk
        final = service.wait_final(running)
        assert final["status"] == "cancelled" and final["progress"]["steps_done"] < 400_000
        never_ran = http.get(f"/api/v1/jobs/{queued}").json()
        assert never_ran["status"] == "cancelled" and never_ran["started_at"] is None and never_ran["attempts"] == 0
        assert http.get(f"/api/v1/jobs/{running}/result").status_code == 409
        assert http.delete(f"/api/v1/jobs/{running}").json()["status"] == "cancelled", "cancelling twice is harmless"


def test_long_polls_answer_when_the_job_ends_or_when_the_wait_is_over(service: Service) -> None:
    with service.http() as http:
        running = submit(http, LONG)
        service.wait_running(running)
        started = time.monotonic()
        still = http.get(f"/api/v1/jobs/{running}", params={"wait": 0.5}).json()
        assert still["status"] == "running" and 0.5 <= time.monotonic() - started < 5
        assert http.get(f"/api/v1/jobs/{running}/result", params={"wait": 0.2}).status_code == 409
        http.delete(f"/api/v1/jobs/{running}")
        assert http.get(f"/api/v1/jobs/{running}", params={"wait": 30}).json()["status"] == "cancelled"
        job_id = submit(http, SEED)
        started = time.monotonic()
        result = http.get(f"/api/v1/jobs/{job_id}/result", params={"wait": 30})
        assert result.status_code == 200 and time.monotonic() - started < 10, "answered when the job ended, not at 30 s"
        assert_same_recordings(Result.from_json(result.content), simulate(*parse_request(SEED)))
        for wait in (-1, 61, "soon"):
            bad = http.get(f"/api/v1/jobs/{job_id}", params={"wait": wait})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "wait"]


def test_one_key_cannot_see_another_keys_jobs(service: Service) -> None:
    with service.http("alice") as alice, service.http("bob") as bob:
        job_id = submit(alice, SEED)
        service.wait_final(job_id)
        unknown = "0" * 32
        paths = (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/result", f"/api/v1/jobs/{job_id}/events")
        for path in (*paths, f"/api/v1/jobs/{job_id}?wait=1", f"/api/v1/jobs/{job_id}/result?wait=1"):
            foreign, missing = bob.get(path), bob.get(path.replace(job_id, unknown))
            assert foreign.status_code == missing.status_code == 404
            assert foreign.json() == missing.json() == {"detail": "no such job"}
        assert bob.delete(f"/api/v1/jobs/{job_id}").status_code == 404
        assert job_id not in [job["id"] for job in bob.get("/api/v1/jobs").json()["jobs"]]
        assert job_id in [job["id"] for job in alice.get("/api/v1/jobs").json()["jobs"]]


def test_requests_without_a_valid_key_are_refused(service: Service) -> None:
    with service.http(None) as anonymous:
        assert anonymous.get("/api/v1/jobs").status_code == 401
        wrong = anonymous.get("/api/v1/jobs", headers={"Authorization": "Bearer not-a-key"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert "not-a-key" not in wrong.text
        assert anonymous.get("/healthz").status_code == 200


def test_every_call_under_api_v1_needs_a_key_but_the_public_examples(service: Service) -> None:
    """docs/api.md's promise, checked route by route from the server's own OpenAPI schema."""
    with service.http(None) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
        answers = {}
        for path, operations in paths.items():
            if path.startswith("/api/v1"):
                for method in operations:
                    url = path.replace("{job_id}", "0" * 32).replace("{sweep_id}", "0" * 32)
                    answers[f"{method.upper()} {path}"] = anonymous.request(method, url, json={}).status_code
        assert len(answers) > 15
        assert answers.pop("GET /api/v1/examples") == 200
        assert set(answers.values()) == {401}, answers


def test_listing_is_newest_first_and_paginated(service: Service) -> None:
    with service.http("carol") as carol:
        ids = [submit(carol, SEED) for _ in range(3)]
        for job_id in ids:
            service.wait_final(job_id, "carol")
        page = carol.get("/api/v1/jobs", params={"limit": 2}).json()
        assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]
        assert page["next"] == "/api/v1/jobs?offset=2&limit=2"
        rest = carol.get(page["next"]).json()
        assert rest["jobs"][0]["id"] == ids[0]


def test_the_list_names_each_job_and_says_how_long_it_ran_and_how_many_spikes_it_made(service: Service) -> None:
    named = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text()) | {"name": "tonic bursting, seed 0"}
    with service.http("dave") as dave:
        named_id, plain_id = submit(dave, named), submit(dave, SEED)
        for job_id in (named_id, plain_id):
            service.wait_final(job_id, "dave")
        listed = {job["id"]: job for job in dave.get("/api/v1/jobs").json()["jobs"]}
        result = Result.from_json(dave.get(f"/api/v1/jobs/{named_id}/result").content)
        assert listed[named_id]["name"] == "tonic bursting, seed 0" and listed[plain_id]["name"] is None
        assert listed[named_id]["spikes"] == sum(layer.spike_count for layer in result.layers.values()) > 0
        assert listed[plain_id]["spikes"] == 0
        assert 0 < listed[named_id]["wall_s"] < 60
        assert dave.get(f"/api/v1/jobs/{named_id}").json()["name"] == "tonic bursting, seed 0"
        refused = dave.post("/api/v1/jobs", json=SEED | {"name": "two\nlines"})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["name"]


def test_jobs_in_flight_per_key_are_limited(service: Service) -> None:
    # a tiny body is checked and queued on the API's event loop, a larger one in a thread: alike
    padded = {"content": json.dumps(SEED) + " " * 10_000, "headers": {"content-type": "application/json"}}
    with service.http("carol") as carol:
        ids = [submit(carol, LONG) for _ in range(3)]
        for refused in (carol.post("/api/v1/jobs", json=SEED), carol.post("/api/v1/jobs", **padded)):
            assert refused.status_code == 429 and "3 jobs are already queued or running" in refused.json()["detail"]
        with service.http("alice") as alice:
            other = submit(alice, SEED)  # other keys are unaffected
        for job_id in ids:
            carol.delete(f"/api/v1/jobs/{job_id}")
        for job_id in ids:
            assert service.wait_final(job_id, "carol")["status"] == "cancelled"
        assert service.wait_final(other)["status"] == "succeeded"
        assert submit(carol, SEED), "finished jobs free their slots"
        padded_job = carol.post("/api/v1/jobs", **padded).json()["id"]
        assert service.wait_final(padded_job, "carol")["status"] == "succeeded"


def test_invalid_requests_get_422_naming_the_field_and_are_never_queued(service: Service) -> None:
    bad = json.loads(json.dumps(SEED))
    bad["network"]["layers"][0]["in_features"] = 6
    bad["network"]["layers"][0].pop("weight")
    with service.http() as http:
        before = http.get("/api/v1/jobs").json()["total"]
        response = http.post("/api/v1/jobs", json=bad)
        assert response.status_code == 422
        assert response.json()["detail"][0] == {
            "loc": ["network", "layers", 0, "in_features"],
            "msg": "is 6, but the input gives shape [5]",
            "type": "value_error",
        }
        structural = http.post("/api/v1/jobs", json={**SEED, "dt": -1})
        assert structural.status_code == 422 and structural.json()["detail"][0]["loc"] == ["dt"]
        tagged = http.post("/api/v1/jobs", json={**SEED, "network": {"layers": [{"type": "lif", "params": {"v_th": "x"}}]}})
        assert tagged.json()["detail"][0]["loc"] == ["network", "layers", 0, "params", "v_th"]
        assert http.get("/api/v1/jobs").json()["total"] == before


def test_oversized_bodies_get_413(service: Service) -> None:
    with service.http() as http:
        big = http.post("/api/v1/jobs", content=b"[" + b"0," * (1_100_000) + b"0]", headers={"Content-Type": "application/json"})
        assert big.status_code == 413
    # A client that announces 1 GB and sends nothing more is answered at once, not read.
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        head = f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {10**9}\r\n\r\n"
        raw.sendall(head.encode() + b"{")
        reply = raw.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413"), reply


def test_result_of_an_unfinished_job_is_409(service: Service) -> None:
    with service.http() as http:
        job_id = submit(http, LONG)
        assert http.get(f"/api/v1/jobs/{job_id}/result").status_code == 409
        http.delete(f"/api/v1/jobs/{job_id}")
        service.wait_final(job_id)


def test_the_python_client_round_trip(service: Service) -> None:
    with Client(service.url, KEYS["bob"]) as client:
        job = client.submit(EXAMPLES / "izhikevich_tonic_bursting.json")
        assert job.wait(timeout=120)["status"] == "succeeded"
        local = simulate(*parse_request((EXAMPLES / "izhikevich_tonic_bursting.json").read_bytes()))
        assert_same_recordings(job.result(), local)
        assert_same_recordings(job.result(format="json"), local)
        assert_same_recordings(client.submit(SEED).result(wait=30), simulate(*parse_request(SEED)))
        sweep = [{**SEED, "seed": seed} for seed in range(3)]  # the key may have 3 jobs in flight
        jobs = client.submit_many(sweep, concurrency=3)
        assert len({job.id for job in jobs}) == 3
        assert [json.loads(client.http.get(f"/api/v1/jobs/{job.id}/request").content)["seed"] for job in jobs] == [0, 1, 2]
        assert all(job.wait(timeout=60)["status"] == "succeeded" for job in jobs)
        long_job = client.submit(LONG)
        long_job.cancel()
        long_job.wait(timeout=60)
        with pytest.raises(JobFailed):
            long_job.result()


def test_health_readiness_metrics_and_docs(service: Service) -> None:
    with service.http(None) as anonymous:
        assert anonymous.get("/readyz").json() == {"status": "ready", "redis": True, "workers": 1}
        assert anonymous.get("/metrics").status_code == 401, "with keys configured, metrics need one"
        assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with service.http() as http:
        metrics = http.get("/metrics").text
        for family in (
            "spikeserve_jobs{",
            "spikeserve_queue_depth",
            "spikeserve_job_duration_seconds_bucket",
            "spikeserve_neuron_steps_total",
        ):
            assert family in metrics
        assert 'spikeserve_jobs_entered_total{state="succeeded"}' in metrics
        schema = http.get("/openapi.json").json()
        post = schema["paths"]["/api/v1/jobs"]["post"]
        assert {"seed", "izhikevich_tonic_bursting"} <= set(post["requestBody"]["content"]["application/json"]["examples"])
        assert {"413", "422", "429"} <= set(post["responses"])


def test_cors_allows_only_configured_origins(service: Service) -> None:
    with service.http(None) as http:
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = http.options("/api/v1/jobs", headers={"Origin": "http://viewer.example", **preflight})
        denied = http.options("/api/v1/jobs", headers={"Origin": "http://evil.example", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "http://viewer.example"
        assert "access-control-allow-origin" not in denied.headers


def test_keys_never_reach_the_store_or_the_logs(service: Service) -> None:
    import redis

    client = redis.Redis.from_url(service.redis_url)
    dump = b"".join(str(client.hgetall(key)).encode() for key in client.scan_iter("ss:job:*") if client.type(key) == b"hash")
    logs = b"".join(path.read_bytes() for path in service.log_dir.glob("*.log"))
    for key in KEYS.values():
        assert key.encode() not in dump and key.encode() not in logs


def test_spikeserve_submit_writes_the_result(service: Service, tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys

    output = tmp_path / "result.npz"
    command = [str(pathlib.Path(sys.executable).parent / "spikeserve"), "submit", str(EXAMPLES / "seed.json")]
    done = subprocess.run(
        [*command, "--url", service.url, "--key", KEYS["bob"], "-o", str(output)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "4 steps on cpu; spikes: out=0" in done.stdout
    assert_same_recordings(Result.from_npz(output.read_bytes()), simulate(*parse_request(SEED)))
    refused = subprocess.run([*command, "--url", service.url, "--key", "wrong"], capture_output=True, text=True, timeout=60)
    assert (
        refused.returncode == 2
        and refused.stderr == "spikeserve: error: HTTP 401: invalid API key (give a key with --key or SPIKESERVE_KEY)\n"
    )


def test_a_network_given_as_nir_runs_like_its_layers(service: Service) -> None:
    import base64

    from worker.simulation.nir_export import network_to_nir_bytes

    request = json.loads((EXAMPLES / "conv_feedforward.json").read_text())
    graph = base64.b64encode(network_to_nir_bytes(*parse_request(request))).decode()
    with service.http() as http:
        job_id = submit(http, {**request, "network": {"nir": graph}})
        assert service.wait_final(job_id)["status"] == "succeeded"
        served = Result.from_npz(http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content)
        as_submitted = http.get(f"/api/v1/jobs/{job_id}/request").json()
        broken = http.post("/api/v1/jobs", json={**request, "network": {"nir": base64.b64encode(b"junk").decode()}})
    assert_same_recordings(served, simulate(*parse_request(request)))
    assert as_submitted["network"] == {"nir": graph}, "the request as submitted; the worker ran its layers"
    assert broken.status_code == 422 and broken.json()["detail"][0]["loc"] == ["network", "nir"]
    assert broken.json()["detail"][0]["msg"].startswith("not a readable NIR file")


def test_jobs_made_without_keys_go_to_the_key_the_operator_names(redis_server: RedisServer) -> None:
    from fastapi.testclient import TestClient

    from app.api import create_app
    from worker.settings import Settings, hash_key
    from worker.store import JobStore

    store = JobStore.from_url(redis_server.url)
    made_without_keys = store.create("anonymous", json.dumps(SEED).encode(), 4, max_in_flight=100).id
    alice, bob = hash_key(KEYS["alice"]), hash_key(KEYS["bob"])
    hidden = create_app(Settings(redis_url=redis_server.url, api_key_hashes=[alice, bob]))
    with TestClient(hidden) as client:
        headers = {"Authorization": f"Bearer {KEYS['alice']}"}
        assert client.get(f"/api/v1/jobs/{made_without_keys}", headers=headers).status_code == 404
    adopting = create_app(Settings(redis_url=redis_server.url, api_key_hashes=[alice, bob], anonymous_jobs_to=alice))
    with TestClient(adopting) as client:
        for key, expected in (("alice", 200), ("bob", 404)):
            response = client.get(f"/api/v1/jobs/{made_without_keys}", headers={"Authorization": f"Bearer {KEYS[key]}"})
            assert response.status_code == expected


LIVE = {  # 8,000 steps of a small Poisson-driven population: several chunks, each with spikes
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc",
                "in_features": 40,
                "out_features": 60,
                "weight": {"init": "uniform", "low": 0.0, "high": 0.15},
            },
            {"type": "lif", "name": "out"},
        ]
    },
    "input": {"type": "poisson", "rates": 80.0, "shape": [40], "steps": 8000},
    "record": {"live": ["out"]},
    "seed": 5,
}


def test_live_spikes_arrive_chunk_by_chunk_and_concatenate_to_the_result(service: Service) -> None:
    with Client(service.url, key=KEYS["alice"]) as client:
        job = client.submit(LIVE)
        chunks = list(job.stream(timeout=120))
        result = job.result()
    assert len(chunks) >= 8 and chunks[0].start == 0 and chunks[-1].stop == 8000
    assert all(a.stop == b.start for a, b in itertools.pairwise(chunks)), "in order, none missing"
    assert all(chunk.layers["out"].every == 1 for chunk in chunks), "below the thinning threshold"
    layer = result.layers["out"]
    assert layer.spike_count > 1000
    for key in ("times", "senders", "batch"):
        assert np.array_equal(np.concatenate([getattr(chunk.layers["out"], key) for chunk in chunks]), getattr(layer, key))


def sse_events(http: httpx.Client, job_id: str, headers: dict | None = None) -> list[tuple[str, str | None, str]]:
    events, kind, event_id = [], None, None
    with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers or {}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("id:"):
                event_id = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, event_id, line.split(":", 1)[1].strip()))
                kind = event_id = None
    return events


def test_a_stream_reopened_with_last_event_id_goes_on_after_that_chunk(service: Service) -> None:
    with service.http() as http:
        job_id = submit(http, LIVE)
        first = sse_events(http, job_id)
        spikes = [(event_id, json.loads(data)) for kind, event_id, data in first if kind == "spikes"]
        assert len(spikes) >= 8 and all(event_id for event_id, _ in spikes)
        resumed = sse_events(http, job_id, headers={"Last-Event-ID": spikes[2][0]})
        resumed_spikes = [json.loads(data) for kind, _, data in resumed if kind == "spikes"]
        assert resumed_spikes == [chunk for _, chunk in spikes[3:]]
        assert json.loads(resumed[-1][2])["status"] == "succeeded"
        assert http.get(f"/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "0; DROP"}).status_code == 422


def test_jobs_without_live_layers_stream_status_events_only(service: Service) -> None:
    with service.http() as http:
        job_id = submit(http, {**LIVE, "record": {}})
        kinds = {kind for kind, _, _ in sse_events(http, job_id)}
    assert kinds == {"status"}


def test_a_sweep_runs_every_point_as_a_job_and_its_summary_equals_the_points_run_one_by_one(service: Service) -> None:
    base = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    axes = {"network.layers[0].params.d": [1.0, 4.0], "input.value": [[8.0, 9.0], [12.0, 13.0]]}
    with Client(service.url, key=KEYS["alice"]) as client:
        sweep = client.sweep(base, axes)
        status = sweep.wait(timeout=120)
        table = sweep.summary()
        third = sweep.job(2).result()
    assert status["status"] == "succeeded" and status["points"] == {
        "total": 4,
        "ended": 4,
        "succeeded": 4,
        "failed": 0,
        "cancelled": 0,
        "running": 0,
    }
    assert status["progress"]["steps_done"] == status["progress"]["steps_total"] == 4 * base["input"]["steps"]
    assert table.columns[:5] == ["point", "job_id", "status", "network.layers[0].params.d", "input.value"]
    values = [(row["network.layers[0].params.d"], row["input.value"]) for row in table]
    assert values == [(d, drive) for d in axes["network.layers[0].params.d"] for drive in axes["input.value"]]
    for row in table:
        request = copy.deepcopy(base)
        request["network"]["layers"][0]["params"]["d"] = row["network.layers[0].params.d"]
        request["input"]["value"] = row["input.value"]
        alone = simulate(*parse_request(request))
        assert row["neurons.spikes"] == alone.layers["neurons"].spike_count > 0
        if row["point"] == 2:
            assert_same_recordings(third, alone)
    assert len(set(table.column("neurons.spikes"))) > 1, "the axes change what the network does"


def test_a_sweep_summary_comes_as_json_csv_and_npz_and_its_request_as_sent(service: Service) -> None:
    body = {"base": SEED, "axes": [{"path": "seed", "values": [0, 1, 2]}], "mode": "grid"}
    with service.http() as http:
        created = http.post("/api/v1/sweeps", json=body)
        assert created.status_code == 202, created.text
        links = created.json()["links"]
        deadline = time.monotonic() + 60
        while http.get(links["self"]).json()["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
        as_json = http.get(links["summary"]).json()
        as_csv = http.get(links["summary"], params={"format": "csv"})
        as_npz = np.load(io.BytesIO(http.get(links["summary"], params={"format": "npz"}).content), allow_pickle=False)
        assert json.loads(http.get(links["request"]).content) == body
        assert http.get("/api/v1/sweeps").json()["sweeps"][0]["id"] == created.json()["id"]
        with service.http("bob") as bob:
            assert bob.get(links["self"]).status_code == 404 and bob.get(links["summary"]).status_code == 404
            assert bob.delete(links["self"]).status_code == 404
    assert as_json["columns"][:4] == ["point", "job_id", "status", "seed"] and len(as_json["rows"]) == 3
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == ",".join(as_json["columns"])
    assert as_npz["seed"].tolist() == [0.0, 1.0, 2.0] and as_npz["status"].tolist() == ["succeeded"] * 3


def test_a_sweep_with_a_bad_value_is_refused_whole_naming_the_axis_value_and_field(service: Service) -> None:
    """By POST /sweeps and by POST /sweeps/validate alike, which checks a sweep and queues nothing."""
    body = {"base": SEED, "axes": [{"path": "network.layers[out].params.tau_mem_inv", "values": [100.0, 0.0]}]}
    axes = [{"path": "network.layers[out].params.tau_mem_inv", "values": [100.0, 50.0]}, {"path": "seed", "values": [0, 1, 2]}]
    good = {"base": SEED, "axes": axes}
    with service.http() as http:
        before = http.get("/api/v1/sweeps").json()["total"]
        response = http.post("/api/v1/sweeps", json=body)
        checked = http.post("/api/v1/sweeps/validate", json=body)
        valid = http.post("/api/v1/sweeps/validate", json=good)
        assert http.get("/api/v1/sweeps").json()["total"] == before, "nothing is queued"
    assert valid.status_code == 200 and valid.json() == {"mode": "grid", "points": 6, "steps": 6 * 4, "batches": 1}
    assert checked.status_code == response.status_code == 422 and checked.json() == response.json()
    assert response.json()["detail"] == [
        {
            "loc": ["axes", 0, "values", 1],
            "msg": "0.0 lands in network.layers[1].params.tau_mem_inv: must be positive",
            "type": "value_error",
        }
    ]


def test_batched_sweep_points_equal_the_same_points_fanned_out_bit_for_bit(service: Service) -> None:
    base = {**LIVE, "record": {"voltages": ["out"], "neurons": {"out": [0, 1]}}, "input": {**LIVE["input"], "steps": 600}}
    axes = [
        {"path": "input.rates", "values": [20.0, 60.0, 300.0]},
        {"path": "network.layers[out].params.v_th", "values": [0.5, 1.0]},
    ]
    results = {}
    with Client(service.url, key=KEYS["alice"]) as client:
        for batched in (True, False):
            sweep = client.submit_sweep({"base": base, "axes": axes, "batched": batched})
            assert sweep.wait(timeout=120)["status"] == "succeeded"
            results[batched] = [client.job(job_id).result() for job_id in sweep.summary().column("job_id")]
    assert {result.stats.get("batched_with") for result in results[True]} == {6}, "the six points ran as one batch"
    assert {result.stats.get("batched_with") for result in results[False]} == {None}
    for one, other in zip(results[True], results[False], strict=True):
        assert_same_recordings(one, other)
    assert len({result.layers["out"].spike_count for result in results[True]}) > 2


def test_a_mid_sized_result_is_kept_as_npz_and_its_json_made_on_request(service: Service) -> None:
    request = {**LIVE, "record": {}}
    with service.http() as http:
        job_id = submit(http, request)
        assert service.wait_final(job_id)["status"] == "succeeded"
        as_json = http.get(f"/api/v1/jobs/{job_id}/result")
        as_npz = http.get(f"/api/v1/jobs/{job_id}/result", params={"format": "npz"}).content
    stored = redis.Redis.from_url(service.redis_url)
    assert stored.exists(f"ss:job:{job_id}:result:npz") and not stored.exists(f"ss:job:{job_id}:result:json")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    assert as_json.content == Result.from_npz(as_npz).to_json()
    assert_same_recordings(Result.from_json(as_json.content), simulate(*parse_request(request)))


def test_spikeserve_sweep_prints_and_writes_the_summary(service: Service, tmp_path: pathlib.Path) -> None:
    import csv
    import subprocess
    import sys

    spikeserve = str(pathlib.Path(sys.executable).parent / "spikeserve")
    request = EXAMPLES / "izhikevich_tonic_bursting.json"
    output = tmp_path / "summary.csv"
    axis = ["--axis", "network.layers[0].params.d=[2.0,2.0],[4.0,4.0]"]
    done = subprocess.run(
        [spikeserve, "sweep", str(request), *axis, "--url", service.url, "--key", KEYS["bob"], "-o", str(output), "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(output.open()))
    assert [row["network.layers[0].params.d"] for row in rows] == ["[2.0, 2.0]", "[4.0, 4.0]"]
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"]
    assert done.stdout.splitlines()[0].split()[:4] == ["point", "job_id", "status", "network.layers[0].params.d"]
    local = subprocess.run([spikeserve, "run", str(request), *axis, "-q"], capture_output=True, text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    local_spikes = [line.split()[-2] for line in local.stdout.splitlines()[1:]]
    assert local_spikes == [row["neurons.spikes"] for row in rows], "the local sweep agrees with the server's"
    bad = subprocess.run(
        [spikeserve, "sweep", str(request), "--axis", "seed", "--url", service.url], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "write PATH=V1,V2,..." in bad.stderr
