"""The semantic check of a network given as a chain of layers (``network.layers``): the input,
every layer's shapes inferred from it, weights and parameters decoded, the record resolved and
the job's cost checked, each error at the path of its field. This module imports numpy and
pydantic, never torch.
"""

from worker.simulation.checks import (
    check_neuron_counts,
    check_source,
    infer_layer,
    resolve_record,
    shape_str,
)
from worker.simulation.cost import check_cost, job_cost
from worker.simulation.errors import Loc, fail
from worker.simulation.limits import Limits
from worker.simulation.plans import LayerPlan, Plan
from worker.simulation.request import JobRequest, Network


def validate_chain(request: JobRequest, limits: Limits) -> Plan:
    assert isinstance(request.network, Network)
    if request.input is None:
        raise fail(("input",), "is required for a network of layers (a graph's inputs are among its nodes)", "missing")
    layers = request.network.layers
    if len(layers) > limits.max_layers:
        raise fail(("network", "layers"), f"has {len(layers)} layers, over the limit of {limits.max_layers}", "limit")
    if request.batch is not None and request.batch > limits.max_batch:
        raise fail(("batch",), f"{request.batch} is over the limit of {limits.max_batch}", "limit")
    steps, batch, input_shape, input_array = check_source(request.input, request, limits)
    if steps > limits.max_steps:
        loc = ("steps",) if request.steps is not None else ("input",)
        raise fail(loc, f"{steps} steps are over the limit of {limits.max_steps}", "limit")

    if request.record.weights:
        name = next(iter(request.record.weights))
        raise fail(("record", "weights", name), "names no plastic edge: a chain of layers has no edges (a graph has)")
    plans = _infer_layers(request, input_shape, limits)
    plan = Plan(steps, batch, input_shape, plans, [], {}, input_array)
    check_neuron_counts(plan, limits)
    resolve_record(request, plan)
    plan.cost = job_cost(request, plan, limits)
    check_cost(plan.cost, request, limits)
    return plan


def _infer_layers(request: JobRequest, input_shape: tuple[int, ...], limits: Limits) -> list[LayerPlan]:
    shape = input_shape
    previous = "the input"
    plans: list[LayerPlan] = []
    names: dict[str, int] = {}
    parameters = 0
    assert isinstance(request.network, Network)
    for index, layer in enumerate(request.network.layers):
        loc: Loc = ("network", "layers", index)
        name = layer.name or f"{layer.type}_{index}"
        if name in names:
            raise fail((*loc, "name"), f"duplicate layer name {name!r} (also network.layers[{names[name]}])")
        names[name] = index
        got = f"{previous} gives shape {shape_str(shape)}"
        layer_plan, weights = infer_layer(layer, index, name, shape, got, loc, limits)
        parameters += weights
        if parameters > limits.max_parameters:
            raise fail(loc, f"the network has over {limits.max_parameters} weights, the limit", "limit")
        plans.append(layer_plan)
        shape = layer_plan.out_shape
        previous = f"layer {name!r} ({layer.type})"
    return plans
