"""Current-based leaky integrate-and-fire neurons (Norse's LIF semantics).

    dv/dt = tau_mem_inv * ((v_leak - v) + i)        di/dt = -tau_syn_inv * i
    z = H(v - v_th)                                  v <- reset(v) where z

One Euler step, in this order: the input jumps into the current, the membrane integrates the
jumped current, the current decays, then threshold and reset. Constant input 1.0 with the default
parameters gives v = 0.1, 0.27, 0.487, 0.7335, 0.9963 and then a spike.
"""

from typing import Any, NamedTuple

import torch

from worker.engine.module import CellModule, SequenceModule
from worker.engine.parameter_types import LIFParameters
from worker.engine.reset import reset
from worker.engine.threshold import threshold

Param = torch.Tensor | float


class LIFFeedForwardState(NamedTuple):
    v: torch.Tensor
    i: torch.Tensor


class LIFState(NamedTuple):
    """State of a recurrent LIF layer: ``z`` holds the previous step's spikes."""

    z: torch.Tensor
    v: torch.Tensor
    i: torch.Tensor


def lif_feed_forward_step(
    x: torch.Tensor,
    state: LIFFeedForwardState,
    p: LIFParameters = LIFParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFFeedForwardState]:
    """One Euler step driven by an input current ``x`` (e.g. the output of a Linear layer)."""
    i_jump = state.i + x
    v_decayed = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i_jump)
    i_decayed = i_jump + -dt * p.tau_syn_inv * i_jump
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    v_new = reset(z, v_decayed, p.v_th, p.v_reset, p.reset_method)
    return z, LIFFeedForwardState(v=v_new, i=i_decayed)


def lif_recurrent_step(
    x: torch.Tensor,
    state: LIFState,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: LIFParameters = LIFParameters(),
    dt: float = 0.001,
) -> tuple[torch.Tensor, LIFState]:
    """One step of a recurrent layer: input spikes and last step's own spikes jump into the current.

    As in Norse, the reset uses the spikes detached from the graph, so gradients flow through the
    membrane and the recurrent current but not through the reset.
    """
    i_jump = state.i + torch.nn.functional.linear(x, input_weights) + torch.nn.functional.linear(state.z, recurrent_weights)
    v_decayed = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i_jump)
    i_decayed = i_jump + -dt * p.tau_syn_inv * i_jump
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    v_new = reset(z.detach(), v_decayed, p.v_th, p.v_reset, p.reset_method)
    return z, LIFState(z=z, v=v_new, i=i_decayed)


def full_state(x: torch.Tensor, value: Param) -> torch.Tensor:
    """A state tensor shaped like ``x`` filled with ``value`` (a scalar or per-neuron tensor)."""
    return torch.zeros_like(x) + value


class _LIFDynamics:
    default_p = LIFParameters()
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFParameters) -> LIFFeedForwardState:
        return LIFFeedForwardState(v=full_state(x, p.v_leak), i=torch.zeros_like(x))

    def step_fn(self, x: torch.Tensor, state: LIFFeedForwardState, p: LIFParameters) -> tuple[torch.Tensor, Any]:
        return lif_feed_forward_step(x, state, p, self.dt)


class LIFCell(_LIFDynamics, CellModule):
    """One LIF step: ``cell(x_t, state) -> (z_t, state)``."""


class LIF(_LIFDynamics, SequenceModule):
    """LIF over a time-major sequence: ``LIF()(x[T, ...]) -> (z[T, ...], state)``."""


