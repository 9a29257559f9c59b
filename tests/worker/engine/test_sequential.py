"""SequentialState and Lift: state threading and composition."""

import pytest
import torch

import worker.engine as snn


def test_state_threads_through_consecutive_calls() -> None:
    torch.manual_seed(0)
    network = snn.SequentialState(torch.nn.Linear(3, 4), snn.LIF(), torch.nn.Linear(4, 2), snn.LIF())
    x = torch.rand(40, 3) * 4
    whole, _ = network(x)
    first, state = network(x[:15])
    second, _ = network(x[15:], state)
    assert torch.equal(torch.cat([first, second]), whole)


def test_the_given_state_list_is_not_mutated() -> None:
    network = snn.SequentialState(torch.nn.Linear(3, 4), snn.LIF())
    given = [None, None]
    _, returned = network(torch.rand(5, 3), given)
    assert given == [None, None] and returned[1] is not None


def test_return_hidden_gives_every_layer_output() -> None:
    network = snn.SequentialState(torch.nn.Linear(3, 4), snn.LIF(), torch.nn.Linear(4, 2), return_hidden=True)
    hidden, state = network(torch.rand(6, 3))
    assert [tuple(h.shape) for h in hidden] == [(6, 4), (6, 4), (6, 2)]
    assert state[0] is None and state[2] is None


def test_wrong_state_length_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="state list of 2"):
        snn.SequentialState(torch.nn.Linear(3, 4), snn.LIF())(torch.rand(5, 3), [None])


def test_lift_of_a_cell_equals_the_sequence_module() -> None:
    x = torch.rand(30, 2, 5) * 3
    lifted_out, lifted_state = snn.Lift(snn.LIFCell())(x)
    out, state = snn.LIF()(x)
    assert torch.equal(lifted_out, out) and torch.equal(lifted_state.v, state.v)


def test_lift_of_a_stateless_module_is_stateless_inside_sequential_state() -> None:
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    network = snn.SequentialState(snn.Lift(conv), snn.LIF())
    x = torch.rand(7, 4, 1, 8, 8)
    out, state = network(x)
    assert out.shape == (7, 4, 2, 8, 8)
    assert state[0] is None
    assert torch.equal(snn.Lift(conv)(x), torch.stack([conv(x_t) for x_t in x]))
