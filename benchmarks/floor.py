"""How far spikeserve's Brunel loop is from the floor: ``floor_brunel.c`` (the same network and
events in the plainest fast C loop; its header says what it leaves out) built here and run beside
the engine's simulation loop of ``examples/brunel.json``, at each thread count.

    python -m benchmarks.floor [--n 10000] [--steps 10000] [--threads 1,2] [--repeats 3] [--busy K]

Prints, per thread count, the best of ``--repeats`` for both, their ratio, and both networks'
E and I rates (the floor's must agree with the engine's for the comparison to mean anything).
"""

import argparse
import os
import pathlib
import subprocess
import tempfile

import torch

from benchmarks.brunel import brunel_request, engine_run
from benchmarks.busy import busy_cores
from worker.engine_options import ENGINE

SOURCE = pathlib.Path(__file__).with_name("floor_brunel.c")


def build(directory: pathlib.Path) -> pathlib.Path:
    """The floor's program, compiled as the engine's kernels are (-O3, the machine's vector
    instructions, OpenMP, no contraction of multiplies and adds)."""
    binary = directory / "floor_brunel"
    command = ["gcc", "-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-o", str(binary), str(SOURCE), "-lm"]
    subprocess.run(command, check=True)
    return binary


def floor_run(binary: pathlib.Path, n: int, steps: int, threads: int, seed: int) -> dict[str, float]:
    out = subprocess.run([str(binary), str(n), str(steps), str(threads), str(seed)], capture_output=True, text=True, check=True)
    seconds, spikes_e, spikes_i = out.stdout.split()
    network_s = steps * 1e-4
    rates = {"rate_E": int(spikes_e) / (0.8 * n) / network_s, "rate_I": int(spikes_i) / (0.2 * n) / network_s}
    return {"loop_s": float(seconds), **rates}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="processes kept spinning beside both")
    args = parser.parse_args(argv)
    request = brunel_request(args.n)
    request["steps"] = args.steps
    print(f"Brunel N = {args.n:,}, {args.steps:,} steps; best of {args.repeats}; {args.busy} busy processes beside")
    print(f"{'threads':>7} {'floor s':>8} {'ours s':>8} {'ours/floor':>10}   rates E/I Hz: floor, ours")
    with tempfile.TemporaryDirectory() as directory, busy_cores(args.busy):
        binary = build(pathlib.Path(directory))
        for threads in (int(t) for t in args.threads.split(",")):
            floors = [floor_run(binary, args.n, args.steps, threads, seed) for seed in range(1, args.repeats + 1)]
            saved, ENGINE.threads = ENGINE.threads, threads
            torch.set_num_threads(threads)
            try:
                ours = [engine_run(request) for _ in range(args.repeats)]
            finally:
                ENGINE.threads = saved
            floor, engine = min(floors, key=lambda run: run["loop_s"]), min(ours, key=lambda run: run["loop_s"])
            print(
                f"{threads:>7} {floor['loop_s']:>8.3f} {engine['loop_s']:>8.3f} {engine['loop_s'] / floor['loop_s']:>10.2f}"
                f"   {floor['rate_E']:.1f}/{floor['rate_I']:.1f}, {engine['rate_E']:.1f}/{engine['rate_I']:.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
