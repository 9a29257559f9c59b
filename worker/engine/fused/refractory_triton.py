"""The refractory box LIF (``LIFBoxRefrac``) in Triton, forward only: ``refractory_kernels.c``'s
step, line for line, for CUDA. Each program owns a block of neurons and runs the whole sequence
with the state in registers; fused multiply-adds are off, so the bits are the eager step's. CI runs
it on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``) against the C kernel.
"""

import torch
import triton
import triton.language as tl

BLOCK = 256
COMPILE_OPTIONS = {"enable_fp_fusion": False}


@triton.jit
def _box_refrac_kernel(
    x, v, rho, a, v_leak, v_th, v_reset, rho_reset, spikes, steps, n,
    DELTA: tl.constexpr, SUBTRACT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    volt = tl.load(v + offs, mask=mask, other=0.0)
    left = tl.load(rho + offs, mask=mask, other=0.0)
    ka = tl.load(a + offs, mask=mask, other=0.0)
    leak = tl.load(v_leak + offs, mask=mask, other=0.0)
    threshold = tl.load(v_th + offs, mask=mask, other=0.0)
    reset_to = tl.load(v_reset + offs, mask=mask, other=0.0)
    held_for = tl.load(rho_reset + offs, mask=mask, other=0.0)
    for t in range(0, steps):
        xt = tl.load(x + t * n + offs, mask=mask, other=0.0)
        before = volt
        vd = before + ka * (leak - before) + xt if DELTA else before + ka * (xt + leak - before)
        z = tl.where(vd - threshold > 0.0, 1.0, 0.0)
        reset = vd - z * (threshold - reset_to) if SUBTRACT else (1.0 - z) * vd + z * reset_to
        held = tl.where(left > 0.0, 1.0, 0.0)
        volt = (1.0 - held) * reset + held * before
        z = (1.0 - held) * z
        remaining = left - held
        left = (1.0 - z) * tl.where(remaining > 0.0, remaining, 0.0) + z * held_for
        tl.store(spikes + t * n + offs, (z != 0.0).to(tl.uint8), mask=mask)
    tl.store(v + offs, volt, mask=mask)
    tl.store(rho + offs, left, mask=mask)


def forward(x: torch.Tensor, v: torch.Tensor, rho: torch.Tensor, coefficients: list[torch.Tensor], delta: bool,
            subtract: bool, spikes: torch.Tensor) -> None:  # fmt: skip
    """As ``box_refrac_forward`` in C: ``x`` (steps, n); ``v`` and ``rho`` (n) updated in place;
    ``coefficients`` a, v_leak, v_th, v_reset, rho_reset (n each); ``spikes`` (steps, n) bytes."""
    steps, n = x.shape
    _box_refrac_kernel[(triton.cdiv(n, BLOCK),)](
        x, v, rho, *coefficients, spikes.view(torch.uint8), steps, n, delta, subtract, BLOCK, **COMPILE_OPTIONS
    )


def compile_for(arch: int = 90) -> dict[str, str]:
    """PTX of the kernel's four variants for the CUDA architecture ``arch`` (90: Hopper); needs no
    GPU. Not usable under TRITON_INTERPRET."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = _box_refrac_kernel
    types = {name: "*fp32" for name in kernel.arg_names[:8]} | {"spikes": "*u8", "steps": "i32", "n": "i32"}
    compiled = {}
    for delta in (False, True):
        for subtract in (False, True):
            constexprs = {"DELTA": delta, "SUBTRACT": subtract, "BLOCK": BLOCK}
            signature = {name: "constexpr" if name in constexprs else types[name] for name in kernel.arg_names}
            source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constexprs.items()})
            ptx = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=COMPILE_OPTIONS).asm["ptx"]
            compiled[f"delta={delta},subtract={subtract}"] = ptx
    return compiled
