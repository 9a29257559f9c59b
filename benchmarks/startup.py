"""`spikeserve run` from the command to its first step: a process of its own against the resident
engine (`spikeserve engine start`).

What a user waits for is the command's wall time; the run's own time is the summary line's
``in X s`` (the network built and simulated). The rest, the command's time less the run's, is the
overhead around the simulation: starting Python, imports, loading the kernels, parsing the
request before the first step, and writing the result and leaving after the last; so it bounds
the time before the first step from above.

    python -m benchmarks.startup [--repeats 5] [--busy 1] [--requests examples/seed.json,...]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from app.resident import SOCKET_VARIABLE
from benchmarks.busy import busy_cores

ROOT = pathlib.Path(__file__).parents[1]
SPIKESERVE = pathlib.Path(sys.executable).parent / "spikeserve"


def timed_run(request: pathlib.Path, env: dict[str, str], *options: str) -> tuple[float, float]:
    """(the command's seconds, the run's own seconds from its summary line)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [str(SPIKESERVE), "run", str(request), "-q", "-o", f"{scratch}/result.npz", *options]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
        total = time.perf_counter() - started
    return total, float(done.stdout.split(" in ")[1].split(" s,")[0])


def measure(request: pathlib.Path, env: dict[str, str], repeats: int, *options: str) -> dict[str, float]:
    runs = [timed_run(request, env, *options) for _ in range(repeats)]
    return {
        "command_s": statistics.median(total for total, _ in runs),
        "overhead_s": statistics.median(total - run for total, run in runs),
        "overhead_max_s": max(total - run for total, run in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside the runs")
    parser.add_argument("--requests", default="examples/seed.json,examples/brunel.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, **{SOCKET_VARIABLE: f"{scratch}/engine/engine.sock"})
        started = time.perf_counter()
        subprocess.run([str(SPIKESERVE), "engine", "start"], check=True, env=env, capture_output=True)
        engine_start_s = time.perf_counter() - started
        figures = {"engine_start_s": round(engine_start_s, 3), "busy": args.busy, "requests": {}}
        try:
            with busy_cores(args.busy):
                for name in args.requests.split(","):
                    request = ROOT / name
                    alone = measure(request, env, args.repeats, "--no-engine")
                    engine = measure(request, env, args.repeats)
                    figures["requests"][name] = {"alone": alone, "engine": engine}
        finally:
            subprocess.run([str(SPIKESERVE), "engine", "stop"], check=True, env=env, capture_output=True)
    print(f"engine start (imports, kernels): {engine_start_s:.2f} s; busy processes: {args.busy}")
    print("| request | command alone | in the engine | overhead alone | in the engine | ratio |")
    print("|---|---|---|---|---|---|")
    for name, entry in figures["requests"].items():
        alone, engine = entry["alone"], entry["engine"]
        ratio = alone["overhead_s"] / engine["overhead_s"]
        print(
            f"| {name} | {alone['command_s']:.3f} s | {engine['command_s']:.3f} s | {alone['overhead_s']:.3f} s "
            f"| {engine['overhead_s']:.3f} s (max {engine['overhead_max_s']:.3f}) | {ratio:.1f}x |"
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
