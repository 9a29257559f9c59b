"""The standard benchmarks with synaptic channels and plasticity, side by side with Brian2 and NEST:
Brette et al.'s (2007) CUBA and COBA networks (``examples/cuba.json``, ``examples/coba.json``) and
Song, Miller & Abbott's (2000) STDP experiment (``examples/stdp_song2000.json``).

    python -m benchmarks.cuba_coba_stdp [--models cuba,coba,stdp] [--seeds 1,2,3] [--repeats 2]
        [--brian2-python PY --brian2-scripts DIR] [--nest-python PY] [--stdp-seconds 100]

Each model runs for every seed on each side; statistics are the means over the seeds (each side
draws its own network from a seed, so single runs differ; the distribution is what is compared),
times are the best of ``--repeats`` runs of the first seed:

- spikeserve, the engine in this process: ``loop`` the simulation after the network is built (the
  network kernel), ``build`` drawing the network; ``total`` from submitting the request to a
  running service (``spikeserve serve``'s API and worker on a private Redis, as a user's laptop or
  cluster runs them) to having its result (NPZ) in hand through the Python client: what a user
  waits for; ``spikeserve run``: a fresh process from the command to the result on disk (Python
  and torch starting included).
- Brian2 2.11 (C++ standalone, one thread): the Brian2 scripts of the same models
  (``--brian2-scripts``: a directory holding ``brian2_cuba.py``, ``brian2_coba.py`` and
  ``brian2_stdp.py``, each writing its statistics and times as JSON), run from a fresh work
  directory: ``loop`` its simulation loop, ``total`` its whole run from starting Python, code
  generation and compilation included (its user waits for those too). The STDP script runs with
  ``--no-input-monitor``: nothing records the inputs here either.
- NEST 3.10 (2 threads): ``benchmarks/nest_models.py`` under ``--nest-python``: ``loop`` its
  ``Run``, ``total`` the process from start to the spikes (and weights) on disk.

Statistics: CUBA and COBA the rates of E and I over [0, 1 s) and the mean CV of the inter-spike
intervals of neurons with at least 3 spikes; STDP the final weights as fractions of w_max (the
fractions below 0.1 and above 0.9, the mean), the postsynaptic rate over the last 10 s, and a
two-sample Kolmogorov-Smirnov test of the pooled final weights against each peer's.
"""

import argparse
import functools
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import stats as scipy_stats

from app.client import Client
from benchmarks.brunel import job_run, spike_statistics
from benchmarks.service import local_service
from worker.simulation.graph_runner import GraphRun
from worker.simulation.plan import parse_request
from worker.simulation.runner import simulate

ROOT = pathlib.Path(__file__).parents[1]
EXAMPLES = {"cuba": "cuba.json", "coba": "coba.json", "stdp": "stdp_song2000.json"}
SIZES = {"E": 3200, "I": 800}
W_MAX = 0.01  # the STDP example's


def request_of(model: str, seed: int, stdp_seconds: float) -> dict[str, Any]:
    request = json.loads((ROOT / "examples" / EXAMPLES[model]).read_text()) | {"seed": seed}
    if model == "stdp":
        request["steps"] = round(stdp_seconds / request["dt"])
    return request


def weight_statistics(weights: np.ndarray, post_times_s: np.ndarray, seconds: float) -> dict[str, Any]:
    """Final weights (fractions of w_max) and the postsynaptic rate over the last 10 s, as the
    Brian2 STDP script reports them."""
    window = min(10.0, seconds)
    return {
        "below_0.1": float((weights < 0.1).mean()),
        "above_0.9": float((weights > 0.9).mean()),
        "w_mean": float(weights.mean()),
        "post_rate": float((post_times_s >= seconds - window).sum() / window),
        "weights": np.sort(weights),
    }


def engine_loop(request: dict[str, Any]) -> tuple[float, float]:
    """(build, loop) seconds of the network as the runner builds and steps it."""
    parsed, plan = parse_request(request)
    assert plan.cost is not None
    started = time.perf_counter()
    run = GraphRun(parsed, plan, torch.device("cpu"), keep=frozenset(plan.record_spikes))
    built = time.perf_counter()
    states = None
    for start in range(0, plan.steps, plan.cost.chunk_steps):
        _, states = run.chunk(start, min(plan.steps, start + plan.cost.chunk_steps), states)
    return built - started, time.perf_counter() - built


