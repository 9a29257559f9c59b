"""LIF neurons fed by synaptic channels: golden values from the equations, the refractory period
as Brian2 counts it, and parity with Norse's LIFRefrac (a current channel) and CobaLIF
(conductance channels)."""

import math

import pytest
import torch

import worker.engine as snn
from worker.engine.lif_channels import Channels, coefficients

DT = 1e-4


def run(p: snn.LIFChannelsParameters, channels: Channels, x: torch.Tensor, state: snn.LIFChannelsState | None = None):
    module = snn.LIFChannels(p, dt=DT, channels=channels, record_states=True)
    return module(x, state)


def test_exact_integration_matches_the_closed_form_of_a_current_channel() -> None:
    """One spike of weight w into a current channel (tau_k) of a neuron at rest: Brette et al.'s
    exact update gives v(t) - v_leak = w tau_k / (tau_k - tau_m) (exp(-t / tau_k) - exp(-t / tau_m))
    after the step it arrives in, for t counted from that step's start."""
    tau_m, tau_k, w = 0.02, 0.005, 1.62
    p = snn.LIFChannelsParameters(tau_mem_inv=1 / tau_m, v_leak=-49.0, v_th=100.0, integration="exact")
    x = torch.zeros(200, 2, 1)
    x[0, 1] = w
    _, states = run(p, Channels((False,), (tau_k,), (0.0,)), x)
    t = (torch.arange(200, dtype=torch.float64) + 1) * DT
    expected = -49.0 + w * tau_k / (tau_k - tau_m) * (torch.exp(-t / tau_k) - torch.exp(-t / tau_m))
    torch.testing.assert_close(states.v[:, 0].double(), expected, rtol=0, atol=2e-5)
    torch.testing.assert_close(states.g[:, 0, 0].double(), w * torch.exp(-t / tau_k), rtol=1e-5, atol=0)


def test_a_channel_as_slow_as_the_membrane_uses_the_limit_of_the_exact_gain() -> None:
    c = coefficients(snn.LIFChannelsParameters(tau_mem_inv=50.0, integration="exact"), Channels((False,), (0.02,), (0.0,)), DT)
    assert float(c.gain[0]) == pytest.approx(DT * 50.0 * math.exp(-DT * 50.0), rel=1e-6)


def test_euler_steps_a_conductance_channel_as_written() -> None:
    """Two steps of forward Euler by hand: v' = v + dt / tau_m ((v_leak - v) + g (e_rev - v)),
    g' = g (1 - dt / tau)."""
    p = snn.LIFChannelsParameters(tau_mem_inv=50.0, v_leak=-60.0, v_th=0.0)
    x = torch.zeros(2, 2, 1)
    x[0, 1] = 0.6
    _, states = run(
        p, Channels((True,), (0.005,), (0.0,)), x, snn.LIFChannelsState(torch.tensor([-65.0]), torch.zeros(1), torch.zeros(1, 1))
    )
    v, g = -65.0, 0.6
    for t in range(2):
        v = v + DT * 50.0 * ((-60.0 - v) + g * (0.0 - v))
        g = g * (1 - DT / 0.005)
        assert float(states.v[t, 0]) == pytest.approx(v, rel=1e-6)
        assert float(states.g[t, 0, 0]) == pytest.approx(g, rel=1e-6)


def test_a_spike_holds_the_neuron_for_rho_reset_steps_while_its_channels_go_on() -> None:
    """Driven hard, a neuron with rho_reset = 49 spikes every 50 steps (Brian2's refractory 5 ms at
    0.1 ms); a delta input while refractory is lost; the channel keeps receiving and decaying."""
    p = snn.LIFChannelsParameters(tau_mem_inv=50.0, v_leak=0.0, v_th=1.0, v_reset=0.0, rho_reset=49.0)
    x = torch.zeros(200, 2, 1)
    x[:, 0] = 5.0  # a jump over threshold every step
    x[10, 1] = 2.0
    spikes, states = run(p, Channels((False,), (0.005,), (0.0,)), x)
    assert spikes[:, 0].nonzero().reshape(-1).tolist() == [0, 50, 100, 150]
    assert torch.all(states.v[1:50, 0] == 0.0), "held at v_reset, the delta input lost"
    assert float(states.g[10, 0, 0]) == pytest.approx(2.0 * (1 - DT / 0.005), rel=1e-6)


def test_exact_integration_refuses_a_conductance() -> None:
    with pytest.raises(ValueError, match="current channels only"):
        coefficients(snn.LIFChannelsParameters(integration="exact"), Channels((True,), (0.005,), (0.0,)), DT)


def test_without_channels_the_input_is_the_delta_input() -> None:
    p = snn.LIFChannelsParameters(tau_mem_inv=50.0, v_th=10.0)
    _, states = snn.LIFChannels(p, dt=DT, record_states=True)(torch.full((3, 4), 0.5))
    assert states.g.shape == (3, 0, 4)
    assert float(states.v[0, 0]) == pytest.approx(0.5)


