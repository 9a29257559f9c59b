"""Event kernels: the C and Triton kernels equal their slow references bit for bit, equal the
dense operations exactly where float32 sums are exact, and the Poisson draws are standard Philox,
chunk-independent, at the asked rate and independent across neurons, steps and batch entries.

The Triton kernels run on a GPU when there is one, otherwise on the CPU through Triton's
interpreter (TRITON_INTERPRET=1, set before Triton is first imported).
"""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worker.engine_options import ENGINE

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tests.helpers import compiled_ptx
from worker.engine import events
from worker.engine.events import reference
from worker.simulation.binomial import count_thresholds

try:
    import triton  # noqa: F401

    BACKENDS = ["cpu", pytest.param("triton", marks=pytest.mark.slow)]
except ImportError:
    BACKENDS = ["cpu"]


def device_for(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "triton" and torch.cuda.is_available() else "cpu")


def batch_for(backend: str, batch: int) -> int:
    """Two samples for Triton in its interpreter (a second apiece on a slow 2-core machine): enough
    to check the batch's strides; the C kernels, and Triton on a GPU, take the whole batch."""
    return 2 if backend == "triton" and not torch.cuda.is_available() else batch


def spikes(shape: tuple[int, ...], rate: float, seed: int, repeats: bool = False) -> torch.Tensor:
    """Random spike counts: 0/1, or with ``repeats`` some inputs counted two or three times."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=generator) < rate).to(torch.uint8)
    if repeats:
        x += ((torch.rand(shape, generator=generator) < rate / 2) & (x > 0)).to(torch.uint8) * 2
    return x


def dyadic(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Weights that are multiples of 1/64 below 2 in magnitude: their sums are exact in float32,
    so every summation order gives the same bits."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-127, 128, shape, generator=generator).to(torch.float32) / 64


def normal(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --- linear -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("rows", "n_in", "n_out"), [(1, 1, 1), (9, 13, 5), (6, 70, 1500)])  # 1500: two output tiles
@pytest.mark.parametrize("bias", [True, False])
def test_linear_events_equal_the_reference_bit_for_bit(backend: str, rows: int, n_in: int, n_out: int, bias: bool) -> None:
    x = spikes((rows, n_in), 0.3, seed=rows + n_in, repeats=True)
    weight_t, b = normal((n_in, n_out), 1), normal((n_out,), 2) if bias else None
    device = device_for(backend)
    out = events.linear_events(x.to(device), weight_t.to(device), None if b is None else b.to(device), backend=backend)
    assert torch.equal(out.cpu(), reference.linear_events(x, weight_t, b))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_events_equal_the_dense_product(bias: bool) -> None:
    x = spikes((50, 300), 0.05, seed=3, repeats=True)
    exact_w, exact_b = dyadic((300, 700), 4), dyadic((700,), 5) if bias else None
    dense = x.float() @ exact_w + (0 if exact_b is None else exact_b)
    assert torch.equal(events.linear_events(x, exact_w, exact_b), dense)
    w, b = normal((300, 700), 6), normal((700,), 7) if bias else None
    dense = x.float() @ w + (0 if b is None else b)
    torch.testing.assert_close(events.linear_events(x, w, b), dense, rtol=1e-5, atol=1e-5)


def test_linear_events_take_bool_spikes_and_an_empty_input() -> None:
    x = spikes((4, 20), 0.2, seed=8)
    w = dyadic((20, 3), 9)
    assert torch.equal(events.linear_events(x.bool(), w, None), events.linear_events(x, w, None))
    assert torch.equal(events.linear_events(torch.zeros((3, 20), dtype=torch.bool), w, w[0]), w[0].expand(3, 3))
    with pytest.raises(TypeError, match="bool or uint8"):
        events.linear_events(x.float(), w, None)


# --- conv2d and avgpool2d ---------------------------------------------------------------------

CONVS = [  # (c_in, h, w), (c_out, kh, kw), stride, padding
    ((1, 5, 5), (1, 1, 1), (1, 1), (0, 0)),
    ((2, 9, 8), (4, 3, 2), (1, 1), (0, 0)),
    ((3, 11, 10), (5, 3, 3), (2, 1), (1, 1)),
    ((2, 12, 7), (3, 5, 3), (2, 3), (2, 1)),
    ((1, 1, 30), (6, 1, 7), (1, 2), (0, 3)),  # a 1-d convolution as the runner runs it
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CONVS)
def test_conv2d_events_equal_the_reference_bit_for_bit(backend: str, shape, kernel, stride, padding) -> None:
    c_out, kh, kw = kernel
    x = spikes((batch_for(backend, 3), *shape), 0.2, seed=sum(shape), repeats=True)
    weight_t, bias = normal((shape[0], kh, kw, c_out), 1), normal((c_out,), 2)
    device = device_for(backend)
    out = events.conv2d_events(x.to(device), weight_t.to(device), bias.to(device), stride, padding, backend=backend)
    assert torch.equal(out.cpu(), reference.conv2d_events(x, weight_t, bias, stride, padding, tuple(out.shape[2:])))


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CONVS)
def test_conv2d_events_equal_pytorchs_convolution(shape, kernel, stride, padding) -> None:
    c_out, kh, kw = kernel
    x = spikes((4, *shape), 0.15, seed=sum(shape), repeats=True)
    for make, exact in ((dyadic, True), (normal, False)):
        weight, bias = make((c_out, shape[0], kh, kw), 11), make((c_out,), 12)
        out = events.conv2d_events(x, weight.permute(1, 2, 3, 0).contiguous(), bias, stride, padding)
        dense = F.conv2d(x.float(), weight, bias, stride, padding)
        if exact:
            assert torch.equal(out, dense)
        else:
            torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1)), ((3, 3), (2, 2), (1, 0))]
)
def test_avgpool2d_events_equal_pytorchs_pooling_bit_for_bit(backend: str, kernel, stride, padding) -> None:
    x = spikes((batch_for(backend, 5), 3, 9, 10), 0.3, seed=21, repeats=True)
    device = device_for(backend)
    out = events.avgpool2d_events(x.to(device), kernel, stride, padding, backend=backend).cpu()
    assert torch.equal(out, F.avg_pool2d(x.float(), kernel, stride, padding))
    assert torch.equal(out, reference.avgpool2d_events(x, kernel, stride, padding, tuple(out.shape[2:])))


# --- Poisson ----------------------------------------------------------------------------------


def test_philox_matches_the_published_known_answers() -> None:
    """Random123's known-answer vectors for Philox4x32-10 (counter, key -> output)."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, expected in cases:
        words = reference.philox([torch.tensor([c]) for c in counter], key[0] | key[1] << 32)
        assert tuple(int(word) for word in words) == expected


