"""LIF neurons with an absolute refractory period (Norse's LIFRefrac semantics).

One step is a LIF step (``worker.engine.lif``), then the refractory update:

    refractory = H(rho)                      (rho > 0: the neuron is refractory this step;
                                              the surrogate of ``method`` for gradients)
    v <- v_before  where refractory          (the membrane is held: input in this step is lost)
    z <- 0         where refractory
    rho <- rho_reset             where z     (a spike starts rho_reset refractory steps)
    rho <- max(rho - 1, 0)       elsewhere

so a neuron that spikes at step k is held at its reset value for steps k+1 .. k+rho_reset and
can spike again at step k+rho_reset+1 at the earliest. The synaptic current keeps integrating
and decaying through the refractory period, as in Norse.

The parameters and state are flat where Norse nests them (``LIFRefracParameters(lif=...,
rho_reset=...)`` and ``LIFRefracFeedForwardState(lif=..., rho=...)``), so the modules store and
stack them like every other model's; ``from_lif`` builds the parameters from ``LIFParameters``.
``LIFBoxRefrac`` is the same refractory period on the box LIF (no synaptic current), which with
delta synapses is the neuron of Brunel's (2000) balanced network.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.fused.models import coefficients
from worker.engine.fused.refractory import box_refrac_sequence
from worker.engine.lif import LIFFeedForwardState, full_state, lif_feed_forward_step
from worker.engine.lif_box import LIFBoxFeedForwardState, lif_box_feed_forward_step
from worker.engine.lif_channels import NO_CHANNELS, Coefficients, kernel_arrays
from worker.engine.module import CellModule, SequenceModule, cast_params
from worker.engine.parameter_types import LIFBoxRefracParameters, LIFRefracParameters
from worker.engine.threshold import threshold


class LIFRefracFeedForwardState(NamedTuple):
    v: torch.Tensor
    i: torch.Tensor
    rho: torch.Tensor  # refractory steps left


def refractory_update(
    rho: torch.Tensor, z: torch.Tensor, v_new: torch.Tensor, v_before: torch.Tensor, p: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The refractory part of a step of any model whose parameters have ``method``, ``alpha`` and
    ``rho_reset``: ``(v, z, rho)`` after it. As in Norse, the mask is the threshold function of
    ``rho`` with the model's surrogate, so gradients pass through it too."""
    refractory = threshold(rho, p.method, p.alpha)
    v = (1 - refractory) * v_new + refractory * v_before
    z = (1 - refractory) * z
    rho_new = (1 - z) * torch.relu(rho - refractory) + z * p.rho_reset
    return v, z, rho_new


def lif_refrac_feed_forward_step(
    x: torch.Tensor,
    state: LIFRefracFeedForwardState,
    p: LIFRefracParameters = LIFRefracParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFRefracFeedForwardState]:
    z, lif_state = lif_feed_forward_step(x, LIFFeedForwardState(state.v, state.i), p.lif, dt)
    v, z, rho = refractory_update(state.rho, z, lif_state.v, state.v, p)
    return z, LIFRefracFeedForwardState(v=v, i=lif_state.i, rho=rho)


class _LIFRefracDynamics:
    default_p = LIFRefracParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFRefracParameters) -> LIFRefracFeedForwardState:
        return LIFRefracFeedForwardState(v=full_state(x, p.v_leak), i=torch.zeros_like(x), rho=torch.zeros_like(x))

    def step_fn(self, x: torch.Tensor, state: LIFRefracFeedForwardState, p: LIFRefracParameters) -> tuple[torch.Tensor, Any]:
        return lif_refrac_feed_forward_step(x, state, p, self.dt)


class LIFRefracCell(_LIFRefracDynamics, CellModule):
    """One step of LIF with a refractory period: ``cell(x_t, state) -> (z_t, state)``."""


class LIFRefrac(_LIFRefracDynamics, SequenceModule):
    """LIF with a refractory period over a time-major sequence."""


class LIFBoxRefracFeedForwardState(NamedTuple):
    v: torch.Tensor
    rho: torch.Tensor


def lif_box_refrac_feed_forward_step(
    x: torch.Tensor,
    state: LIFBoxRefracFeedForwardState,
    p: LIFBoxRefracParameters = LIFBoxRefracParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFBoxRefracFeedForwardState]:
    """A LIFBox step then the refractory update. With delta synapses this is Brunel's neuron: an
    input spike arriving while the neuron is refractory is lost (the membrane is held)."""
    z, box_state = lif_box_feed_forward_step(x, LIFBoxFeedForwardState(state.v), p.box, dt)
    v, z, rho = refractory_update(state.rho, z, box_state.v, state.v, p)
    return z, LIFBoxRefracFeedForwardState(v=v, rho=rho)


class _LIFBoxRefracDynamics:
    default_p = LIFBoxRefracParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFBoxRefracParameters) -> LIFBoxRefracFeedForwardState:
        return LIFBoxRefracFeedForwardState(v=full_state(x, p.v_leak), rho=torch.zeros_like(x))

    def step_fn(
        self, x: torch.Tensor, state: LIFBoxRefracFeedForwardState, p: LIFBoxRefracParameters
    ) -> tuple[torch.Tensor, Any]:
        return lif_box_refrac_feed_forward_step(x, state, p, self.dt)


class LIFBoxRefracCell(_LIFBoxRefracDynamics, CellModule):
    """One step of LIFBox with a refractory period."""


class LIFBoxRefrac(_LIFBoxRefracDynamics, SequenceModule):
    """LIFBox with a refractory period over a time-major sequence (on the CPU in one kernel call
    where no gradient is recorded: ``worker.engine.fused.refractory``)."""

    def sequence_kernel(self, x: torch.Tensor, state: Any, p: Any) -> tuple[torch.Tensor, Any] | None:
        return box_refrac_sequence(x, state, p, self.dt)

    def kernel_arrays(self, shape: torch.Size, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the network kernel reads of this population of ``shape``: a ``lif_channels``
        population's arrays without channels (``lif_channels.kernel_arrays``), since with delta
        synapses and a reset to a value this step is that one, operation for operation (v + a
        (v_leak - v), then the input; the threshold, reset and refractory update as selects), with
        ``a`` the product the step and its fused kernel take."""
        p = cast_params(self.p, like)
        none = torch.zeros(0, dtype=like.dtype, device=like.device)
        membrane = torch.as_tensor(coefficients(p, self.dt)["a"], dtype=like.dtype, device=like.device)
        return kernel_arrays(p, NO_CHANNELS, Coefficients(membrane, none, none, none), shape, like)
