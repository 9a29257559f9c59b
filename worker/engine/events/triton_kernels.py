"""The CUDA backend of the event kernels, in Triton: the sums of ``event_kernels.c`` in the same
order, so results equal the CPU's bit for bit (additions only; nothing to fuse).

A chunk's events are listed first with PyTorch (``nonzero`` is ordered by row, then input), as
compressed rows: ``row_ptr`` (rows + 1) and ``index``, an input repeated by its count. Each
program then owns one row (and a block of outputs) and adds that row's events in order; a
convolution's output starts from its bias, as in the C kernel. CI runs these kernels on the CPU
through Triton's interpreter (``TRITON_INTERPRET=1``).
"""

import torch
import triton
import triton.language as tl

BLOCK = 256
COMPILE_OPTIONS = {"enable_fp_fusion": False}


def compressed_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (rows, n) counts -> (row_ptr, index): row r's events are index[row_ptr[r]:row_ptr[r+1]]."""
    rows = x.shape[0]
    nonzero = x.nonzero()
    counts = x[nonzero[:, 0], nonzero[:, 1]].to(torch.int64)
    row, index = nonzero[:, 0].repeat_interleave(counts), nonzero[:, 1].repeat_interleave(counts)
    row_ptr = torch.zeros(rows + 1, dtype=torch.int64, device=x.device)
    row_ptr[1:] = torch.bincount(row, minlength=rows).cumsum(0)
    return row_ptr, index.contiguous()


