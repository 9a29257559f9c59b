"""A sweep's points run together, as one network whose batch entries are the points.

Points qualify when they differ only where a batch entry can differ: the parameters of neuron
layers of the generic models (lif, lif_refrac, lifbox, lifbox_refrac, li, iaf, alif, lifadex), the
rates of a Poisson input, or the seed when no weight is drawn from it. Each entry then computes exactly what its point
computes alone: its own Poisson input (the same generator call as a single run), synaptic layers
that decide events or dense for each entry from its own activity and run a dense entry over its
own rows (``Synapse.per_entry``), neuron kernels that treat every neuron of every entry on its own,
the same chunks. So a point's result does not depend on whether it ran batched (a test compares
them bit for bit), and a batched point whose worker dies can run again alone, as do the points
of a batch that runs out of time (half a job's limit) or memory.

Which points run together is decided without torch, by ``worker.simulation.sweep.point_groups``.
Batching pays where a point's own work is small next to what every job costs (the queue, its
records, parsing, building the network): ``benchmarks/sweep.py`` measures both ways.
"""

import time
from collections.abc import Callable, Sequence

import torch

from worker.engine.synapses import Synapse
from worker.engine.threads import adapting_threads
from worker.simulation.build import InputStream, build_layer, build_network
from worker.simulation.plans import Plan
from worker.simulation.request import JobRequest, Network
from worker.simulation.results import Result
from worker.simulation.runner import (
    SimulationError,
    SpikeBudget,
    cancelled_at,
    check_time,
    last_step,
    non_finite,
    recorders_for,
    resolve_device,
    run_stats,
)


def _per_entry_network(runs: Sequence[tuple[JobRequest, Plan]], record_states: frozenset[str]) -> torch.nn.Module:
    """The first point's network with every neuron layer's parameters stacked over the points,
    one batch entry each, and synaptic layers that compute each entry as if alone. The synaptic
    layers are the first point's: points batch only where their weights are the same (the
    points of a group differ in neuron parameters, rates, and seeds that draw no weight), so of
    the others only the neuron layers are built."""
    first_request, first_plan = runs[0]
    chains = [request.network for request, _ in runs[1:]]
    assert all(isinstance(chain, Network) for chain in chains), "only chains of layers are batched"
    network = build_network(first_request, first_plan, record_states)
    no_weights = torch.Generator()  # neuron layers of the batched models draw nothing
    for index, layer in enumerate(first_plan.layers):
        module = network[index]
        if isinstance(module, Synapse):
            module.per_entry = True
        if not layer.is_neuron:
            continue
        others = [
            build_layer(chain.layers[index], plan.layers[index], no_weights, request.dt, layer.name in record_states)  # type: ignore[union-attr]
            for chain, (request, plan) in zip(chains, runs[1:], strict=True)
        ]
        for name, _ in list(module.named_buffers(recurse=False)):
            values = [entry.get_buffer(name).expand(layer.out_shape) for entry in (module, *others)]
            module.register_buffer(name, torch.stack(values).contiguous())
    return network


def simulate_points(
    runs: Sequence[tuple[JobRequest, Plan]],
    job_ids: Sequence[str],
    *,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], set[int]] | None = None,
    time_limit_s: float | None = None,
) -> list[Result | Exception]:
    """The points (requests of one group) simulated as the entries of one batch: per point its
    Result, or the exception a run of it alone would have raised (SimulationError: non-finite
    voltage, too many spike events; Cancelled when ``cancelled()`` named its entry). A time limit
    or a failure of the whole run raises."""
    device = resolve_device(device)
    plan = runs[0][1]
    assert plan.cost is not None and plan.batch is None
    entries, chunk = len(runs), plan.cost.chunk_steps
    voltage_layers = frozenset(plan.record_voltages)
    network = _per_entry_network(runs, voltage_layers)
    if device.type != "cpu":
        network = network.to(device)
    streams = [InputStream.of(point_request, point_plan, device) for point_request, point_plan in runs]
    # per entry its own recorders and spike budget: what a run of its point alone records
    recorders = [recorders_for(point, 1, device, SpikeBudget(point.cost.spike_events if point.cost else 0)) for _, point in runs]
    failed: dict[int, Exception] = {}
    started = time.perf_counter()
    state = None
    with torch.inference_mode(), adapting_threads() as adapt_threads:
        for start in range(0, plan.steps, chunk):
            for entry in cancelled() if cancelled is not None else ():
                failed.setdefault(entry, cancelled_at(start, plan.steps))
            if len(failed) == entries:
                break
            check_time(started, time_limit_s, start, plan.steps)
            adapt_threads()
            stop = min(plan.steps, start + chunk)
            x = torch.cat([stream.chunk(start, stop) for stream in streams], dim=1)
            outputs, state = network(x, state)
            for index, layer in enumerate(plan.layers):
                layer_state = state[index]
                for entry, entry_recorders in enumerate(recorders):
                    recorder = entry_recorders.get(layer.name)
                    if recorder is not None and entry not in failed:
                        mine = slice(entry, entry + 1)
                        entry_state = type(layer_state)(*(value[:, mine] for value in layer_state)) if recorder.voltages else None
                        try:
                            recorder.add(start, outputs[index][:, mine].contiguous(), entry_state)
                        except SimulationError as error:  # its spike budget
                            failed[entry] = error
                if layer.name in voltage_layers:
                    state[index] = layer_state = last_step(layer_state)
                if layer.is_neuron:
                    finite = torch.isfinite(layer_state.v.reshape(entries, -1)).all(dim=1).tolist()
                    for entry, ok in enumerate(finite):
                        if not ok and entry not in failed:
                            failed[entry] = non_finite(layer, start, stop)
            if progress is not None:
                progress(stop, plan.steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started

    results: list[Result | Exception] = []
    for entry, ((point_request, point_plan), job_id) in enumerate(zip(runs, job_ids, strict=True)):
        if entry in failed:
            results.append(failed[entry])
            continue
        results.append(
            Result(
                job_id=job_id,
                steps=point_plan.steps,
                dt=point_request.dt,
                device=str(device),
                batch=None,
                layers={name: recorder.result(False) for name, recorder in recorders[entry].items()},
                stats=run_stats(point_plan, wall, entries),
            )
        )
    return results
