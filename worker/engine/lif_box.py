"""LIF without a synaptic current (Norse's LIFBox): the input drives the membrane directly.

    synapse "current" (Norse's):  v <- v + dt * tau_mem_inv * (x + v_leak - v)
    synapse "delta":              v <- v + dt * tau_mem_inv * (v_leak - v) + x
    z = H(v - v_th), then reset where z

With delta synapses an input spike of weight w makes the membrane jump by w in the step it
arrives (Brunel's model A and NEST's ``iaf_psc_delta``), instead of adding w * dt * tau_mem_inv.
``LIFBoxRefrac`` adds an absolute refractory period (``worker.engine.lif_refrac``).
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import LIFBoxParameters
from worker.engine.reset import reset
from worker.engine.threshold import threshold


class LIFBoxFeedForwardState(NamedTuple):
    v: torch.Tensor


def lif_box_feed_forward_step(
    x: torch.Tensor,
    state: LIFBoxFeedForwardState,
    p: LIFBoxParameters = LIFBoxParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFBoxFeedForwardState]:
    if p.synapse == "delta":
        v_decayed = state.v + dt * p.tau_mem_inv * (p.v_leak - state.v) + x
    else:
        v_decayed = state.v + dt * p.tau_mem_inv * (x + p.v_leak - state.v)
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    return z, LIFBoxFeedForwardState(v=reset(z, v_decayed, p.v_th, p.v_reset, p.reset_method))


class _LIFBoxDynamics:
    default_p = LIFBoxParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFBoxParameters) -> LIFBoxFeedForwardState:
        return LIFBoxFeedForwardState(v=full_state(x, p.v_leak))

    def step_fn(self, x: torch.Tensor, state: LIFBoxFeedForwardState, p: LIFBoxParameters) -> tuple[torch.Tensor, Any]:
        return lif_box_feed_forward_step(x, state, p, self.dt)


class LIFBoxCell(_LIFBoxDynamics, CellModule):
    """One step of LIFBox; ``p`` defaults to ``LIFBoxParameters()``."""


class LIFBox(_LIFBoxDynamics, SequenceModule):
    """A whole time-major sequence of LIFBox; ``p`` defaults to ``LIFBoxParameters()``."""
