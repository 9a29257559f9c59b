"""Slow, obvious versions of the event kernels: the arithmetic the kernels must reproduce bit for
bit (tests compare them), written as plain loops over rows and events.

``poisson_spikes`` is also the fallback where no kernel can be built: it is vectorised over all
draws in 64-bit integer tensor arithmetic, so it gives the kernels' spikes on any device.
"""

import torch

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def linear_events(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (rows, n_in) counts; weight_t (n_in, n_out): per row, weight rows added in ascending input
    order (each as often as its count), then the bias."""
    out = torch.empty((x.shape[0], weight_t.shape[1]), dtype=torch.float32)
    for r, row in enumerate(x.tolist()):
        acc = torch.zeros(weight_t.shape[1], dtype=torch.float32)
        for i, count in enumerate(row):
            for _ in range(count):
                acc = acc + weight_t[i]
        out[r] = acc if bias is None else acc + bias
    return out


def _positions(y: int, pad: int, size: int, stride: int, out_size: int) -> list[tuple[int, int]]:
    """(kernel offset, output position) pairs that input position ``y`` reaches."""
    pairs = []
    for k in range(size):
        shifted = y + pad - k
        if shifted >= 0 and shifted % stride == 0 and shifted // stride < out_size:
            pairs.append((k, shifted // stride))
    return pairs


def conv2d_events(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    out_hw: tuple[int, int],
) -> torch.Tensor:
    """x (rows, c_in, h, w) counts; weight_t (c_in, kh, kw, c_out). Each output starts from its
    bias; each event, in ascending (channel, y, x) order, adds its kernel column for each position
    it reaches, in ascending (ky, kx)."""
    rows = x.shape[0]
    _, kh, kw, c_out = weight_t.shape
    ho, wo = out_hw
    out = torch.empty((rows, c_out, ho, wo), dtype=torch.float32)
    for r in range(rows):
        acc = torch.zeros((ho, wo, c_out), dtype=torch.float32)
        if bias is not None:
            acc += bias
        for ch, y, xx in x[r].nonzero().tolist():
            for _ in range(int(x[r, ch, y, xx])):
                for ky, oy in _positions(y, padding[0], kh, stride[0], ho):
                    for kx, ox in _positions(xx, padding[1], kw, stride[1], wo):
                        acc[oy, ox] = acc[oy, ox] + weight_t[ch, ky, kx]
        out[r] = acc.permute(2, 0, 1)
    return out


def avgpool2d_events(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], out_hw: tuple[int, int]
) -> torch.Tensor:
    """x (rows, c, h, w) counts: each window's count of events over kh * kw."""
    rows, c, _, _ = x.shape
    ho, wo = out_hw
    counts = torch.zeros((rows, c, ho, wo), dtype=torch.float32)
    for r, ch, y, xx in x.nonzero().tolist():
        for _, oy in _positions(y, padding[0], kernel[0], stride[0], ho):
            for _, ox in _positions(xx, padding[1], kernel[1], stride[1], wo):
                counts[r, ch, oy, ox] += float(x[r, ch, y, xx])
    return counts / float(kernel[0] * kernel[1])


def philox(counter: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """Philox4x32-10 of four int64 tensors holding 32-bit words, under the key (seed's low and high
    32 bits)."""
    c0, c1, c2, c3 = counter
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    for _ in range(10):
        p0, p1 = c0 * PHILOX_M0, c2 * PHILOX_M1  # below 2^64 as unsigned; int64 keeps the low 64 bits
        hi0, hi1 = (p0 >> 32) & MASK32, (p1 >> 32) & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, p1 & MASK32, hi0 ^ c3 ^ k1, p0 & MASK32
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return [c0, c1, c2, c3]


def poisson_spikes(threshold: torch.Tensor, t0: int, steps: int, batch: int, seed: int) -> torch.Tensor:
    """(steps, batch, n) bool: neuron n of batch entry b spikes at step t when word n % 4 of
    Philox(counter (n // 4, b, t, 0), key seed) is below threshold[n]."""
    return poisson_words(threshold.shape[0], t0, steps, batch, seed, threshold.device) < threshold


def poisson_counts(table: torch.Tensor, row: torch.Tensor, t0: int, steps: int, batch: int, seed: int) -> torch.Tensor:
    """(steps, batch, n) uint8: the number of thresholds in feature n's row of ``table`` that the
    word ``poisson_spikes`` draws for it reaches."""
    words = poisson_words(row.shape[0], t0, steps, batch, seed, table.device)
    thresholds = table[row.long()]  # (n, width)
    return (words.unsqueeze(-1) >= thresholds).sum(-1).to(torch.uint8)


def poisson_words(n: int, t0: int, steps: int, batch: int, seed: int, device: torch.device) -> torch.Tensor:
    """(steps, batch, n) int64: word n % 4 of Philox(counter (n // 4, b, t, 0), key seed)."""
    t = torch.arange(t0, t0 + steps, device=device).view(steps, 1, 1).expand(steps, batch, n)
    b = torch.arange(batch, device=device).view(1, batch, 1).expand(steps, batch, n)
    neuron = torch.arange(n, device=device).view(1, 1, n).expand(steps, batch, n)
    words = philox([neuron // 4, b, t, torch.zeros_like(t)], seed)
    lane = neuron % 4
    return torch.where(lane == 0, words[0], torch.where(lane == 1, words[1], torch.where(lane == 2, words[2], words[3])))
