"""The API under many slow or hostile clients, over real sockets: 500 event streams and 500 long
polls share one Redis subscription while /healthz keeps answering within 100 ms and another key's
jobs run as usual; slow headers, stalled uploads and a 47 MiB body cannot take the API down."""

import asyncio
import contextlib
import hashlib
import json
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from app.services import READS_CLIENT_NAME
from tests.app.conftest import KEYS, Service, running_service
from worker.settings import hash_key
from worker.store import JobStore

pytestmark = [pytest.mark.serial, pytest.mark.slow]  # it times /healthz: nothing else runs beside it

ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())

PROBE = """
import json, sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
latencies = []
with httpx.Client(base_url=url, timeout=10) as http:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        assert http.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
print(json.dumps({"count": len(latencies), "max": max(latencies), "p99": sorted(latencies)[int(0.99 * len(latencies))]}))
"""


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(
        pathlib.Path(tmp_path_factory.mktemp("busy")),
        header_timeout_s="1",
        body_idle_timeout_s="1",
        body_timeout_s="5",
        max_body_bytes=str(64 * 2**20),
        max_buffered_body_bytes=str(128 * 2**20),
        max_input_bytes=str(48 * 2**20),
        max_streams_per_key="600",
        validation_timeout_s="60",  # parsing 47 MiB takes seconds, more on a busy machine
        max_jobs_in_flight_per_key="16",
    ) as service:
        yield service


@contextlib.contextmanager
def healthz_probe(url: str, seconds: float) -> Iterator[dict]:
    """/healthz timed from another process (this one is busy being the clients)."""
    probe = subprocess.Popen([sys.executable, "-c", PROBE, url, str(seconds)], stdout=subprocess.PIPE, text=True)
    report: dict = {}
    try:
        yield report
    finally:
        output, _ = probe.communicate(timeout=seconds + 60)
        report.update(json.loads(output))


def assert_responsive(health: dict) -> None:
    """/healthz answered within 100 ms: at the 99th percentile, and never slower than 0.5 s. (On a
    quiet machine every probe was under 35 ms; a shared 2-core VM can pause any process for
    longer than 100 ms now and then, which no server code can prevent. Before this design the
    stalls were seconds long.)"""
    assert health["count"] > 100, health
    assert health["p99"] < 0.1 and health["max"] < 0.5, health


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


async def open_get(
    port: int, path: str, key: str, read_status: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A GET on its own connection; the status (0 if not read yet: a long poll answers later)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1]) if read_status else 0
    return reader, writer, status


async def sse_until_final(reader: asyncio.StreamReader) -> dict:
    last: dict = {}
    while line := await reader.readline():
        if line.startswith(b"data:"):
            last = json.loads(line[5:])
            if last["status"] in ("succeeded", "failed", "cancelled"):
                return last
    return last


async def long_poll_answer(reader: asyncio.StreamReader) -> dict:
    status = int((await reader.readline()).split()[1])
    assert status == 200, status
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    return json.loads(await reader.readexactly(int(headers["content-length"])))


def read_connections(service: Service) -> int:
    """The API's connections for reads and events, as Redis lists them."""
    clients = redis.Redis.from_url(service.redis_url).client_list()
    return sum(1 for entry in clients if entry.get("name") == READS_CLIENT_NAME)


def owner_of(key: str) -> str:
    """The owner the API derives from a key (app.auth)."""
    return "key-" + hash_key(key).removeprefix("sha256:")[:16]


@contextlib.contextmanager
def followed_job(service: Service, user: str) -> Iterator[str]:
    """A job of ``user`` that stays queued (its record is made without a queue message), with a
    progress event published every 0.5 s, as a worker would, until it ends (is cancelled)."""
    store = JobStore.from_url(service.redis_url)
    job_id = store.create(owner_of(KEYS[user]), json.dumps(SEED).encode(), 1000, max_in_flight=100).id
    stop = threading.Event()

    def publish() -> None:
        step = 0
        while not stop.wait(0.5) and store.redis.hget(f"ss:job:{job_id}", "state") == b"queued":
            step += 1
            store.redis.publish(f"ss:events:{job_id}", json.dumps({"status": "queued", "steps_done": step, "steps_total": 1000}))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        yield job_id
    finally:
        stop.set()
        thread.join()


