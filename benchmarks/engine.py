"""The engine side by side with its peers: spikeserve, Norse, snnTorch, SpikingJelly, and plain
PyTorch floors, on the same workloads and parameters.

    python -m benchmarks.engine [--device cpu|cuda] [--repeats 5] [--workloads W1,W2,W3] [--no-memory]

W1 population: 100,000 LIF neurons (10,000,000 on CUDA), batch 1, 1,000 steps, input current
   given per step, inference.
W2 feed-forward inference: batch 32, 500 steps, Linear(1000 -> 1000) then LIF.
W3 training step: batch 16, 100 steps, Linear(700 -> 256) + LIF, Linear(256 -> 20) + LI,
   cross-entropy on the maximum over time, forward + backward + Adam.

Each library runs its documented fastest path for the model: Norse's LIF module, snnTorch's
Synaptic (its current-based LIF) stepped in Python as its tutorials do, SpikingJelly's LIFNode in
multi-step mode (a box LIF: it has no synaptic current, so it does less work). Repetitions are
interleaved so that machine drift hits every library alike; the table shows medians. Peak memory
is measured once per library and workload in a child process of its own. A library that fails
to import or run is reported, not hidden.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

LIBRARIES = ("spikeserve", "norse", "snntorch", "spikingjelly", "floor")
DT = 1e-3
TAU_SYN_INV, TAU_MEM_INV = 200.0, 100.0


@dataclass
class Workload:
    name: str
    neuron_steps: int
    make: Callable[[str, torch.device], Callable[[], None]]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- models, one per library ----------------------------------------------------------------------


def neuron_sequence(library: str, device: torch.device, readout: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """A whole-sequence layer over time-major input: LIF spikes, or with ``readout`` the membrane
    voltage of a leaky integrator (each library's nearest equivalent)."""
    if library in ("spikeserve", "norse"):
        if library == "spikeserve":
            import worker.engine as models
        else:
            import norse.torch as models
        # spikeserve: bool spikes where nothing downstream needs floats (W1, W2); training gets floats
        options = {"bool_spikes": True} if library == "spikeserve" else {}
        module = (models.LI() if readout else models.LIF(**options)).to(device)
        return lambda x: module(x)[0]
    if library == "snntorch":
        import snntorch

        reset = "none" if readout else "subtract"
        neuron = snntorch.Synaptic(alpha=1 - DT * TAU_SYN_INV, beta=1 - DT * TAU_MEM_INV, reset_mechanism=reset).to(device)

        def run(x: torch.Tensor) -> torch.Tensor:
            syn, mem = neuron.init_synaptic()
            outputs = []
            for x_t in x:
                spike, syn, mem = neuron(x_t, syn, mem)
                outputs.append(mem if readout else spike)
            return torch.stack(outputs)

        return run
    if library == "spikingjelly":
        from spikingjelly.activation_based import functional, neuron

        threshold = float("inf") if readout else 1.0
        module = neuron.LIFNode(tau=1 / (DT * TAU_MEM_INV), v_threshold=threshold, step_mode="m", store_v_seq=readout).to(device)

        def run(x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(module)
            spikes = module(x)
            return module.v_seq if readout else spikes

        return run
    raise ValueError(library)


def w1(library: str, device: torch.device) -> Callable[[], None]:
    neurons = 10_000_000 if device.type == "cuda" else 100_000
    x = torch.rand(1000, 1, neurons, device=device, generator=torch.Generator(device=device).manual_seed(0)) * 3
    if library == "floor":
        # One pass that reads W1's input and writes its spikes as bool: the least any engine must move.
        return lambda: torch.gt(x, 1.0)
    model = neuron_sequence(library, device)

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def w2(library: str, device: torch.device) -> Callable[[], None]:
    torch.manual_seed(0)
    linear = torch.nn.Linear(1000, 1000).to(device)
    x = (torch.rand(500, 32, 1000, device=device) < 0.05).float()
    if library == "floor":
        # The Linear layer alone: W2 can at best approach this.
        def linear_only() -> None:
            with torch.inference_mode():
                linear(x)

        return linear_only
    model = neuron_sequence(library, device)

    def run() -> None:
        with torch.inference_mode():
            model(linear(x))

    return run


def w3(library: str, device: torch.device) -> Callable[[], None]:
    torch.manual_seed(0)
    x = (torch.rand(100, 16, 700, device=device) < 0.05).float()
    labels = torch.randint(0, 20, (16,), device=device)
    first, second = torch.nn.Linear(700, 256).to(device), torch.nn.Linear(256, 20).to(device)
    if library == "floor":
        hidden = lambda h: torch.relu(h)  # noqa: E731  the same network without spiking dynamics
        readout = lambda h: h  # noqa: E731
    else:
        hidden = neuron_sequence(library, device)
        readout = neuron_sequence(library, device, readout=True)
    optimizer = torch.optim.Adam([*first.parameters(), *second.parameters()], lr=1e-3)

    def step() -> None:
        out = readout(second(hidden(first(x))))
        loss = torch.nn.functional.cross_entropy(out.max(0).values, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def workloads(device: torch.device) -> dict[str, Workload]:
    w1_neurons = 10_000_000 if device.type == "cuda" else 100_000
    return {
        "W1": Workload("W1 population", w1_neurons * 1000, w1),
        "W2": Workload("W2 feed-forward", 32 * 1000 * 500, w2),
        "W3": Workload("W3 training step", 16 * (256 + 20) * 100, w3),
    }


# --- measuring ------------------------------------------------------------------------------------


def time_once(run: Callable[[], object], device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - started


def peak_memory_mib(workload: str, library: str, device: str) -> float | None:
    """Peak memory of one run in a fresh child process (resident memory on the CPU, the
    allocator's peak on CUDA), beyond the workload's inputs."""
    return peak_in_child(
        f"from benchmarks.engine import measure_child; print(measure_child({workload!r}, {library!r}, {device!r}))"
    )


def peak_in_child(code: str) -> float | None:
    """Runs ``code`` in a fresh Python, which prints a peak in MiB last; None if it failed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=dict(os.environ))
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _status_kib(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def measure_child(workload: str, library: str, device: str) -> float:
    target = torch.device(device)
    return measure_peak(workloads(target)[workload].make(library, target), target)


def measure_peak(run: Callable[[], object], target: torch.device) -> float:
    """MiB ``run`` needs beyond what was resident before it (inputs and weights already built)."""
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
        before = torch.cuda.memory_allocated(target)
        run()
        sync(target)
        return (torch.cuda.max_memory_allocated(target) - before) / 2**20
    before = _status_kib("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    run()
    return (_status_kib("VmHWM") - before) / 1024


def bandwidth_floor(device: torch.device, workload: Workload, repeats: int) -> dict:
    """W1's memory-bandwidth floor: the bytes it must move (each step's float32 input read once,
    its spikes written as one byte) over this device's measured copy bandwidth."""
    source = torch.ones(256 * 2**20 // 4, device=device)  # 256 MiB, well beyond any cache
    target = torch.empty_like(source)
    copies = [time_once(lambda: target.copy_(source), device) for _ in range(max(3, repeats))]
    bandwidth = 2 * source.numel() * 4 / statistics.median(copies)  # bytes read plus bytes written, per second
    seconds = workload.neuron_steps * (4 + 1) / bandwidth
    print(f"W1 bandwidth floor: {workload.neuron_steps * 5 / 2**30:.2f} GiB to move at {bandwidth / 1e9:.1f} GB/s (copy)")
    return {
        "workload": "W1",
        "library": "floor: memory bandwidth (computed)",
        "median_s": seconds,
        "neuron_steps_per_s": workload.neuron_steps / seconds,
        "peak_mib": None,
        "copy_bandwidth_gb_s": bandwidth / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", default="W1,W2,W3")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-library peak memory runs")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(True)
    chosen = [w for w in args.workloads.split(",") if w]
    table = workloads(device)
    rows = []
    for key in chosen:
        workload = table[key]
        runs: dict[str, Callable[[], None]] = {}
        errors: dict[str, str] = {}
        for library in LIBRARIES:
            try:
                runs[library] = workload.make(library, device)
                runs[library]()  # warm-up (and a check that it runs at all)
            except Exception as error:  # a peer that fails is reported, not hidden
                errors[library] = f"{type(error).__name__}: {error}"[:120]
                runs.pop(library, None)
        times: dict[str, list[float]] = {library: [] for library in runs}
        for _ in range(args.repeats):
            for library, run in runs.items():  # interleaved
                times[library].append(time_once(run, device))
        for library in LIBRARIES:
            if library in errors:
                rows.append({"workload": key, "library": library, "error": errors[library]})
                continue
            median = statistics.median(times[library])
            memory = None if args.no_memory else peak_memory_mib(key, library, args.device)
            rows.append(
                {
                    "workload": key,
                    "library": library,
                    "median_s": median,
                    "neuron_steps_per_s": workload.neuron_steps / median,
                    "peak_mib": memory,
                }
            )
    if "W1" in chosen:
        rows.append(bandwidth_floor(device, table["W1"], args.repeats))
    print_table(rows)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {"device": str(device), "platform": platform.platform(), "torch": torch.__version__, "rows": rows}, out, indent=1
            )


def print_table(rows: list[dict]) -> None:
    print("| workload | library | median time | neuron-steps/s | peak memory | vs fastest peer |")
    print("|---|---|---|---|---|---|")
    for key in dict.fromkeys(row["workload"] for row in rows):
        group = [row for row in rows if row["workload"] == key]
        peers = [
            row["median_s"] for row in group if row["library"] in ("norse", "snntorch", "spikingjelly") and "median_s" in row
        ]
        fastest = min(peers) if peers else None
        for row in group:
            if "error" in row:
                print(f"| {key} | {row['library']} | failed: {row['error']} | | | |")
                continue
            ratio = f"{fastest / row['median_s']:.2f}x" if fastest else "n/a"
            memory = "n/a" if row["peak_mib"] is None else f"{row['peak_mib']:.0f} MiB"
            rate = f"{row['neuron_steps_per_s']:.3g}"
            print(f"| {key} | {row['library']} | {row['median_s'] * 1000:.1f} ms | {rate} | {memory} | {ratio} |")


if __name__ == "__main__":
    main()
