"""Parity with Norse 1.1.0: same parameters, same inputs, same initial state, over 250 steps.

Spikes must be identical, every step's state within 1e-6 (float32) and input gradients within
1e-5. Parameters are random per neuron; inputs random, with and without a batch dimension.
"""

import zlib
from collections.abc import Callable

import pytest
import torch

import worker.engine as snn

norse = pytest.importorskip("norse.torch")
from norse.torch.functional import iaf as n_iaf  # noqa: E402
from norse.torch.functional import izhikevich as n_izh  # noqa: E402
from norse.torch.functional import leaky_integrator as n_li  # noqa: E402
from norse.torch.functional import lif as n_lif  # noqa: E402
from norse.torch.functional import lif_adex as n_adex  # noqa: E402
from norse.torch.functional import lif_box as n_box  # noqa: E402
from norse.torch.functional import lif_refrac as n_refrac  # noqa: E402
from norse.torch.functional.reset import reset_subtract as n_reset_subtract  # noqa: E402

STEPS = 250
SHAPES = [(7,), (3, 5), (2, 3, 4)]  # neurons only; batch x neurons; batch x channels x neurons


def stable_seed(key: object) -> int:
    """A seed from ``key`` that is the same in every process (``hash`` is salted per process)."""
    return zlib.crc32(repr(key).encode())


def uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def neuron_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-neuron parameters vary along the last dimension and broadcast over the batch."""
    return shape[-1:]


def run_sequence(step: Callable, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, list]:
    outputs, states = [], []
    for x_t in x:
        out, state = step(x_t, state)
        outputs.append(out)
        states.append(state)
    return torch.stack(outputs), states


def assert_parity(ours: Callable, theirs: Callable, x: torch.Tensor, min_spikes: int = 1, spiking: bool = True) -> None:
    """Runs both on ``x`` (cloned, with gradients) and compares outputs, states and input gradients."""
    x_ours = x.clone().requires_grad_(True)
    x_theirs = x.clone().requires_grad_(True)
    out_ours, states_ours = ours(x_ours)
    out_theirs, states_theirs = theirs(x_theirs)
    if spiking:
        assert torch.equal(out_ours, out_theirs), "spike trains differ"
        assert out_ours.sum() >= min_spikes, "the test input must make the neurons spike"
    else:
        torch.testing.assert_close(out_ours, out_theirs, rtol=0, atol=1e-6)
    for t, (s_ours, s_theirs) in enumerate(zip(states_ours, states_theirs, strict=True)):
        for name in s_ours._fields:
            a, b = getattr(s_ours, name), getattr(s_theirs, name)
            torch.testing.assert_close(
                a, b.expand_as(a), rtol=1e-6, atol=1e-6, msg=lambda m, t=t, name=name: f"step {t}, {name}: {m}"
            )
    readout = torch.randn(out_ours.shape, generator=torch.Generator().manual_seed(1))
    ((out_ours * readout).sum() + states_ours[-1].v.sum()).backward()
    ((out_theirs * readout).sum() + states_theirs[-1].v.sum()).backward()
    assert x_ours.grad.abs().sum() > 0, "the gradient must reach the input"
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", ["super", "triangle", "tanh"])
def test_lif_matches_norse(shape: tuple[int, ...], method: str) -> None:
    g = torch.Generator().manual_seed(stable_seed((shape, method)))
    n = neuron_shape(shape)
    params = dict(
        tau_syn_inv=uniform(n, 100, 300, g),
        tau_mem_inv=uniform(n, 50, 200, g),
        v_leak=uniform(n, -0.2, 0.2, g),
        v_th=uniform(n, 0.5, 1.5, g),
        v_reset=uniform(n, -0.2, 0.2, g),
        method=method,
        alpha=torch.as_tensor(2.0 if method == "triangle" else 100.0),
    )
    x = uniform((STEPS, *shape), -1.0, 4.0, g)
    init = dict(v=torch.zeros(shape) + params["v_leak"], i=torch.zeros(shape))
    ours_p, theirs_p = snn.LIFParameters(**params), n_lif.LIFParameters(**params)
    assert_parity(
        lambda x: run_sequence(lambda x_t, s: snn.lif_feed_forward_step(x_t, s, ours_p), x, snn.LIFFeedForwardState(**init)),
        lambda x: run_sequence(
            lambda x_t, s: n_lif.lif_feed_forward_step(x_t, s, theirs_p), x, n_lif.LIFFeedForwardState(**init)
        ),
        x,
    )


def test_lif_sequence_module_matches_norse_module() -> None:
    """The modules, with their own default initial states, agree too (scalar default parameters)."""
    x = torch.rand(STEPS, 4, 6, generator=torch.Generator().manual_seed(3)) * 3
    ours_out, ours_state = snn.LIF()(x)
    theirs_out, theirs_state = norse.LIF()(x)
    assert torch.equal(ours_out, theirs_out) and ours_out.sum() > 0
    torch.testing.assert_close(ours_state.v, theirs_state.v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_state.i, theirs_state.i, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rho_reset", [1.0, 5.0, 12.0])
def test_lif_refrac_matches_norse(shape: tuple[int, ...], rho_reset: float) -> None:
    g = torch.Generator().manual_seed(stable_seed((shape, rho_reset)))
    n = neuron_shape(shape)
    lif = dict(
        tau_syn_inv=uniform(n, 100, 300, g),
        tau_mem_inv=uniform(n, 50, 200, g),
        v_leak=uniform(n, -0.2, 0.2, g),
        v_th=uniform(n, 0.5, 1.5, g),
        v_reset=uniform(n, -0.2, 0.2, g),
    )
    x = uniform((STEPS, *shape), -1.0, 6.0, g)  # strong: neurons would fire faster than their refractory period allows
    init = dict(v=torch.zeros(shape) + lif["v_leak"], i=torch.zeros(shape), rho=torch.zeros(shape))
    ours_p = snn.LIFRefracParameters.from_lif(snn.LIFParameters(**lif), rho_reset=rho_reset)
    theirs_p = n_refrac.LIFRefracParameters(n_lif.LIFParameters(**lif), torch.as_tensor(rho_reset))
    theirs_init = n_refrac.LIFRefracFeedForwardState(n_lif.LIFFeedForwardState(v=init["v"], i=init["i"]), init["rho"])

    def theirs(x: torch.Tensor) -> tuple[torch.Tensor, list]:
        out, states = run_sequence(lambda x_t, s: n_refrac.lif_refrac_feed_forward_step(x_t, s, theirs_p), x, theirs_init)
        return out, [snn.LIFRefracFeedForwardState(v=s.lif.v, i=s.lif.i, rho=s.rho) for s in states]  # Norse nests lif

    ours_init = snn.LIFRefracFeedForwardState(**init)
    assert_parity(
        lambda x: run_sequence(lambda x_t, s: snn.lif_refrac_feed_forward_step(x_t, s, ours_p), x, ours_init),
        theirs,
        x,
        min_spikes=10,
    )


def test_lif_refrac_holds_the_membrane_for_rho_reset_steps_after_a_spike() -> None:
    """Constant input 10 fires a LIF neuron every other step; 3 refractory steps space its
    spikes 4 steps apart and hold v at v_reset in between, while the current keeps integrating."""
    x = torch.full((12, 1), 10.0)
    p = snn.LIFRefracParameters(rho_reset=3.0)
    spikes, _ = snn.LIFRefrac(p)(x)
    assert spikes[:, 0].nonzero().flatten().tolist() == [1, 5, 9]
    lif_spikes, _ = snn.LIF(p.lif)(x)
    assert lif_spikes.sum() > spikes.sum(), "without the refractory period it fires more often"
    cell, state, voltages, currents = snn.LIFRefracCell(p), None, [], []
    for x_t in x:
        _, state = cell(x_t, state)
        voltages.append(state.v.item())
        currents.append(state.i.item())
    assert voltages[2:5] == [0.0, 0.0, 0.0] and currents[2] < currents[3] < currents[4]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reset_method", ["value", "subtract"])
def test_lif_box_matches_norse(shape: tuple[int, ...], reset_method: str) -> None:
    g = torch.Generator().manual_seed(stable_seed((shape, reset_method)))
    n = neuron_shape(shape)
    # Subtractive reset: ours removes (v_th - v_reset), Norse removes v_th; they agree at v_reset = 0.
    v_reset = uniform(n, -0.2, 0.2, g) if reset_method == "value" else torch.zeros(n)
    params = dict(
        tau_mem_inv=uniform(n, 50, 200, g), v_leak=uniform(n, -0.2, 0.2, g), v_th=uniform(n, 0.5, 1.5, g), v_reset=v_reset
    )
    x = uniform((STEPS, *shape), -1.0, 4.0, g)
    init = torch.zeros(shape) + params["v_leak"]
    ours_p = snn.LIFBoxParameters(**params, reset_method=reset_method)
    theirs_p = n_box.LIFBoxParameters(**params, **({"reset_method": n_reset_subtract} if reset_method == "subtract" else {}))
    ours_cell, theirs_cell = snn.LIFBoxCell(ours_p), norse.LIFBoxCell(theirs_p)
    assert_parity(
        lambda x: run_sequence(ours_cell, x, snn.LIFBoxFeedForwardState(v=init)),
        lambda x: run_sequence(theirs_cell, x, n_box.LIFBoxFeedForwardState(v=init)),
        x,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_li_matches_norse(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(stable_seed(shape))
    n = neuron_shape(shape)
    params = dict(tau_syn_inv=uniform(n, 100, 300, g), tau_mem_inv=uniform(n, 50, 200, g), v_leak=uniform(n, -0.2, 0.2, g))
    x = uniform((STEPS, *shape), -2.0, 2.0, g)
    init = dict(v=torch.zeros(shape) + params["v_leak"], i=torch.zeros(shape))
    ours_p, theirs_p = snn.LIParameters(**params), n_li.LIParameters(**params)
    assert_parity(
        lambda x: run_sequence(lambda x_t, s: snn.li_feed_forward_step(x_t, s, ours_p), x, snn.LIState(**init)),
        lambda x: run_sequence(lambda x_t, s: n_li.li_feed_forward_step(x_t, s, theirs_p), x, n_li.LIState(**init)),
        x,
        spiking=False,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_iaf_matches_norse(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(stable_seed(shape))
    n = neuron_shape(shape)
    params = dict(v_th=uniform(n, 0.5, 1.5, g), v_reset=uniform(n, -0.2, 0.2, g))
    x = uniform((STEPS, *shape), -0.2, 0.4, g)
    init = torch.zeros(shape) + params["v_reset"]
    ours_p, theirs_p = snn.IAFParameters(**params), n_iaf.IAFParameters(**params)
    assert_parity(
        lambda x: run_sequence(lambda x_t, s: snn.iaf_feed_forward_step(x_t, s, ours_p), x, snn.IAFFeedForwardState(v=init)),
        lambda x: run_sequence(
            lambda x_t, s: n_iaf.iaf_feed_forward_step(x_t, s, theirs_p), x, n_iaf.IAFFeedForwardState(v=init)
        ),
        x,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_lif_adex_matches_norse(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(stable_seed(shape))
    n = neuron_shape(shape)
    params = dict(
        adaptation_current=uniform(n, 0, 8, g),
        adaptation_spike=uniform(n, 0, 0.1, g),
        delta_T=uniform(n, 0.3, 1.0, g),
        tau_ada_inv=uniform(n, 1, 5, g),
        tau_syn_inv=uniform(n, 100, 300, g),
        tau_mem_inv=uniform(n, 50, 200, g),
        v_leak=uniform(n, -0.2, 0.2, g),
        v_th=uniform(n, 0.8, 1.2, g),
        v_reset=uniform(n, -0.2, 0.2, g),
    )
    x = uniform((STEPS, *shape), -1.0, 4.0, g)
    init = dict(v=torch.zeros(shape) + params["v_leak"], i=torch.zeros(shape), a=torch.zeros(shape))
    ours_p, theirs_p = snn.LIFAdExParameters(**params), n_adex.LIFAdExParameters(**params)
    assert_parity(
        lambda x: run_sequence(
            lambda x_t, s: snn.lif_adex_feed_forward_step(x_t, s, ours_p), x, snn.LIFAdExFeedForwardState(**init)
        ),
        lambda x: run_sequence(
            lambda x_t, s: n_adex.lif_adex_feed_forward_step(x_t, s, theirs_p), x, n_adex.LIFAdExFeedForwardState(**init)
        ),
        x,
    )


@pytest.mark.parametrize("preset", sorted(snn.IZHIKEVICH_PRESETS))
def test_izhikevich_presets_match_norse(preset: str) -> None:
    """Every preset against Norse's behaviour of the same name, same parameters and resting state."""
    ours = snn.IZHIKEVICH_PRESETS[preset]
    theirs = getattr(n_izh, "accomodation" if preset == "accommodation" else preset)  # Norse's spelling
    assert tuple(ours.p)[:9] == pytest.approx(tuple(theirs.p)[:9])
    assert (ours.v0, ours.u0) == pytest.approx((theirs.s.v.item(), theirs.s.u.item()))
    g = torch.Generator().manual_seed(5)
    shape = (2, 3)
    x = uniform((STEPS, *shape), 0.0, 20.0, g)
    init = dict(v=torch.full(shape, ours.v0), u=torch.full(shape, ours.u0))
    cell = snn.IzhikevichCell(ours)
    assert_parity(
        lambda x: run_sequence(cell, x, snn.IzhikevichState(**init)),
        lambda x: run_sequence(
            lambda x_t, s: n_izh.izhikevich_feed_forward_step(x_t, s, theirs.p), x, n_izh.IzhikevichState(**init)
        ),
        x,
        min_spikes=0,  # some behaviours (resonators, inhibition-induced) stay silent under positive drive
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_izhikevich_random_parameters_match_norse(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(stable_seed(shape))
    n = neuron_shape(shape)
    params = dict(a=uniform(n, 0.01, 0.1, g), b=uniform(n, 0.15, 0.26, g), c=uniform(n, -65, -50, g), d=uniform(n, 0, 8, g))
    x = uniform((STEPS, *shape), 0.0, 15.0, g)
    init = dict(v=torch.full(shape, -65.0), u=torch.full(shape, -65.0) * params["b"])
    ours_p, theirs_p = snn.IzhikevichParameters(**params), n_izh.IzhikevichParameters(**params)
    assert_parity(
        lambda x: run_sequence(lambda x_t, s: snn.izhikevich_feed_forward_step(x_t, s, ours_p), x, snn.IzhikevichState(**init)),
        lambda x: run_sequence(
            lambda x_t, s: n_izh.izhikevich_feed_forward_step(x_t, s, theirs_p), x, n_izh.IzhikevichState(**init)
        ),
        x,
    )


@pytest.mark.parametrize("batch", [(), (4,)])
def test_lif_recurrent_matches_norse(batch: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(11 + len(batch))
    input_size, hidden = 6, 9
    w_in = torch.rand(hidden, input_size, generator=g) * 1.5  # excitatory drive, so the layer fires
    w_rec = torch.randn(hidden, hidden, generator=g) * 0.5
    params = dict(
        tau_syn_inv=uniform((hidden,), 100, 300, g),
        tau_mem_inv=uniform((hidden,), 50, 200, g),
        v_th=uniform((hidden,), 0.5, 1.5, g),
    )
    x = (torch.rand(STEPS, *batch, input_size, generator=g) < 0.3).float()
    shape = (*batch, hidden)
    init = dict(z=torch.zeros(shape), v=torch.zeros(shape), i=torch.zeros(shape))
    ours = snn.LIFRecurrentCell(
        input_size, hidden, snn.LIFParameters(**params), input_weights=w_in.clone(), recurrent_weights=w_rec.clone()
    )
    theirs = norse.LIFRecurrentCell(
        input_size,
        hidden,
        n_lif.LIFParameters(**params),
        input_weights=torch.nn.Parameter(w_in.clone()),
        recurrent_weights=torch.nn.Parameter(w_rec.clone()),
    )
    assert_parity(
        lambda x: run_sequence(ours, x, snn.LIFState(**init)),
        lambda x: run_sequence(theirs, x, n_lif.LIFState(**init)),
        x,
    )
    torch.testing.assert_close(ours.input_weights.grad, theirs.input_weights.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.recurrent_weights.grad, theirs.recurrent_weights.grad, rtol=1e-5, atol=1e-5)
    assert torch.all(ours.recurrent_weights.grad.diagonal() == 0), "no autapse may learn"