def engine_figures(model: str, request: dict[str, Any]) -> dict[str, Any]:
    parsed, plan = parse_request(request)
    result = simulate(parsed, plan)
    seconds = plan.steps * parsed.dt
    if model == "stdp":
        post = result.layers["neuron"]
        assert post.times is not None
        return weight_statistics(result.weights["plastic"].final / W_MAX, post.times * parsed.dt, seconds)
    times, senders, offset = [], [], 0
    for name in SIZES:
        layer = result.layers[name]
        assert layer.times is not None and layer.senders is not None
        times.append(layer.times * parsed.dt)
        senders.append(layer.senders + offset)
        offset += SIZES[name]
    return spike_statistics(np.concatenate(times), np.concatenate(senders), SIZES, seconds)


def brian2_run(python: str, scripts: str, model: str, seed: int, stdp_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "result.json"
        script = str(pathlib.Path(scripts) / f"brian2_{model}.py")
        command = [python, script, "--mode", "cpp", "--seed", str(seed), "--workdir", scratch, "--out", str(out)]
        if model == "stdp":
            command += ["--duration", str(stdp_seconds), "--no-input-monitor"]
        subprocess.run(command, check=True, capture_output=True)
        found = json.loads(out.read_text())
    figures = {"loop_s": found["t_loop"], "total_s": found["t_total"]}
    if model == "stdp":
        return figures | {
            "below_0.1": found["frac_below_0p1"], "above_0.9": found["frac_above_0p9"], "w_mean": found["w_mean"],
            "post_rate": found["rate_post_last10s"], "weights": np.asarray(found["w_end_sorted"]),
        }  # fmt: skip
    return figures | {key: found[key] for key in ("rate_E", "rate_I", "cv_mean")}


def nest_run(python: str, model: str, seed: int, stdp_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "result.npz"
        command = [python, str(ROOT / "benchmarks" / "nest_models.py"), model, "--seed", str(seed), "--out", str(out)]
        if model == "stdp":
            command += ["--seconds", str(stdp_seconds)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        total = time.perf_counter() - started
        found = dict(np.load(out))
    seconds, times = float(found["seconds"]), found["times"] * 1e-4
    figures = {"loop_s": float(found["t_simulate"]), "total_s": total}
    if model == "stdp":
        return figures | weight_statistics(found["weights"], times, seconds)
    return figures | spike_statistics(times, found["senders"], SIZES, seconds)


STATISTICS = {"cuba": ("rate_E", "rate_I", "cv_mean"), "coba": ("rate_E", "rate_I", "cv_mean"),
              "stdp": ("below_0.1", "above_0.9", "w_mean", "post_rate")}  # fmt: skip


def summary(model: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean statistics over the seeds' runs, the first seed's best times, and the pooled weights."""
    timed = [run for run in runs if "loop_s" in run]
    figures = {key: float(np.mean([run[key] for run in runs])) for key in STATISTICS[model]}
    if timed:
        figures |= {key: min(run[key] for run in timed) for key in ("loop_s", "total_s")}
    if model == "stdp":
        figures["weights"] = np.concatenate([run["weights"] for run in runs])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cuba,coba,stdp")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of the first seed (best taken)")
    parser.add_argument("--brian2-python", help="a Python with Brian2 2.11 (3.13 or later)")
    parser.add_argument("--brian2-scripts", help="the directory of brian2_cuba.py, brian2_coba.py and brian2_stdp.py")
    parser.add_argument("--nest-python", help="a Python with NEST 3.10")
    parser.add_argument("--stdp-seconds", type=float, default=100.0)
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; times: best of {args.repeats}, seed {seeds[0]}; "
          f"statistics: mean of seeds {args.seeds}")  # fmt: skip
    models = args.models.split(",")
    # the loops first, with nothing running beside them (an idle service's processes still wake
    # up, and a kernel on both cores waits at every step's barrier for the slower one)
    loops = {
        model: [engine_loop(request_of(model, seeds[0], args.stdp_seconds)) for _ in range(args.repeats)] for model in models
    }
    with local_service() as service:
        submitted = {
            model: service_times(service, request_of(model, seeds[0], args.stdp_seconds), args.repeats) for model in models
        }
    for model in models:
        report(model, measure(model, args, seeds, loops[model], submitted[model]))
    return 0


def service_times(service: str, request: dict[str, Any], repeats: int) -> float:
    """The best of ``repeats`` runs through the service, after one that warms its worker up."""
    with Client(service) as client:
        service_run(client, request)
        return min(service_run(client, request) for _ in range(repeats))


def service_run(client: Client, request: dict[str, Any]) -> float:
    """Seconds from submitting ``request`` to a running service to having its NPZ result."""
    started = time.perf_counter()
    job = client.submit(request)
    job.wait(timeout=3600)  # answered as soon as the job ends (a long poll)
    job.result_bytes("npz")
    return time.perf_counter() - started


def measure(
    model: str, args: argparse.Namespace, seeds: list[int], loops: list[tuple[float, float]], submitted: float
) -> dict[str, dict[str, Any]]:
    """Each side's figures for one model (``loops``: spikeserve's (build, loop) times, ``submitted``
    its best time through the service)."""
    sides: dict[str, dict[str, Any]] = {}
    first = request_of(model, seeds[0], args.stdp_seconds)
    ours = [engine_figures(model, request_of(model, seed, args.stdp_seconds)) for seed in seeds]
    ours[0] |= {"loop_s": min(loop for _, loop in loops), "total_s": submitted}
    run_s = min(job_run(first) for _ in range(args.repeats))
    sides["spikeserve"] = summary(model, ours) | {"build_s": min(build for build, _ in loops), "run_s": run_s}
    if args.brian2_python and args.brian2_scripts:
        brian2 = functools.partial(brian2_run, args.brian2_python, args.brian2_scripts, model)
        sides["Brian2 C++"] = summary(model, peer_runs(lambda seed: brian2(seed, args.stdp_seconds), seeds, args.repeats))
    if args.nest_python:
        nest = functools.partial(nest_run, args.nest_python, model)
        sides["NEST, 2 threads"] = summary(model, peer_runs(lambda seed: nest(seed, args.stdp_seconds), seeds, args.repeats))
    return sides


def peer_runs(run: Callable[[int], dict[str, Any]], seeds: list[int], repeats: int) -> list[dict[str, Any]]:
    """A peer's runs: the first seed's fastest of ``repeats`` (its times count), the other seeds
    once each, for their statistics only."""
    first = min((run(seeds[0]) for _ in range(repeats)), key=lambda found: found["loop_s"])
    return [first, *({key: value for key, value in run(seed).items() if not key.endswith("_s")} for seed in seeds[1:])]


def report(model: str, sides: dict[str, dict[str, Any]]) -> None:
    names = STATISTICS[model]
    print(f"\n{model.upper()}\n")
    print("| side | loop | total | " + " | ".join(names) + (" | KS vs spikeserve (D, p) |" if model == "stdp" else " |"))
    print("|---" * (3 + len(names) + (model == "stdp")) + "|")
    ours = sides["spikeserve"]
    for side, figures in sides.items():
        cells = [side, f"{figures['loop_s']:.3f} s", f"{figures['total_s']:.2f} s"]
        cells += [f"{figures[name]:.3f}" for name in names]
        if model == "stdp":
            test = scipy_stats.ks_2samp(ours["weights"], figures["weights"]) if side != "spikeserve" else None
            cells.append(f"{test.statistic:.3f}, {test.pvalue:.2g}" if test is not None else "")
        print("| " + " | ".join(cells) + " |")
    peers = {side: figures for side, figures in sides.items() if side != "spikeserve"}
    if peers:
        fastest_loop = min(figures["loop_s"] for figures in peers.values())
        fastest_total = min(figures["total_s"] for figures in peers.values())
        print(f"\nloop: {fastest_loop / ours['loop_s']:.1f}x the fastest peer's; from submitting to the result: "
              f"{fastest_total / ours['total_s']:.1f}x; spikeserve's build {ours['build_s']:.3f} s, "
              f"`spikeserve run` {ours['run_s']:.2f} s")  # fmt: skip
        for side, figures in peers.items():
            deviations = ", ".join(
                f"{name} {100 * (ours[name] / figures[name] - 1):+.1f}%" if name.startswith(("rate", "post"))
                else f"{name} {ours[name] - figures[name]:+.3f}"
                for name in names
            )  # fmt: skip
            print(f"spikeserve against {side}: {deviations}")


if __name__ == "__main__":
    sys.exit(main())
