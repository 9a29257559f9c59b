"""Delta synapses on the box LIF, and the refractory period on the box LIF: golden values
worked out by hand from the equations in ``worker.engine.lif_box`` and ``worker.engine.lif_refrac``."""

import pytest
import torch

import worker.engine as snn


def test_a_delta_synapse_makes_the_membrane_jump_by_the_weight_then_it_leaks() -> None:
    p = snn.LIFBoxParameters(tau_mem_inv=50.0, synapse="delta")  # dt * tau_mem_inv = 0.05
    x = torch.tensor([[0.3], [0.0], [0.0], [0.5]])
    _, states = snn.LIFBox(p, record_states=True)(x)
    torch.testing.assert_close(states.v[:, 0], torch.tensor([0.3, 0.285, 0.27075, 0.7572125]))
    current = snn.LIFBoxParameters(tau_mem_inv=50.0)
    _, as_current = snn.LIFBox(current, record_states=True)(x)
    assert as_current.v[0, 0].item() == pytest.approx(0.015), "a current of 0.3 adds 0.3 * dt * tau_mem_inv"


def test_delta_synapses_take_the_eager_path_and_agree_with_it() -> None:
    """The fused kernels integrate a current, so a delta layer runs its step function; the module
    and a hand-written loop of the step give the same spikes."""
    p = snn.LIFBoxParameters(tau_mem_inv=50.0, synapse="delta")
    x = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float() * 0.4
    out, _ = snn.LIFBox(p)(x)
    state, loop = snn.LIFBoxFeedForwardState(v=torch.zeros(16)), []
    for x_t in x:
        z, state = snn.lif_box_feed_forward_step(x_t, state, p)
        loop.append(z)
    assert torch.equal(out, torch.stack(loop)) and out.sum() > 0


def test_a_refractory_box_neuron_loses_the_input_that_arrives_while_it_is_held() -> None:
    """Brunel's neuron: V_th 20, V_reset 10, 2 refractory steps. A jump of 21 fires it at once; the
    jumps in its two refractory steps are lost, a jump of 5 after them lifts it from 10 to
    10 * 0.95 + 5, and the next jump of 21 fires it again."""
    p = snn.LIFBoxRefracParameters(tau_mem_inv=50.0, v_th=20.0, v_reset=10.0, synapse="delta", rho_reset=2.0)
    x = torch.full((5, 1), 21.0)
    x[3] = 5.0
    z, states = snn.LIFBoxRefrac(p, record_states=True)(x)
    assert z[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(states.v[:, 0], torch.tensor([10.0, 10.0, 10.0, 14.5, 10.0]))
    assert states.rho[:, 0].tolist() == [2.0, 1.0, 0.0, 0.0, 2.0]
