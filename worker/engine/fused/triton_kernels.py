"""The CUDA backend of the fused kernels, in Triton: the same dynamics as ``cpu_kernels.c``.

Each program owns a block of neurons and runs the whole time loop with the state in registers.
The model, the reset and which outputs exist are compile-time constants, so each combination
compiles to its own branch-free kernel. CI runs these kernels on the CPU through Triton's
interpreter (``TRITON_INTERPRET=1``) against the eager engine; on a GPU they run compiled, with
fused multiply-adds turned off so that the forward pass rounds as the eager ops do.
"""

import torch
import triton
import triton.language as tl

from worker.engine.fused.models import COEFFICIENTS
from worker.registry import KERNELS, SURROGATE_IDS

BLOCK = 256
# the surrogate gradients, numbered as the registry numbers them (constexpr: the kernels read them)
SUR_SUPER, SUR_FAST_SIGMOID, SUR_TRIANGLE, SUR_TANH, SUR_ATAN = (
    tl.constexpr(SURROGATE_IDS[name]) for name in ("super", "fast_sigmoid", "triangle", "tanh", "atan")
)
# No fused multiply-adds: each product rounds on its own, as in the eager engine's separate ops, so
# the forward pass gives the same bits. (Triton fuses by default; its interpreter ignores this.)
COMPILE_OPTIONS = {"enable_fp_fusion": False}


@triton.jit
def _coefficient(ptr, offs, mask, USED: tl.constexpr):
    if USED:
        return tl.load(ptr + offs, mask=mask, other=0.0)
    return tl.zeros(offs.shape, dtype=tl.float32)


@triton.jit
def _load_state(v_ptr, i_ptr, b_ptr, offs, mask, CURRENT: tl.constexpr, ADAPTIVE: tl.constexpr):
    """The state (or its gradient): v always, i with a synaptic current, b with adaptation."""
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    i = _coefficient(i_ptr, offs, mask, CURRENT)
    b = _coefficient(b_ptr, offs, mask, ADAPTIVE)
    return v, i, b


@triton.jit
def _store_state(v_ptr, i_ptr, b_ptr, v, i, b, offs, mask, CURRENT: tl.constexpr, ADAPTIVE: tl.constexpr):
    tl.store(v_ptr + offs, v, mask=mask)
    if CURRENT:
        tl.store(i_ptr + offs, i, mask=mask)
    if ADAPTIVE:
        tl.store(b_ptr + offs, b, mask=mask)


@triton.jit
def _load_coefficients(
    a_ptr, c_ptr, e_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, alpha_ptr, offs, mask,
    CURRENT: tl.constexpr, SPIKING: tl.constexpr, ADAPTIVE: tl.constexpr, LEAKY: tl.constexpr,
):  # fmt: skip
    """A block's coefficients, held in registers for all T steps; a model's unused ones are zero."""
    a = _coefficient(a_ptr, offs, mask, LEAKY)
    c = _coefficient(c_ptr, offs, mask, CURRENT)
    e = _coefficient(e_ptr, offs, mask, ADAPTIVE)
    vl = _coefficient(vl_ptr, offs, mask, LEAKY)
    vth = _coefficient(vth_ptr, offs, mask, SPIKING)
    vr = _coefficient(vr_ptr, offs, mask, SPIKING)
    beta = _coefficient(beta_ptr, offs, mask, ADAPTIVE)
    alpha = _coefficient(alpha_ptr, offs, mask, SPIKING)
    return a, c, e, vl, vth, vr, beta, alpha


