"""Load on loopback: N small jobs from C concurrent clients against `spikeserve serve`.

    python -m benchmarks.load [--jobs 1000] [--clients 32] [--url http://127.0.0.1:8000]

Without --url it starts its own `spikeserve serve` on a free port and stops it afterwards. It
submits the seed network N times, waits for every job, and checks that each succeeded exactly
once (the store's count of transitions into 'succeeded'). Prints submit latency (p50, p99) and
completion throughput. Bounded in count and time; traffic stays on 127.0.0.1.
"""

import argparse
import asyncio
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from app.client import wait_until_ready

ROOT = pathlib.Path(__file__).parents[1]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_load(url: str, jobs: int, clients: int, timeout_s: float = 600) -> dict[str, Any]:
    """Submits ``jobs`` seed jobs from ``clients`` concurrent clients and waits for them all."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(jobs):
        queue.put_nowait(index)
    latencies: list[float] = []
    ids: list[str] = []
    deadline = time.monotonic() + timeout_s

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            queue.get_nowait()
            started = time.perf_counter()
            response = await http.post("/api/v1/jobs", json=SEED)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            ids.append(response.json()["id"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        before = await stats(http)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        submitted = time.perf_counter() - started
        pending = set(ids)
        states: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            page = await http.get("/api/v1/jobs", params={"limit": 200})
            for job in page.json()["jobs"]:
                if job["id"] in pending and job["status"] in ("succeeded", "failed", "cancelled"):
                    states[job["id"]] = job["status"]
                    pending.discard(job["id"])
            if pending:  # jobs beyond the first page: ask for them one by one
                for job_id in list(pending)[:200]:
                    status = (await http.get(f"/api/v1/jobs/{job_id}")).json()["status"]
                    if status in ("succeeded", "failed", "cancelled"):
                        states[job_id] = status
                        pending.discard(job_id)
            await asyncio.sleep(0.2)
        finished = time.perf_counter() - started
        after = await stats(http)
    return {
        "jobs": jobs,
        "clients": clients,
        "submitted": len(ids),
        "succeeded": sum(1 for s in states.values() if s == "succeeded"),
        "unfinished": len(pending),
        "succeeded_transitions": after - before,
        "submit_p50_ms": 1000 * statistics.median(latencies),
        "submit_p99_ms": 1000 * percentile(latencies, 0.99),
        "submit_rate_per_s": len(ids) / submitted,
        "completion_rate_per_s": len(states) / finished,
        "wall_s": finished,
    }


async def stats(http: httpx.AsyncClient) -> int:
    """Jobs that ever entered 'succeeded', from the Prometheus endpoint."""
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith('spikeserve_jobs_entered_total{state="succeeded"}'):
            return int(float(line.split()[-1]))
    return 0


def serve(port: int, data_dir: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")} | {
        "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": "100000"
    }
    command = [str(pathlib.Path(sys.executable).parent / "spikeserve"), "serve", "--port", str(port), "--data-dir", data_dir]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", processes=[process])
    except (RuntimeError, TimeoutError):
        process.kill()
        raise
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--url", default=None, help="a running server; default: start spikeserve serve")
    args = parser.parse_args()
    process = None
    url = args.url
    with tempfile.TemporaryDirectory() as data_dir:
        if url is None:
            from app.redis_server import free_port

            port = free_port()
            process = serve(port, data_dir)
            url = f"http://127.0.0.1:{port}"
        try:
            report = asyncio.run(run_load(url, args.jobs, args.clients))
        finally:
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(60)
    print(json.dumps(report, indent=1))
    print(
        f"{report['succeeded']}/{report['jobs']} succeeded ({report['succeeded_transitions']} transitions to succeeded); "
        f"submit p50 {report['submit_p50_ms']:.1f} ms, p99 {report['submit_p99_ms']:.1f} ms; "
        f"completion {report['completion_rate_per_s']:.0f} jobs/s"
    )


if __name__ == "__main__":
    main()
