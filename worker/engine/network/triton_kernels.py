"""The CUDA side of synaptic channels and STDP, in Triton: the float32 operations of
``lif_channels_step`` and ``PlasticProjection.step`` in the same order, so a GPU gives the CPU's
bits, and every sum in one order (no atomics: a program owns its neurons or its targets).

- ``lif_channels``: a population's whole sequence of steps, one program per block of neurons (the
  input of every step given: the graph runner's pass), as the fused kernels of the other models.
- ``stdp_presynaptic``: one step's presynaptic events, one program per block of targets, as a C
  thread owns a range of them: each event source in index order, the synapses of its row that
  land in the block, each delivering its weight and then being depressed.
- ``stdp_postsynaptic``: one program per target that spiked: every synapse into it potentiated by
  its source's trace (read from the table of factors).

CI runs them on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``) against the PyTorch
paths, and compiles them for Hopper; they have not run on a GPU here.
"""

import torch
import triton
import triton.language as tl

from worker.engine.events.triton_kernels import COMPILE_OPTIONS, _synapses_in

BLOCK = 256
# LIFChannels.kernel_arrays, in the order _lif_channels_kernel takes them
KERNEL_ARRAYS = ("v_leak", "v_th", "v_reset", "rho_reset", "membrane", "gain", "decay", "e_rev", "conductance")