def test_500_streams_and_500_long_polls_while_health_and_another_key_stay_fast(busy: Service) -> None:
    port = port_of(busy)
    with contextlib.ExitStack() as stack:
        alice, bob, carol = (stack.enter_context(busy.http(user)) for user in ("alice", "bob", "carol"))
        streamed = stack.enter_context(followed_job(busy, "alice"))
        polled = stack.enter_context(followed_job(busy, "bob"))

        async def scenario() -> tuple[list, list, list, list[int], int]:
            streams, polls = [], []
            for _ in range(50):  # ramp up: 10 streams and 10 long polls at a time
                streams += await asyncio.gather(
                    *(open_get(port, f"/api/v1/jobs/{streamed}/events", KEYS["alice"]) for _ in range(10))
                )
                polls += await asyncio.gather(
                    *(open_get(port, f"/api/v1/jobs/{polled}?wait=60", KEYS["bob"], read_status=False) for _ in range(10))
                )
            extra = await asyncio.gather(*(open_get(port, f"/api/v1/jobs/{streamed}/events", KEYS["alice"]) for _ in range(100)))
            over = await open_get(port, f"/api/v1/jobs/{streamed}/events", KEYS["alice"])  # the key's 601st
            connections = await asyncio.to_thread(read_connections, busy)
            carol_times = []
            for _ in range(3):  # another key's jobs, run while all of that is open
                started = time.monotonic()
                job = (await asyncio.to_thread(carol.post, "/api/v1/jobs", json=SEED)).json()["id"]
                status = (await asyncio.to_thread(carol.get, f"/api/v1/jobs/{job}", params={"wait": 30})).json()
                carol_times.append((status["status"], time.monotonic() - started))
            await asyncio.to_thread(alice.delete, f"/api/v1/jobs/{streamed}")  # every stream ends with this
            await asyncio.to_thread(bob.delete, f"/api/v1/jobs/{polled}")  # and every long poll answers
            finals = await asyncio.gather(*(sse_until_final(reader) for reader, _, _ in streams + extra))
            answers = await asyncio.gather(*(long_poll_answer(reader) for reader, _, _ in polls))
            statuses = [status for _, _, status in streams + extra]
            for _, writer, _ in [*streams, *polls, *extra, over]:
                writer.close()
            return finals, answers, carol_times, [*statuses, over[2]], connections

        with healthz_probe(busy.url, 10) as health:
            finals, answers, carol_times, statuses, connections = asyncio.run(scenario())
    assert statuses[:-1] == [200] * 600 and statuses[-1] == 429
    assert [final["status"] for final in finals] == ["cancelled"] * 600
    assert [answer["status"] for answer in answers] == ["cancelled"] * 500
    assert [status for status, _ in carol_times] == ["succeeded"] * 3
    assert max(seconds for _, seconds in carol_times) < 5, carol_times
    assert 1 < connections <= 32 + 1, "the bounded pool of 32 for reads, and the event hub's one subscription"
    assert_responsive(health)


def test_connections_that_never_finish_their_headers_are_closed(busy: Service) -> None:
    port = port_of(busy)
    with healthz_probe(busy.url, 4) as health:
        sockets = []
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")  # and never the blank line
            sockets.append(sock)
        time.sleep(2.0)
        closed = 0
        for sock in sockets:
            sock.settimeout(1)
            with contextlib.suppress(OSError):
                closed += sock.recv(1) == b""
            sock.close()
    assert closed == 300
    assert_responsive(health)


