"""Load on loopback: N small jobs from C concurrent clients against `spikeserve serve`.

    python -m benchmarks.load [--jobs 1000] [--clients 32] [--hostile 50] [--url http://127.0.0.1:8000]

Without --url it starts its own `spikeserve serve` on a free port and stops it afterwards. It
submits the seed network N times, mixed with H hostile requests (oversized results, NIR files
that declare gigabytes or point at other files, jobs that cross their spike-event limit or
diverge, 65-dimensional tensors), waits for every job, and checks that each ordinary job
succeeded exactly once (the store's count of transitions into 'succeeded') and that every
hostile one was refused or failed. Prints submit latency (p50, p99) and completion throughput.
Bounded in count and time; traffic stays on 127.0.0.1.
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


def _nir_base64(change: Any) -> str:
    """A small valid NIR graph (5 -> 3 -> LI) with ``change`` applied to its weight's group."""
    import base64
    import io

    import h5py
    import nir
    import numpy as np

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([5])}),
            "fc": nir.Affine(weight=np.ones((3, 5), dtype=np.float32), bias=np.zeros(3, dtype=np.float32)),
            "readout": nir.LI(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "fc"), ("fc", "readout"), ("readout", "output")],
    )
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    with h5py.File(buffer, "r+") as file:
        group = file["node/nodes/fc"]
        del group["weight"]
        change(group)
    return base64.b64encode(buffer.getvalue()).decode()


def hostile_requests() -> list[tuple[str, dict[str, Any]]]:
    """(what, request) pairs that must each be refused (4xx) or end failed."""
    nir_input = {"type": "constant", "value": [1.0] * 5, "steps": 10}
    return [
        ("result too large to store", {
            "network": {"layers": [{"type": "li", "name": "readout"}]},
            "input": {"type": "constant", "value": 1.0, "shape": [300_000], "steps": 100},
            "record": {"voltages": ["readout"]},
        }),
        ("NIR weight declaring 400 million values", {"network": {"nir": _nir_base64(
            lambda g: g.create_dataset("weight", shape=(400_000_000,), dtype="<f4", chunks=(2**16,), compression="gzip")
        )}, "input": nir_input}),
        ("NIR weight stored in /proc/self/environ", {"network": {"nir": _nir_base64(
            lambda g: g.create_dataset("weight", shape=(3, 5), dtype="<f4", external=[("/proc/self/environ", 0, 60)])
        )}, "input": nir_input}),
        ("more spike events than allowed", {
            "network": {"layers": [{"type": "lif", "params": {"v_th": 0.01}}]},
            "input": {"type": "constant", "value": 5.0, "shape": [100], "steps": 200},
            "record": {"max_spike_events": 50},
        }),
        ("diverging dynamics", {
            "network": {"layers": [{"type": "izhikevich", "params": {"sq": 5.0, "v_th": 1e30}}]},
            "input": {"type": "constant", "value": 10.0, "shape": [4], "steps": 500},
        }),
        ("a 65-dimensional tensor", {**SEED, "input": {"type": "tensor", "shape": [4, 5], "data": {
            "dtype": "float32", "shape": [1] * 65, "base64": "AACAPw=="}}}),
    ]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_load(url: str, jobs: int, clients: int, hostile: int = 0, timeout_s: float = 600) -> dict[str, Any]:
    """Submits ``jobs`` seed jobs and ``hostile`` hostile requests (spread among them) from
    ``clients`` concurrent clients, and waits for every accepted job to end."""
    kinds = hostile_requests() if hostile else []
    spacing = max(1, jobs // hostile) if hostile else 0
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    made = 0
    for index in range(jobs):
        queue.put_nowait(("ordinary", SEED))
        if hostile and index % spacing == spacing - 1 and made < hostile:
            queue.put_nowait(kinds[made % len(kinds)])
            made += 1
    latencies: list[float] = []
    ids: list[str] = []
    hostile_ids: dict[str, str] = {}
    refused: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            kind, request = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post("/api/v1/jobs", json=request)
            if kind != "ordinary":
                if response.status_code == 202:
                    hostile_ids[response.json()["id"]] = kind
                else:
                    assert 400 <= response.status_code < 500, (kind, response.status_code, response.text[:200])
                    refused[kind] = refused.get(kind, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            ids.append(response.json()["id"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        before = await stats(http)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        submitted = time.perf_counter() - started
        pending = set(ids) | set(hostile_ids)
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
    hostile_ends: dict[str, int] = {}
    for job_id, kind in hostile_ids.items():
        key = f"{kind}: {states.get(job_id, 'unfinished')}"
        hostile_ends[key] = hostile_ends.get(key, 0) + 1
    return {
        "jobs": jobs,
        "clients": clients,
        "submitted": len(ids),
        "succeeded": sum(1 for job_id in ids if states.get(job_id) == "succeeded"),
        "hostile": made,
        "hostile_refused": refused,
        "hostile_ended": hostile_ends,
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


def serve(port: int, data_dir: str, log: Any = subprocess.DEVNULL) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")} | {
        "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": "100000"
    }
    command = [str(pathlib.Path(sys.executable).parent / "spikeserve"), "serve", "--port", str(port), "--data-dir", data_dir]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
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
    parser.add_argument("--hostile", type=int, default=0, help="hostile requests mixed in (refused or failed)")
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
            report = asyncio.run(run_load(url, args.jobs, args.clients, args.hostile))
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
