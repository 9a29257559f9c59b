"""Spike thresholds with surrogate gradients.

The forward pass of every method is the Heaviside step ``x > 0``; the methods differ only in the
derivative used on the backward pass. ``"super"`` reproduces Norse 1.1.0 exactly, including its
quirk that ``alpha`` does not scale the SuperSpike derivative; use ``"fast_sigmoid"`` for the
alpha-scaled form of Zenke & Ganguli (2018).
"""

import math
from collections.abc import Callable

import torch

# (grad_output, x, alpha) -> grad_x; each written in the same arithmetic order as Norse, because in
# long backpropagation through time a one-ulp difference per step grows into a visible one.
SurrogateGradient = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | float], torch.Tensor]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """1 where ``x > 0``, else 0, in the dtype of ``x``; carries no gradient."""
    return torch.gt(x, 0.0).to(x.dtype)


def _superspike(grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return grad / (x.abs() + 1.0).pow(2)


def _fast_sigmoid(grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return grad / (alpha * x.abs() + 1.0).pow(2)


def _triangle(grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return grad * alpha * torch.relu(1.0 - x.abs())


def _tanh(grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return grad * (1.0 - (x * alpha).tanh().pow(2))


def _atan(grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    return grad * (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x).pow(2))


SURROGATES: dict[str, SurrogateGradient] = {
    "super": _superspike,
    "fast_sigmoid": _fast_sigmoid,
    "triangle": _triangle,
    "tanh": _tanh,
    "atan": _atan,
}
METHODS = ("heaviside", *SURROGATES)


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, alpha: torch.Tensor | float, surrogate: SurrogateGradient):
        return heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, alpha, surrogate = inputs
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = ctx.surrogate(grad_output, x, ctx.alpha)
        return grad, None, None


def threshold(x: torch.Tensor, method: str = "super", alpha: torch.Tensor | float = 100.0) -> torch.Tensor:
    """Spike where ``x > 0``; the gradient is the surrogate named by ``method``."""
    if method == "heaviside":
        return heaviside(x)
    try:
        surrogate = SURROGATES[method]
    except KeyError:
        raise ValueError(f"unknown threshold method {method!r}; expected one of {', '.join(METHODS)}") from None
    if not (torch.is_grad_enabled() and x.requires_grad):
        return heaviside(x)  # no graph is being recorded: skip the autograd.Function machinery
    return _SurrogateSpike.apply(x, alpha, surrogate)
