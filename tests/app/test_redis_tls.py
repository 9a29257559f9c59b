"""The service against a Redis that needs a password and speaks TLS only (a self-signed
certificate made here), as docs/deploy.md sets one up for workers on other machines."""

import json
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from app.redis_server import TLSFiles
from tests.app.conftest import Service, running_service

pytestmark = [
    pytest.mark.slow,  # starts a service
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate"),
]
ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())
PASSWORD = "correct horse battery staple"


def self_signed(directory: pathlib.Path) -> TLSFiles:
    files = TLSFiles(directory / "redis.crt", directory / "redis.key", directory / "redis.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(files.key), "-out", str(files.certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    return files


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = pathlib.Path(tmp_path_factory.mktemp("tls"))
    with running_service(directory, redis_options={"password": PASSWORD, "tls": self_signed(directory)}) as service:
        yield service


def test_the_url_carries_the_password_and_the_certificate_authority(secured: Service) -> None:
    assert secured.redis_url.startswith("rediss://:correct%20horse%20battery%20staple@127.0.0.1:")
    assert "ssl_cert_reqs=required&ssl_ca_certs=" in secured.redis_url


def test_jobs_run_end_to_end_over_tls_with_a_password(secured: Service) -> None:
    with secured.http() as http:
        job_id = http.post("/api/v1/jobs", json=SEED).json()["id"]
        events = []
        with http.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=60) as stream:
            events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
        assert events[-1]["status"] == "succeeded"
        assert http.get(f"/api/v1/jobs/{job_id}/result").json()["layers"]["out"]["voltages"]["shape"] == [4, 1]
        assert http.get("/readyz").json()["workers"] == 1


def test_redis_refuses_plain_connections_and_connections_without_the_password(secured: Service) -> None:
    port = int(secured.redis_url.split("@127.0.0.1:")[1].split("/")[0])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1, password=PASSWORD).ping()
    without_password = secured.redis_url.replace(f":{PASSWORD.replace(' ', '%20')}@", "")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(without_password).ping()