SEEDS = [0, 7, 2**32 + 5, 2**63 - 1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_poisson_kernels_draw_the_references_spikes(backend: str, seed: int) -> None:
    """On the CPU and in Triton (on CUDA or its interpreter): the same spikes, bit for bit."""
    threshold = torch.from_numpy(events.poisson_thresholds(np.linspace(0.0, 1.0, 23)))
    device = device_for(backend)
    drawn = events.poisson_spikes(threshold.to(device), 1000, 17, 3, seed, backend=backend).cpu()
    assert torch.equal(drawn, reference.poisson_spikes(threshold, 1000, 17, 3, seed))
    assert not drawn[..., 0].any() and drawn[..., -1].all()  # probability 0 never spikes, 1 always


def test_poisson_spikes_do_not_depend_on_the_chunking() -> None:
    threshold = torch.from_numpy(events.poisson_thresholds(np.full(50, 0.1)))
    whole = events.poisson_spikes(threshold, 0, 100, 2, seed=3)
    pieces = [events.poisson_spikes(threshold, start, stop - start, 2, seed=3) for start, stop in [(0, 1), (1, 38), (38, 100)]]
    assert torch.equal(torch.cat(pieces), whole)


def test_poisson_thresholds_keep_the_probability() -> None:
    p = np.array([0.0, 1e-9, 0.02, 0.5, 1.0])
    threshold = events.poisson_thresholds(p)
    assert threshold[0] == 0 and threshold[-1] == 2**32
    assert np.all(np.abs(threshold / 2.0**32 - p) <= 2.0**-33)


def test_poisson_rate_is_within_three_sigma() -> None:
    """Per neuron over steps and batch entries, and over the whole draw."""
    p = 0.02
    threshold = torch.from_numpy(events.poisson_thresholds(np.full(400, p)))
    drawn = events.poisson_spikes(threshold, 0, 2000, 4, seed=11).to(torch.float64)
    draws = drawn.numel()
    assert abs(drawn.mean().item() - p) <= 3 * np.sqrt(p * (1 - p) / draws)
    per_neuron = drawn.sum((0, 1))  # 8,000 draws each: binomial counts
    mean, sigma = 8000 * p, np.sqrt(8000 * p * (1 - p))
    assert abs(per_neuron.mean().item() - mean) <= 3 * sigma / np.sqrt(400)
    assert abs(per_neuron.std().item() - sigma) <= 0.15 * sigma


def chi_square_2x2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's statistic (1 degree of freedom) for independence of two paired spike samples."""
    a, b = a.flatten().bool(), b.flatten().bool()
    observed = torch.tensor([[(~a & ~b).sum(), (~a & b).sum()], [(a & ~b).sum(), (a & b).sum()]], dtype=torch.float64)
    expected = observed.sum(1, keepdim=True) * observed.sum(0, keepdim=True) / observed.sum()
    return float(((observed - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("seed", [1, 2**40 + 3])
def test_poisson_draws_are_independent_across_neurons_steps_and_batch_entries(seed: int) -> None:
    """Pairs of draws one neuron apart (inside one Philox block of four and across blocks), one
    step apart and one batch entry apart: each 2x2 table's chi-square stays below 15.1, the 99.99th
    percentile of its distribution (the draws are fixed by the seed, so this cannot flake)."""
    threshold = torch.from_numpy(events.poisson_thresholds(np.full(256, 0.3)))
    drawn = events.poisson_spikes(threshold, 0, 400, 3, seed=seed)
    pairs = {
        "neurons": (drawn[..., :-1], drawn[..., 1:]),
        "blocks": (drawn[..., :-4], drawn[..., 4:]),
        "steps": (drawn[:-1], drawn[1:]),
        "batch": (drawn[:, :-1], drawn[:, 1:]),
    }
    statistics = {name: chi_square_2x2(a, b) for name, (a, b) in pairs.items()}
    assert all(value < 15.1 for value in statistics.values()), statistics
    other_seed = events.poisson_spikes(threshold, 0, 400, 3, seed=seed + 1)
    assert chi_square_2x2(drawn, other_seed) < 15.1


def test_poisson_without_kernels_falls_back_to_the_same_spikes(monkeypatch: pytest.MonkeyPatch) -> None:
    threshold = torch.from_numpy(events.poisson_thresholds(np.full(9, 0.4)))
    with_kernels = events.poisson_spikes(threshold, 5, 30, 2, seed=4)
    monkeypatch.setattr(ENGINE, "events", False)
    assert not events.available(torch.device("cpu"))
    assert torch.equal(events.poisson_spikes(threshold, 5, 30, 2, seed=4), with_kernels)


@pytest.mark.slow
@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs triton")
def test_triton_event_kernels_compile_for_hopper() -> None:
    """What the interpreter lets through (types, scalar branches) must also compile; in a child
    process, since this one has TRITON_INTERPRET set."""
    sizes = compiled_ptx("worker.engine.events.triton_kernels", "len(ptx)")
    assert set(sizes) == {"linear", "conv2d", "avgpool2d", "poisson", "poisson_counts", "project"}
    assert min(sizes.values()) > 1000


# --- recording --------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.1, 0.5, 0.95])
@pytest.mark.parametrize("kernels", ["on", "off"])
def test_recorded_events_are_the_spikes_in_step_batch_neuron_order(
    kernels: str, density: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C kernels and PyTorch's nonzero (the path on CUDA and without kernels) agree, sparse or
    dense; the budget hears the total before anything is listed."""
    if kernels == "off":
        monkeypatch.setattr(ENGINE, "events", False)
    z = spikes((37, 3, 70), density, seed=5).bool()
    counts = torch.full((3, 70), 2, dtype=torch.int64)
    told: list[int] = []
    times, batch, senders = events.record_spikes(z, 100, counts, told.append)
    expected = z.nonzero()
    assert told == [expected.shape[0]] and events.spike_count(z) == expected.shape[0]
    assert times.tolist() == (expected[:, 0] + 100).tolist()
    assert batch.tolist() == expected[:, 1].tolist() and senders.tolist() == expected[:, 2].tolist()
    assert torch.equal(counts, 2 + z.sum(0))


def test_a_refused_total_lists_nothing() -> None:
    def refuse(total: int) -> None:
        raise RuntimeError(f"{total} is too many")

    counts = torch.zeros((1, 50), dtype=torch.int64)
    with pytest.raises(RuntimeError, match="too many"):
        events.record_spikes(spikes((10, 1, 50), 0.5, seed=1).bool(), 0, counts, refuse)
    assert not counts.any()


def count_table(sources: int, p: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    table, row = count_thresholds(sources, p)
    return torch.from_numpy(table), torch.from_numpy(row)


def test_poisson_counts_kernel_draws_the_references_counts() -> None:
    table, row = count_table(800, np.linspace(0.0, 0.01, 13))
    drawn = events.poisson_counts(table, row, 500, 21, 3, seed=5)
    assert drawn.dtype == torch.uint8 and int(drawn.max()) > 3
    assert torch.equal(drawn, reference.poisson_counts(table, row, 500, 21, 3, seed=5))


def test_poisson_counts_have_the_binomial_mean_and_variance_and_do_not_depend_on_the_chunking() -> None:
    n, p = 800, 25.0 * 1e-4  # Brunel's external drive: 800 trains at 25 Hz, dt 0.1 ms
    table, row = count_table(n, np.full(500, p))
    drawn = events.poisson_counts(table, row, 0, 400, 1, seed=2)
    counts = drawn.double()
    samples = counts.numel()
    mean, variance = n * p, n * p * (1 - p)
    assert abs(float(counts.mean()) - mean) < 3 * math.sqrt(variance / samples)
    assert abs(float(counts.var()) - variance) < 3 * variance * math.sqrt(2 / samples) * 1.5  # the excess kurtosis is small
    pieces = [events.poisson_counts(table, row, start, stop - start, 1, seed=2) for start, stop in [(0, 7), (7, 400)]]
    assert torch.equal(torch.cat(pieces), drawn)


def test_one_train_per_feature_counts_as_the_poisson_spikes_do() -> None:
    p = np.full(64, 0.3)
    table, row = count_table(1, p)
    counts = events.poisson_counts(table, row, 0, 50, 2, seed=9)
    spikes = events.poisson_spikes(torch.from_numpy(events.poisson_thresholds(p)), 0, 50, 2, seed=9)
    # the same draw u: a spike when u < p * 2^32, a count of one when u >= (1 - p) * 2^32
    assert abs(int(counts.sum()) - int(spikes.sum())) < 200 and int(counts.max()) == 1


def test_count_thresholds_are_the_binomial_cdf_and_refuse_counts_over_a_byte() -> None:
    table, row = count_thresholds(3, np.array([0.5, 0.5, 0.0]))
    assert row.tolist() == [1, 1, 0]
    assert table[1].tolist() == [2**29, 2**31, 7 * 2**29, 2**32]  # 1/8, 1/2, 7/8, 1
    assert table[0].tolist()[0] == 2**32  # never a spike
    with pytest.raises(ValueError, match="more than 255 spikes"):
        count_thresholds(800, np.array([0.5]))


@pytest.mark.parametrize(("sources", "p"), [(1_000_000, 5e-5), (100_000, 5e-4), (800, 2.5e-3), (20, 0.3)])
def test_count_thresholds_follow_scipys_binomial_cdf_at_large_numbers_of_trains(sources: int, p: float) -> None:
    """A million trains with a mean of 50 spikes per step fit a byte as well as 100,000 with the
    same mean do: every threshold within one unit of 2^32 CDF(k)."""
    binom = pytest.importorskip("scipy.stats").binom
    table, _ = count_thresholds(sources, np.array([p]))
    reached = table[0][table[0] < 2**32]
    expected = np.round(binom.cdf(np.arange(len(reached)), sources, p) * 2**32)
    assert len(reached) < 255
    assert np.abs(reached - expected).max() <= 1
    assert binom.sf(len(reached), sources, p) <= 2**-33  # counts past the table have no 32-bit probability


# --- graphs: counts of several trains, projections ------------------------------------------------


def test_triton_counts_kernel_draws_the_c_kernels_counts() -> None:
    table, row = count_table(800, np.linspace(0.0, 0.01, 9).repeat(3))
    drawn = events.poisson_counts(table, row, 40, 6, 2, seed=8, backend="triton")
    assert int(drawn.max()) > 2
    assert torch.equal(drawn, events.poisson_counts(table, row, 40, 6, 2, seed=8, backend="cpu"))


@pytest.mark.parametrize(("per_synapse_weight", "per_synapse_delay"), [(False, False), (True, False), (True, True)])
def test_triton_projection_kernel_adds_what_the_c_kernel_adds(per_synapse_weight: bool, per_synapse_delay: bool) -> None:
    from worker.engine import projections as proj

    g = torch.Generator().manual_seed(3)
    n_pre, n_post, synapses = 40, 300, 900
    pre, post = torch.randint(0, n_pre, (synapses,), generator=g), torch.randint(0, n_post, (synapses,), generator=g)
    weight = torch.randn(synapses, generator=g) if per_synapse_weight else 0.25
    delay = torch.randint(2, 5, (synapses,), generator=g) if per_synapse_delay else 2
    projection = proj.from_pairs(pre, post, n_pre, n_post, weight, delay)
    spikes = (torch.rand(6, 2, n_pre, generator=g) < 0.3).to(torch.uint8)
    spikes[1, 0, 3] = 2
    rings = {backend: proj.DelayRing(projection.max_delay + 2, 2, n_post) for backend in ("cpu", "triton")}
    for backend, ring in rings.items():
        for first in range(0, 6, 2):  # passes of two steps
            ring.buffer[first % ring.slots].normal_(generator=torch.Generator().manual_seed(first))  # sums onto values
            proj.project(spikes[first : first + 2], projection, ring, first, backend=backend)
    assert rings["cpu"].buffer.abs().sum() > 0
    assert torch.equal(rings["cpu"].buffer, rings["triton"].buffer)
