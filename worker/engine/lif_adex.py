"""Adaptive exponential LIF (Norse's LIFAdEx): an exponential spike-initiation term and an
adaptation current ``a`` that follows the voltage and jumps by ``adaptation_spike`` per spike.

    dv/dt = tau_mem_inv * ((v_leak - v) + delta_T * exp((v - v_th) / delta_T) + i - a)
    di/dt = -tau_syn_inv * i
    da/dt = tau_ada_inv * (adaptation_current * (v - v_leak) - a)
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import LIFAdExParameters
from worker.engine.reset import reset
from worker.engine.threshold import threshold


class LIFAdExFeedForwardState(NamedTuple):
    v: torch.Tensor
    i: torch.Tensor
    a: torch.Tensor


def lif_adex_feed_forward_step(
    x: torch.Tensor,
    state: LIFAdExFeedForwardState,
    p: LIFAdExParameters = LIFAdExParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFAdExFeedForwardState]:
    i_jump = state.i + x
    dv_leak = p.v_leak - state.v
    dv_exp = p.delta_T * torch.exp((state.v - p.v_th) / p.delta_T)
    v_decayed = state.v + dt * p.tau_mem_inv * (dv_leak + dv_exp + i_jump - state.a)
    i_decayed = i_jump + -dt * p.tau_syn_inv * i_jump
    a_decayed = state.a + dt * p.tau_ada_inv * (p.adaptation_current * (state.v - p.v_leak) - state.a)
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    v_new = reset(z, v_decayed, p.v_th, p.v_reset, p.reset_method)
    return z, LIFAdExFeedForwardState(v=v_new, i=i_decayed, a=a_decayed + z * p.adaptation_spike)


class _LIFAdExDynamics:
    default_p = LIFAdExParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFAdExParameters) -> LIFAdExFeedForwardState:
        return LIFAdExFeedForwardState(v=full_state(x, p.v_leak), i=torch.zeros_like(x), a=torch.zeros_like(x))

    def step_fn(self, x: torch.Tensor, state: LIFAdExFeedForwardState, p: LIFAdExParameters) -> tuple[torch.Tensor, Any]:
        return lif_adex_feed_forward_step(x, state, p, self.dt)


class LIFAdExCell(_LIFAdExDynamics, CellModule):
    """One step of LIFAdEx; ``p`` defaults to ``LIFAdExParameters()``."""


class LIFAdEx(_LIFAdExDynamics, SequenceModule):
    """A whole time-major sequence of LIFAdEx; ``p`` defaults to ``LIFAdExParameters()``."""
