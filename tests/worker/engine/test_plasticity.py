"""STDP on a projection: the classic window from single pairs, the pairing and bounds rules, the
event-driven form against the dense reference step, and parity with Norse's stdp_step_linear."""

import math

import pytest
import torch

from worker.engine import projections as proj
from worker.engine.parameter_types import STDPParameters
from worker.engine.plasticity import PlasticProjection, STDPState, stdp_step_reference

DT = 1e-4


def one_synapse(p: STDPParameters, w0: float = 0.5, delay: int = 1) -> PlasticProjection:
    projection = proj.from_pairs(torch.tensor([0]), torch.tensor([0]), 1, 1, torch.tensor([w0]), delay)
    return PlasticProjection.of(projection, p, DT)


def drive(plastic: PlasticProjection, pre: list[int], post: list[int], steps: int) -> list[float]:
    """Runs the steps with source spikes at ``pre`` and target spikes at ``post``; what was delivered."""
    delivered = []
    for t in range(steps):
        into = torch.zeros(1)
        plastic.step(t, torch.tensor([t in pre]), torch.tensor([t in post]), into)
        delivered.append(float(into[0]))
    return delivered


@pytest.mark.parametrize("lag", [0, 1, 5, 40, 200])
def test_a_single_pair_changes_the_weight_by_the_window(lag: int) -> None:
    """Pre then post ``lag`` steps later: +a_pre exp(-lag dt / tau_pre); post then pre: a_post
    exp(-lag dt / tau_post); a pair in one step counts as pre before post."""
    p = STDPParameters(tau_pre=0.01, tau_post=0.02, a_pre=0.01, a_post=-0.012, w_min=0.0, w_max=1.0)
    causal = one_synapse(p)
    drive(causal, [10], [10 + lag], 300)
    assert float(causal.weight[0]) == pytest.approx(0.5 + 0.01 * math.exp(-lag * DT / 0.01), abs=1e-6)
    if lag:
        acausal = one_synapse(p)
        drive(acausal, [10 + lag], [10], 300)
        assert float(acausal.weight[0]) == pytest.approx(0.5 - 0.012 * math.exp(-lag * DT / 0.02), abs=1e-6)


def test_the_event_of_a_delayed_spike_is_the_step_before_it_arrives() -> None:
    """Delay 3: a spike sent at step 10 delivers its weight to step 13 (the runner adds what
    ``step`` 12 delivers to step 13's input) and pairs as an event at step 12."""
    p = STDPParameters(a_pre=0.01, a_post=-0.01)
    plastic = one_synapse(p, delay=3)
    delivered = drive(plastic, [10], [12], 100)
    assert [t for t, value in enumerate(delivered) if value] == [12] and delivered[12] == pytest.approx(0.5)
    assert float(plastic.weight[0]) == pytest.approx(0.51, abs=1e-7), "event and post spike in one step: potentiation"


def test_all_to_all_pairs_every_earlier_spike_and_nearest_only_the_latest() -> None:
    p = STDPParameters(tau_pre=0.01, a_pre=0.01, a_post=0.0)
    both = {}
    for pairing in ("all_to_all", "nearest"):
        plastic = one_synapse(p._replace(pairing=pairing))
        drive(plastic, [0, 10], [20], 50)
        both[pairing] = float(plastic.weight[0]) - 0.5
    assert both["all_to_all"] == pytest.approx(0.01 * (math.exp(-20 * DT / 0.01) + math.exp(-10 * DT / 0.01)), rel=1e-5)
    assert both["nearest"] == pytest.approx(0.01 * math.exp(-10 * DT / 0.01), rel=1e-5)


def test_hard_bounds_clip_and_soft_bounds_scale_by_the_room_left() -> None:
    p = STDPParameters(a_pre=0.3, a_post=-0.3, w_min=0.0, w_max=1.0)
    hard = one_synapse(p, w0=0.9)
    drive(hard, [0], [0], 2)
    assert float(hard.weight[0]) == 1.0
    soft = one_synapse(p._replace(bounds="soft"), w0=0.9)
    drive(soft, [0], [0], 2)
    assert float(soft.weight[0]) == pytest.approx(0.9 + 0.3 * 0.1, rel=1e-6)
    falling = one_synapse(p._replace(bounds="soft"), w0=0.2)
    drive(falling, [1], [0], 3)
    assert float(falling.weight[0]) == pytest.approx(0.2 - 0.3 * math.exp(-DT / 0.02) * 0.2, rel=1e-5)


