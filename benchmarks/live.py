"""How soon a running job's spikes reach a client: from the moment the worker finished a chunk
(``finished_at`` in the chunk) to the moment ``Job.stream()`` hands it over.

    python -m benchmarks.live [--jobs 5] [--steps 100000]

Starts a private Redis, the API and one worker (``spikeserve api`` + ``spikeserve worker``), runs
``--jobs`` jobs of a small population with ``record.live`` one after another, and prints the
median, 90th and 99th percentiles of the delay over all their chunks, beside the chunks' own
period (how often a chunk finished). Worker and client share this machine's clock.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    delays, periods, chunks = [], [], 0
    with tempfile.TemporaryDirectory() as tmp, RedisServer(pathlib.Path(tmp) / "redis") as redis_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
        env |= {"SPIKESERVE_REDIS_URL": redis_server.url}
        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        api = subprocess.Popen([str(BIN / "spikeserve"), "api", "--port", str(port)], **quiet)
        worker = subprocess.Popen([str(BIN / "spikeserve"), "worker"], **quiet)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, processes=[api, worker])
            with Client(url) as client:
                for _ in range(args.jobs):
                    previous = None
                    for chunk in client.submit(live_request(args.steps)).stream():
                        delays.append(time.time() - chunk.finished_at)
                        if previous is not None:
                            periods.append(chunk.finished_at - previous)
                        previous = chunk.finished_at
                        chunks += 1
        finally:
            for process in (api, worker):
                process.terminate()
                process.wait(30)
    ms = lambda values, q: 1000 * percentile(values, q)  # noqa: E731
    print(f"{chunks} chunks of {args.jobs} jobs; a chunk finished every {1000 * statistics.median(periods):.1f} ms (median)")
    print("| chunk finished -> client has its spikes | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|")
    figures = " | ".join(f"{ms(delays, q):.1f} ms" for q in (0.5, 0.9, 0.99, 1.0))
    print(f"| `Job.stream()` | {figures} |")


if __name__ == "__main__":
    main()
