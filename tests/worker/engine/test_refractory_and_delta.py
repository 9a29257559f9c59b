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


@pytest.mark.parametrize(
    ("synapse", "reset_method", "rho_reset", "drive"),
    [("delta", "value", 20.0, 2.5), ("current", "subtract", 3.0, 900.0), ("delta", "subtract", 0.0, 4.0)],
)
def test_the_refractory_box_kernel_equals_the_step_loop_bit_for_bit(
    synapse: str, reset_method: str, rho_reset: float, drive: float
) -> None:
    g = torch.Generator().manual_seed(1)
    v_th = 20.0 + torch.rand(300, generator=g)  # per-neuron thresholds
    p = snn.LIFBoxRefracParameters(
        tau_mem_inv=50.0, v_th=v_th, v_reset=10.0, synapse=synapse, reset_method=reset_method, rho_reset=rho_reset
    )
    x = (torch.rand(400, 2, 300, generator=g) < 0.4).float() * drive
    module = snn.LIFBoxRefrac(p, dt=1e-4)
    with torch.inference_mode():
        params = snn.module.cast_params(module.p, x)
        start = snn.LIFBoxRefracFeedForwardState(v=torch.rand(2, 300, generator=g) * 20, rho=torch.zeros(2, 300))
        fast, fast_state = module(x, start)
        slow, slow_state = module.reference_forward(x, start, params)
    assert 1000 < fast.sum() < x.numel() / 4
    assert torch.equal(fast, slow) and torch.equal(fast_state.v, slow_state.v) and torch.equal(fast_state.rho, slow_state.rho)


def test_the_refractory_box_kernel_leaves_gradients_to_the_step_loop() -> None:
    p = snn.LIFBoxRefracParameters(tau_mem_inv=50.0, synapse="delta", rho_reset=2.0)
    x = torch.full((10, 3), 0.4, requires_grad=True)
    out, _ = snn.LIFBoxRefrac(p, dt=1e-3)(x)
    out.sum().backward()
    assert x.grad is not None and out.dtype == torch.float32