norse_lif_refrac = pytest.importorskip("norse.torch.functional.lif_refrac")
norse_coba = pytest.importorskip("norse.torch.functional.coba_lif")
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters  # noqa: E402


def test_one_current_channel_is_norses_lif_refrac() -> None:
    """Norse's LIF (1.1) jumps its current by the step's input and then drives the membrane with it,
    as a channel does: the same neurons, spikes equal and voltages within float32 rounding (the
    current decays as i - dt / tau i there, i (1 - dt / tau) here)."""
    g = torch.Generator().manual_seed(3)
    steps, n = 400, 16
    tau_syn, tau_mem = 0.005, 0.02
    x = (torch.rand(steps, n, generator=g) < 0.05) * (torch.rand(steps, n, generator=g) * 4.0)
    ours_p = snn.LIFChannelsParameters(tau_mem_inv=1 / tau_mem, v_leak=0.0, v_th=1.0, v_reset=0.0, rho_reset=5.0)
    spikes, states = run(ours_p, Channels((False,), (tau_syn,), (0.0,)), torch.stack([torch.zeros_like(x), x], dim=1))
    theirs_p = norse_lif_refrac.LIFRefracParameters(
        LIFParameters(tau_syn_inv=torch.tensor(1 / tau_syn), tau_mem_inv=torch.tensor(1 / tau_mem), v_leak=torch.tensor(0.0),
                      v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0), method="heaviside"),
        rho_reset=torch.tensor(5.0),
    )  # fmt: skip
    state = norse_lif_refrac.LIFRefracFeedForwardState(LIFFeedForwardState(torch.zeros(n), torch.zeros(n)), torch.zeros(n))
    theirs_z, theirs_v, theirs_i = [], [], []
    for t in range(steps):
        z, state = norse_lif_refrac.lif_refrac_feed_forward_step(x[t], state, theirs_p, DT)
        theirs_z.append(z)
        theirs_v.append(state.lif.v)
        theirs_i.append(state.lif.i)
    assert spikes.sum() > 20, "the input must make the neurons spike"
    assert torch.equal(spikes, torch.stack(theirs_z))
    torch.testing.assert_close(states.v, torch.stack(theirs_v), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(states.g[:, 0], torch.stack(theirs_i), rtol=1e-5, atol=1e-5)


def test_two_conductance_channels_are_norses_coba_lif() -> None:
    """Norse's CobaLIF decays a conductance before the membrane reads it, in absolute units; a
    channel is read first, in units of the leak conductance. Scaled so (input x (1 - dt / tau) /
    g_l), the two are the same neurons."""
    g = torch.Generator().manual_seed(4)
    steps, n = 400, 12
    tau_e, tau_i, c_m_inv, g_l = 0.005, 0.01, 5.0, 10.0
    drive = (torch.rand(steps, n, generator=g) < 0.2) * (torch.rand(steps, n, generator=g) * 40.0 - 12.0)
    p = norse_coba.CobaLIFParameters(
        tau_syn_exc_inv=torch.tensor(1 / tau_e), tau_syn_inh_inv=torch.tensor(1 / tau_i), c_m_inv=torch.tensor(c_m_inv),
        g_l=torch.tensor(g_l), e_rev_I=torch.tensor(-80.0), e_rev_E=torch.tensor(0.0), v_rest=torch.tensor(-60.0),
        v_reset=torch.tensor(-60.0), v_thresh=torch.tensor(-50.0), method="heaviside",
    )  # fmt: skip
    state = norse_coba.CobaLIFFeedForwardState(torch.full((n,), -60.0), torch.zeros(n), torch.zeros(n))
    theirs_z, theirs_v = [], []
    for t in range(steps):
        z, state = norse_coba.coba_lif_feed_forward_step(drive[t], state, p, DT)
        theirs_z.append(z)
        theirs_v.append(state.v)
    excitatory = torch.relu(drive) * (1 - DT / tau_e) / g_l
    inhibitory = torch.relu(-drive) * (1 - DT / tau_i) / g_l
    ours_p = snn.LIFChannelsParameters(tau_mem_inv=c_m_inv * g_l, v_leak=-60.0, v_th=-50.0, v_reset=-60.0, rho_reset=0.0)
    x = torch.stack([torch.zeros_like(drive), excitatory, inhibitory], dim=1)
    start = snn.LIFChannelsState(torch.full((n,), -60.0), torch.zeros(n), torch.zeros(2, n))
    spikes, states = run(ours_p, Channels((True, True), (tau_e, tau_i), (0.0, -80.0)), x, start)
    assert spikes.sum() > 20, "the input must make the neurons spike"
    assert torch.equal(spikes, torch.stack(theirs_z))
    torch.testing.assert_close(states.v, torch.stack(theirs_v), rtol=1e-4, atol=1e-4)
