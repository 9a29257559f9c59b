"""Sparse projections with delays: the connectivity rules draw what they promise from a seed, and
the C kernel adds spikes into the delay ring exactly as the dense reference does."""

import dataclasses
import time
from collections.abc import Callable

import pytest
import torch

from worker.engine import projections as proj
from worker.engine.projections import DelayRing, project, project_reference


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def synapse_pairs(projection: proj.Projection) -> list[tuple[int, int]]:
    return list(zip(projection.pre.tolist(), projection.post.tolist(), strict=True))


def test_fixed_in_degree_gives_every_target_k_distinct_inputs_and_no_autapses_when_asked() -> None:
    p = proj.fixed_in_degree(300, 300, 40, 1, autapses=False)
    pairs = synapse_pairs(p)
    assert p.synapses == 300 * 40 and len(set(pairs)) == len(pairs), "no multapses"
    assert torch.equal(torch.bincount(p.post.long(), minlength=300), torch.full((300,), 40))
    assert all(pre != post for pre, post in pairs)
    assert synapse_pairs(proj.fixed_in_degree(300, 300, 40, 1, autapses=False)) == pairs, "a seed, the same synapses"
    assert synapse_pairs(proj.fixed_in_degree(300, 300, 40, 2, autapses=False)) != pairs
    with pytest.raises(ValueError, match="40 distinct partners asked of 29"):
        proj.fixed_in_degree(30, 30, 40, 1, autapses=False)


def test_fixed_in_degree_with_multapses_may_repeat_a_pair_but_keeps_the_degree() -> None:
    p = proj.fixed_in_degree(5, 50, 20, 3, autapses=False, multapses=True)
    pairs = synapse_pairs(p)
    assert len(set(pairs)) < len(pairs) and all(pre != post for pre, post in pairs)
    assert torch.equal(torch.bincount(p.post.long(), minlength=50), torch.full((50,), 20))


@pytest.mark.parametrize(("exclude_own", "multapses"), [(False, False), (True, False), (True, True)])
def test_the_partner_kernel_draws_the_references_partners(exclude_own: bool, multapses: bool) -> None:
    assert proj._library() is not None
    drawn = proj.draw_partners(40, 25, 9, 2**63 + 5, 3, exclude_own, multapses)
    assert torch.equal(drawn, proj.draw_partners_reference(40, 25, 9, 2**63 + 5, 3, exclude_own, multapses))


