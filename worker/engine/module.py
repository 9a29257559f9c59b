"""Thin ``nn.Module`` wrappers around the pure step functions.

A neuron module keeps its parameter NamedTuple as registered tensors (``nn.Parameter`` fields stay
learnable, every other number becomes a buffer), so ``.to(device)``, ``.double()`` and
``state_dict()`` behave as for any PyTorch layer. On each call the parameters are cast to the
input's dtype and device: results follow the input, and nothing is moved to the CPU behind the
caller's back.
"""

from typing import Any, ClassVar

import torch

from worker.engine.fused import fused_sequence
from worker.engine.parameters import rebuilt
from worker.registry import MODELS


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Spikes often arrive as bool or integer tensors; the dynamics need a floating dtype."""
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def cast_params(p: Any, like: torch.Tensor) -> Any:
    """``p`` with every floating tensor field on ``like``'s device and in its dtype (``p`` itself
    when all are already)."""
    dtype, device = like.dtype, like.device
    if not any(
        isinstance(value, torch.Tensor) and value.is_floating_point() and (value.dtype != dtype or value.device != device)
        for value in p
    ):
        return p
    fields = {
        name: value.to(device=device, dtype=dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value
        for name, value in p._asdict().items()
    }
    return rebuilt(type(p), fields)


def stack_states(states: list[Any]) -> Any:
    """One state whose fields gain a leading time dimension."""
    return type(states[0])(*(torch.stack(values) for values in zip(*states, strict=True)))


class NeuronModule(torch.nn.Module):
    """Stores a parameter NamedTuple as module tensors; subclasses supply the dynamics.

    A subclass (usually through a model mixin) defines ``default_p``, ``initial_state(x, p)`` for
    one time step ``x`` and ``step_fn(x, state, p)``; ``p=None`` takes ``default_p``.
    """

    default_p: ClassVar[Any]

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        super().__init__()
        p = self.default_p if p is None else p
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        self.dt = dt
        self._param_type = type(p)
        self._static: dict[str, Any] = {}
        numbers: dict[str, float] = {}
        for name, value in p._asdict().items():
            if isinstance(value, torch.nn.Parameter):
                self.register_parameter(name, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value if value.is_floating_point() else value.to(torch.get_default_dtype()))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers[name] = value
            else:
                self._static[name] = value
        if numbers:
            # Plain numbers become 0-d buffers made by one call, and stored as register_buffer
            # stores them (its checks hold for a NamedTuple's field names): a tensor and a
            # register_buffer each took 40 of the 100 us that a tiny job's network takes to build.
            tensors = torch.tensor(list(numbers.values()), dtype=torch.get_default_dtype()).unbind()
            self._buffers.update(zip(numbers, tensors, strict=True))

    @property
    def p(self) -> Any:
        """The parameters as their NamedTuple, holding this module's tensors."""
        return rebuilt(self._param_type, self._parameters | self._buffers | self._static)  # as getattr reads them, quicker

    def extra_repr(self) -> str:
        return f"p={self.p}, dt={self.dt}"

    def initial_state(self, x: torch.Tensor, p: Any) -> Any:
        raise NotImplementedError

    def step_fn(self, x: torch.Tensor, state: Any, p: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError


class CellModule(NeuronModule):
    """One time step: ``(x, state) -> (out, state)``; the initial state is built when ``state`` is None."""

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        x = as_float(x)
        p = cast_params(self.p, x)
        if state is None:
            state = self.initial_state(x, p)
        return self.step_fn(x, state, p)


class SequenceModule(NeuronModule):
    """A whole time-major sequence ``(T, *shape)``.

    Returns ``(outputs, final_state)``, or with ``record_states=True`` the states of every step
    stacked along a leading time dimension. Models with a fused kernel (``fused_model``) run their
    whole time loop in it when it applies (see ``worker.engine.fused``); otherwise, and always as
    the reference, the step function is looped over dimension 0.

    ``bool_spikes=True`` returns a spiking model's output as bool when no gradient is recorded:
    a quarter of float32's memory, for consumers that take spikes as they are (recording, counts).
    """

    fused_model: ClassVar[str | None] = None
    spiking: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A model of the registry (``worker.registry``, by its engine class's name) takes its
        kernel and whether it spikes from there."""
        super().__init_subclass__(**kwargs)
        model = next((model for model in MODELS.values() if model.engine == cls.__name__), None)
        if model is not None:
            cls.fused_model, cls.spiking = model.kernel, model.spikes

    def __init__(self, p: Any = None, dt: float = 0.001, record_states: bool = False, bool_spikes: bool = False) -> None:
        super().__init__(p, dt)
        self.record_states = record_states
        self.bool_spikes = bool_spikes

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"expected a time-major input (T, ...) with T >= 1, got shape {tuple(x.shape)}")
        x = as_float(x)
        p = cast_params(self.p, x)
        if state is None:
            state = self.initial_state(x[0], p)
        bool_spikes = self.bool_spikes and self.spiking
        if self.fused_model is not None:
            fused = fused_sequence(
                self.fused_model, x, state, p, self.dt, record_states=self.record_states, bool_spikes=bool_spikes
            )
            if fused is not None:
                return fused
        done = None if self.record_states else self.sequence_kernel(x, state, p)
        if done is not None:
            return (done[0] if bool_spikes else done[0].to(x.dtype)), done[1]
        return self.reference_forward(x, state, p, bool_spikes)

    def sequence_kernel(self, x: torch.Tensor, state: Any, p: Any) -> tuple[torch.Tensor, Any] | None:
        """A model's own forward-only kernel of a whole sequence: ``(bool spikes, final state)``,
        or None where it does not apply (or the model has none)."""
        return None

    def reference_forward(self, x: torch.Tensor, state: Any, p: Any, bool_spikes: bool = False) -> tuple[torch.Tensor, Any]:
        """The eager step loop (the reference the fused kernels are tested against)."""
        bool_spikes = bool_spikes and not (torch.is_grad_enabled() and x.requires_grad)
        outputs = []
        states = []
        for x_t in x:
            out, state = self.step_fn(x_t, state, p)
            outputs.append(out.bool() if bool_spikes else out)
            if self.record_states:
                states.append(state)
        return torch.stack(outputs), stack_states(states) if self.record_states else state
