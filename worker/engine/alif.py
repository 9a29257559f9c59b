"""Adaptive LIF (ALIF, the neuron of Bellec et al.'s LSNN): a LIF whose threshold rises by ``beta``
with every spike and relaxes back with rate ``tau_adapt_inv``.

Integration order of one Euler step (chosen to match our LIF exactly when ``beta = 0``):

    i_jump = i + x
    v' = v + dt * tau_mem_inv * ((v_leak - v) + i_jump)
    i' = i_jump - dt * tau_syn_inv * i_jump
    b' = b - dt * tau_adapt_inv * b                   (threshold adaptation decays first)
    z  = H(v' - (v_th + b'))                          (then the adapted threshold is applied)
    v  = reset(v')  where z,  with v_th + b' as the threshold for a subtractive reset
    b  = b' + beta * z

Norse's LSNN differs: there the input reaches the current only after the threshold test, one step
later than in its (and our) LIF; ours keeps LIF's timing so a layer swaps between the two cleanly.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import ALIFParameters
from worker.engine.reset import reset
from worker.engine.threshold import threshold


class ALIFFeedForwardState(NamedTuple):
    """``b`` is the threshold's current excess over ``v_th``."""

    v: torch.Tensor
    i: torch.Tensor
    b: torch.Tensor


def alif_feed_forward_step(
    x: torch.Tensor,
    state: ALIFFeedForwardState,
    p: ALIFParameters = ALIFParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, ALIFFeedForwardState]:
    i_jump = state.i + x
    v_decayed = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i_jump)
    i_decayed = i_jump + -dt * p.tau_syn_inv * i_jump
    b_decayed = state.b + -dt * p.tau_adapt_inv * state.b
    v_th = p.v_th + b_decayed
    z = threshold(v_decayed - v_th, p.method, p.alpha)
    v_new = reset(z, v_decayed, v_th, p.v_reset, p.reset_method)
    return z, ALIFFeedForwardState(v=v_new, i=i_decayed, b=b_decayed + p.beta * z)


class _ALIFDynamics:
    default_p = ALIFParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: ALIFParameters) -> ALIFFeedForwardState:
        return ALIFFeedForwardState(v=full_state(x, p.v_leak), i=torch.zeros_like(x), b=torch.zeros_like(x))

    def step_fn(self, x: torch.Tensor, state: ALIFFeedForwardState, p: ALIFParameters) -> tuple[torch.Tensor, Any]:
        return alif_feed_forward_step(x, state, p, self.dt)


class ALIFCell(_ALIFDynamics, CellModule):
    """One step of ALIF; ``p`` defaults to ``ALIFParameters()``."""


class ALIF(_ALIFDynamics, SequenceModule):
    """A whole time-major sequence of ALIF; ``p`` defaults to ``ALIFParameters()``."""
