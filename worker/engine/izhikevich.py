"""Izhikevich's two-variable neuron (Izhikevich 2003, 2004), with Norse's parametrisation.

    dv/dt = tau_inv * (sq * v^2 + mn * v + bias - u + x)
    du/dt = tau_inv * a * (b * v - u)
    z = H(v - v_th);  where z: v <- c, u <- u + d

``tau_inv`` rescales Izhikevich's millisecond time base to ``dt`` in seconds. The defaults are the
"tonic spiking" neuron; ``PRESETS`` holds the classic behaviours of Izhikevich (2004), Fig. 1,
with the parameters and resting points that Norse uses.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.lif import full_state
from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import IzhikevichParameters
from worker.engine.threshold import threshold


class IzhikevichState(NamedTuple):
    v: torch.Tensor
    u: torch.Tensor


class IzhikevichSpikingBehavior(NamedTuple):
    """Parameters and the resting state (v0, u0) a neuron of that behaviour starts from."""

    p: IzhikevichParameters
    v0: float
    u0: float


def _behavior(
    a: float, b: float, c: float, d: float, v0: float, tau_inv: float = 250.0, **extra: Any
) -> IzhikevichSpikingBehavior:
    return IzhikevichSpikingBehavior(IzhikevichParameters(a=a, b=b, c=c, d=d, tau_inv=tau_inv, **extra), v0, b * v0)


PRESETS: dict[str, IzhikevichSpikingBehavior] = {
    "tonic_spiking": _behavior(0.02, 0.2, -65, 6, v0=-70),
    "phasic_spiking": _behavior(0.02, 0.25, -65, 6, v0=-64),
    "tonic_bursting": _behavior(0.02, 0.2, -50, 2, v0=-70),
    "phasic_bursting": _behavior(0.02, 0.25, -55, 0.05, v0=-64, tau_inv=200),
    "mixed_mode": _behavior(0.02, 0.2, -55, 4, v0=-70),
    "spike_frequency_adaptation": _behavior(0.01, 0.2, -65, 8, v0=-70),
    "class_1_exc": _behavior(0.02, -0.1, -55, 6, v0=-60, mn=4.1, bias=108),
    "class_2_exc": _behavior(0.2, 0.26, -65, 0, v0=-64),
    "spike_latency": _behavior(0.02, 0.2, -65, 6, v0=-70),
    "subthreshold_oscillation": _behavior(0.05, 0.26, -60, 0, v0=-62),
    "resonator": _behavior(0.1, 0.26, -60, -1, v0=-62),
    "integrator": _behavior(0.02, -0.1, -55, 6, v0=-60, mn=4.1, bias=108),
    "rebound_spike": _behavior(0.03, 0.25, -60, 4, v0=-64, tau_inv=200),
    "rebound_burst": _behavior(0.03, 0.25, -52, 0, v0=-64, tau_inv=200),
    "threshold_variability": _behavior(0.03, 0.25, -60, 4, v0=-64),
    "bistability": _behavior(0.1, 0.26, -60, 0, v0=-61),
    "dap": _behavior(1.0, 0.2, -60, -21, v0=-70, tau_inv=100),
    "accommodation": IzhikevichSpikingBehavior(IzhikevichParameters(a=0.02, b=1.0, c=-55, d=4, tau_inv=500), -65.0, -16.0),
    "inhibition_induced_spiking": _behavior(-0.02, -1.0, -60, 8, v0=-63.8),
    "inhibition_induced_bursting": _behavior(-0.026, -1.0, -45, -2, v0=-63.8),
}


def izhikevich_feed_forward_step(
    x: torch.Tensor,
    state: IzhikevichState,
    p: IzhikevichParameters = IzhikevichParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, IzhikevichState]:
    v_ = state.v + p.tau_inv * dt * (p.sq * state.v**2 + p.mn * state.v + p.bias - state.u + x)
    u_ = state.u + p.tau_inv * dt * p.a * (p.b * state.v - state.u)
    z = threshold(v_ - p.v_th, p.method, p.alpha)
    v_new = (1 - z) * v_ + z * p.c
    u_new = (1 - z) * u_ + z * (u_ + p.d)
    return z, IzhikevichState(v=v_new, u=u_new)


class _IzhikevichDynamics(torch.nn.Module):
    dt: float
    v0: torch.Tensor
    u0: torch.Tensor

    def init_behavior(self, behavior: IzhikevichSpikingBehavior) -> None:
        self.register_buffer("v0", torch.as_tensor(behavior.v0, dtype=torch.get_default_dtype()))
        self.register_buffer("u0", torch.as_tensor(behavior.u0, dtype=torch.get_default_dtype()))

    def initial_state(self, x: torch.Tensor, p: IzhikevichParameters) -> IzhikevichState:
        return IzhikevichState(
            v=full_state(x, self.v0.to(device=x.device, dtype=x.dtype)),
            u=full_state(x, self.u0.to(device=x.device, dtype=x.dtype)),
        )

    def step_fn(self, x: torch.Tensor, state: IzhikevichState, p: IzhikevichParameters) -> tuple[torch.Tensor, Any]:
        return izhikevich_feed_forward_step(x, state, p, self.dt)


class IzhikevichCell(_IzhikevichDynamics, CellModule):
    def __init__(self, spiking_method: IzhikevichSpikingBehavior = PRESETS["tonic_spiking"], dt: float = 0.001) -> None:
        super().__init__(spiking_method.p, dt)
        self.init_behavior(spiking_method)


class Izhikevich(_IzhikevichDynamics, SequenceModule):
    def __init__(
        self,
        spiking_method: IzhikevichSpikingBehavior = PRESETS["tonic_spiking"],
        dt: float = 0.001,
        record_states: bool = False,
    ) -> None:
        super().__init__(spiking_method.p, dt, record_states)
        self.init_behavior(spiking_method)
