"""The job runner against the scripts a user would write by hand in Norse, snnTorch and
SpikingJelly, and against floors, on the same networks.

    python -m benchmarks.runner [--repeats 5] [--cases a,b,c,d,e] [--no-memory] [--device cpu|cuda]
        [--busy K] [--threads N]

``--busy K`` keeps K other processes spinning while the rows are timed (a shared machine);
``--threads N`` fixes the runner's threads, torch's and the kernels' (default: the cores other
processes leave free, ``worker.engine.threads``); the peer scripts run with torch's thread count
either way.

(a) population: 200 Poisson inputs at 50 Hz -> Linear 200->10,000 -> LIF, 1,000 steps.
(b) feed-forward: batch 32, 1,000 Poisson inputs at 20 Hz -> Linear 1000->1000 -> LIF, 500 steps.
(c) conv: examples/conv_feedforward.json (Poisson -> conv2d -> LIF -> avgpool -> Linear -> LIF
    -> Linear -> LIF), batch 1, 200 steps.
(d) dense input: a float tensor (200 steps, batch 16, 1,000 features) -> Linear 1000->1000 -> LIF.
(e) latency: the seed job (examples/seed.json), network built and simulated.

The runner side is ``worker.simulation.runner.simulate`` on a validated request: the network built, the
input drawn, every layer run, every layer's spikes recorded as events and counts. A peer script
does what its tutorials show: the input drawn up front, each synaptic layer applied once to the
whole sequence, the library's LIF over the whole sequence (snnTorch's ``Synaptic`` stepped in a
Python loop, SpikingJelly's multi-step ``LIFNode``), spike events with ``nonzero``; the weights
are the runner's. Floors: the synaptic work alone (the dense GEMM; the event kernel) and the
neuron kernel alone. Rows are interleaved, tables show medians; peak memory is measured once per
row in a child process of its own (resident memory on the CPU, the allocator's peak on CUDA).
"""

import argparse
import base64
import json
import pathlib
import statistics
from collections.abc import Callable

import torch

from benchmarks.busy import busy_cores
from benchmarks.engine import measure_peak, neuron_sequence, peak_in_child, time_once
from worker.engine import events, synapses
from worker.engine_options import ENGINE
from worker.simulation.build import InputStream, build_network
from worker.simulation.limits import Limits
from worker.simulation.plan import parse_request
from worker.simulation.runner import simulate

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"
PEERS = ("norse", "snntorch", "spikingjelly")
LIMITS = Limits(max_input_bytes=2**30)


def poisson_linear(inputs: int, rate: float, outputs: int, steps: int, batch: int | None) -> dict:
    return {
        "network": {
            "layers": [
                {
                    "type": "linear",
                    "name": "synapses",
                    "in_features": inputs,
                    "out_features": outputs,
                    "weight": {"init": "normal", "mean": 0.024, "std": 0.012},
                    "bias": False,
                },
                {"type": "lif", "name": "population"},
            ]
        },
        "input": {"type": "poisson", "rates": rate, "shape": [inputs], "steps": steps},
        **({"batch": batch} if batch else {}),
    }


def dense_input() -> dict:
    data = torch.rand((200, 16, 1000), generator=torch.Generator().manual_seed(0)).numpy() * 0.04
    encoded = base64.b64encode(data.astype("<f4").tobytes()).decode()
    request = poisson_linear(1000, 0.0, 1000, 200, 16)
    request["input"] = {
        "type": "tensor",
        "shape": list(data.shape),
        "data": {"dtype": "float32", "shape": list(data.shape), "base64": encoded},
    }
    return request


def case_request(case: str) -> dict:
    if case == "a":
        return poisson_linear(200, 50.0, 10_000, 1000, None)
    if case == "b":
        return poisson_linear(1000, 20.0, 1000, 500, 32)
    if case == "c":
        return json.loads((EXAMPLES / "conv_feedforward.json").read_text())
    if case == "d":
        return dense_input()
    return json.loads((EXAMPLES / "seed.json").read_text())


CASES = {
    "a": "(a) population, Poisson -> Linear 200->10k -> LIF, 1,000 steps",
    "b": "(b) feed-forward, batch 32, Poisson -> Linear 1000->1000 -> LIF, 500 steps",
    "c": "(c) the conv example, 200 steps",
    "d": "(d) dense float input, batch 16 -> Linear 1000->1000 -> LIF, 200 steps",
    "e": "(e) the seed job, build and simulate",
}


