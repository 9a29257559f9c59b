"""Brunel's (2000) balanced network, model A, built from the engine's parts directly (the request
format cannot express a graph yet): the first look at what the refractory delta neurons and the
sparse projections with delays do together, at the scale of the reference network.

    python -m benchmarks.brunel [--ne 8000 --ni 2000] [--duration 1.0] [--seed 1]

The network (as Brunel 2000, Fig. 8C; NEST's brunel_delta_nest.py): NE excitatory and NI
inhibitory box LIF neurons with delta synapses (tau_m 20 ms, V_th 20 mV, V_reset 10 mV,
refractory 2 ms with V held and input lost, V_leak 0); fixed in-degree CE = NE/10 excitatory and
CI = NI/10 inhibitory inputs per neuron, no multapses, J = 0.1 mV, J_I = -g J with g = 5, one
delay of 1.5 ms; 800 external Poisson sources per neuron at 2 x the threshold rate (25 Hz each,
weight J); dt 0.1 ms; initial V uniform in [0, V_th). Printed: the time to build and to simulate,
the E and I rates, the mean CV of the inter-spike intervals, and the Fano factor of the
population's 1 ms spike counts (a measure of its oscillation), beside Brian2's figures for the
same network measured on this machine for issue 15 (E 42.4 Hz, I 42.6 Hz, CV 0.34, Fano about
100; C++ standalone 10.0 s for 1 s of network time).
"""

import argparse
import sys
import time

import torch

import worker.engine as snn
from worker.engine import projections as proj


def run(ne: int, ni: int, duration_s: float, seed: int) -> dict[str, float]:
    dt, delay_ms, j, g = 0.1e-3, 1.5, 0.1, 5.0
    n, ce, ci = ne + ni, ne // 10, ni // 10
    steps, delay = round(duration_s / dt), round(delay_ms * 1e-3 / dt)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    excitatory = proj.fixed_in_degree(ne, n, ce, generator, weight=j, delay=delay)
    inhibitory = proj.fixed_in_degree(ni, n, ci, generator, weight=-g * j, delay=delay)
    ring = proj.DelayRing(delay + 1, 1, n)
    p = snn.LIFBoxRefracParameters(tau_mem_inv=50.0, v_th=20.0, v_reset=10.0, synapse="delta", rho_reset=round(2e-3 / dt))
    cell = snn.LIFBoxRefracCell(p, dt=dt)
    state = snn.LIFBoxRefracFeedForwardState(v=torch.rand(1, n, generator=generator) * 20.0, rho=torch.zeros(1, n))
    nu_threshold = 20.0 / (j * ce * 20e-3)  # the external rate that alone brings V to threshold
    external = torch.distributions.Binomial(ce, probs=torch.tensor(2 * nu_threshold * dt))
    built = time.perf_counter()
    spikes = torch.zeros(steps, n, dtype=torch.bool)
    torch.manual_seed(seed)  # the external drive's draws
    for step in range(steps):
        x = ring.take(step) + j * external.sample((1, n))
        z, state = cell(x, state)
        fired = z.bool()
        spikes[step] = fired[0]
        if fired.any():
            proj.project(fired[:, :ne], excitatory, ring, step)
            proj.project(fired[:, ne:], inhibitory, ring, step)
    simulated = time.perf_counter()
    return {"build_s": built - started, "simulate_s": simulated - built, **statistics(spikes, ne, dt)}


def statistics(spikes: torch.Tensor, ne: int, dt: float) -> dict[str, float]:
    steps = spikes.shape[0]
    seconds = steps * dt
    counts = spikes.sum(0).double()
    cvs = []
    for neuron in range(spikes.shape[1]):
        times = spikes[:, neuron].nonzero().flatten().double()
        if times.numel() >= 3:
            isi = times.diff()
            cvs.append(float(isi.std(unbiased=False) / isi.mean()))
    per_ms = spikes.sum(1).double()[: steps - steps % 10].reshape(-1, 10).sum(1)
    return {
        "rate_e_hz": float(counts[:ne].mean() / seconds),
        "rate_i_hz": float(counts[ne:].mean() / seconds),
        "cv_isi": sum(cvs) / len(cvs) if cvs else float("nan"),
        "fano_1ms": float(per_ms.var(unbiased=False) / per_ms.mean()) if per_ms.mean() > 0 else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ne", type=int, default=8000)
    parser.add_argument("--ni", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=1.0, help="network time, s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    figures = run(args.ne, args.ni, args.duration, args.seed)
    threads = torch.get_num_threads()
    print(f"N = {args.ne + args.ni:,}, {args.duration} s of network time, torch {torch.__version__}, {threads} threads")
    print("| | spikeserve engine | Brian2 (issue 15, this machine) |")
    print("|---|---|---|")
    print(f"| build | {figures['build_s']:.2f} s | |")
    print(f"| simulate | {figures['simulate_s']:.2f} s | 10.0 s (C++ standalone, compile excluded) |")
    print(f"| E rate | {figures['rate_e_hz']:.1f} Hz | 42.4 Hz |")
    print(f"| I rate | {figures['rate_i_hz']:.1f} Hz | 42.6 Hz |")
    print(f"| mean CV of ISI | {figures['cv_isi']:.2f} | 0.34 |")
    print(f"| Fano factor, 1 ms population counts | {figures['fano_1ms']:.0f} | about 100 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
