"""The box LIF with a refractory period in one kernel call per sequence (``refractory_kernels.c``).

``box_refrac_sequence`` runs ``LIFBoxRefrac``'s whole time loop in C on the CPU, or in Triton on
CUDA (``refractory_triton.py``), where it applies (float32 input, no gradient recorded, no
per-step state kept, the ``fused`` option on) and answers None elsewhere, so
the module keeps its eager step loop, the reference both kernels are tested against bit for bit.
"""

import ctypes
import logging
import pathlib
from typing import Any

import torch

from worker.engine import native
from worker.engine.fused.models import coefficients, expand
from worker.engine.native import NativeLibrary
from worker.engine_options import ENGINE

log = logging.getLogger(__name__)
SOURCE = pathlib.Path(__file__).with_name("refractory_kernels.c")


def _declare(lib: ctypes.CDLL) -> None:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.box_refrac_forward.argtypes = [i64, i64, *[ptr] * 8, ctypes.c_int, ctypes.c_int, ptr, ctypes.c_int]
    lib.box_refrac_forward.restype = None


LIBRARY = NativeLibrary(SOURCE, _declare, "LIFBoxRefrac runs its step loop")


def box_refrac_sequence(
    x: torch.Tensor, state: Any, p: Any, dt: float, backend: str | None = None
) -> tuple[torch.Tensor, Any] | None:
    """``(bool spikes (T, *shape), final state)`` of LIFBoxRefrac over ``x`` (T, *shape) from
    ``state``, or None where no kernel applies: the C kernel on the CPU, the Triton kernel on CUDA
    (``backend`` forces "cpu" or "triton", for tests)."""
    if not ENGINE.fused or x.dtype != torch.float32 or x.dim() < 2:
        return None
    if p.reset_method not in ("value", "subtract") or p.synapse not in ("current", "delta"):
        return None
    tensors = [value for value in (x, *p, *state) if isinstance(value, torch.Tensor)]
    if torch.is_grad_enabled() and any(value.requires_grad for value in tensors):
        return None
    backend = backend or {"cpu": "cpu", "cuda": "triton"}.get(x.device.type)
    lib = native.load(LIBRARY) if backend == "cpu" else None
    if backend is None or (backend == "cpu" and lib is None):
        return None
    steps, shape = x.shape[0], x.shape[1:]
    values = {name: expand(value, shape, x) for name, value in coefficients(p, dt).items()}
    values["rho_reset"] = expand(p.rho_reset, shape, x)
    v, rho = (expand(getattr(state, name), shape, x) for name in ("v", "rho"))
    if v is None or rho is None or any(value is None for value in values.values()):
        return None
    v, rho = v.clone(), rho.clone()
    flat = x.reshape(steps, -1).contiguous()
    spikes = torch.empty((steps, flat.shape[1]), dtype=torch.bool, device=x.device)
    ordered = [values[name] for name in ("a", "v_leak", "v_th", "v_reset", "rho_reset")]
    delta, subtract = p.synapse == "delta", p.reset_method == "subtract"
    if backend == "triton":
        from worker.engine.fused import refractory_triton  # imports Triton: only where it runs

        refractory_triton.forward(flat, v, rho, ordered, delta, subtract, spikes)  # type: ignore[arg-type]
    else:
        assert lib is not None
        lib.box_refrac_forward(
            steps, flat.shape[1], flat.data_ptr(), v.data_ptr(), rho.data_ptr(),
            *(value.data_ptr() for value in ordered),  # type: ignore[union-attr]
            int(delta), int(subtract), spikes.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
    return spikes.reshape(steps, *shape), type(state)(v=v.reshape(shape), rho=rho.reshape(shape))