def with_threads(count: int, draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    threads = torch.get_num_threads()  # the kernel's team is torch's thread count
    torch.set_num_threads(count)
    try:
        return draw()
    finally:
        torch.set_num_threads(threads)


def test_partners_do_not_depend_on_the_thread_count_and_are_uniform() -> None:
    one = with_threads(1, lambda: proj.draw_partners(4000, 500, 50, 7, 0, True, False))
    assert torch.equal(one, with_threads(3, lambda: proj.draw_partners(4000, 500, 50, 7, 0, True, False)))
    counts = torch.bincount(one.reshape(-1).long(), minlength=500).double()  # each about 400
    chi_square = float(((counts - counts.mean()) ** 2 / counts.mean()).sum())
    assert chi_square < 499 + 4 * (2 * 499) ** 0.5, chi_square  # 499 degrees of freedom, 4 sigma
    assert all(len(set(row)) == 50 for row in one.tolist())


def test_fixed_out_degree_gives_every_source_k_targets() -> None:
    p = proj.fixed_out_degree(200, 120, 15, 4)
    assert torch.equal(p.offsets.diff(), torch.full((200,), 15))
    assert len(set(synapse_pairs(p))) == p.synapses


def test_pairwise_bernoulli_connects_about_p_of_the_pairs_and_never_a_neuron_to_itself() -> None:
    n, probability = 400, 0.1
    p = proj.pairwise_bernoulli(n, n, probability, seeded(5), autapses=False)
    expected = probability * n * (n - 1)
    assert abs(p.synapses - expected) < 3 * (expected * (1 - probability)) ** 0.5
    assert all(pre != post for pre, post in synapse_pairs(p))


@pytest.mark.parametrize(
    ("n_pre", "n_post", "probability", "autapses"),
    [(30, 50, 0.2, True), (40, 40, 0.01, False), (7, 9, 0.9, True), (5, 5, 1.0, False)],
)
def test_pairwise_bernoulli_walks_the_pairs_as_its_reference_does(
    n_pre: int, n_post: int, probability: float, autapses: bool
) -> None:
    p = proj.pairwise_bernoulli(n_pre, n_post, probability, seeded(11), autapses=autapses)
    assert synapse_pairs(p) == proj.pairwise_bernoulli_reference(n_pre, n_post, probability, 11, autapses=autapses)


def test_pairwise_bernoulli_rows_are_binomial_and_the_work_follows_the_synapses_not_the_pairs() -> None:
    rows = proj.pairwise_bernoulli(2000, 500, 0.05, seeded(3)).row_lengths.double()  # Binomial(500, 0.05) each
    assert abs(float(rows.mean()) - 25.0) < 4 * (23.75 / 2000) ** 0.5
    assert abs(float(rows.var()) - 23.75) < 4 * 23.75 * (2 / 2000) ** 0.5
    started = time.perf_counter()
    sparse = proj.pairwise_bernoulli(40_000, 40_000, 1e-6, seeded(3))  # 1.6e9 pairs, about 1,600 synapses
    assert time.perf_counter() - started < 2.0  # milliseconds here; drawn pair by pair it took 13-40 s
    assert abs(sparse.synapses - 1600) < 5 * 40


def test_a_bernoulli_build_stops_when_asked() -> None:
    calls = []

    def stop() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        proj.pairwise_bernoulli(10_000, 10_000, 0.2, seeded(1), should_stop=stop)  # 20 million synapses: several blocks
    assert len(calls) == 2


def test_rows_are_sorted_by_target_and_bad_synapses_are_refused() -> None:
    p = proj.from_pairs(torch.tensor([2, 0, 2, 0]), torch.tensor([1, 3, 0, 1]), 3, 4, torch.tensor([1.0, 2.0, 3.0, 4.0]), 2)
    assert p.offsets.tolist() == [0, 2, 2, 4] and p.post.tolist() == [1, 3, 0, 1] and p.weight.tolist() == [4.0, 2.0, 3.0, 1.0]
    with pytest.raises(ValueError, match="outside its population"):
        proj.from_pairs(torch.tensor([3]), torch.tensor([0]), 3, 4, 1.0, 1)
    with pytest.raises(ValueError, match="not negative"):
        proj.from_pairs(torch.tensor([0]), torch.tensor([0]), 3, 4, 1.0, -1)


def test_a_projection_with_one_weight_and_one_delay_stores_four_bytes_a_synapse() -> None:
    p = proj.fixed_in_degree(1000, 1000, 100, 6, weight=0.1, delay=15)
    assert p.bytes() == 4 * 100_000 + 8 * 1001 + 4 + 4


def run(spikes: torch.Tensor, p: proj.Projection, reference: bool, threads: int = 2) -> torch.Tensor:
    """Every step's input over ``spikes`` (steps, rows, n_pre) through the ring."""
    ring = DelayRing(p.max_delay + 1, spikes.shape[1], p.n_post)
    inputs = []
    for step, spikes_t in enumerate(spikes):
        inputs.append(ring.take(step))
        if reference:
            project_reference(spikes_t.float(), p, ring, step)
        else:
            project(spikes_t, p, ring, step, threads)
    return torch.stack(inputs)


def random_projection(seed: int, exact: bool) -> proj.Projection:
    g = seeded(seed)
    n_pre, n_post, synapses = 60, 70, 1500
    pre, post = torch.randint(0, n_pre, (synapses,), generator=g), torch.randint(0, n_post, (synapses,), generator=g)
    weight = torch.randint(-64, 64, (synapses,), generator=g) / 64 if exact else torch.randn(synapses, generator=g)
    return proj.from_pairs(pre, post, n_pre, n_post, weight, torch.randint(1, 6, (synapses,), generator=g))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_kernel_equals_the_dense_reference_exactly_on_weights_exact_in_float32(seed: int) -> None:
    assert proj._library() is not None, "the C kernel is built here (else both sides would be the reference)"
    p = random_projection(seed, exact=True)
    spikes = (torch.rand(40, 3, p.n_pre, generator=seeded(seed + 10)) < 0.2).to(torch.uint8)
    spikes[5, 1, 7] = 2  # an input listed twice adds its synapses twice
    ours = run(spikes, p, reference=False)
    assert ours.abs().sum() > 0
    assert torch.equal(ours, run(spikes, p, reference=True))


def test_random_weights_agree_closely_and_the_thread_count_changes_no_bit() -> None:
    p = random_projection(7, exact=False)
    spikes = torch.rand(40, 2, p.n_pre, generator=seeded(8)) < 0.3
    one, two = run(spikes, p, reference=False, threads=1), run(spikes, p, reference=False, threads=2)
    assert torch.equal(one, two)
    torch.testing.assert_close(one, run(spikes, p, reference=True), rtol=1e-5, atol=1e-5)


def test_a_spike_arrives_after_its_delay_with_its_weight() -> None:
    weights, delays = torch.tensor([0.5, 0.25, 2.0]), torch.tensor([1, 3, 2])
    p = proj.from_pairs(torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1]), 2, 3, weights, delays)
    spikes = torch.zeros(6, 1, 2, dtype=torch.bool)
    spikes[0, 0, 0] = True
    spikes[1, 0, 1] = True
    inputs = run(spikes, p, reference=False)[:, 0]
    expected = torch.zeros(6, 3)
    expected[1, 0], expected[3, 2], expected[3, 1] = 0.5, 0.25, 2.0
    assert torch.equal(inputs, expected)


