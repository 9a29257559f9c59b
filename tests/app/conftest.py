"""A running service for integration tests: private Redis, a real Celery worker, the API over HTTP."""

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from app.client import wait_until_ready as wait_ready
from app.redis_server import RedisServer, free_port
from tests.helpers import wait_gone
from worker.settings import hash_key

SPIKESERVE = pathlib.Path(sys.executable).parent / "spikeserve"
KEYS = {name: f"ss_test_{name}_key_0123456789" for name in ("alice", "bob", "carol", "dave")}


@dataclass
class Service:
    url: str
    redis_url: str
    log_dir: pathlib.Path
    api_pid: int = 0

    def http(self, user: str | None = "alice") -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_final(self, job_id: str, user: str = "alice", timeout_s: float = 120) -> dict:
        with self.http(user) as http:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                status = http.get(f"/api/v1/jobs/{job_id}").json()
                if status["status"] in ("succeeded", "failed", "cancelled"):
                    return status
                time.sleep(0.05)
        raise TimeoutError(f"job {job_id} not final after {timeout_s} s")

    def wait_running(self, job_id: str, user: str = "alice", min_steps: int = 1, timeout_s: float = 60) -> dict:
        with self.http(user) as http:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                status = http.get(f"/api/v1/jobs/{job_id}").json()
                if status["status"] == "running" and status["progress"]["steps_done"] >= min_steps:
                    return status
                assert status["status"] in ("queued", "running"), status
                time.sleep(0.02)
        raise TimeoutError(f"job {job_id} not running after {timeout_s} s")


def service_env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "SPIKESERVE_REDIS_URL": redis_url,
        "SPIKESERVE_API_KEY_HASHES": json.dumps([hash_key(key) for key in KEYS.values()]),
        "SPIKESERVE_MAX_STEPS": "2000000",
        "SPIKESERVE_MAX_BODY_BYTES": str(2 * 2**20),
        "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": "3",
        "SPIKESERVE_CORS_ORIGINS": '["http://viewer.example"]',
    }


@contextlib.contextmanager
def running_service(
    log_dir: pathlib.Path, workers: int = 1, redis_options: dict | None = None, **settings: str
) -> Iterator[Service]:
    """Redis (``redis_options`` for RedisServer: a password, TLS), ``workers`` workers and the API;
    ``settings`` (SPIKESERVE_ names without the prefix) override ``service_env``. Stopped with
    SIGTERM, checked to leave no process behind."""
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer(log_dir / "redis", **(redis_options or {})))
        env = service_env(redis_server.url) | {f"SPIKESERVE_{name.upper()}": value for name, value in settings.items()}
        port = free_port()
        worker_log = stack.enter_context(open(log_dir / "worker.log", "wb"))
        api_log = stack.enter_context(open(log_dir / "api.log", "wb"))
        started = [
            subprocess.Popen([str(SPIKESERVE), "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT)
            for _ in range(workers)
        ]
        api = subprocess.Popen([str(SPIKESERVE), "api", "--port", str(port)], env=env, stdout=api_log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, [*started, api])
            yield Service(url, redis_server.url, log_dir, api.pid)
        finally:
            for process in (api, *started):
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            assert wait_gone(redis_server.url) == [], "SIGTERM must stop the API and every worker process"


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(pathlib.Path(tmp_path_factory.mktemp("service"))) as running:
        yield running


@pytest.fixture(scope="module")
def resident_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A resident engine (`spikeserve engine start`) on a private socket; the environment of the
    commands that reach it. Stopped at the end, its socket gone."""
    from app.resident import SOCKET_VARIABLE

    socket_path = tmp_path_factory.mktemp("engine") / "private" / "engine.sock"
    env = dict(os.environ, **{SOCKET_VARIABLE: str(socket_path)})
    command = [str(SPIKESERVE), "engine"]
    started = subprocess.run([*command, "start", "--idle-minutes", "10"], capture_output=True, text=True, env=env, timeout=300)
    assert started.returncode == 0 and "resident engine started" in started.stdout, started.stderr
    yield env
    stopped = subprocess.run([*command, "stop"], capture_output=True, text=True, env=env, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped
    assert not socket_path.exists()