@triton.jit
def _forward_kernel(
    x_ptr, x_stride_t, v_ptr, i_ptr, b_ptr,
    a_ptr, c_ptr, e_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, alpha_ptr,
    spikes_ptr, out_ptr, saved_vd_ptr, saved_bd_ptr, rec_v_ptr, rec_i_ptr, rec_b_ptr,
    T, N,
    CURRENT: tl.constexpr, SPIKING: tl.constexpr, ADAPTIVE: tl.constexpr, LEAKY: tl.constexpr, SUBTRACT: tl.constexpr,
    HAS_SPIKES: tl.constexpr, HAS_OUT: tl.constexpr, SAVE: tl.constexpr,
    REC_V: tl.constexpr, REC_I: tl.constexpr, REC_B: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v, i, b = _load_state(v_ptr, i_ptr, b_ptr, offs, mask, CURRENT, ADAPTIVE)
    a, c, e, vl, vth, vr, beta, _alpha = _load_coefficients(
        a_ptr, c_ptr, e_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, alpha_ptr, offs, mask, CURRENT, SPIKING, ADAPTIVE, LEAKY
    )
    # 64-bit offsets, advanced step by step: t * N overflows 32 bits on large layers (10 M x 1,000)
    row = offs.to(tl.int64)
    x_row = offs.to(tl.int64)
    for _step in range(0, T):
        xt = tl.load(x_ptr + x_row, mask=mask, other=0.0)
        if not LEAKY:  # IAF
            vd = v + xt
        elif not CURRENT:  # the box LIF
            vd = v + a * ((xt + vl) - v)
        else:
            ij = i + xt
            vd = v + a * ((vl - v) + ij)
            i = ij + c * ij
        if SPIKING:
            th = vth
            if ADAPTIVE:
                bd = b + e * b
                th = vth + bd
            z = tl.where((vd - th) > 0.0, 1.0, 0.0)
            if SUBTRACT:  # noqa: SIM108  a compile-time branch, kept in the form every Triton version compiles
                v = vd - z * (th - vr)
            else:
                v = (1.0 - z) * vd + z * vr
            if ADAPTIVE:
                b = bd + beta * z
                if SAVE:
                    tl.store(saved_bd_ptr + row, bd, mask=mask)
            if HAS_SPIKES:
                tl.store(spikes_ptr + row, z.to(tl.int8), mask=mask)
            if HAS_OUT:
                tl.store(out_ptr + row, z, mask=mask)
            if SAVE:
                tl.store(saved_vd_ptr + row, vd, mask=mask)
        else:
            v = vd
            if HAS_OUT:
                tl.store(out_ptr + row, vd, mask=mask)
        if REC_V:
            tl.store(rec_v_ptr + row, v, mask=mask)
        if REC_I:
            tl.store(rec_i_ptr + row, i, mask=mask)
        if REC_B:
            tl.store(rec_b_ptr + row, b, mask=mask)
        row += N
        x_row += x_stride_t
    _store_state(v_ptr, i_ptr, b_ptr, v, i, b, offs, mask, CURRENT, ADAPTIVE)


@triton.jit
def _surrogate(g, s, alpha, METHOD: tl.constexpr):
    if METHOD == SUR_SUPER:
        d = tl.abs(s) + 1.0
        return g / (d * d)
    elif METHOD == SUR_FAST_SIGMOID:
        d = alpha * tl.abs(s) + 1.0
        return g / (d * d)
    elif METHOD == SUR_TRIANGLE:
        return g * alpha * tl.maximum(1.0 - tl.abs(s), 0.0)
    elif METHOD == SUR_TANH:
        y = s * alpha  # tanh(y) from exp(-2|y|), which cannot overflow (no libdevice in the interpreter)
        q = tl.exp(-2.0 * tl.abs(y))
        th = (1.0 - q) / (1.0 + q)
        return g * (1.0 - th * th)
    elif METHOD == SUR_ATAN:
        q = 1.5707963267948966 * alpha * s
        return g * (alpha / 2.0) / (1.0 + q * q)
    else:
        return g * 0.0


@triton.jit
def _backward_kernel(
    grad_out_ptr, saved_vd_ptr, saved_bd_ptr, gv_ptr, gi_ptr, gb_ptr, grad_x_ptr,
    a_ptr, c_ptr, e_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, alpha_ptr,
    T, N,
    CURRENT: tl.constexpr, SPIKING: tl.constexpr, ADAPTIVE: tl.constexpr, LEAKY: tl.constexpr, SUBTRACT: tl.constexpr,
    METHOD: tl.constexpr, HAS_GRAD_OUT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    gv, gi, gb = _load_state(gv_ptr, gi_ptr, gb_ptr, offs, mask, CURRENT, ADAPTIVE)
    a, c, e, _v_leak, vth, vr, beta, alpha = _load_coefficients(
        a_ptr, c_ptr, e_ptr, vl_ptr, vth_ptr, vr_ptr, beta_ptr, alpha_ptr, offs, mask, CURRENT, SPIKING, ADAPTIVE, LEAKY
    )
    # The per-step pointers arrive at their last row (the host computes that 64-bit address) and
    # walk back one row per step, in 64 bits.
    row = offs.to(tl.int64)
    for _step in range(0, T):
        g_out = _coefficient(grad_out_ptr, row, mask, HAS_GRAD_OUT)
        if SPIKING:
            vd = tl.load(saved_vd_ptr + row, mask=mask, other=0.0)
            th = vth
            if ADAPTIVE:
                th = vth + tl.load(saved_bd_ptr + row, mask=mask, other=0.0)
            s = vd - th
            z = tl.where(s > 0.0, 1.0, 0.0)
            g_z = g_out
            if ADAPTIVE:
                g_z += gb * beta
            if SUBTRACT:
                g_vd = gv
                g_z -= gv * (th - vr)
                g_th = -(gv * z)
            else:
                g_vd = gv * (1.0 - z)
                g_z += gv * (vr - vd)
                g_th = gv * 0.0
            g_s = _surrogate(g_z, s, alpha, METHOD)
            g_vd += g_s
            if ADAPTIVE:
                g_bd = gb + (g_th - g_s)
                gb = g_bd + e * g_bd
        else:
            g_vd = g_out + gv
        if not LEAKY:
            g_in = g_vd
            gv = g_vd
        elif not CURRENT:
            g_in = a * g_vd
            gv = g_vd - a * g_vd
        else:
            gi = (gi + c * gi) + a * g_vd
            g_in = gi
            gv = g_vd - a * g_vd
        tl.store(grad_x_ptr + row, g_in, mask=mask)
        row -= N
    _store_state(gv_ptr, gi_ptr, gb_ptr, gv, gi, gb, offs, mask, CURRENT, ADAPTIVE)


def model_flags(kernel: str) -> dict[str, bool]:
    """What a kernel's model has, from the registry (the C kernels' HAS_CURRENT, SPIKING, ADAPTIVE
    and LEAKY): each combination compiles to its own kernel."""
    model = KERNELS[kernel]
    return {
        "CURRENT": "i" in model.state,
        "SPIKING": model.spikes,
        "ADAPTIVE": "b" in model.state,
        "LEAKY": "tau_mem_inv" in model.parameters,
    }


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def _or(tensor: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    return fallback if tensor is None else tensor


def forward(
    model: str,
    x: torch.Tensor,
    state: dict[str, torch.Tensor],
    coeffs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    subtract: bool,
) -> None:
    """As ``worker.engine.fused.cpu.forward``, on a CUDA tensor (or on the CPU when interpreted)."""
    steps, n = x.shape
    v = state["v"]
    spikes = outputs.get("spikes_u8")
    _forward_kernel[_grid(n)](
        x, x.stride(0), v, _or(state.get("i"), v), _or(state.get("b"), v),
        *(_or(coeffs.get(name), v) for name in COEFFICIENTS),
        v if spikes is None else spikes.view(torch.int8),
        *(_or(outputs.get(name), v) for name in ("out_f", "saved_vd", "saved_bd", "rec_v", "rec_i", "rec_b")),
        steps, n,
        **model_flags(model), SUBTRACT=subtract,
        HAS_SPIKES=spikes is not None, HAS_OUT="out_f" in outputs, SAVE="saved_vd" in outputs,
        REC_V="rec_v" in outputs, REC_I="rec_i" in outputs, REC_B="rec_b" in outputs, BLOCK=BLOCK,
        **COMPILE_OPTIONS,
    )  # fmt: skip


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
    """As ``worker.engine.fused.cpu.backward``, on a CUDA tensor (or on the CPU when interpreted)."""
    steps, n = grad_x.shape
    gv = grad_state["v"]
    last = {name: None if value is None else value[steps - 1] for name, value in saved.items()}
    _backward_kernel[_grid(n)](
        gv if grad_out is None else grad_out[steps - 1], _or(last.get("vd"), gv), _or(last.get("bd"), gv),
        gv, _or(grad_state.get("i"), gv), _or(grad_state.get("b"), gv), grad_x[steps - 1],
        *(_or(coeffs.get(name), gv) for name in COEFFICIENTS),
        steps, n,
        **model_flags(model), SUBTRACT=subtract, METHOD=method, HAS_GRAD_OUT=grad_out is not None, BLOCK=BLOCK,
        **COMPILE_OPTIONS,
    )  # fmt: skip


def compile_for(arch: int = 90) -> dict[str, str]:
    """PTX of every kernel variant for the CUDA architecture ``arch`` (90: Hopper), with the same
    options as a launch; needs no GPU. Not usable under TRITON_INTERPRET (nothing is compiled)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    def build(kernel, constexprs: dict, pointer_types: dict) -> str:
        signature = {
            name: "constexpr" if name in constexprs else pointer_types.get(name, "*fp32") if name.endswith("_ptr") else "i32"
            for name in kernel.arg_names
        }
        source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constexprs.items()})
        return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=COMPILE_OPTIONS).asm["ptx"]

    ptx = {}
    for model in KERNELS:
        for subtract in (False, True):
            flags = {"HAS_SPIKES": True, "HAS_OUT": True, "SAVE": True, "REC_V": True, "REC_I": True, "REC_B": True}
            ptx[f"{model} forward subtract={subtract}"] = build(
                _forward_kernel, {**model_flags(model), "SUBTRACT": subtract, "BLOCK": BLOCK, **flags}, {"spikes_ptr": "*i8"}
            )
            for method in SURROGATE_IDS.values():
                constexprs = {**model_flags(model), "SUBTRACT": subtract, "METHOD": method, "HAS_GRAD_OUT": True, "BLOCK": BLOCK}
                ptx[f"{model} backward subtract={subtract} method={method}"] = build(_backward_kernel, constexprs, {})
    return ptx
