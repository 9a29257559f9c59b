"""Sweeps and live spikes, through the real service (a private Redis, ``spikeserve api`` and one
``spikeserve worker``):

    python -m benchmarks.sweep [--points 64] [--rounds 3] [--live-jobs 5]

1. A 64-point sweep of a small network (``Client.sweep``, waited for, then its summary table),
   its points run as the entries of one batch (the default where it applies) and as jobs of their
   own (``"batched": false``), against what a user does without sweeps: 64 ``client.submit``
   calls, then each job's result, counting its spikes. All end with the spike count of every
   point in hand; measured in interleaved rounds, medians.
2. How soon a running job's spikes reach a client: from the moment the worker finished a chunk
   (``finished_at`` in the chunk) to the moment ``Job.stream()`` hands it over.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from app.client import Client, wait_until_ready
from app.redis_server import RedisServer, free_port
from benchmarks.load import percentile

BIN = pathlib.Path(sys.executable).parent
SMALL = {  # 100 Poisson inputs -> 200 LIF neurons for 1,000 steps: a few milliseconds of work
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc",
                "in_features": 100,
                "out_features": 200,
                "weight": {"init": "uniform", "low": 0, "high": 0.3},
            },
            {"type": "lif", "name": "out"},
        ]
    },
    "input": {"type": "poisson", "rates": 20.0, "shape": [100], "steps": 1000},
}


def live_request(steps: int) -> dict:
    """2,000 neurons, 20 of them driven to spike: chunks of a few milliseconds of work each."""
    return {
        "network": {"layers": [{"type": "lif", "name": "n"}]},
        "input": {
            "type": "constant",
            "value": [0.2 + 0.01 * k for k in range(20)] + [0.1] * 1980,
            "shape": [2000],
            "steps": steps,
        },
        "record": {"live": ["n"]},
    }


def as_sweep(client: Client, points: int, batched: bool) -> float:
    started = time.perf_counter()
    sweep = client.submit_sweep(
        {"base": SMALL, "axes": [{"path": "input.rates", "values": [5.0 + k for k in range(points)]}], "batched": batched}
    )
    if sweep.wait(timeout=600)["status"] != "succeeded":
        raise RuntimeError(f"sweep {sweep.id} did not succeed")
    counts = sweep.summary().column("out.spikes")
    assert len(counts) == points
    return time.perf_counter() - started


def as_jobs(client: Client, points: int) -> float:
    started = time.perf_counter()
    jobs = [client.submit({**SMALL, "input": {**SMALL["input"], "rates": 5.0 + k}}) for k in range(points)]
    counts = [job.result("json", wait=60).layers["out"].spike_count for job in jobs]
    assert len(counts) == points
    return time.perf_counter() - started


def live_delays(client: Client, jobs: int, steps: int) -> tuple[list[float], list[float]]:
    delays, periods = [], []
    for _ in range(jobs):
        previous = None
        for chunk in client.submit(live_request(steps)).stream():
            delays.append(time.time() - chunk.finished_at)
            if previous is not None:
                periods.append(chunk.finished_at - previous)
            previous = chunk.finished_at
    return delays, periods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live-jobs", type=int, default=5)
    parser.add_argument("--live-steps", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(pathlib.Path(tmp) / "redis") as redis_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
        env |= {"SPIKESERVE_REDIS_URL": redis_server.url, "SPIKESERVE_MAX_JOBS_IN_FLIGHT_PER_KEY": str(args.points)}
        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        api = subprocess.Popen([str(BIN / "spikeserve"), "api", "--port", str(port)], **quiet)
        worker = subprocess.Popen([str(BIN / "spikeserve"), "worker"], **quiet)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, processes=[api, worker])
            with Client(url) as client:
                as_sweep(client, 4, True), as_sweep(client, 4, False), as_jobs(client, 4)  # warm-up
                batched_s, sweep_s, jobs_s = [], [], []
                for _ in range(args.rounds):
                    batched_s.append(as_sweep(client, args.points, True))
                    sweep_s.append(as_sweep(client, args.points, False))
                    jobs_s.append(as_jobs(client, args.points))
                delays, periods = live_delays(client, args.live_jobs, args.live_steps)
        finally:
            for process in (api, worker):
                process.terminate()
                process.wait(30)
    jobs_median = statistics.median(jobs_s)
    print(f"| {args.points} points of a small network, one worker | median of {args.rounds} | per point | vs submissions |")
    print("|---|---|---|---|")
    for name, times in (("one sweep, points batched", batched_s), ("one sweep, points as jobs", sweep_s)):
        median = statistics.median(times)
        print(f"| {name} (wait, summary) | {median:.3f} s | {1000 * median / args.points:.2f} ms | {jobs_median / median:.2f}x |")
    print(
        f"| {args.points} submissions, then each result | {jobs_median:.3f} s | {1000 * jobs_median / args.points:.2f} ms | 1x |"
    )
    print()
    ms = lambda values, q: 1000 * percentile(values, q)  # noqa: E731
    print(
        f"{len(delays)} live chunks of {args.live_jobs} jobs; a chunk finished every {1000 * statistics.median(periods):.1f} ms"
    )
    print("| chunk finished -> client has its spikes | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|")
    print("| `Job.stream()` | " + " | ".join(f"{ms(delays, q):.1f} ms" for q in (0.5, 0.9, 0.99, 1.0)) + " |")


if __name__ == "__main__":
    main()
