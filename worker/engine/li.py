"""Leaky integrator (Norse's LI): LIF dynamics with no threshold; the output is the voltage.

Used as a read-out layer: its voltage is a smooth, differentiable trace of its input spikes.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import LIParameters


class LIState(NamedTuple):
    v: torch.Tensor
    i: torch.Tensor


def li_feed_forward_step(
    x: torch.Tensor,
    state: LIState,
    p: LIParameters = LIParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIState]:
    i_jump = state.i + x
    v_new = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i_jump)
    i_decayed = i_jump + -dt * p.tau_syn_inv * i_jump
    return v_new, LIState(v=v_new, i=i_decayed)


class _LIDynamics:
    default_p = LIParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIParameters) -> LIState:
        return LIState(v=full_state(x, p.v_leak), i=torch.zeros_like(x))

    def step_fn(self, x: torch.Tensor, state: LIState, p: LIParameters) -> tuple[torch.Tensor, Any]:
        return li_feed_forward_step(x, state, p, self.dt)


class LICell(_LIDynamics, CellModule):
    """One step of LI; ``p`` defaults to ``LIParameters()``."""


class LI(_LIDynamics, SequenceModule):
    """A whole time-major sequence of LI; ``p`` defaults to ``LIParameters()``."""
