"""CUBA, COBA and Song et al.'s STDP experiment in NEST 3.10, for ``benchmarks/cuba_coba_stdp.py``:

    NEST_PYTHON benchmarks/nest_models.py {cuba,coba,stdp} --seed K --out RESULT.npz [--seconds S] [--threads 2]

The models are those of ``examples/cuba.json``, ``coba.json`` and ``stdp_song2000.json`` in NEST's
units (a 200 pF cell with a 10 nS leak, so tau_m = 20 ms; the STDP neuron 100 pF and 10 nS):

- CUBA: ``iaf_psc_exp`` (exact integration), E_L -49 mV, V_th -50 mV, V_reset -60 mV, t_ref 5 ms,
  synaptic currents of 5 and 10 ms; weights 16.2 pA and -90 pA (1.62 mV and -9 mV of a current
  in voltage units: w C_m / tau_m); V_m uniform in [-60, -50) mV.
- COBA: ``iaf_cond_exp`` (NEST integrates it with an adaptive Runge-Kutta-Fehlberg 4(5) solver,
  not forward Euler), E_L -60 mV, E_ex 0 mV, E_in -80 mV, weights 6 nS and -67 nS (0.6 and 6.7
  g_L); V_m ~ N(-65, 5) mV, g_ex ~ N(40, 15) nS, g_in ~ N(200, 120) nS.
- Both: 3,200 + 800 neurons, every ordered pair but a neuron and itself connected with
  probability 0.02, delays of one step (0.1 ms: a spike acts from the next step, as Brian2's
  delay of zero and a spikeserve delay of one step).
- STDP: 1,000 ``parrot_neuron``s repeating a 15 Hz ``poisson_generator`` (independent trains),
  all onto one ``iaf_cond_exp`` (E_L -74 mV, V_th -54 mV, V_reset -60 mV, no refractory period,
  tau_syn_ex 5 ms) through ``stdp_synapse`` (additive: mu_plus = mu_minus = 0; tau_plus =
  tau_minus = 20 ms; lambda 0.01 and alpha 1.05, so each pair changes the weight by 0.01 or
  -0.0105 of Wmax; Wmax 0.1 nS = 0.01 g_L), initial weights uniform in [0, Wmax).

Writes the spikes (senders as 0-based indices, times in steps), the final weights (STDP) and the
times: ``t_import``, ``t_build`` (nodes and connections), ``t_simulate``. This file runs under
NEST's Python and imports nothing of spikeserve.
"""

import argparse
import time

started = time.perf_counter()
import nest  # noqa: E402
import numpy as np  # noqa: E402

imported = time.perf_counter() - started
DT = 0.1  # ms
N_E, N_I = 3200, 800


def network(model: str, rng: np.random.Generator) -> tuple:
    """CUBA's or COBA's 4,000 neurons, connected; their spike recorder."""
    if model == "cuba":
        params = {"C_m": 200.0, "tau_m": 20.0, "E_L": -49.0, "V_th": -50.0, "V_reset": -60.0, "t_ref": 5.0,
                  "tau_syn_ex": 5.0, "tau_syn_in": 10.0}  # fmt: skip
        neurons = nest.Create("iaf_psc_exp", N_E + N_I, params=params)
        neurons.V_m = list(-60.0 + 10.0 * rng.random(N_E + N_I))
        weights = (16.2, -90.0)
    else:
        params = {"C_m": 200.0, "g_L": 10.0, "E_L": -60.0, "V_th": -50.0, "V_reset": -60.0, "t_ref": 5.0, "E_ex": 0.0,
                  "E_in": -80.0, "tau_syn_ex": 5.0, "tau_syn_in": 10.0}  # fmt: skip
        neurons = nest.Create("iaf_cond_exp", N_E + N_I, params=params)
        neurons.V_m = list(-65.0 + 5.0 * rng.standard_normal(N_E + N_I))
        neurons.g_ex = list(40.0 + 15.0 * rng.standard_normal(N_E + N_I))
        neurons.g_in = list(200.0 + 120.0 * rng.standard_normal(N_E + N_I))
        weights = (6.0, -67.0)
    rule = {"rule": "pairwise_bernoulli", "p": 0.02, "allow_autapses": False}
    nest.Connect(neurons[:N_E], neurons, rule, {"weight": weights[0], "delay": DT})
    nest.Connect(neurons[N_E:], neurons, rule, {"weight": weights[1], "delay": DT})
    recorder = nest.Create("spike_recorder")
    nest.Connect(neurons, recorder)
    return neurons, recorder, None


def stdp(rng: np.random.Generator) -> tuple:
    neuron = nest.Create("iaf_cond_exp", 1, params={
        "C_m": 100.0, "g_L": 10.0, "E_L": -74.0, "V_th": -54.0, "V_reset": -60.0, "t_ref": 0.0, "E_ex": 0.0,
        "tau_syn_ex": 5.0, "tau_minus": 20.0, "V_m": -74.0,
    })  # fmt: skip
    generator = nest.Create("poisson_generator", params={"rate": 15.0})
    parrots = nest.Create("parrot_neuron", 1000)
    nest.Connect(generator, parrots)
    w_max = 0.1
    synapse = {"synapse_model": "stdp_synapse", "weight": rng.random((1, 1000)) * w_max, "delay": DT, "tau_plus": 20.0,
               "lambda": 0.01, "alpha": 1.05, "mu_plus": 0.0, "mu_minus": 0.0, "Wmax": w_max}  # fmt: skip
    nest.Connect(parrots, neuron, "all_to_all", synapse)
    recorder = nest.Create("spike_recorder")
    nest.Connect(neuron, recorder)
    return neuron, recorder, parrots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["cuba", "coba", "stdp"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=None, help="network time (default: 1 s; STDP 100 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    seconds = args.seconds or (100.0 if args.model == "stdp" else 1.0)
    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": DT, "local_num_threads": args.threads, "rng_seed": args.seed, "print_time": False})
    rng = np.random.default_rng(args.seed)
    built = time.perf_counter()
    neurons, recorder, parrots = stdp(rng) if args.model == "stdp" else network(args.model, rng)
    nest.Prepare()
    t_build = time.perf_counter() - built
    simulated = time.perf_counter()
    nest.Run(seconds * 1000.0)
    nest.Cleanup()
    t_simulate = time.perf_counter() - simulated
    events = recorder.get("events")
    first = min(neurons.tolist())
    arrays = {
        "senders": np.asarray(events["senders"], dtype=np.int64) - first,
        "times": np.rint(np.asarray(events["times"]) / DT).astype(np.int64) - 1,  # NEST stamps a spike at its step's end
        "t_import": np.float64(imported), "t_build": np.float64(t_build), "t_simulate": np.float64(t_simulate),
        "threads": np.int64(args.threads), "seconds": np.float64(seconds),
    }  # fmt: skip
    if parrots is not None:
        connections = nest.GetConnections(parrots, neurons)
        sources = np.asarray(connections.get("source")) - min(parrots.tolist())
        arrays["weights"] = np.asarray(connections.get("weight"), dtype=np.float64)[np.argsort(sources)] / 0.1
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
