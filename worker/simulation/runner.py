"""Runs a validated request in chunks of steps and records what it asked for.

Each layer runs once per chunk over all of the chunk's steps and batch entries. The chunks are
fixed by the request alone (``worker.simulation.cost`` sizes them), so a rerun, a requeued job and a local
``spikeserve run`` of the same request go through the same chunks and give the same bits; where
a layer's arithmetic does not depend on the chunking (event-driven synapses, the neuron kernels)
no boundary can matter anyway. Between chunks the runner reports progress and asks whether to
stop. Spikes are kept as sparse events and voltages only for the layers (and neurons) requested,
so memory grows with what is recorded, not with all layers times all steps.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.engine.events import record_spikes
from worker.engine.threads import adapting_threads
from worker.simulation.build import InputStream, build_network
from worker.simulation.errors import Cancelled, SimulationError, TimeLimitExceeded
from worker.simulation.graph_runner import GraphRun
from worker.simulation.limits import Limits
from worker.simulation.plan import validate_request
from worker.simulation.plans import LayerPlan, Plan
from worker.simulation.request import JobRequest
from worker.simulation.results import LayerResult, LiveChunk, Result, WeightResult

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
LiveCallback = Callable[[LiveChunk], None]


def default_chunk(plan: Plan) -> int:
    """Steps per chunk, from the request alone (see worker.simulation.cost): a memory budget and about half a
    second of estimated work, at most 1,000 steps."""
    assert plan.cost is not None, "plans come from validate_request"
    return plan.cost.chunk_steps


@dataclass
class SpikeBudget:
    """The spike events all recorded layers may produce together (the job's max_spike_events)."""

    limit: int
    used: int = 0

    def take(self, count: int, layer: str, stop: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise SimulationError(
                f"the recorded layers produced more than {self.limit} spike events by step {stop} (layer {layer!r} "
                f"among them), the job's max_spike_events; record fewer layers or steps, or raise record.max_spike_events"
            )


def resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SimulationError("device 'cuda' was requested but no CUDA device is available")
    return device


class Recorder:
    """Accumulates one layer's spikes (sparse), counts and voltages chunk by chunk."""

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...],
        spikes: bool,
        voltages: bool,
        neurons: np.ndarray | None,
        batch: int,
        device: torch.device,
        budget: SpikeBudget,
    ):
        self.name = name
        self.budget = budget
        self.shape = shape
        self.spikes = spikes
        self.voltages = voltages
        self.neurons = None if neurons is None else torch.from_numpy(neurons).to(device)
        self.voltage_neurons = neurons
        self.events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (times, batch, senders) per chunk
        self.counts = torch.zeros((batch, math.prod(shape) if spikes else 0), dtype=torch.int64, device=device)
        self.traces: list[np.ndarray] = []

    def add(self, start: int, z: torch.Tensor, state: Any) -> None:
        if self.spikes:
            flat = z.reshape(z.shape[0], z.shape[1], -1)
            stop = start + z.shape[0]
            # counted before the events are listed: 24 bytes each, so an unbounded list could
            # take many times the memory of the spikes themselves
            columns = record_spikes(
                flat if flat.dtype == torch.bool else flat != 0,
                start,
                self.counts,
                lambda total: self.budget.take(total, self.name, stop),
            )
            self.events.append(columns)
        if self.voltages:
            v = state.v.reshape(state.v.shape[0], state.v.shape[1], -1)
            if self.neurons is not None:
                v = v.index_select(2, self.neurons)
            self.traces.append(v.to(torch.float32).cpu().numpy())

    def result(self, batched: bool) -> LayerResult:
        layer = LayerResult(shape=self.shape)
        if self.spikes:
            layer.times, layer.batch, layer.senders = (
                self.events[0][i] if len(self.events) == 1 else np.concatenate([columns[i] for columns in self.events])
                for i in range(3)
            )
            counts = self.counts.cpu().numpy()
            layer.counts = counts if batched else counts[0]
        if self.voltages:
            voltages = np.concatenate(self.traces)
            layer.voltages = voltages if batched else voltages[:, 0]
            layer.voltage_neurons = self.voltage_neurons
        return layer


