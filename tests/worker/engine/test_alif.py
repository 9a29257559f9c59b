"""ALIF: the documented integration order, adaptation after spikes, and the LIF limit."""

import pytest
import torch

import worker.engine as snn


def test_without_adaptation_it_is_exactly_lif() -> None:
    x = torch.rand(200, 3, 5) * 3
    alif_out, alif_state = snn.ALIF(snn.ALIFParameters(beta=0.0))(x)
    lif_out, lif_state = snn.LIF()(x)
    assert torch.equal(alif_out, lif_out) and lif_out.sum() > 0
    assert torch.equal(alif_state.v, lif_state.v)
    assert torch.all(alif_state.b == 0)


def test_input_reaches_the_membrane_in_the_same_step() -> None:
    """Order step 1: i_jump = i + x, then v integrates i_jump (unlike Norse's LSNN, one step later)."""
    _, states = snn.ALIF(record_states=True)(torch.tensor([[2.0], [0.0]]))
    assert states.v[0, 0].item() == pytest.approx(0.2)  # dt * tau_mem_inv * x
    assert states.i[0, 0].item() == pytest.approx(1.6)  # x * (1 - dt * tau_syn_inv)


def test_threshold_jumps_by_beta_at_a_spike_and_then_decays() -> None:
    p = snn.ALIFParameters(beta=1.8, tau_adapt_inv=1.25)
    out, states = snn.ALIF(p, record_states=True)(torch.ones(8, 1))
    first = int(out[:, 0].nonzero()[0])
    assert first == 5  # the LIF golden run: the sixth step spikes
    assert torch.all(states.b[:first] == 0)
    assert states.b[first, 0].item() == pytest.approx(1.8)
    # decay first, then the next spike would add: 1.8 * (1 - dt * tau_adapt_inv)
    assert states.b[first + 1, 0].item() == pytest.approx(1.8 * (1 - 0.001 * 1.25))


def test_threshold_test_uses_the_decayed_adaptation() -> None:
    """With v' = 1.5 and b = 0.5 before the step, z = H(v' - (v_th + b')) where b' has decayed."""
    p = snn.ALIFParameters(tau_adapt_inv=100.0, tau_mem_inv=1e-30, tau_syn_inv=1e-30)  # v and i stay as they are
    state = snn.ALIFFeedForwardState(v=torch.tensor([1.46]), i=torch.tensor([0.0]), b=torch.tensor([0.5]))
    z, new = snn.alif_feed_forward_step(torch.tensor([0.0]), state, p)
    # b' = 0.5 * (1 - 0.1) = 0.45, threshold 1.45 < 1.46: spike (with the undecayed 1.5 there would be none)
    assert z.item() == 1
    assert new.b.item() == pytest.approx(0.45 + 1.8)


def test_adaptation_lowers_the_rate_and_stretches_the_intervals() -> None:
    x = torch.full((2000, 1), 3.0)
    adaptive, _ = snn.ALIF(snn.ALIFParameters(beta=0.5, tau_adapt_inv=2.0))(x)
    plain, _ = snn.LIF()(x)
    assert 0 < adaptive.sum() < plain.sum()
    intervals = adaptive[:, 0].nonzero().flatten().diff()
    assert intervals[-1] > intervals[0]
