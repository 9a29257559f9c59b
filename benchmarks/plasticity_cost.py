"""What STDP adds to a projection's cost, at the same spikes: Brunel's network (``examples/brunel.json``
with populations of ``lif_channels``, the same neurons: delta synapses, a 2 ms refractory period
with the membrane held) with and without STDP on its E->E edge, and that edge's spikes replayed.

    python -m benchmarks.plasticity_cost [--n 10000] [--repeats 3]

1. The network, 1 s: the network kernel's loop with E->E static, and with E->E plastic (the
   weight's bounds both J, so that every update is computed and clipped back to J and the
   network's activity stays Brunel's).
2. The E->E projection alone, at exactly the same spikes: E's spikes of that run are replayed as an
   input that forces a population of as many neurons to spike at the same steps (so the
   postsynaptic spikes are E's too), through the E->E connectivity (800 sources a target) with
   weight 0: the loop without the edge (t0), with it static (t1; one weight for all, stored once),
   static with a weight per synapse (tw; what a plastic edge must store), and plastic (t2). The
   edge's cost is t1 - t0 (or tw - t0) static and t2 - t0 plastic; the ratios are what plasticity
   adds. The plastic edge runs twice: its rows in vector registers (AVX-512 or AVX2, where the
   CPU has them) and one synapse at a time. The replays are interleaved round after round.
3. Memory per plastic synapse: the plastic projection's arrays, divided by its synapses.
"""

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch

from benchmarks.brunel import brunel_request
from benchmarks.cuba_coba_stdp import engine_loop
from worker.engine import network
from worker.simulation.graph_runner import GraphRun
from worker.simulation.plan import parse_request
from worker.simulation.runner import simulate

J = 0.1
HELD = {"tau_mem_inv": 50.0, "v_leak": 0.0, "v_th": 20.0, "v_reset": 10.0, "rho_reset": 20.0}


def channelled_brunel(n: int, plastic: bool) -> dict[str, Any]:
    """Brunel's network with lif_channels populations (delta input only), E->E plastic or not."""
    request = brunel_request(n)
    for node in request["network"]["nodes"]:
        if node["type"] == "lifbox_refrac":
            node["type"], node["params"] = "lif_channels", dict(HELD)
    for edge in request["network"]["edges"]:
        if plastic and edge["from"] == edge["to"] == "E":
            edge["plasticity"] = {"type": "stdp", "a_pre": 0.001, "a_post": -0.00105, "w_min": J, "w_max": J}
    return request | {"record": {"spikes": ["E"]}}


def replay(n_e: int, times: np.ndarray, senders: np.ndarray, edge: str | None) -> dict[str, Any]:
    """E's spikes forcing a population of as many neurons (at the same steps), with the E->E
    connectivity from the spikes onto it: ``edge`` None, "static" (one weight for all synapses),
    "weights" (static, a weight per synapse, as a plastic edge has) or "plastic"."""
    nodes = [
        {"name": "spikes", "type": "spikes", "times": times.tolist(), "indices": senders.tolist(), "size": n_e},
        {"name": "E", "type": "lif_channels", "size": n_e, "params": {"tau_mem_inv": 50.0, "v_th": 20.0, "v_reset": 0.0}},
    ]
    edges: list[dict[str, Any]] = [{"from": "spikes", "to": "E", "type": "one_to_one", "weight": 100.0}]
    if edge is not None:
        connectivity = {"name": "E->E", "from": "spikes", "to": "E", "type": "fixed_in_degree", "k": 800, "weight": 0.0,
                        "delay": 15, "autapses": False}  # fmt: skip
        if edge == "weights":
            connectivity["weight"] = {"init": "uniform", "low": 0.0, "high": 0.0}
        if edge == "plastic":
            connectivity["plasticity"] = {"type": "stdp", "a_pre": 0.001, "a_post": -0.00105, "w_min": 0.0, "w_max": 0.0}
        edges.append(connectivity)
    return {"dt": 1e-4, "steps": 10000, "seed": 1, "network": {"nodes": nodes, "edges": edges}, "record": {"spikes": ["E"]}}


def best_loop(request: dict[str, Any], repeats: int) -> float:
    return min(engine_loop(request)[1] for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    library = network.library()
    lanes = library.network_vector_lanes() if library is not None else 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; Brunel N = {args.n:,}, 1 s; best of {args.repeats}; "
          f"plastic rows {lanes} synapses at a time")  # fmt: skip
    runs = {}
    for plastic in (False, True):
        request = channelled_brunel(args.n, plastic)
        result = simulate(*parse_request(request))
        runs[plastic] = (best_loop(request, args.repeats), result)
    static, plastic = runs[False], runs[True]
    e = static[1].layers["E"]
    assert e.times is not None and e.senders is not None
    print("\n| network | loop | E spikes |\n|---|---|---|")
    for name, (loop, result) in (("E->E static", static), ("E->E plastic", plastic)):
        print(f"| {name} | {loop:.3f} s | {result.layers['E'].spike_count:,} |")
    n_e = args.n * 4 // 5
    # the replays interleaved, round after round (the machine's drift falls on all alike), the
    # plastic edge with its rows in vector registers (where the CPU has them) and one synapse at a time
    variants = {"none": None, "static": "static", "weights": "weights", "plastic": "plastic", "plastic, scalar rows": "plastic"}
    requests = {name: replay(n_e, e.times, e.senders, edge) for name, edge in variants.items()}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeats):
        for name, request in requests.items():
            network.VECTOR = name != "plastic, scalar rows"
            best[name] = min(best[name], engine_loop(request)[1])
    network.VECTOR = True
    t0, t1, tw, t2, ts = best.values()
    print(f"\nReplay of the {e.spike_count:,} E spikes: without the edge {t0:.3f} s, static with one weight {t1:.3f} s, "
          f"static with a weight per synapse {tw:.3f} s, plastic {t2:.3f} s (scalar rows {ts:.3f} s);")  # fmt: skip
    print(f"the E->E projection's cost: static {t1 - t0:.3f} s, static with weights {tw - t0:.3f} s, plastic {t2 - t0:.3f} s: "
          f"{(t2 - t0) / (t1 - t0):.2f}x and {(t2 - t0) / (tw - t0):.2f}x (scalar rows {ts - t0:.3f} s: "
          f"{(ts - t0) / (tw - t0):.2f}x the static edge with weights)")  # fmt: skip
    request, plan = parse_request(replay(n_e, e.times[:1], e.senders[:1], "plastic"))
    run = GraphRun(request, plan, torch.device("cpu"))
    edge = next(edge for edge in run.edges if edge.plastic is not None)
    assert edge.plastic is not None
    synapses = edge.plastic.projection.synapses
    print(f"memory: {edge.plastic.bytes() / synapses:.2f} bytes per plastic synapse ({synapses:,} synapses, "
          f"{edge.plastic.bytes() / 2**20:.1f} MiB with the per-neuron arrays)")  # fmt: skip
    print(json.dumps({"static_s": static[0], "plastic_s": plastic[0], "t0": t0, "t1": t1, "tw": tw, "t2": t2, "t2_scalar": ts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
