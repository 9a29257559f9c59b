"""The seed walkthrough of DESIGN.md, verbatim, and its three "try it" variations."""

import torch

import worker.engine as snn


def test_seed_walkthrough_runs_verbatim() -> None:
    torch.manual_seed(0)
    data = torch.randn(5)
    torch.testing.assert_close(data, torch.tensor([1.5410, -0.2934, -2.1788, 0.5684, -1.0845]), rtol=0, atol=1e-4)
    network = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.ReLU())
    assert torch.equal(network(data), torch.tensor([0.0]))
    data = torch.randn(4, 5)  # 4 timesteps of 5 inputs
    network = snn.SequentialState(torch.nn.Linear(5, 1), snn.LIF())
    output, state = network(data)
    assert output.shape == (4, 1)
    assert torch.equal(output, torch.zeros(4, 1)), "the input is too weak to spike"
    assert state[0] is None
    assert isinstance(state[1], snn.LIFFeedForwardState)
    assert state[1].v.shape == (1,) and state[1].i.shape == (1,)


def test_ten_timesteps() -> None:
    data = torch.randn(10, 5)
    output, state = snn.SequentialState(torch.nn.Linear(5, 1), snn.LIF())(data)
    assert output.shape == (10, 1)
    assert state[1].v.shape == (1,)


def test_two_neurons() -> None:
    data = torch.randn(4, 5)
    output, state = snn.SequentialState(torch.nn.Linear(5, 2), snn.LIF())(data)
    assert output.shape == (4, 2)
    assert state[1].v.shape == (2,) and state[1].i.shape == (2,)


def test_extra_linear_at_the_end() -> None:
    data = torch.randn(4, 5)
    output, state = snn.SequentialState(torch.nn.Linear(5, 1), snn.LIF(), torch.nn.Linear(1, 3))(data)
    assert output.shape == (4, 3)
    assert state[0] is None and state[2] is None
    assert isinstance(state[1], snn.LIFFeedForwardState)


def test_a_strong_input_spikes_through_the_same_network() -> None:
    """The walkthrough's silence comes from its weak input, not from a dead layer."""
    linear = torch.nn.Linear(5, 1)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.fill_(0.0)
    output, _ = snn.SequentialState(linear, snn.LIF())(torch.ones(20, 5))
    assert output.sum() > 0