@pytest.mark.parametrize("bounds", ["hard", "soft"])
@pytest.mark.parametrize("pairing", ["all_to_all", "nearest"])
@pytest.mark.parametrize("delay", [1, 3])
def test_the_event_driven_step_is_the_dense_reference(bounds: str, pairing: str, delay: int) -> None:
    """30 sources and 20 targets, random connectivity with multapses left out, random spikes for
    150 steps: the same deliveries, weights and traces as the dense step, to the bit."""
    g = torch.Generator().manual_seed(delay)
    n_pre, n_post = 30, 20
    p = STDPParameters(tau_pre=0.01, tau_post=0.02, a_pre=0.05, a_post=-0.06, w_min=0.0, w_max=1.0, bounds=bounds,
                       pairing=pairing)  # fmt: skip
    built = proj.pairwise_bernoulli(n_pre, n_post, 0.3, g)
    w0 = torch.rand(built.synapses, generator=g)
    plastic = PlasticProjection.of(dataclass_replace(built, w0, delay), p, DT)
    dense, connected = torch.zeros(n_pre, n_post), torch.zeros(n_pre, n_post, dtype=torch.bool)
    dense[built.pre, built.post.long()] = w0
    connected[built.pre, built.post.long()] = True
    state, sent = STDPState.start(n_pre, n_post), []
    changed = 0
    for t in range(150):
        emitted, fired = torch.rand(n_pre, generator=g) < 0.15, torch.rand(n_post, generator=g) < 0.15
        into = torch.zeros(n_post)
        plastic.step(t, emitted, fired, into)
        sent.append(emitted)
        events = sent[t - delay + 1] if t >= delay - 1 else torch.zeros(n_pre, dtype=torch.bool)
        expected, dense, state = stdp_step_reference(t, events, fired, dense, connected, state, p, DT)
        assert torch.equal(into, expected), f"step {t}"
        changed += int(events.any())
    assert changed > 100, "most steps must have events"
    assert torch.equal(plastic.weight, dense[built.pre, built.post.long()])
    for name in STDPState._fields:
        assert torch.equal(getattr(plastic, name), getattr(state, name)), name
    assert not torch.equal(plastic.weight, w0), "the weights must have changed"


def dataclass_replace(built: proj.Projection, weight: torch.Tensor, delay: int) -> proj.Projection:
    return proj.Projection(built.n_pre, built.n_post, built.offsets, built.post, weight, torch.tensor(delay, dtype=torch.int32))


def test_a_plastic_projection_refuses_several_delays() -> None:
    built = proj.from_pairs(torch.tensor([0, 0]), torch.tensor([0, 1]), 1, 2, 1.0, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="one delay"):
        PlasticProjection.of(built, STDPParameters(), DT)


norse_stdp = pytest.importorskip("norse.torch.functional.stdp")


@pytest.mark.parametrize("soft", [False, True])
def test_norses_stdp_step_linear_with_its_traces_mapped(soft: bool) -> None:
    """Norse's traces decay by (1 - dt / tau) and jump by dt a / tau, and its weights change by
    eta+ t_pre at a post spike and -eta- t_post at a pre spike. With tau chosen so that
    exp(-dt / tau) = 1 - dt / tau_norse, a_pre = eta+ dt a_pre / tau and a_post = -eta- dt a_post
    / tau, the rules are one where no synapse has a pre and a post spike in one step (Norse counts
    such a pair both ways): pre spikes here fall on even steps, post spikes on odd ones.
    ``multiplicative_relu`` with w in [0, 1] is the soft bound."""
    g = torch.Generator().manual_seed(11)
    n_pre, n_post, steps = 12, 8, 600
    tau_inv, a, eta_plus, eta_minus = 50.0, 1.0, 0.02, 0.025
    theirs_p = norse_stdp.STDPParameters(
        a_pre=torch.tensor(a), a_post=torch.tensor(a), tau_pre_inv=torch.tensor(tau_inv), tau_post_inv=torch.tensor(tau_inv),
        w_min=0.0, w_max=1.0, eta_plus=eta_plus, eta_minus=eta_minus,
        stdp_algorithm="multiplicative_relu" if soft else "additive", hardbound=True,
    )  # fmt: skip
    tau = -DT / math.log(1 - DT * tau_inv)
    ours_p = STDPParameters(tau_pre=tau, tau_post=tau, a_pre=eta_plus * DT * tau_inv * a, a_post=-eta_minus * DT * tau_inv * a,
                            w_min=0.0, w_max=1.0, bounds="soft" if soft else "hard")  # fmt: skip
    w0 = torch.rand(n_post, n_pre, generator=g) * 0.6 + 0.2
    everything = proj.all_to_all(n_pre, n_post, weight=w0.T.contiguous())
    plastic = PlasticProjection.of(everything, ours_p, DT)
    theirs_w, theirs_state = w0.clone(), norse_stdp.STDPState(torch.zeros(1, n_pre), torch.zeros(1, n_post))
    for t in range(steps):
        pre = (torch.rand(n_pre, generator=g) < 0.2) & (t % 2 == 0)
        post = (torch.rand(n_post, generator=g) < 0.2) & (t % 2 == 1)
        plastic.step(t, pre, post, torch.zeros(n_post))
        theirs_w, theirs_state = norse_stdp.stdp_step_linear(
            pre[None].float(), post[None].float(), theirs_w, theirs_state, theirs_p, DT
        )
    ours_w = plastic.weight.reshape(n_pre, n_post).T
    assert (ours_w - w0).abs().max() > 0.01, "the weights must have changed"
    torch.testing.assert_close(ours_w, theirs_w, rtol=1e-5, atol=1e-6)
