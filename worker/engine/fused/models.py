"""What the fused kernels need to know about each model: its state fields and its coefficients
(the models, their ids and the surrogate gradients' come from ``worker.registry``)."""

import math
from typing import Any, NamedTuple

import torch

from worker.registry import KERNELS, NeuronModel

# The per-neuron coefficient arrays, in the order of the C struct and the Triton kernels' arguments.
COEFFICIENTS = ("a", "c", "e", "v_leak", "v_th", "v_reset", "beta", "alpha")


class FusedModel(NamedTuple):
    name: str
    state_fields: tuple[str, ...]
    spiking: bool
    saved: tuple[str, ...]  # per-step tensors the backward pass needs


def _fused(model: NeuronModel) -> FusedModel:
    """A kernel's model as the registry has it: its state, and what its backward pass keeps (the
    membrane before the threshold of a spiking model, and the decayed threshold excess of an
    adaptive one)."""
    saved = (("vd",) if model.spikes else ()) + (("bd",) if "b" in model.state else ())
    return FusedModel(str(model.kernel), model.state, model.spikes, saved)


FUSED_MODELS = {name: _fused(model) for name, model in KERNELS.items()}


def coefficients(p: Any, dt: float) -> dict[str, Any]:
    """The kernels' per-neuron coefficients, computed as the step functions compute them.

    ``dt * p.tau_mem_inv`` is evaluated here exactly as the eager step evaluates it (a Python float
    times a float or a float32 tensor), so the kernels' products round identically.
    """
    fields = p._asdict()
    coeffs: dict[str, Any] = {}
    if "tau_mem_inv" in fields:
        coeffs["a"] = dt * p.tau_mem_inv
    if "tau_syn_inv" in fields:
        coeffs["c"] = -dt * p.tau_syn_inv
    if "tau_adapt_inv" in fields:
        coeffs["e"] = -dt * p.tau_adapt_inv
    for name in ("v_leak", "v_th", "v_reset", "beta", "alpha"):
        if name in fields:
            coeffs[name] = fields[name]
    return coeffs


def expand(value: Any, shape: torch.Size, like: torch.Tensor, shared: bool = False) -> torch.Tensor | None:
    """``value`` as a contiguous float32 tensor of the neurons' ``shape``; None if it would not fit
    (a parameter whose shape broadcasts the state to a larger one). With ``shared`` a single value
    stays a 0-d tensor, for kernels that read it once for all neurons."""
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.dim() == 0:  # the common case, a parameter shared by all neurons: two operations instead of four
        return tensor if shared else tensor.expand(math.prod(shape)).contiguous()
    try:
        return tensor.expand(shape).contiguous().reshape(-1)
    except RuntimeError:
        return None