@triton.jit
def _linear_kernel(row_ptr, index, wt, bias, out, n_out, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_out
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for e in range(tl.load(row_ptr + row), tl.load(row_ptr + row + 1)):
        acc += tl.load(wt + tl.load(index + e) * n_out + cols, mask=mask, other=0.0)
    if HAS_BIAS:
        acc = acc + tl.load(bias + cols, mask=mask, other=0.0)
    tl.store(out + row * n_out + cols, acc, mask=mask)


@triton.jit
def _reached(y, pad, k, stride, size):
    """Whether input position ``y`` reaches an output through kernel offset ``k``, and which."""
    shifted = y + pad - k
    return (shifted >= 0) & (shifted % stride == 0) & (shifted // stride < size), shifted // stride


@triton.jit
def _conv2d_kernel(
    row_ptr, index, wt, out, c_out, h, w, ho, wo, sh, sw, ph, pw,
    KH: tl.constexpr, KW: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < c_out
    base = out + row * c_out * ho * wo + cols * ho * wo
    for e in range(tl.load(row_ptr + row), tl.load(row_ptr + row + 1)):
        i = tl.load(index + e)
        ch, y, x = i // (h * w), (i // w) % h, i % w
        for ky in tl.static_range(KH):
            ok_y, oy = _reached(y, ph, ky, sh, ho)
            for kx in tl.static_range(KW):
                ok_x, ox = _reached(x, pw, kx, sw, wo)
                if ok_y & ok_x:
                    weights = tl.load(wt + ((ch * KH + ky) * KW + kx) * c_out + cols, mask=mask, other=0.0)
                    target = base + oy * wo + ox
                    tl.store(target, tl.load(target, mask=mask, other=0.0) + weights, mask=mask)


@triton.jit
def _avgpool2d_kernel(row_ptr, index, out, c, h, w, ho, wo, sh, sw, ph, pw, KH: tl.constexpr, KW: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    for e in range(tl.load(row_ptr + row), tl.load(row_ptr + row + 1)):
        i = tl.load(index + e)
        ch, y, x = i // (h * w), (i // w) % h, i % w
        for ky in tl.static_range(KH):
            ok_y, oy = _reached(y, ph, ky, sh, ho)
            for kx in tl.static_range(KW):
                ok_x, ox = _reached(x, pw, kx, sw, wo)
                if ok_y & ok_x:
                    target = out + (row * c + ch) * ho * wo + oy * wo + ox
                    tl.store(target, tl.load(target) + 1.0)


@triton.jit
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10; the words are uint32, products formed in 64 bits."""
    for _ in tl.static_range(10):
        p0 = c0.to(tl.uint64) * 0xD2511F53
        p1 = c2.to(tl.uint64) * 0xCD9E8D57
        hi0, hi1 = (p0 >> 32).to(tl.uint32), (p1 >> 32).to(tl.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, p1.to(tl.uint32), hi0 ^ c3 ^ k1, p0.to(tl.uint32)
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit
def _draws(offs, batch, n, t0, seed_lo, seed_hi, BLOCK: tl.constexpr):
    """For flat positions ``offs`` of (steps, batch, n): each one's neuron and its 32-bit draw,
    word n % 4 of Philox(counter (n // 4, b, t0 + step, 0)), as int64."""
    neuron = offs % n
    b = (offs // n) % batch
    t = offs // n // batch + t0
    zero = tl.zeros([BLOCK], dtype=tl.uint32)
    r0, r1, r2, r3 = _philox(
        (neuron // 4).to(tl.uint32), b.to(tl.uint32), t.to(tl.uint32), zero, seed_lo.to(tl.uint32), seed_hi.to(tl.uint32)
    )
    lane = neuron % 4
    return neuron, tl.where(lane == 0, r0, tl.where(lane == 1, r1, tl.where(lane == 2, r2, r3))).to(tl.int64)


@triton.jit
def _poisson_kernel(out, threshold, total, batch, n, t0, seed_lo, seed_hi, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    neuron, word = _draws(offs, batch, n, t0, seed_lo, seed_hi, BLOCK)
    spike = word < tl.load(threshold + neuron, mask=mask, other=0)
    tl.store(out + offs, spike.to(tl.uint8), mask=mask)


@triton.jit
def _poisson_counts_kernel(out, table, row, total, batch, n, width, t0, seed_lo, seed_hi, BLOCK: tl.constexpr):
    """Counts of several trains per feature: the draw of ``_poisson_kernel``, then the number of
    the feature's thresholds it reaches (all compared, as in the C kernel)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    neuron, word = _draws(offs, batch, n, t0, seed_lo, seed_hi, BLOCK)
    first = tl.load(row + neuron, mask=mask, other=0).to(tl.int64) * width
    count = tl.zeros([BLOCK], dtype=tl.int32)
    for k in range(0, width):
        count += (word >= tl.load(table + first + k, mask=mask, other=0)).to(tl.int32)
    tl.store(out + offs, count.to(tl.uint8), mask=mask)


@triton.jit
def _first_at_least(post, lo, hi, target):
    """The first position in post[lo, hi) whose target is at least ``target`` (rows are sorted)."""
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if tl.load(post + mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@triton.jit
def _synapses_in(post, offsets, j, lo, hi):
    """The positions of source j's synapses whose targets lie in [lo, hi): one run of its row."""
    row_end = tl.load(offsets + j + 1)
    start = _first_at_least(post, tl.load(offsets + j), row_end, lo)
    return start, _first_at_least(post, start, row_end, hi)


@triton.jit
def _project_kernel(
    row_ptr, index, offsets, post, weight, shared_weight, delay, shared_delay, ring, steps, rows, n_post, slots, step,
    HAS_WEIGHT: tl.constexpr, HAS_DELAY: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One program per batch row and block of targets, as one C thread owns a range of targets:
    for every step and spiking source in order, the synapses of its row that land in the block.
    With one delay a step's additions go to one slot, kept in registers; each target's sum takes
    the C kernel's order either way."""
    b = tl.program_id(0).to(tl.int64)
    lo = tl.program_id(1).to(tl.int64) * BLOCK
    cols = lo + tl.arange(0, BLOCK)
    mask = cols < n_post
    hi = tl.minimum(lo + BLOCK, n_post)
    for t in range(0, steps):
        first, last = tl.load(row_ptr + t * rows + b), tl.load(row_ptr + t * rows + b + 1)
        if HAS_DELAY:
            for e in range(first, last):
                start, stop = _synapses_in(post, offsets, tl.load(index + e), lo, hi)
                for s in range(start, stop):
                    w = tl.load(weight + s) if HAS_WEIGHT else shared_weight
                    slot = (step + t + tl.load(delay + s)) % slots
                    target = ring + (slot * rows + b) * n_post + tl.load(post + s)
                    tl.store(target, tl.load(target) + w)
        else:
            base = ring + (((step + t + shared_delay) % slots) * rows + b) * n_post
            acc = tl.load(base + cols, mask=mask, other=0.0)
            for e in range(first, last):
                start, stop = _synapses_in(post, offsets, tl.load(index + e), lo, hi)
                for s in range(start, stop):
                    w = tl.load(weight + s) if HAS_WEIGHT else shared_weight
                    acc += tl.where(cols == tl.load(post + s), w, 0.0)
            tl.store(base + cols, acc, mask=mask)


def linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None, events: int | None, out: torch.Tensor) -> None:
    """``events`` is the C kernels' (it sizes their thread team); one program per row needs no count."""
    row_ptr, index = compressed_rows(x)
    n_out = weight_t.shape[1]
    grid = (x.shape[0], triton.cdiv(n_out, BLOCK))
    has_bias = bias is not None
    _linear_kernel[grid](row_ptr, index, weight_t, bias if has_bias else weight_t, out, n_out, has_bias, BLOCK, **COMPILE_OPTIONS)


def conv2d(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    events: int | None,
    out: torch.Tensor,
) -> None:
    rows, _, h, w = x.shape
    _, kh, kw, c_out = weight_t.shape
    ho, wo = out.shape[2:]
    row_ptr, index = compressed_rows(x.reshape(rows, -1))
    out.copy_(bias.view(1, c_out, 1, 1).expand_as(out)) if bias is not None else out.zero_()
    grid = (rows, triton.cdiv(c_out, BLOCK))
    _conv2d_kernel[grid](row_ptr, index, weight_t, out, c_out, h, w, ho, wo, *stride, *padding, kh, kw, BLOCK, **COMPILE_OPTIONS)


def avgpool2d(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], out: torch.Tensor
) -> None:
    rows, c, h, w = x.shape
    ho, wo = out.shape[2:]
    row_ptr, index = compressed_rows(x.reshape(rows, -1))
    out.zero_()
    _avgpool2d_kernel[(rows,)](row_ptr, index, out, c, h, w, ho, wo, *stride, *padding, *kernel, **COMPILE_OPTIONS)
    out /= float(kernel[0] * kernel[1])


def poisson(threshold: torch.Tensor, t0: int, seed: int, out: torch.Tensor) -> None:
    steps, batch, n = out.shape
    total = steps * batch * n
    grid = (triton.cdiv(total, BLOCK),)
    _poisson_kernel[grid](
        out.view(torch.uint8), threshold, total, batch, n, t0, seed & 0xFFFFFFFF, seed >> 32, BLOCK, **COMPILE_OPTIONS
    )


def poisson_counts(table: torch.Tensor, row: torch.Tensor, t0: int, seed: int, out: torch.Tensor) -> None:
    steps, batch, n = out.shape
    total = steps * batch * n
    grid = (triton.cdiv(total, BLOCK),)
    _poisson_counts_kernel[grid](
        out, table, row, total, batch, n, table.shape[1], t0, seed & 0xFFFFFFFF, seed >> 32, BLOCK, **COMPILE_OPTIONS
    )


def project(counts: torch.Tensor, offsets: torch.Tensor, post: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor,
            ring: torch.Tensor, step: int) -> None:  # fmt: skip
    """``counts`` (steps, rows, n_pre) into ``ring`` (slots, rows, n_post) through the synapses
    (``weight`` and ``delay`` 0-dim when shared), as ``project_spikes`` in C adds them."""
    steps, rows, n_pre = counts.shape
    slots, _, n_post = ring.shape
    row_ptr, index = compressed_rows(counts.reshape(steps * rows, n_pre))
    shared_w, shared_d = weight.dim() == 0, delay.dim() == 0
    grid = (rows, triton.cdiv(n_post, BLOCK))
    _project_kernel[grid](
        row_ptr, index, offsets, post, post if shared_w else weight, float(weight) if shared_w else 0.0,
        post if shared_d else delay, int(delay) if shared_d else 0, ring, steps, rows, n_post, slots, step,
        not shared_w, not shared_d, BLOCK, **COMPILE_OPTIONS,
    )  # fmt: skip


def compile_for(arch: int = 90) -> dict[str, str]:
    """PTX of each kernel for the CUDA architecture ``arch`` (90: Hopper), as a launch compiles it
    (a 3 x 3 kernel for the scatters); needs no GPU. Not usable under TRITON_INTERPRET."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    pointers = {"row_ptr": "*i64", "index": "*i64", "threshold": "*i64", "wt": "*fp32", "bias": "*fp32", "out": "*fp32"}
    wide = {"seed_lo", "seed_hi", "total"}

    def build(kernel, constexprs: dict, types: dict | None = None) -> str:
        types = {**pointers, **(types or {})}
        signature = {
            name: "constexpr" if name in constexprs else types.get(name, "i64" if name in wide else "i32")
            for name in kernel.arg_names
        }
        source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constexprs.items()})
        return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=COMPILE_OPTIONS).asm["ptx"]

    return {
        "linear": build(_linear_kernel, {"HAS_BIAS": True, "BLOCK": BLOCK}),
        "conv2d": build(_conv2d_kernel, {"KH": 3, "KW": 3, "BLOCK": BLOCK}),
        "avgpool2d": build(_avgpool2d_kernel, {"KH": 3, "KW": 3}),
        "poisson": build(_poisson_kernel, {"BLOCK": BLOCK}, {"out": "*u8"}),
        "poisson_counts": build(_poisson_counts_kernel, {"BLOCK": BLOCK}, {"out": "*u8", "table": "*i64", "row": "*i32"}),
        "project": build(
            _project_kernel,
            {"HAS_WEIGHT": False, "HAS_DELAY": False, "BLOCK": BLOCK},
            {"offsets": "*i64", "post": "*i32", "weight": "*i32", "delay": "*i32", "ring": "*fp32", "shared_weight": "fp32"},
        ),
    }
