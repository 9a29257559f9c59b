"""LIF: golden values, reset rules, per-neuron parameters, batches and state continuation."""

import pytest
import torch

import worker.engine as snn

# Exact Euler values for constant input 1.0 and default parameters; DESIGN.md prints them rounded
# to four decimals (0.1, 0.27, 0.487, 0.7335, 0.9963). Step 5: 0.7335 + 0.1 * (3.3616 - 0.7335).
GOLDEN_V = [0.1, 0.27, 0.487, 0.7335, 0.99631]


def test_constant_input_gives_the_golden_voltages_then_a_spike() -> None:
    cell = snn.LIFCell()
    state = None
    for expected in GOLDEN_V:
        z, state = cell(torch.ones(1), state)
        assert z.item() == 0
        assert state.v.item() == pytest.approx(expected, abs=1e-6)
    z, state = cell(torch.ones(1), state)
    assert z.item() == 1 and state.v.item() == 0.0


def test_sequence_module_equals_its_cell_step_by_step() -> None:
    x = torch.rand(50, 3, 4) * 3
    out, final = snn.LIF()(x)
    cell, state, expected = snn.LIFCell(), None, []
    for x_t in x:
        z, state = cell(x_t, state)
        expected.append(z)
    assert torch.equal(out, torch.stack(expected))
    assert torch.equal(final.v, state.v)


def test_state_carries_across_calls_so_split_runs_equal_one_run() -> None:
    x = torch.rand(60, 8) * 3
    lif = snn.LIF()
    whole, whole_state = lif(x)
    first, state = lif(x[:25])
    second, state = lif(x[25:], state)
    assert torch.equal(torch.cat([first, second]), whole)
    assert torch.equal(state.v, whole_state.v)


def test_record_states_returns_every_step() -> None:
    x = torch.ones(6, 1)
    out, states = snn.LIF(record_states=True)(x)
    assert states.v.shape == (6, 1)
    torch.testing.assert_close(states.v[:5, 0], torch.tensor(GOLDEN_V), rtol=0, atol=1e-6)
    assert out[5, 0] == 1 and states.v[5, 0] == 0


def test_subtractive_reset_keeps_the_overshoot() -> None:
    p = snn.LIFParameters(reset_method="subtract", v_reset=0.0)
    _, states = snn.LIF(p, record_states=True)(torch.full((6, 1), 1.0))
    # Step 6 integrates to v' = 0.99631 + 0.1 * (-0.99631 + 3.68928) = 1.265607; subtracting
    # v_th - v_reset = 1 leaves the 0.265607 overshoot.
    before = 0.99631 + 0.1 * (-0.99631 + (1 + 0.8 * 3.3616))
    assert states.v[5, 0].item() == pytest.approx(before - 1.0, abs=1e-5)
    assert states.v[5, 0].item() > 0


def test_subtractive_reset_removes_threshold_minus_reset() -> None:
    v = torch.tensor([1.3, 0.5])
    z = torch.tensor([1.0, 0.0])
    torch.testing.assert_close(snn.reset(z, v, 1.0, 0.2, "subtract"), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(snn.reset(z, v, 1.0, 0.2, "value"), torch.tensor([0.2, 0.5]))
    with pytest.raises(ValueError, match="reset method"):
        snn.reset(z, v, 1.0, 0.2, "teleport")


def test_per_neuron_parameters_give_per_neuron_dynamics() -> None:
    p = snn.LIFParameters(v_th=torch.tensor([0.5, 1.0, 100.0]))
    out, _ = snn.LIF(p)(torch.ones(100, 3))
    counts = out.sum(0)
    assert counts[0] > counts[1] > counts[2] == 0


def test_learnable_parameters_are_module_parameters_and_receive_gradients() -> None:
    tau = torch.nn.Parameter(torch.full((4,), 100.0))
    lif = snn.LIF(snn.LIFParameters(tau_mem_inv=tau))
    assert any(param is tau for param in lif.parameters())
    out, state = lif(torch.rand(30, 4) * 3)
    (out.sum() + state.v.sum()).backward()
    assert tau.grad is not None and tau.grad.abs().sum() > 0


def test_plain_parameters_are_buffers_that_follow_the_module() -> None:
    lif = snn.LIF(snn.LIFParameters(tau_mem_inv=torch.tensor([90.0, 110.0])))
    assert "tau_mem_inv" in dict(lif.named_buffers())
    assert not list(lif.parameters())
    lif.double()
    assert lif.tau_mem_inv.dtype == torch.float64


def test_time_major_input_must_have_a_time_dimension() -> None:
    with pytest.raises(ValueError, match="time-major"):
        snn.LIF()(torch.zeros(0, 3))


def test_boolean_spike_input_is_accepted() -> None:
    out, _ = snn.LIF()(torch.ones(10, 2, dtype=torch.bool))
    assert out.dtype == torch.get_default_dtype()


def test_recurrent_layer_shapes_and_no_autapses() -> None:
    layer = snn.LIFRecurrent(5, 7)
    assert torch.all(layer.recurrent_weights.diagonal() == 0)
    out, state = layer(torch.rand(20, 3, 5))
    assert out.shape == (20, 3, 7) and state.v.shape == (3, 7) and state.z.shape == (3, 7)
    with pytest.raises(ValueError, match="input_weights"):
        snn.LIFRecurrent(5, 7, input_weights=torch.zeros(5, 7))


def test_recurrent_spikes_feed_back_next_step() -> None:
    """A neuron driven to spike excites its silent neighbour only through the recurrent weights."""
    w_in = torch.tensor([[10.0], [0.0]])
    w_rec = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    x = torch.ones(30, 1)
    out, _ = snn.LIFRecurrent(1, 2, input_weights=w_in, recurrent_weights=w_rec)(x)
    assert out[:, 0].sum() > 0 and out[:, 1].sum() > 0
    first_0 = out[:, 0].nonzero()[0].item()
    first_1 = out[:, 1].nonzero()[0].item()
    assert first_1 > first_0
    silent, _ = snn.LIFRecurrent(1, 2, input_weights=w_in, recurrent_weights=torch.zeros(2, 2))(x)
    assert silent[:, 1].sum() == 0
