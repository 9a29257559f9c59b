"""Fused multi-step kernels: a whole layer's time loop in one kernel call.

The sequence modules of LIF, LIFBox, LI, IAF and ALIF call ``fused_sequence`` first and fall back
to their eager step loop when it answers None: another dtype than float32, parameters that are
being trained, a device without a backend, a state recording that needs gradients, or the
engine's ``fused`` option off (``worker.engine_options``; the service's ``SPIKESERVE_FUSED=0``).
Backends: ``cpu`` (C with OpenMP, ``cpu.py``) and
``triton`` (CUDA, ``triton_kernels.py``). Both compute the eager step functions' arithmetic in the
same order, so spikes and states equal the eager engine's; the backward pass implements the same
surrogate gradients (equal up to the order of floating-point sums).
"""

from types import ModuleType
from typing import Any

import torch

from worker.engine.fused.models import FUSED_MODELS, FusedModel, coefficients, expand
from worker.engine_options import ENGINE
from worker.registry import SURROGATE_IDS

__all__ = ["FUSED_MODELS", "backend_for", "fused_sequence"]


def backend_for(device: torch.device) -> ModuleType | None:
    """The kernel backend for tensors on ``device``, or None where there is none."""
    if not ENGINE.fused:
        return None
    if device.type == "cpu":
        from worker.engine.fused import cpu

        return cpu if cpu.library() is not None else None
    if device.type == "cuda":
        try:
            from worker.engine.fused import triton_kernels
        except ImportError:
            return None
        return triton_kernels
    return None


def _backend(name: str | None, device: torch.device) -> ModuleType | None:
    if name is None:
        return backend_for(device)
    if name == "cpu":
        from worker.engine.fused import cpu

        return cpu
    if name == "triton":
        from worker.engine.fused import triton_kernels

        return triton_kernels
    raise ValueError(f"unknown fused backend {name!r}")


class _FusedSequence(torch.autograd.Function):
    """The fused forward with its fused backward; inputs after ``method`` are x (T, N) and the
    initial state's fields (N,), outputs the float spikes (or LI's voltage) and the final state."""

    @staticmethod
    def forward(ctx, backend, model: FusedModel, coeffs, subtract: bool, method: int, x, *state):
        steps, n = x.shape
        final = {name: value.clone() for name, value in zip(model.state_fields, state, strict=True)}
        out = torch.empty((steps, n), dtype=x.dtype, device=x.device)
        saved = {name: torch.empty((steps, n), dtype=x.dtype, device=x.device) for name in model.saved}
        backend.forward(model.name, x, final, coeffs, {"out_f": out, **{f"saved_{k}": v for k, v in saved.items()}}, subtract)
        ctx.save_for_backward(*saved.values())
        ctx.fused = (backend, model, coeffs, subtract, method, steps, n, x.dtype, x.device)
        ctx.set_materialize_grads(False)
        return out, *final.values()

    @staticmethod
    def backward(ctx, grad_out, *grad_final):
        backend, model, coeffs, subtract, method, steps, n, dtype, device = ctx.fused
        grad_state = {
            name: torch.zeros(n, dtype=dtype, device=device) if grad is None else grad.contiguous().clone()
            for name, grad in zip(model.state_fields, grad_final, strict=True)
        }
        grad_x = torch.empty((steps, n), dtype=dtype, device=device)
        saved = dict(zip(model.saved, ctx.saved_tensors, strict=True))
        grad_out = None if grad_out is None else grad_out.contiguous()
        backend.backward(model.name, grad_out, saved, grad_state, grad_x, coeffs, subtract, method)
        return None, None, None, None, None, grad_x, *grad_state.values()


def fused_sequence(
    model_name: str,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    *,
    record_states: bool = False,
    bool_spikes: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, Any] | None:
    """``model_name``'s whole sequence over ``x`` (T, *shape) from ``state`` (a state NamedTuple),
    as the sequence module returns it; None when the fused path does not apply.

    ``bool_spikes`` returns spikes as a bool tensor (one byte per neuron-step instead of four); it
    applies where no gradient is recorded. ``backend`` forces "cpu" or "triton" (tests run Triton's
    interpreter on the CPU this way).
    """
    model = FUSED_MODELS[model_name]
    kernels = _backend(backend, x.device)
    if kernels is None or x.dtype != torch.float32 or x.dim() < 2:
        return None
    if model.spiking and (p.method not in SURROGATE_IDS or p.reset_method not in ("value", "subtract")):
        return None
    if getattr(p, "synapse", "current") != "current":
        return None  # the kernels integrate a current; delta synapses take the eager step
    grad_enabled = torch.is_grad_enabled()
    if grad_enabled and any(isinstance(value, torch.Tensor) and value.requires_grad for value in p):
        return None  # learnable neuron parameters: the eager path computes their gradients
    needs_grad = grad_enabled and (x.requires_grad or any(value.requires_grad for value in state))
    if needs_grad and record_states:
        return None
    steps, shape = x.shape[0], x.shape[1:]
    shared = getattr(kernels, "SHARED_COEFFICIENTS", False)
    coeffs = {name: expand(value, shape, x, shared) for name, value in coefficients(p, dt).items()}
    initial = [expand(getattr(state, name), shape, x) for name in model.state_fields]
    if any(value is None for value in [*coeffs.values(), *initial]):
        return None
    flat_x = x.reshape(steps, -1)
    if flat_x.stride(1) != 1:
        flat_x = flat_x.contiguous()
    state_type = type(state)

    def unflatten(values: list[torch.Tensor], lead: tuple[int, ...] = ()) -> Any:
        return state_type(**{name: value.reshape(*lead, *shape) for name, value in zip(model.state_fields, values, strict=True)})

    subtract = model.spiking and p.reset_method == "subtract"
    if needs_grad:
        method = SURROGATE_IDS[p.method] if model.spiking else 0
        out, *final = _FusedSequence.apply(kernels, model, coeffs, subtract, method, flat_x, *initial)
        return out.reshape(steps, *shape), unflatten(final)

    final = {name: value.clone() for name, value in zip(model.state_fields, initial, strict=True) if value is not None}
    n = flat_x.shape[1]
    if model.spiking and bool_spikes:
        out = torch.empty((steps, n), dtype=torch.bool, device=x.device)
        outputs = {"spikes_u8": out}
    else:
        out = torch.empty((steps, n), dtype=x.dtype, device=x.device)
        outputs = {"out_f": out}
    records = {}
    if record_states:
        records = {name: torch.empty((steps, n), dtype=x.dtype, device=x.device) for name in model.state_fields}
        outputs.update({f"rec_{name}": value for name, value in records.items()})
    kernels.forward(model.name, flat_x.detach(), final, coeffs, outputs, subtract)
    result_state = unflatten(list(records.values()), (steps,)) if record_states else unflatten(list(final.values()))
    return out.reshape(steps, *shape), result_state