def resident_bytes(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def test_stalled_uploads_are_answered_and_release_their_memory(busy: Service) -> None:
    port = port_of(busy)
    before = resident_bytes(busy.api_pid)
    during: list[int] = []

    async def stall() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEYS['alice']}\r\n"
        writer.write(f"{head}Content-Type: application/json\r\nContent-Length: {50 * 2**20}\r\n\r\n".encode())
        writer.write(b"[" + b"0," * 2**19)  # 1 MiB, then nothing
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
        writer.close()
        return status

    async def twenty() -> list[int]:
        uploads = asyncio.gather(*(stall() for _ in range(20)))
        await asyncio.sleep(0.5)  # every upload has sent its first MiB and stalls
        during.append(resident_bytes(busy.api_pid))
        return await uploads

    started = time.monotonic()
    statuses = asyncio.run(twenty())
    assert time.monotonic() - started < 8
    assert during[0] - before < 64 * 2**20, "20 stalled 50 MB uploads hold little more than what arrived"
    assert set(statuses) <= {408, 503} and statuses.count(408) >= 2, statuses  # 128 MiB hold two 50 MB bodies
    with busy.http() as http:
        job = http.post("/api/v1/jobs", json=SEED).json()["id"]  # the budget is free again
        assert http.get(f"/api/v1/jobs/{job}", params={"wait": 30}).json()["status"] == "succeeded"


def test_a_47_mib_body_is_validated_without_stalling_the_api(busy: Service) -> None:
    steps, features = 1000, 5000  # 5 million numbers, about 47 MiB of JSON
    row = "[" + ",".join(["0.0012345"] * features) + "]"
    data = ",".join([row] * steps)
    body = (
        f'{{"input":{{"type":"tensor","shape":[{steps},{features}],"data":[{data}]}},"network":{{"layers":[{{"type":"lif"}}]}}}}'
    )

    assert 45 * 2**20 < len(body) < 48 * 2**20
    with healthz_probe(busy.url, 8) as health, httpx.Client(base_url=busy.url, timeout=60) as http:
        time.sleep(0.5)
        started = time.monotonic()
        response = http.post(
            "/api/v1/validate",
            content=body,
            headers={"Authorization": f"Bearer {KEYS['alice']}", "Content-Type": "application/json"},
        )
        took = time.monotonic() - started
    assert response.status_code == 200, response.text[:300]
    assert response.json()["steps"] == steps and took < 30
    assert_responsive(health)


def test_sixteen_concurrent_downloads_of_a_100_mb_result(busy: Service) -> None:
    """Results are read from Redis and sent in 1 MiB pieces: no reply holds a connection for long
    and no API process holds a whole result, so large downloads neither time out nor stall others."""
    store = JobStore.from_url(busy.redis_url)
    job_id = store.create(owner_of(KEYS["alice"]), json.dumps(SEED).encode(), 4, max_in_flight=100).id
    assert store.start(job_id, "cpu")
    payload = (b"0123456789abcdef" * (2**16 // 16)) * 1600  # 100 MiB of JSON-looking bytes
    assert store.succeed(job_id, payload, b"npz", neuron_steps=4, wall_s=0.1)
    digest = hashlib.sha256(payload).hexdigest()
    before = resident_bytes(busy.api_pid)

    async def download(http: httpx.AsyncClient) -> tuple[int, str]:
        sha, size = hashlib.sha256(), 0
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/result") as response:
            assert response.status_code == 200
            async for piece in response.aiter_bytes():
                sha.update(piece)
                size += len(piece)
        return size, sha.hexdigest()

    async def sixteen() -> list[tuple[int, str]]:
        headers = {"Authorization": f"Bearer {KEYS['alice']}"}
        async with httpx.AsyncClient(base_url=busy.url, headers=headers, timeout=120) as http:
            return await asyncio.gather(*(download(http) for _ in range(16)))

    with healthz_probe(busy.url, 6) as health:
        downloads = asyncio.run(sixteen())
    assert downloads == [(len(payload), digest)] * 16
    assert resident_bytes(busy.api_pid) - before < 256 * 2**20, "16 x 100 MiB never sit in the API at once"
    assert_responsive(health)
