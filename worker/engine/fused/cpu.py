"""The CPU backend of the fused kernels: ``cpu_kernels.c``, compiled on first use
(``worker.engine.native``) and called via ctypes. Without a compiler the engine keeps its eager path."""

import ctypes
import logging
import pathlib

import torch

from worker.engine import native
from worker.engine.fused.models import COEFFICIENTS
from worker.engine.native import NativeLibrary
from worker.registry import KERNEL_IDS

log = logging.getLogger(__name__)
SOURCE = pathlib.Path(__file__).with_name("cpu_kernels.c")


class Coefficients(ctypes.Structure):
    _fields_ = [*((name, ctypes.c_void_p) for name in COEFFICIENTS), ("shared", ctypes.c_uint32)]


# A coefficient may be one value that all neurons share (a 0-d tensor): the kernels read it as such.
SHARED_COEFFICIENTS = True


class Outputs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("spikes_u8", "out_f", "saved_vd", "saved_bd", "rec_v", "rec_i", "rec_b")]


def _declare(lib: ctypes.CDLL) -> None:
    i64, ptr, c_int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    coeffs, outputs = ctypes.POINTER(Coefficients), ctypes.POINTER(Outputs)
    for model in KERNEL_IDS:
        forward = getattr(lib, f"{model}_forward")
        forward.argtypes = [i64, i64, ptr, i64, ptr, ptr, ptr, coeffs, outputs, c_int, c_int]
        forward.restype = None
        backward = getattr(lib, f"{model}_backward")
        backward.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, coeffs, c_int, c_int, c_int]
        backward.restype = None


LIBRARY = NativeLibrary(SOURCE, _declare, "using the eager engine")


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (logged once) when they cannot be built here."""
    return native.load(LIBRARY)


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _coefficients(coeffs: dict[str, torch.Tensor]) -> Coefficients:
    shared = sum(1 << bit for bit, name in enumerate(COEFFICIENTS) if name in coeffs and coeffs[name].dim() == 0)
    return Coefficients(**{name: _ptr(coeffs.get(name)) for name in COEFFICIENTS}, shared=shared)


def forward(
    model: str,
    x: torch.Tensor,
    state: dict[str, torch.Tensor],
    coeffs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    subtract: bool,
) -> None:
    """Runs ``x`` (T, N) (rows may be strided, even with stride 0) through ``model``, updating
    ``state`` in place and filling the named ``outputs`` (fields of ``Outputs``), each (T, N)."""
    lib = library()
    assert lib is not None
    steps, n = x.shape
    getattr(lib, f"{model}_forward")(
        steps,
        n,
        x.data_ptr(),
        x.stride(0),
        _ptr(state.get("v")),
        _ptr(state.get("i")),
        _ptr(state.get("b")),
        ctypes.byref(_coefficients(coeffs)),
        ctypes.byref(Outputs(**{name: _ptr(value) for name, value in outputs.items()})),
        int(subtract),
        torch.get_num_threads(),
    )


def backward(
    model: str,
    grad_out: torch.Tensor | None,
    saved: dict[str, torch.Tensor],
    grad_state: dict[str, torch.Tensor],
    grad_x: torch.Tensor,
    coeffs: dict[str, torch.Tensor],
    subtract: bool,
    method: int,
) -> None:
    """Backpropagates through ``model``'s time loop: ``grad_state`` holds the final state's gradient
    and is overwritten with the initial state's; ``grad_x`` (T, N) receives the input's."""
    lib = library()
    assert lib is not None
    steps, n = grad_x.shape
    getattr(lib, f"{model}_backward")(
        steps,
        n,
        _ptr(grad_out),
        _ptr(saved.get("vd")),
        _ptr(saved.get("bd")),
        _ptr(grad_state.get("v")),
        _ptr(grad_state.get("i")),
        _ptr(grad_state.get("b")),
        grad_x.data_ptr(),
        ctypes.byref(_coefficients(coeffs)),
        int(subtract),
        method,
        torch.get_num_threads(),
    )