class RecurrentWeights(torch.nn.Module):
    """Input and recurrent weight matrices for a recurrent layer (Norse's layout and initialisation).

    Without autapses the diagonal of the recurrent matrix is zeroed at construction and masked on
    every use, so training cannot grow a neuron's connection to itself.
    """

    input_weights: torch.nn.Parameter
    recurrent_weights: torch.nn.Parameter

    def init_weights(
        self,
        input_size: int,
        hidden_size: int,
        input_weights: torch.Tensor | None,
        recurrent_weights: torch.Tensor | None,
        autapses: bool,
    ) -> None:
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.autapses = autapses
        scale = (2.0 / hidden_size) ** 0.5
        if input_weights is None:
            input_weights = torch.randn(hidden_size, input_size) * scale
        if recurrent_weights is None:
            recurrent_weights = torch.randn(hidden_size, hidden_size) * scale
        if tuple(input_weights.shape) != (hidden_size, input_size):
            raise ValueError(f"input_weights must have shape {(hidden_size, input_size)}, got {tuple(input_weights.shape)}")
        if tuple(recurrent_weights.shape) != (hidden_size, hidden_size):
            raise ValueError(
                f"recurrent_weights must have shape {(hidden_size, hidden_size)}, got {tuple(recurrent_weights.shape)}"
            )
        self.input_weights = torch.nn.Parameter(torch.as_tensor(input_weights))
        self.recurrent_weights = torch.nn.Parameter(torch.as_tensor(recurrent_weights))
        if not autapses:
            with torch.no_grad():
                self.recurrent_weights.fill_diagonal_(0.0)

    def weights_like(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w_in = self.input_weights.to(device=x.device, dtype=x.dtype)
        w_rec = self.recurrent_weights.to(device=x.device, dtype=x.dtype)
        if not self.autapses:
            w_rec = w_rec * (1 - torch.eye(self.hidden_size, device=x.device, dtype=x.dtype))
        return w_in, w_rec

    def hidden_like(self, x: torch.Tensor, value: Param = 0.0) -> torch.Tensor:
        return torch.zeros((*x.shape[:-1], self.hidden_size), device=x.device, dtype=x.dtype) + value


class _LIFRecurrentDynamics(RecurrentWeights):
    dt: float

    def initial_state(self, x: torch.Tensor, p: LIFParameters) -> LIFState:
        return LIFState(z=self.hidden_like(x), v=self.hidden_like(x, p.v_leak), i=self.hidden_like(x))

    _sequence_weights: tuple[torch.Tensor, torch.Tensor] | None = None

    def step_fn(self, x: torch.Tensor, state: LIFState, p: LIFParameters) -> tuple[torch.Tensor, Any]:
        w_in, w_rec = self._sequence_weights or self.weights_like(x)
        return lif_recurrent_step(x, state, w_in, w_rec, p, self.dt)

    def reference_forward(self, x: torch.Tensor, state: Any, p: Any, bool_spikes: bool = False) -> tuple[torch.Tensor, Any]:
        # The weights (cast, and masked without autapses) once per sequence, not once per step:
        # masking an N x N matrix every step cost more than the step itself (1.1 s per step at N = 10,000).
        self._sequence_weights = self.weights_like(x[0])
        try:
            return super().reference_forward(x, state, p, bool_spikes)  # type: ignore[misc]
        finally:
            self._sequence_weights = None

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, autapses={self.autapses}, " + super().extra_repr()


class LIFRecurrentCell(_LIFRecurrentDynamics, CellModule):
    """One step of a recurrently connected LIF layer of ``hidden_size`` neurons."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: LIFParameters = LIFParameters(),
        input_weights: torch.Tensor | None = None,
        recurrent_weights: torch.Tensor | None = None,
        autapses: bool = False,
        dt: float = 0.001,
    ) -> None:
        super().__init__(p, dt)
        self.init_weights(input_size, hidden_size, input_weights, recurrent_weights, autapses)


class LIFRecurrent(_LIFRecurrentDynamics, SequenceModule):
    """A recurrently connected LIF layer over a time-major sequence ``(T, ..., input_size)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: LIFParameters = LIFParameters(),
        input_weights: torch.Tensor | None = None,
        recurrent_weights: torch.Tensor | None = None,
        autapses: bool = False,
        dt: float = 0.001,
        record_states: bool = False,
    ) -> None:
        super().__init__(p, dt, record_states)
        self.init_weights(input_size, hidden_size, input_weights, recurrent_weights, autapses)
