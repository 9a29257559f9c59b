"""Hostile input and security: every bad request gets a clear 4xx, nothing is executed, and the
server stays healthy."""

import ast
import json
import pathlib
import re
import time
from collections.abc import Callable

import pytest
from celery import Celery

from tests.app.conftest import Service
from tests.worker.simulation.test_nir_file import INDIRECTIONS, SECRET, nir_bytes
from tests.worker.simulation.test_nir_file import request_with as nir_request
from worker.broker import TASK_NAME

pytestmark = pytest.mark.slow  # starts a service

ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())


def with_changes(**changes: object) -> dict:
    return {**json.loads(json.dumps(SEED)), **changes}


HOSTILE = [
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, "application/json", (400, 422), None),
    ("invalid UTF-8", b'{"network": "\xff"}', "application/json", (400, 422), None),
    ("duplicate keys", json.dumps(SEED).replace('"dt": 0.001', '"dt": 0.001, "dt": 0.002').encode(), "application/json", (422,),
     "duplicate key 'dt'"),
    ("plain text", json.dumps(SEED).encode(), "text/plain", (415,), "send the request body as application/json"),
    ("form data", b"a=b", "application/x-www-form-urlencoded", (415,), "application/json"),
    ("base64 that is not", json.dumps(with_changes(input={"type": "tensor", "shape": [4, 5],
     "data": {"dtype": "float32", "shape": [4, 5], "base64": "%%%"}})).encode(), "application/json", (422,),
     "is not valid base64"),
    ("shape product that overflows", json.dumps(with_changes(input={"type": "tensor", "shape": [2**62, 2**62, 5],
     "data": []})).encode(), "application/json", (422,), "bytes of input exceed the limit"),
    ("a billion steps", json.dumps(with_changes(input={"type": "constant", "value": [1.0] * 5, "steps": 10**9})).encode(),
     "application/json", (422,), "steps are over the limit"),
    ("neuron-steps over the limit", json.dumps({"network": {"layers": [
     {"type": "linear", "in_features": 1, "out_features": 5_000_000, "weight": {"init": "constant", "value": 0.1}, "bias": False},
     {"type": "lif"}]}, "input": {"type": "constant", "value": [1.0], "steps": 100_000}}).encode(), "application/json", (422,),
     "neuron-steps (neurons x batch x steps) are over the limit"),
    ("unicode layer name", json.dumps(with_changes(network={"layers": [{"type": "lif", "name": "réseau ✓"}]})).encode(),
     "application/json", (422,), "String should match pattern"),
    ("code as a layer name", json.dumps(with_changes(network={"layers": [{"type": "lif", "name": "__import__('os')"}]})).encode(),
     "application/json", (422,), "String should match pattern"),
    ("code as a method",
     json.dumps(with_changes(network={"layers": [{"type": "lif", "params": {"method": "eval('1')"}}]})).encode(),
     "application/json", (422,), "Input should be"),
    ("code as a number", json.dumps(with_changes(dt="__import__('os').getpid()")).encode(), "application/json", (422,),
     "valid number"),
    ("a JSON array", b"[1, 2, 3]", "application/json", (422,), None),
    ("null", b"null", "application/json", (422,), None),
]  # fmt: skip


