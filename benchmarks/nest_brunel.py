"""Brunel's (2000) network, model A, in NEST 3.10, for ``benchmarks/brunel.py``:

    NEST_PYTHON benchmarks/nest_brunel.py --n 10000 --seed K --out RESULT.npz [--threads 2]

The network of ``examples/brunel.json`` (and of NEST's own ``brunel_delta_nest.py``):
``iaf_psc_delta`` neurons (C_m 1 pF so that a weight is a jump in mV; tau_m 20 ms, E_L 0,
V_th 20 mV, V_reset 10 mV, t_ref 2 ms), 0.8 n excitatory and 0.2 n inhibitory; fixed in-degree
800 excitatory and 200 inhibitory inputs per neuron, no autapses and no multapses, J = 0.1 mV,
J_I = -0.5 mV, delay 1.5 ms; the external drive one ``poisson_generator`` at 800 x 25 Hz with
weight J; V_m uniform in [0, 20) mV; dt 0.1 ms, 1 s. The drive and the spike recorder connect
with the delay D too: a shorter delay anywhere shortens NEST's communication interval to it and
slows NEST down (NEST's example does the same).

Writes the spikes (senders as 0-based indices, times in ms) and the times: ``t_import``,
``t_build`` (nodes and connections), ``t_simulate``. This file runs under NEST's Python and imports
nothing of spikeserve.
"""

import argparse
import time

started = time.perf_counter()
import nest  # noqa: E402
import numpy as np  # noqa: E402

imported = time.perf_counter() - started
DT, D, J, G = 0.1, 1.5, 0.1, 5.0  # ms, ms, mV, inhibitory weight ratio
NEURON = {"C_m": 1.0, "tau_m": 20.0, "t_ref": 2.0, "E_L": 0.0, "V_reset": 10.0, "V_th": 20.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    n_e, n_i = args.n * 4 // 5, args.n // 5
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": DT, "local_num_threads": args.threads, "rng_seed": args.seed, "print_time": False})
    building = time.perf_counter()
    neurons = nest.Create("iaf_psc_delta", n_e + n_i, params=NEURON)
    neurons.V_m = nest.random.uniform(0.0, NEURON["V_th"])
    excitatory, inhibitory = neurons[:n_e], neurons[n_e:]
    drive = nest.Create("poisson_generator", params={"rate": 800 * 25.0})
    recorder = nest.Create("spike_recorder")
    nest.Connect(drive, neurons, syn_spec={"weight": J, "delay": D})
    for source, indegree, weight in ((excitatory, 800, J), (inhibitory, 200, -G * J)):
        rule = {"rule": "fixed_indegree", "indegree": indegree, "allow_autapses": False, "allow_multapses": False}
        nest.Connect(source, neurons, rule, {"weight": weight, "delay": D})
    nest.Connect(neurons, recorder, syn_spec={"delay": D})
    built = time.perf_counter() - building
    simulating = time.perf_counter()
    nest.Simulate(args.seconds * 1000.0)
    simulated = time.perf_counter() - simulating
    events = recorder.get("events")
    np.savez(
        args.out,
        senders=np.asarray(events["senders"], dtype=np.int64) - neurons[0].global_id,
        times_ms=np.asarray(events["times"], dtype=np.float64),
        n_e=n_e, n_i=n_i, seconds=args.seconds, threads=args.threads,
        t_import=imported, t_build=built, t_simulate=simulated,
    )  # fmt: skip


if __name__ == "__main__":
    main()
