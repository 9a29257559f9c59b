"""Non-leaky integrate-and-fire (Norse's IAF): each input adds straight to the membrane.

    v <- v + x        z = H(v - v_th)        v <- reset(v) where z

``dt`` is accepted for a uniform interface and has no effect.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import IAFParameters
from worker.engine.reset import reset
from worker.engine.threshold import threshold


class IAFFeedForwardState(NamedTuple):
    v: torch.Tensor


def iaf_feed_forward_step(
    x: torch.Tensor,
    state: IAFFeedForwardState,
    p: IAFParameters = IAFParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, IAFFeedForwardState]:
    v_new = state.v + x
    z = threshold(v_new - p.v_th, p.method, p.alpha)
    return z, IAFFeedForwardState(v=reset(z, v_new, p.v_th, p.v_reset, p.reset_method))


class _IAFDynamics:
    default_p = IAFParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: IAFParameters) -> IAFFeedForwardState:
        return IAFFeedForwardState(v=full_state(x, p.v_reset))

    def step_fn(self, x: torch.Tensor, state: IAFFeedForwardState, p: IAFParameters) -> tuple[torch.Tensor, Any]:
        return iaf_feed_forward_step(x, state, p, self.dt)


class IAFCell(_IAFDynamics, CellModule):
    """One step of IAF; ``p`` defaults to ``IAFParameters()``."""


class IAF(_IAFDynamics, SequenceModule):
    """A whole time-major sequence of IAF; ``p`` defaults to ``IAFParameters()``."""
