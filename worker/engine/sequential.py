"""Composition of stateful and stateless modules."""

import functools
import inspect
from typing import Any

import torch


def is_stateful(module: torch.nn.Module) -> bool:
    """A module is stateful when its ``forward`` takes a ``state`` argument (Norse's convention),
    unless it says otherwise with a boolean ``stateful`` attribute (as ``Lift`` does)."""
    declared = getattr(module, "stateful", None)
    if isinstance(declared, bool):
        return declared
    forward = module.forward
    return _forward_takes_state(getattr(forward, "__func__", forward))


@functools.cache
def _forward_takes_state(forward: Any) -> bool:
    # cached per class: inspect.signature costs more than building a small layer
    return "state" in inspect.signature(forward).parameters


class SequentialState(torch.nn.Sequential):
    """Like ``nn.Sequential``, but threads the state of each stateful module.

    ``network(x, state=None) -> (output, [state_0, state_1, ...])``: stateful modules are called as
    ``m(x, state_i)`` and the others as ``m(x)``; the list has ``None`` for stateless modules. With
    ``return_hidden=True`` the first element is the list of every module's output instead.
    """

    def __init__(self, *modules: torch.nn.Module, return_hidden: bool = False) -> None:
        super().__init__(*modules)
        self.return_hidden = return_hidden
        self.stateful_layers = [is_stateful(module) for module in modules]

    def forward(self, x: torch.Tensor, state: list[Any] | None = None) -> tuple[Any, list[Any]]:
        state = [None] * len(self) if state is None else list(state)
        if len(state) != len(self):
            raise ValueError(f"expected a state list of {len(self)} entries, got {len(state)}")
        hidden = []
        for index, module in enumerate(self):
            if self.stateful_layers[index]:
                x, state[index] = module(x, state[index])
            else:
                x = module(x)
            if self.return_hidden:
                hidden.append(x)
        return (hidden if self.return_hidden else x), state


class Lift(torch.nn.Module):
    """Applies a one-step module to every step of a time-major sequence.

    A stateless module returns the stacked outputs; a stateful one (for instance a cell) returns
    ``(outputs, final_state)`` and carries its state from step to step.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.lifted_module = module
        self.stateful = is_stateful(module)

    def forward(self, x: torch.Tensor, state: Any = None) -> Any:
        outputs = []
        for x_t in x:
            if self.stateful:
                out, state = self.lifted_module(x_t, state)
            else:
                out = self.lifted_module(x_t)
            outputs.append(out)
        stacked = torch.stack(outputs)
        return (stacked, state) if self.stateful else stacked