def last_step(state: Any) -> Any:
    """Of a state recorded at every step of a chunk (voltage recording), the state after its last."""
    return type(state)(*(value[-1] for value in state))


def simulate(
    request: JobRequest,
    plan: Plan | None = None,
    *,
    device: str | torch.device = "cpu",
    chunk_steps: int | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    job_id: str = "local",
    limits: Limits | None = None,
    time_limit_s: float | None = None,
    live: LiveCallback | None = None,
) -> Result:
    """Simulates ``request`` and returns its recorded result.

    ``progress(steps_done, steps_total)`` is called after every chunk; ``is_cancelled()`` before
    every chunk, and a true answer raises ``Cancelled``. A run still going after ``time_limit_s``
    raises ``TimeLimitExceeded`` before its next chunk; one whose recorded layers produce more
    spike events than the plan allows raises ``SimulationError`` at the chunk that crosses it.
    ``live(chunk)`` receives the spikes of the layers in ``record.live`` after every chunk, before
    ``progress``.
    ``chunk_steps`` overrides the request's chunking, for tests only: a dense GEMM may round
    differently over another number of rows.
    """
    plan = plan or validate_request(request, limits)
    assert plan.cost is not None
    device = resolve_device(device)
    chunk = chunk_steps or default_chunk(plan)
    if chunk < 1:
        raise ValueError(f"chunk_steps must be at least 1, got {chunk}")
    voltage_layers = frozenset(plan.record_voltages)
    started = time.perf_counter()  # the build counts: drawing a large graph can take seconds
    should_stop = StopChecks(started, plan.steps, is_cancelled, time_limit_s)
    with adapting_threads() as adapt_threads:
        adapt_threads()
        advance, weights = _chunk_function(request, plan, device, voltage_layers, should_stop)
        recorders = recorders_for(plan, plan.batch_size, device, SpikeBudget(plan.cost.spike_events))
        state = None
        with torch.inference_mode():
            for start in range(0, plan.steps, chunk):
                if is_cancelled is not None and is_cancelled():
                    raise cancelled_at(start, plan.steps)
                check_time(started, time_limit_s, start, plan.steps)
                adapt_threads()
                stop = min(plan.steps, start + chunk)
                outputs, state = advance(start, stop, state)
                for index, layer in enumerate(plan.layers):
                    layer_state = state[index]
                    if layer.name in recorders:
                        recorders[layer.name].add(start, outputs[index], layer_state)
                    if layer.name in voltage_layers:
                        state[index] = layer_state = last_step(layer_state)
                    if layer.is_neuron and not torch.isfinite(layer_state.v).all():
                        raise non_finite(layer, start, stop)
                if live is not None and plan.record_live:
                    events = {name: recorders[name].events[-1] for name in plan.record_live}
                    live(LiveChunk.of(start, stop, plan.steps, request.dt, events))
                if progress is not None:
                    progress(stop, plan.steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started
    return Result(
        job_id=job_id,
        steps=plan.steps,
        dt=request.dt,
        device=str(device),
        batch=plan.batch,
        layers={name: recorder.result(plan.batch is not None) for name, recorder in recorders.items()},
        stats=run_stats(plan, wall),
        weights=weights(),
    )


ChunkFunction = Callable[[int, int, Any], tuple[list[Any], Any]]  # outputs: tensors (None: not kept)
WeightsFunction = Callable[[], dict[str, WeightResult]]  # after the run: the plastic edges' weights


class StopChecks:
    """What a graph asks while it is built (between edges, blocks of a Bernoulli draw) and between
    the passes of a chunk: ``should_stop(step)`` raises ``Cancelled`` or ``TimeLimitExceeded`` as
    the runner does between chunks (``step`` None: still building). Its chunks are sized from an
    estimate of their work, which can be several times short of the truth (a Brunel chunk
    seen taking 5 s, a cancel waiting for it), so it asks within chunks too; it asks no more
    often than ``every_s`` (a cancel check is a round trip to Redis), so short runs never do."""

    def __init__(
        self, started: float, steps: int, is_cancelled: CancelCheck | None, time_limit_s: float | None, every_s: float = 0.2
    ) -> None:
        self.started, self.steps = started, steps
        self.is_cancelled, self.time_limit_s = is_cancelled, time_limit_s
        self.every_s = every_s
        self.next_at = started + every_s

    def __call__(self, step: int | None = None) -> None:
        now = time.perf_counter()
        if now < self.next_at:
            return
        self.next_at = now + self.every_s
        if self.is_cancelled is not None and self.is_cancelled():
            if step is None:
                raise Cancelled(f"cancelled while building the network, before step 0 of {self.steps}")
            raise cancelled_at(step, self.steps)
        check_time(self.started, self.time_limit_s, step or 0, self.steps)


def _chunk_function(
    request: JobRequest, plan: Plan, device: torch.device, voltage_layers: frozenset[str], should_stop: StopChecks
) -> tuple[ChunkFunction, WeightsFunction]:
    """``advance(start, stop, state) -> (outputs, state)``: the network, built, running a chunk;
    outputs and states per layer (a graph's: per population), in ``plan.layers`` order. A graph
    calls ``should_stop`` while it is built and between the passes of a chunk. With it, what gives
    the plastic edges' weights after the run."""
    if plan.graph is not None:
        keep = frozenset(plan.record_spikes) | voltage_layers
        run = GraphRun(request, plan, device, voltage_layers, keep=keep, should_stop=should_stop)
        return (lambda start, stop, state: run.chunk(start, stop, state, should_stop)), run.weights
    network = build_network(request, plan, record_states=voltage_layers)
    if device.type != "cpu":  # built on the CPU
        network = network.to(device)
    stream = InputStream.of(request, plan, device)
    return (lambda start, stop, state: network(stream.chunk(start, stop), state)), dict


# --- what a batched run (worker.simulation.batched) shares with this one --------------------------


def recorders_for(plan: Plan, batch: int, device: torch.device, budget: SpikeBudget) -> dict[str, Recorder]:
    """A recorder for every layer whose spikes or voltages the plan records, sharing ``budget``."""
    voltage_layers = plan.record_voltages
    return {
        layer.name: Recorder(
            layer.name,
            layer.out_shape,
            layer.name in plan.record_spikes,
            layer.name in voltage_layers,
            voltage_layers.get(layer.name),
            batch,
            device,
            budget,
        )
        for layer in plan.layers
        if layer.name in plan.record_spikes or layer.name in voltage_layers
    }


def cancelled_at(start: int, steps: int) -> Cancelled:
    return Cancelled(f"cancelled after {start} of {steps} steps")


def check_time(started: float, time_limit_s: float | None, start: int, steps: int) -> None:
    """TimeLimitExceeded when a run that began at ``started`` (perf_counter) is past its limit."""
    if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
        raise TimeLimitExceeded(f"time limit of {time_limit_s:g} s exceeded after {start} of {steps} steps")


def non_finite(layer: LayerPlan, start: int, stop: int) -> SimulationError:
    return SimulationError(
        f"layer {layer.name!r} ({layer.type}) reached a non-finite voltage (NaN or Inf) "
        f"between steps {start} and {stop}; its parameters or input drive it out of range"
    )


def run_stats(plan: Plan, wall: float, entries: int = 1) -> dict[str, float]:
    """A run's statistics; a point of a batch of ``entries`` gets its share of the wall time."""
    stats = {
        "wall_s": round(wall / entries, 6),
        "neuron_steps": plan.neuron_steps,
        "neuron_steps_per_s": round(plan.neuron_steps * entries / wall, 1) if wall > 0 else 0.0,
    }
    return stats if entries == 1 else {**stats, "batched_with": entries}