def test_shared_weight_and_delay_equal_the_same_values_per_synapse() -> None:
    shared = proj.fixed_in_degree(50, 40, 10, 9, weight=0.125, delay=3)
    spread = proj.Projection(
        shared.n_pre, shared.n_post, shared.offsets, shared.post,
        torch.full((shared.synapses,), 0.125), torch.full((shared.synapses,), 3, dtype=torch.int32),
    )  # fmt: skip
    spikes = torch.rand(20, 1, 50, generator=seeded(10)) < 0.2
    assert torch.equal(run(spikes, shared, reference=False), run(spikes, spread, reference=False))


@pytest.mark.parametrize("block", [2, 5])
def test_several_steps_at_once_add_what_step_by_step_adds(block: int) -> None:
    """A graph's pass hands the kernel several steps (never more than the shortest delay); with
    per-synapse delays a slot is reached from several of them, and the sums are the step-by-step
    ones bit for bit."""
    drawn = random_projection(4, exact=False)
    p = dataclasses.replace(drawn, delay=drawn.delay + block - 1)
    spikes = (torch.rand(40, 2, p.n_pre, generator=seeded(9)) < 0.2).to(torch.uint8)
    step_by_step = run(spikes, p, reference=False)
    ring = DelayRing(p.max_delay + block, 2, p.n_post)
    taken = []
    for first in range(0, 40, block):
        taken.append(ring.take_steps(first, block))
        project(spikes[first : first + block], p, ring, first)
    assert torch.equal(torch.cat(taken), step_by_step)


def test_a_delay_of_zero_arrives_in_the_same_step() -> None:
    p = proj.one_to_one(3, weight=0.5, delay=0)
    ring = DelayRing(2, 1, 3)
    project(torch.tensor([[True, False, True]]), p, ring, 4)
    assert ring.take(4).tolist() == [[0.5, 0.0, 0.5]]
