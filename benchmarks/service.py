"""The service against a bare Celery round trip, on the same Redis and the same kind of worker.

    python -m benchmarks.service [--latency-jobs 200] [--throughput-jobs 1000]

Starts a private Redis, `spikeserve serve`-equivalent halves (API + one prefork worker) and a
bare Celery echo worker (benchmarks/celery_echo.py, configured like ours). Measures, one side at
a time so they do not compete:
- latency: the seed job from POST to its result through the Python client (submit, then fetch
  the JSON result with a long poll, ``?wait=30``), median and p99 over N sequential jobs, beside
  the echo task's apply_async().get() round trip;
- throughput: N tiny jobs submitted one after another, until all have succeeded (the newest
  unfinished one long-polled, then the job list read, while any are left), beside N echo tasks submitted
  one after another and their results fetched. (Submitting from 8 threads on both sides was
  tried: it raised the echo's rate more than ours, 0.40-0.44x.)
Both are measured in interleaved rounds (latency in 10, throughput in 2 halves), so that drift of
a shared machine hits both sides alike. In the throughput half our worker, after the job its
Celery message brought, takes the jobs queued behind it from the queue itself (up to a second,
``worker.execute.execute_queued``); the echo worker takes one message per task, as Celery does.
"""

import argparse
import contextlib
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from app.client import FINAL, Client, wait_until_ready
from app.redis_server import RedisServer, free_port
from benchmarks.load import SEED, percentile

BIN = pathlib.Path(sys.executable).parent
ROUNDS = 10


def service_latency(client: Client, jobs: int) -> list[float]:
    """The client's own shortest path: submit, then one long-polled request for the result."""
    times = []
    for _ in range(jobs):
        started = time.perf_counter()
        client.submit(SEED).result_bytes("json", wait=30)
        times.append(time.perf_counter() - started)
    return times


def service_throughput_s(client: Client, jobs: int) -> float:
    """Seconds from the first submission until all ``jobs`` succeeded: submit them all, then
    long-poll the newest unfinished one and read the job list, until none is left unfinished
    (the queue is first in, first out: one round usually finds all done)."""
    started = time.perf_counter()
    submitted = [client.submit(SEED).id for _ in range(jobs)]
    pending = set(submitted)
    while pending:
        client.job(next(job_id for job_id in reversed(submitted) if job_id in pending)).wait(timeout=300)
        offset, page = 0, {"next": ""}
        while pending and page["next"] is not None and offset < 2 * jobs:
            page = client.jobs(offset=offset, limit=200)
            for status in page["jobs"]:
                if status["id"] in pending and status["status"] in FINAL:
                    if status["status"] != "succeeded":
                        raise RuntimeError(f"job {status['id']} ended {status['status']}")
                    pending.discard(status["id"])
            offset += 200
    return time.perf_counter() - started


def echo_latency(jobs: int) -> list[float]:
    from benchmarks.celery_echo import echo

    times = []
    for _ in range(jobs):
        started = time.perf_counter()
        echo.apply_async(args=[SEED]).get(timeout=30)
        times.append(time.perf_counter() - started)
    return times


def echo_throughput_s(jobs: int) -> float:
    from benchmarks.celery_echo import echo

    started = time.perf_counter()
    results = [echo.apply_async(args=[SEED]) for _ in range(jobs)]
    for result in results:
        result.get(timeout=60)
    return time.perf_counter() - started


@contextlib.contextmanager
def local_service(echo: bool = False) -> Iterator[str]:
    """A private Redis, the API and one worker (``spikeserve serve``'s halves), and with ``echo``
    a bare Celery echo worker on the same Redis: yields the API's URL."""
    with tempfile.TemporaryDirectory() as tmp, RedisServer(pathlib.Path(tmp) / "redis") as redis_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
        env |= {
            "SPIKESERVE_REDIS_URL": redis_server.url,
            "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": "100000",
            "ECHO_REDIS_URL": redis_server.url,
        }
        os.environ["ECHO_REDIS_URL"] = redis_server.url
        port = free_port()
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        processes = [
            subprocess.Popen([str(BIN / "spikeserve"), "api", "--port", str(port)], **quiet),
            subprocess.Popen([str(BIN / "spikeserve"), "worker"], **quiet),
        ]
        if echo:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchmarks.celery_echo", "worker", "--pool=prefork", "--concurrency=1",
                 "-Q", "echo_queue", "-n", "echo@%h", "--without-gossip", "--without-mingle"], **quiet,
            ))  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, processes=processes[:2])
            yield url
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--throughput-jobs", type=int, default=1000)
    args = parser.parse_args()
    with local_service(echo=True) as url:
        from benchmarks.celery_echo import echo_app

        echo_app.conf.task_default_queue = "echo_queue"
        echo_app.control.ping(timeout=5)
        with Client(url) as client:
            service_latency(client, 10)  # warm-up
            echo_latency(10)
            # Interleaved in rounds, so that drift of this shared machine hits both sides alike.
            service, echo = [], []
            for _ in range(ROUNDS):
                service += service_latency(client, args.latency_jobs // ROUNDS)
                echo += echo_latency(args.latency_jobs // ROUNDS)
            service_s = echo_s = 0.0
            for _ in range(2):
                service_s += service_throughput_s(client, args.throughput_jobs // 2)
                echo_s += echo_throughput_s(args.throughput_jobs // 2)
            service_rate, echo_rate = args.throughput_jobs / service_s, args.throughput_jobs / echo_s
    ms = lambda values, q: 1000 * percentile(values, q)  # noqa: E731
    print("| measure | spikeserve (seed job) | bare Celery echo | overhead / ratio |")
    print("|---|---|---|---|")
    print(
        f"| latency p50 | {1000 * statistics.median(service):.1f} ms | {1000 * statistics.median(echo):.1f} ms | "
        f"+{1000 * (statistics.median(service) - statistics.median(echo)):.1f} ms |"
    )
    print(
        f"| latency p99 | {ms(service, 0.99):.1f} ms | {ms(echo, 0.99):.1f} ms | +{ms(service, 0.99) - ms(echo, 0.99):.1f} ms |"
    )
    print(f"| throughput, {args.throughput_jobs} tiny jobs | {service_rate:.0f} jobs/s | {echo_rate:.0f} tasks/s | "
          f"{service_rate / echo_rate:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
