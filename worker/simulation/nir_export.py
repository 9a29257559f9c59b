"""NIR export: a request's network, as built, to a NIR graph (the inverse of
``worker.simulation.nir_import``'s mapping, so export then import is the identity)."""

import io
import itertools
from typing import Any

import numpy as np

from worker.simulation.build import build_network
from worker.simulation.nir_file import NIRError
from worker.simulation.nir_import import as_pair

__all__ = ["network_to_nir", "network_to_nir_bytes"]


def network_to_nir(request: Any, plan: Any) -> Any:
    """A validated request's network (weights as built from its seed) -> a type-checked NIR graph."""
    import nir

    if plan.graph is not None:
        raise NIRError("exporting a graph network to NIR is not supported yet: only a chain of layers exports")
    dt = request.dt
    modules = list(build_network(request, plan))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.asarray(plan.input_shape)})}
    order = ["input"]
    for layer, layer_plan, module in zip(request.network.layers, plan.layers, modules, strict=True):
        nodes[layer_plan.name] = _export_layer(layer, layer_plan, module, dt)
        order.append(layer_plan.name)
    nodes["output"] = nir.Output(output_type={"output": np.asarray(plan.layers[-1].out_shape)})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)), metadata={"source": "spikeserve", "dt": dt})


def _full(plan: Any, values: Any) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), plan.out_shape).copy()


def _export_layer(layer: Any, plan: Any, module: Any, dt: float) -> Any:
    import nir

    if layer.type == "linear":
        weight = module.weight.numpy()  # float32, as simulated
        bias = module.bias
        return nir.Linear(weight=weight) if bias is None else nir.Affine(weight=weight, bias=bias.detach().numpy())
    if layer.type == "conv2d":
        conv = module
        bias = conv.bias.numpy() if conv.bias is not None else np.zeros(conv.weight.shape[0], dtype=np.float32)
        return nir.Conv2d(
            input_shape=tuple(plan.in_shape[1:]), weight=conv.weight.numpy(),
            stride=tuple(conv.stride), padding=tuple(conv.padding), dilation=1, groups=1, bias=bias,
        )  # fmt: skip
    if layer.type == "conv1d":
        conv = module
        bias = conv.bias.numpy() if conv.bias is not None else np.zeros(conv.weight.shape[0], dtype=np.float32)
        return nir.Conv1d(
            input_shape=int(plan.in_shape[1]), weight=conv.weight.numpy(),
            stride=int(conv.stride[0]), padding=int(conv.padding[0]), dilation=1, groups=1, bias=bias,
        )  # fmt: skip
    if layer.type == "threshold":
        return nir.Threshold(threshold=_full(plan, module.threshold.double().numpy()))
    if layer.type == "avgpool2d":
        pool = module
        return nir.AvgPool2d(
            kernel_size=np.asarray(as_pair(pool.kernel)),
            stride=np.asarray(as_pair(pool.stride)),
            padding=np.asarray(as_pair(pool.padding)),
        )
    if layer.type == "flatten":
        return nir.Flatten(input_type={"input": np.asarray(plan.in_shape)}, start_dim=0, end_dim=-1)
    if layer.type == "scale":
        return nir.Scale(scale=_full(plan, module.factor.double().numpy()))
    if layer.type in ("lif", "lifbox", "li", "iaf"):
        p = {
            key: (value.detach().double().numpy() if hasattr(value, "detach") else value)
            for key, value in module.p._asdict().items()
        }
        if p.get("reset_method", "value") != "value":
            raise NIRError(f"layer {plan.name!r}: NIR resets to a value; a subtractive reset has no NIR form")
        if p.get("synapse", "current") != "current":
            raise NIRError(f"layer {plan.name!r}: NIR's LIF integrates a current; delta synapses have no NIR form")
        if layer.type == "lif":
            tau_syn = 1 / _full(plan, p["tau_syn_inv"])
            return nir.CubaLIF(
                tau_syn=tau_syn, tau_mem=1 / _full(plan, p["tau_mem_inv"]), r=_full(plan, 1.0), v_leak=_full(plan, p["v_leak"]),
                v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]), w_in=tau_syn / dt,
            )  # fmt: skip
        if layer.type == "lifbox":
            return nir.LIF(
                tau=1 / _full(plan, p["tau_mem_inv"]), r=_full(plan, 1.0), v_leak=_full(plan, p["v_leak"]),
                v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]),
            )  # fmt: skip
        if layer.type == "li":
            tau_syn = 1 / _full(plan, p["tau_syn_inv"])
            return nir.CubaLI(
                tau_syn=tau_syn,
                tau_mem=1 / _full(plan, p["tau_mem_inv"]),
                r=_full(plan, 1.0),
                v_leak=_full(plan, p["v_leak"]),
                w_in=tau_syn / dt,
            )
        return nir.IF(r=_full(plan, 1 / dt), v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]))
    raise NIRError(f"layer {plan.name!r} ({layer.type}) has no NIR counterpart")


def network_to_nir_bytes(request: Any, plan: Any) -> bytes:
    import nir

    buffer = io.BytesIO()
    nir.write(buffer, network_to_nir(request, plan))
    return buffer.getvalue()