@triton.jit
def _lif_channels_kernel(
    x, v, rho, g, v_leak, v_th, v_reset, rho_reset, membrane, gain, decay, e_rev, conductance, spikes, trace, steps, n,
    C: tl.constexpr, EXACT: tl.constexpr, TRACE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Steps 0 .. steps - 1 of neurons [pid * BLOCK, ...): ``x`` (steps, 1 + C, n), state ``v``,
    ``rho`` (n) and ``g`` (C, n) changed in place, the parameters per neuron and ``gain`` (C, n),
    ``decay``, ``e_rev`` and ``conductance`` per channel; spikes (steps, n) as 0/1 bytes."""
    cols = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n
    volts = tl.load(v + cols, mask=mask, other=0.0)
    left = tl.load(rho + cols, mask=mask, other=0.0)
    leak, th, reset = tl.load(v_leak + cols, mask=mask), tl.load(v_th + cols, mask=mask), tl.load(v_reset + cols, mask=mask)
    held, factor = tl.load(rho_reset + cols, mask=mask), tl.load(membrane + cols, mask=mask)
    for t in range(0, steps):
        row = x + t * (1 + C) * n
        built = (volts - leak) * factor if EXACT else leak - volts
        for k in tl.static_range(C):
            channel = g + k * n + cols
            g_k = tl.load(channel, mask=mask, other=0.0) + tl.load(row + (1 + k) * n + cols, mask=mask, other=0.0)
            if EXACT:
                built = built + g_k * tl.load(gain + k * n + cols, mask=mask, other=0.0)
            else:
                term = tl.where(tl.load(conductance + k) != 0, g_k * (tl.load(e_rev + k) - volts), g_k)
                built = built + term
            tl.store(channel, g_k * tl.load(decay + k), mask=mask)
        built = built + leak if EXACT else volts + factor * built
        candidate = built + tl.load(row + cols, mask=mask, other=0.0)
        fire = (left <= 0.0) & (candidate > th)
        volts = tl.where(left > 0.0, volts, tl.where(fire, reset, candidate))
        left = tl.where(fire, held, tl.maximum(left - 1.0, 0.0))
        tl.store(spikes + t * n + cols, fire.to(tl.uint8), mask=mask)
        if TRACE:
            tl.store(trace + t * n + cols, volts, mask=mask)
    tl.store(v + cols, volts, mask=mask)
    tl.store(rho + cols, left, mask=mask)


@triton.jit
def _bounded(w, change, w_min, w_max, inv_span, SOFT: tl.constexpr):
    if SOFT:
        room = tl.where(change > 0.0, w_max - w, w - w_min)
        change = change * (room * inv_span)
    return tl.minimum(tl.maximum(w + change, w_min), w_max)


@triton.jit
def _stdp_presynaptic_kernel(
    sources, count, offsets, post, weight, x_post, deliver, n_post, w_min, w_max, inv_span,
    SOFT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One program per block of targets: for each event source in order, the synapses of its row
    in the block deliver their weight and are then depressed by their target's trace."""
    lo = tl.program_id(0).to(tl.int64) * BLOCK
    hi = tl.minimum(lo + BLOCK, n_post)
    for e in range(0, count):
        start, stop = _synapses_in(post, offsets, tl.load(sources + e), lo, hi)
        for s in range(start, stop):
            j = tl.load(post + s)
            w = tl.load(weight + s)
            tl.store(deliver + j, tl.load(deliver + j) + w)
            tl.store(weight + s, _bounded(w, tl.load(x_post + j), w_min, w_max, inv_span, SOFT))


@triton.jit
def _stdp_postsynaptic_kernel(
    fired, by_post_offsets, by_post, pre_by_post, weight, x_pre, pre_stamp, table, horizon, step, w_min, w_max, inv_span,
    SOFT: tl.constexpr,
):  # fmt: skip
    """One program per target that spiked: each synapse into it potentiated by its source's trace
    at ``step`` (its value at its last jump times the table's factor for the steps since)."""
    j = tl.load(fired + tl.program_id(0))
    for k in range(tl.load(by_post_offsets + j), tl.load(by_post_offsets + j + 1)):
        s = tl.load(by_post + k)
        i = tl.load(pre_by_post + k)
        lag = step - tl.load(pre_stamp + i)
        value = tl.load(x_pre + i)
        trace = tl.where(lag < horizon, value * tl.load(table + tl.where(lag < horizon, lag, 0)), 0.0)
        tl.store(weight + s, _bounded(tl.load(weight + s), trace, w_min, w_max, inv_span, SOFT))


def lif_channels(
    x: torch.Tensor, v: torch.Tensor, rho: torch.Tensor, g: torch.Tensor, arrays: dict[str, torch.Tensor], exact: bool,
    trace: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    """``steps`` of a population (``x`` (steps, 1 + C, n), state flattened to n neurons, changed in
    place; ``arrays``: ``LIFChannels.kernel_arrays``); its spikes (steps, n) as bool; the voltage
    after each step into ``trace`` if given."""
    steps, rows, n = x.shape
    spikes = torch.empty((steps, n), dtype=torch.uint8, device=x.device)
    _lif_channels_kernel[(triton.cdiv(n, BLOCK),)](
        x, v, rho, g, *(arrays[name] for name in KERNEL_ARRAYS), spikes, v if trace is None else trace, steps, n,
        rows - 1, exact, trace is not None, BLOCK, **COMPILE_OPTIONS,
    )  # fmt: skip
    return spikes.bool()


def stdp_presynaptic(
    sources: torch.Tensor, offsets: torch.Tensor, post: torch.Tensor, weight: torch.Tensor, x_post: torch.Tensor,
    deliver: torch.Tensor, bounds: tuple[float, float, float], soft: bool,
) -> None:  # fmt: skip
    n_post = deliver.numel()
    _stdp_presynaptic_kernel[(triton.cdiv(n_post, BLOCK),)](
        sources, sources.numel(), offsets, post, weight, x_post, deliver, n_post, *bounds, soft, BLOCK, **COMPILE_OPTIONS
    )


def stdp_postsynaptic(
    fired: torch.Tensor, by_post_offsets: torch.Tensor, by_post: torch.Tensor, pre_by_post: torch.Tensor, weight: torch.Tensor,
    x_pre: torch.Tensor, pre_stamp: torch.Tensor, table: torch.Tensor, step: int, bounds: tuple[float, float, float],
    soft: bool,
) -> None:  # fmt: skip
    if fired.numel():
        _stdp_postsynaptic_kernel[(fired.numel(),)](
            fired, by_post_offsets, by_post, pre_by_post, weight, x_pre, pre_stamp, table, table.numel(), step, *bounds, soft,
            **COMPILE_OPTIONS,
        )  # fmt: skip


def compile_for(arch: int = 90) -> dict[str, str]:
    """PTX of each kernel for the CUDA architecture ``arch`` (90: Hopper), as a launch compiles
    it; needs no GPU. Not usable under TRITON_INTERPRET."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    def build(kernel, constexprs: dict, types: dict) -> str:
        signature = {name: "constexpr" if name in constexprs else types.get(name, "*fp32") for name in kernel.arg_names}
        source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constexprs.items()})
        return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=COMPILE_OPTIONS).asm["ptx"]

    scalars = {"w_min": "fp32", "w_max": "fp32", "inv_span": "fp32"}
    return {
        "lif_channels": build(
            _lif_channels_kernel, {"C": 2, "EXACT": False, "TRACE": True, "BLOCK": BLOCK},
            {"conductance": "*u8", "spikes": "*u8", "steps": "i64", "n": "i64"},
        ),
        "stdp_presynaptic": build(
            _stdp_presynaptic_kernel, {"SOFT": True, "BLOCK": BLOCK},
            {"sources": "*i64", "count": "i64", "offsets": "*i64", "post": "*i32", "n_post": "i64", **scalars},
        ),
        "stdp_postsynaptic": build(
            _stdp_postsynaptic_kernel, {"SOFT": True},
            {"fired": "*i64", "by_post_offsets": "*i64", "by_post": "*i32", "pre_by_post": "*i32", "pre_stamp": "*i64",
             "horizon": "i64", "step": "i64", **scalars},
        ),
    }  # fmt: skip