HOSTILE += [
    ("a tensor of 65 dimensions", json.dumps(with_changes(input={"type": "tensor", "shape": [4, 5], "data": {"dtype": "float32",
     "shape": [1] * 65, "base64": "AACAPw=="}})).encode(), "application/json", (422,), "at most 8 items"),
    ("steps as a string", json.dumps(with_changes(steps="4")).encode(), "application/json", (422,), "valid integer"),
    ("steps as a boolean", json.dumps(with_changes(steps=True)).encode(), "application/json", (422,), "valid integer"),
    ("weights as strings", json.dumps(with_changes(network={"layers": [{"type": "linear", "in_features": 5, "out_features": 1,
     "weight": [["1", "1", "1", "1", "1"]]}, {"type": "lif"}]})).encode(), "application/json", (422,), "must hold numbers only"),
    ("a denormal dt", json.dumps(with_changes(dt=5e-324)).encode(), "application/json", (422,),
     "greater than or equal to 0.000001"),
    ("a layer named '..'", json.dumps(with_changes(network={"layers": [{"type": "linear", "in_features": 5, "out_features": 1},
     {"type": "lif", "name": ".."}]})).encode(), "application/json", (422,), "String should match pattern"),
    ("a conv padding of 2^70", json.dumps({"network": {"layers": [{"type": "conv1d", "in_channels": 1, "out_channels": 1,
     "kernel_size": 3, "padding": 2**70}]}, "input": {"type": "constant", "value": 1.0, "shape": [1, 8], "steps": 3}}).encode(),
     "application/json", (422,), "must be less than the kernel size 3"),
    ("two hundred million spike events", json.dumps({"network": {"layers": [{"type": "lif"}]}, "input": {"type": "constant",
     "value": 5.0, "shape": [20_000], "steps": 10_000}, "record": {"max_spike_events": 200_000_000}}).encode(),
     "application/json", (422,), "is over the limit of 10000000"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "statuses", "message"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE]
)
def test_hostile_bodies_get_a_clear_4xx(
    service: Service, body: bytes, content_type: str, statuses: tuple, message: str | None
) -> None:
    with service.http() as http:
        response = http.post("/api/v1/jobs", content=body, headers={"Content-Type": content_type})
        assert response.status_code in statuses, response.text[:300]
        if message:
            assert message in response.text
        assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize(("attack", "message"), INDIRECTIONS, ids=[attack.__name__ for attack, _ in INDIRECTIONS])
def test_a_nir_file_cannot_make_the_service_read_other_files(
    service: Service, tmp_path: pathlib.Path, attack: Callable, message: str
) -> None:
    """A secret planted beside the service, and NIR files that point at it by every HDF5 indirection:
    each is a 422 naming the node, and the secret never comes back."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    with service.http() as http:
        response = http.post("/api/v1/jobs", json=nir_request(nir_bytes(attack(secret))))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["network", "nir"] and error["msg"].startswith("node 'fc' (HDF5 object 'node/nodes/fc/")
    assert re.sub(r"\d+", "N", message) in re.sub(r"\d+", "N", error["msg"])  # the service's own byte limit
    assert b"TOP-SECRET" not in response.content


def test_after_all_that_the_service_still_runs_jobs(service: Service) -> None:
    with service.http() as http:
        job_id = http.post("/api/v1/jobs", json=SEED).json()["id"]
    assert service.wait_final(job_id)["status"] == "succeeded"


class Exploit:
    """Unpickling this would create a file: proof that a worker executed data as code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


def test_the_worker_refuses_pickle_messages(service: Service, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    attacker = Celery(broker=service.redis_url)
    attacker.conf.accept_content = ["pickle", "json"]
    attacker.send_task(TASK_NAME, args=[Exploit(marker)], serializer="pickle")
    deadline = time.monotonic() + 10
    log = service.log_dir / "worker.log"
    while time.monotonic() < deadline and b"untrusted content" not in log.read_bytes():
        time.sleep(0.2)
    assert b"Refusing to deserialize untrusted content of type pickle" in log.read_bytes()
    assert not marker.exists()
    test_after_all_that_the_service_still_runs_jobs(service)


def test_no_code_evaluates_or_unpickles_data() -> None:
    """No eval, exec, pickle or yaml.load anywhere in the service or the engine."""
    for path in [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "worker").rglob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile", "__import__"), f"{path}: {node.func.id}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                )
                assert not {"pickle", "dill", "marshal", "shelve"} & {name.split(".")[0] for name in names}, path
    assert "allow_pickle=False" in (ROOT / "worker" / "simulation" / "results.py").read_text()


def test_an_unreachable_store_gives_503_not_500() -> None:
    from fastapi.testclient import TestClient

    from app.api import create_app
    from app.redis_server import free_port
    from worker.settings import Settings

    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there: it must still start
    with TestClient(app) as client:
        for method, path in (("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/abc"), ("POST", "/api/v1/jobs"), ("GET", "/metrics")):
            response = client.request(method, path, json=SEED if method == "POST" else None)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["detail"] == "the job store is unavailable; try again"
        assert client.get("/readyz").json() == {"status": "not ready", "redis": False, "workers": 0}