def peer_script(library: str, request: dict, device: torch.device) -> Callable[[], None]:
    """The hand-written script: the runner's weights in plain PyTorch layers, the library's LIF."""
    parsed, plan = parse_request(request, LIMITS)
    network = build_network(parsed, plan).to(device)
    layers: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for module, layer in zip(network, plan.layers, strict=True):
        if layer.type == "lif":
            layers.append(neuron_sequence(library, device))
        elif isinstance(module, synapses.Linear):
            linear = torch.nn.Linear(*module.weight.shape[::-1], bias=module.bias is not None).to(device)
            linear.weight.data, linear.bias = (
                module.weight.contiguous(),
                None if module.bias is None else torch.nn.Parameter(module.bias),
            )
            layers.append(linear)
        elif isinstance(module, synapses.Conv):
            conv = torch.nn.Conv2d(
                module.weight.shape[1], module.weight.shape[0], module.weight.shape[2:], module.stride, module.padding
            )
            conv.weight.data, conv.bias = module.weight, None if module.bias is None else torch.nn.Parameter(module.bias)
            conv = conv.to(device)
            layers.append(lambda x, conv=conv: conv(x.flatten(0, 1)).unflatten(0, x.shape[:2]))
        elif isinstance(module, synapses.AvgPool2d):
            pool = torch.nn.AvgPool2d(module.kernel, module.stride, module.padding)
            layers.append(lambda x, pool=pool: pool(x.flatten(0, 1)).unflatten(0, x.shape[:2]))
        elif layer.type == "flatten":
            layers.append(lambda x: x.flatten(2))
        else:
            raise ValueError(f"no peer layer for {layer.type}")
    source = parsed.input
    batch = plan.batch_size
    shape = (plan.steps, batch, *plan.input_shape)
    if source.type == "poisson":
        rates = torch.from_numpy(plan.input_array).to(device)

        def draw() -> torch.Tensor:
            return (torch.rand(shape, device=device) < rates * parsed.dt).float()
    else:
        values = InputStream.of(parsed, plan, device).chunk(0, plan.steps).float().contiguous()

        def draw() -> torch.Tensor:
            return values

    def run() -> None:
        with torch.inference_mode():
            x = draw()
            for layer, forward in zip(plan.layers, layers, strict=True):
                x = forward(x)
                if layer.type == "lif":
                    x.nonzero()  # the events a user keeps

    return run


def runner(request: dict, device: torch.device) -> Callable[[], None]:
    parsed, plan = parse_request(request, LIMITS)
    return lambda: simulate(parsed, plan, device=device, limits=LIMITS)


def floors(request: dict, device: torch.device) -> dict[str, Callable[[], Callable[[], object]]]:
    """The synaptic work alone, dense and event-driven, and the neuron kernel alone, on the
    case's first layers and its own input."""
    parsed, plan = parse_request(request, LIMITS)
    network = build_network(parsed, plan).to(device)
    x = InputStream.of(parsed, plan, device).chunk(0, plan.steps)
    first, neuron = network[0], network[1]
    rows = x.reshape(plan.steps * plan.batch_size, -1) if isinstance(first, synapses.Linear) else x.flatten(0, 1)

    def dense() -> Callable[[], object]:
        as_float = rows.float()
        return lambda: first.dense(as_float)

    def event_driven() -> Callable[[], object]:
        count = int(rows.sum(dtype=torch.int64))
        return lambda: first.events(rows, count)

    def neuron_kernel() -> Callable[[], object]:
        with torch.inference_mode():
            current = first(x).contiguous()
        return lambda: neuron(current)

    result = {"floor: synapses, dense": dense}
    if not x.is_floating_point():
        result["floor: synapses, events"] = event_driven
    result["floor: neuron kernel"] = neuron_kernel
    return result


def rows_for(case: str, device: torch.device) -> dict[str, Callable[[], Callable[[], object]]]:
    """Each row's set-up, which returns the run to time (so a child process can build one alone)."""
    request = case_request(case)
    rows: dict[str, Callable[[], Callable[[], object]]] = {"spikeserve runner": lambda: runner(request, device)}
    if case != "e":
        for library in PEERS:
            rows[f"{library} script"] = lambda library=library: peer_script(library, request, device)
        rows |= floors(request, device)
    return rows


def measure_child(case: str, name: str, device: str) -> float:
    target = torch.device(device)
    return measure_peak(rows_for(case, target)[name](), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="a,b,c,d,e")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside the timed rows")
    parser.add_argument("--threads", type=int, help="the runner's threads (default: the free cores)")
    args = parser.parse_args()
    device = torch.device(args.device)
    ENGINE.threads = args.threads
    runner_threads = args.threads or "the free cores"
    print(
        f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads (the runner: {runner_threads}), "
        f"event kernels: {events.available(device)}, {args.busy} busy processes beside\n"
    )
    print("| case | side | median | vs fastest peer script | peak memory |")
    print("|---|---|---|---|---|")
    for case in args.cases.split(","):
        runs, errors = {}, {}
        for name, make in rows_for(case, device).items():
            try:
                run = make()
                run()  # warm-up, and a check that it runs
                runs[name] = run
            except Exception as error:  # a peer that fails is reported, not hidden
                errors[name] = f"{type(error).__name__}: {error}"[:100]
        times: dict[str, list[float]] = {name: [] for name in runs}
        with busy_cores(args.busy):
            for _ in range(args.repeats):
                for name, run in runs.items():
                    times[name].append(time_once(run, device))
        medians = {name: statistics.median(values) for name, values in times.items()}
        peers = [medians[f"{library} script"] for library in PEERS if f"{library} script" in medians]
        fastest = min(peers) if peers else None
        for name in [*runs, *errors]:
            if name in errors:
                print(f"| {CASES[case]} | {name} | failed: {errors[name]} | | |")
                continue
            ratio = f"{fastest / medians[name]:.2f}x" if fastest else "n/a"
            memory = "n/a"
            if not args.no_memory:
                code = f"from benchmarks.runner import measure_child; print(measure_child({case!r}, {name!r}, {args.device!r}))"
                peak = peak_in_child(code)
                memory = "n/a" if peak is None else f"{peak:.0f} MiB"
            print(f"| {CASES[case]} | {name} | {medians[name] * 1e3:.2f} ms | {ratio} | {memory} |")


if __name__ == "__main__":
    main()
