"""Brunel's (2000) balanced network, model A, as a spikeserve request (``examples/brunel.json`` at
N = 10,000), side by side with Brian2 and NEST running the same network.

    python -m benchmarks.brunel [--sizes 5000,10000,20000] [--repeats 2] [--seeds 1,2,3] [--device cuda]
        [--brian2-python PY --brian2-script brian2_brunel.py | --brian2-results DIR]
        [--nest-python PY [--nest-threads 2]] [--busy K] [--threads N]

``--busy K`` keeps K other processes spinning while everything runs (a shared machine);
``--threads N`` fixes spikeserve's threads, torch's and the kernels' (default: the cores other
processes leave free).

The network (Brunel 2000, Fig. 8C; NEST's brunel_delta_nest.py): 0.8 N excitatory and 0.2 N
inhibitory box LIF neurons with delta synapses (tau_m 20 ms, V_th 20 mV, V_reset 10 mV,
refractory 2 ms with V held and input lost); fixed in-degree 800 excitatory and 200 inhibitory
inputs per neuron at every N, no multapses, J = 0.1 mV, J_I = -5 J, one delay of 1.5 ms; 800
external Poisson sources per neuron at 25 Hz (weight J); dt 0.1 ms, 1 s; initial V uniform in
[0, V_th).

Measured for each N, best of ``--repeats``:
- engine: the request parsed and simulated in this process (``simulate``): the simulation loop
  alone (``stats.wall_s``) and everything from the request to the recorded spikes (connectivity
  drawn from the seed included);
- job: ``spikeserve run request.json -o result.npz`` in a fresh process, what a user waits for
  from typing the command to having the spikes on disk (Python and torch starting included).
Brian2 runs the reference script of the same network through ``benchmarks/brunel_brian2.py``
(C++ standalone; with ``--brian2-results`` its result files are read instead): its simulation
loop, and its whole run from starting Python to having the spikes (code generation and the
compilation of the C++ project included, since that is what its user waits for). NEST 3.10 runs
``benchmarks/nest_brunel.py`` under ``--nest-python`` (its own venv): ``nest.Simulate`` as its
loop, and its whole script from starting Python to having the spikes.

Statistics, computed alike for all and averaged over ``--seeds`` (one network and one drive
each; a single second of one network is a noisy sample of its oscillation): E and I rates, the
mean CV of the inter-spike intervals (neurons with at least 3 spikes), and the Fano factor of the
population's 1 ms spike counts from 0.1 s on. Times are those of the first seed.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch

from benchmarks.busy import busy_cores
from worker.engine_options import ENGINE
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

ROOT = pathlib.Path(__file__).parents[1]
SPIKESERVE = pathlib.Path(sys.executable).parent / "spikeserve"


def brunel_request(n: int) -> dict[str, Any]:
    """``examples/brunel.json`` with 0.8 n excitatory and 0.2 n inhibitory neurons (in-degrees kept)."""
    request = json.loads((ROOT / "examples" / "brunel.json").read_text())
    sizes = {"E": n * 4 // 5, "I": n // 5, "drive_E": n * 4 // 5, "drive_I": n // 5}
    for node in request["network"]["nodes"]:
        if "size" in node:
            node["size"] = sizes[node["name"]]
        else:
            node["shape"] = [sizes[node["name"]]]
    request["name"] = f"Brunel (2000) balanced network, N = {n:,}"
    return request


def statistics(result: Result, dt: float) -> dict[str, float]:
    """Rates, mean CV of ISIs and the population Fano factor, as the Brian2 script computes them."""
    times, senders, sizes = [], [], {}
    offset = 0
    for name in ("E", "I"):
        layer = result.layers[name]
        assert layer.times is not None and layer.senders is not None and layer.counts is not None
        times.append(layer.times * dt)
        senders.append(layer.senders + offset)
        sizes[name] = layer.counts.size
        offset += layer.counts.size
    return spike_statistics(np.concatenate(times), np.concatenate(senders), sizes, result.steps * dt)


def spike_statistics(t: np.ndarray, i: np.ndarray, sizes: dict[str, int], seconds: float) -> dict[str, float]:
    """Of spikes at times ``t`` (s) by neurons ``i`` of populations E and I numbered one after the
    other (``sizes``): each population's rate over the run, the mean CV of the inter-spike
    intervals of the neurons with at least 3 spikes, and the Fano factor of the 1 ms population
    counts from 0.1 s on (the Brian2 anchors' definitions)."""
    rates, first = {}, 0
    for name, size in sizes.items():
        rates[f"rate_{name}"] = float(((i >= first) & (i < first + size)).sum() / size / seconds)
        first += size
    order = np.lexsort((t, i))
    t, i = t[order], i[order]
    same = i[1:] == i[:-1]
    cvs = []
    for isi in _per_neuron(i[1:][same], np.diff(t)[same]):
        if isi.size >= 2:  # at least 3 spikes
            cvs.append(isi.std() / isi.mean())
    edges = np.arange(min(0.1, seconds / 2), seconds + 1e-9, 1e-3)
    counts, _ = np.histogram(t, bins=edges)
    return {**rates, "cv_mean": float(np.mean(cvs)), "fano_pop_1ms": float(counts.var() / counts.mean())}


def _per_neuron(neurons: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    """``values`` split into runs of equal ``neurons`` (sorted)."""
    starts = np.flatnonzero(np.r_[True, neurons[1:] != neurons[:-1]]) if neurons.size else np.zeros(0, dtype=np.int64)
    return np.split(values, starts[1:])


def engine_run(request: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    started = time.perf_counter()
    parsed, plan = parse_request(request)
    result = simulate(parsed, plan, device=device)
    return {"total_s": time.perf_counter() - started, "loop_s": result.stats["wall_s"], **statistics(result, parsed.dt)}


def job_run(request: dict[str, Any], device: str = "cpu") -> float:
    """Seconds from starting ``spikeserve run`` to its result on disk (with ``ENGINE.threads``)."""
    command = [str(SPIKESERVE)] if SPIKESERVE.exists() else [sys.executable, "-m", "app.cli"]
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch) / "request.json"
        path.write_text(json.dumps(request))
        output = str(pathlib.Path(scratch) / "result.npz")
        started = time.perf_counter()
        threads = {} if ENGINE.threads is None else {"SPIKESERVE_THREADS": str(ENGINE.threads)}
        command += ["run", str(path), "-o", output, "-q", "--device", device, "--no-engine"]
        subprocess.run(command, check=True, env=os.environ | threads)
        return time.perf_counter() - started


STATISTICS = ("rate_E", "rate_I", "cv_mean", "fano_pop_1ms")


def mean_statistics(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: float(np.mean([run[key] for run in runs])) for key in STATISTICS}


def brian2_run(python: str, script: str, n: int, seed: int, mode: str = "cpp") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "result.json"
        sizes = ["--NE", str(n * 4 // 5), "--NI", str(n // 5), "--seed", str(seed)]
        wrapper = str(ROOT / "benchmarks" / "brunel_brian2.py")
        command = [python, wrapper, script, "--mode", mode, *sizes, "--workdir", scratch, "--out", str(out)]
        subprocess.run(command, check=True, capture_output=True)
        return json.loads(out.read_text())


def nest_run(python: str, n: int, seed: int, threads: int) -> dict[str, Any]:
    """One run of ``benchmarks/nest_brunel.py``: its loop, its whole run, its spikes' statistics."""
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "result.npz"
        command = [python, str(ROOT / "benchmarks" / "nest_brunel.py"), "--n", str(n), "--seed", str(seed)]
        started = time.perf_counter()
        subprocess.run([*command, "--threads", str(threads), "--out", str(out)], check=True, capture_output=True)
        total = time.perf_counter() - started
        with np.load(out) as data:
            sizes = {"E": int(data["n_e"]), "I": int(data["n_i"])}
            figures = spike_statistics(data["times_ms"] / 1000.0, data["senders"], sizes, float(data["seconds"]))
            return {"seed": seed, "loop_s": float(data["t_simulate"]), "total_s": total, **figures}


def nest_figures(args: argparse.Namespace, n: int, seeds: list[int]) -> dict[str, Any] | None:
    """Times (best of the first seed's runs) and statistics (mean over the seeds) of NEST's runs."""
    if not args.nest_python:
        return None
    timed = [nest_run(args.nest_python, n, seeds[0], args.nest_threads) for _ in range(args.repeats)]
    others = [nest_run(args.nest_python, n, seed, args.nest_threads) for seed in seeds[1:]]
    return {
        "loop_s": min(run["loop_s"] for run in timed),
        "total_s": min(run["total_s"] for run in timed),
        **mean_statistics([timed[0], *others]),
    }


def brian2_figures(args: argparse.Namespace, n: int, seeds: list[int]) -> dict[str, Any] | None:
    """Times (best of the first seed's runs) and statistics (mean over the seeds) of Brian2's runs."""
    if args.brian2_results:
        found = [json.loads(p.read_text()) for p in pathlib.Path(args.brian2_results).glob("*.json")]
        runs = [run for run in found if run.get("N") == n and run.get("mode") == "cpp" and run.get("seed") in seeds]
    elif args.brian2_python and args.brian2_script:
        runs = [brian2_run(args.brian2_python, args.brian2_script, n, seeds[0]) for _ in range(args.repeats)]
        runs += [brian2_run(args.brian2_python, args.brian2_script, n, seed) for seed in seeds[1:]]
    else:
        return None
    timed = [run for run in runs if run["seed"] == seeds[0]]
    if not timed:
        return None
    by_seed = {run["seed"]: run for run in runs}
    return {
        "loop_s": min(r["t_loop"] for r in timed),
        "total_s": min(r["t_total"] for r in timed),
        "seeds": len(by_seed),
        **mean_statistics(list(by_seed.values())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,10000,20000", help="network sizes N, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", default="1,2,3", help="seeds whose statistics are averaged (times: the first)")
    parser.add_argument("--device", default="cpu", help="where spikeserve runs: cpu or cuda")
    parser.add_argument("--brian2-python", help="a Python with Brian2 2.11 (3.13 or later)")
    parser.add_argument("--brian2-script", help="the Brian2 script of the network (brian2_brunel.py)")
    parser.add_argument("--brian2-results", help="a directory of that script's result files, instead of running it")
    parser.add_argument("--nest-python", help="a Python with NEST 3.10 (pip install nest-simulator==3.10.0)")
    parser.add_argument("--nest-threads", type=int, default=2, help="NEST's threads (local_num_threads)")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside everything that runs")
    parser.add_argument("--threads", type=int, help="spikeserve's threads (default: the free cores)")
    args = parser.parse_args(argv)
    with busy_cores(args.busy):
        return table(args)


def table(args: argparse.Namespace) -> int:
    ENGINE.threads = args.threads
    seeds = [int(seed) for seed in args.seeds.split(",")]
    ours = args.threads or "the free cores"
    machine = f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads (spikeserve: {ours})"
    machine += f", {args.busy} busy processes beside"
    print(f"{machine}; times: best of {args.repeats}, seed {seeds[0]}; "
          f"statistics: mean of seeds {args.seeds}")  # fmt: skip
    print("| N | side | loop | whole run | loop: ours faster by | whole run: ours faster by | E / I rate (Hz) | CV | Fano |")
    print("|---" * 9 + "|")
    for n in (int(size) for size in args.sizes.split(",")):
        request = brunel_request(n) | {"seed": seeds[0]}
        engine = min((engine_run(request, args.device) for _ in range(args.repeats)), key=lambda run: run["total_s"])
        engine |= mean_statistics([engine, *(engine_run(request | {"seed": seed}, args.device) for seed in seeds[1:])])
        job = min(job_run(request, args.device) for _ in range(args.repeats))
        sides = {
            "spikeserve (in process)": engine,
            "`spikeserve run`": {**engine, "loop_s": None, "total_s": job},
            "Brian2 C++ standalone": brian2_figures(args, n, seeds),
            f"NEST 3.10 ({args.nest_threads} threads)": nest_figures(args, n, seeds),
        }
        for side, figures in sides.items():
            if figures is None:
                continue
            loop, total = figures["loop_s"], figures["total_s"]
            cells = [
                f"{n:,}", side, f"{loop:.2f} s" if loop else "", f"{total:.2f} s",
                f"{loop / engine['loop_s']:.1f}x" if loop and side.startswith(("Brian2", "NEST")) else "",
                f"{total / job:.1f}x" if side.startswith(("Brian2", "NEST")) else "",
                f"{figures['rate_E']:.2f} / {figures['rate_I']:.2f}", f"{figures['cv_mean']:.3f}",
                f"{figures['fano_pop_1ms']:.0f}",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
