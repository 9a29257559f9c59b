"""Thresholds: Heaviside forward for every method; each surrogate's documented derivative."""

import math

import pytest
import torch

from worker.engine.threshold import METHODS, threshold

POINTS = torch.tensor([-2.0, -0.5, -0.1, 0.0, 0.1, 0.5, 2.0], dtype=torch.float64)
EXPECTED_DERIVATIVE = {
    "super": lambda x, a: 1 / (abs(x) + 1) ** 2,
    "fast_sigmoid": lambda x, a: 1 / (a * abs(x) + 1) ** 2,
    "triangle": lambda x, a: a * max(0.0, 1 - abs(x)),
    "tanh": lambda x, a: 1 - math.tanh(a * x) ** 2,
    "atan": lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2),
}


@pytest.mark.parametrize("method", METHODS)
def test_forward_is_heaviside_with_zero_at_zero(method: str) -> None:
    z = threshold(POINTS, method, 2.0)
    assert z.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert z.dtype == POINTS.dtype


@pytest.mark.parametrize("method", sorted(EXPECTED_DERIVATIVE))
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_surrogate_gradient_is_the_documented_derivative(method: str, alpha: float) -> None:
    x = POINTS.clone().requires_grad_(True)
    threshold(x, method, alpha).sum().backward()
    expected = torch.tensor([EXPECTED_DERIVATIVE[method](v, alpha) for v in POINTS.tolist()], dtype=torch.float64)
    torch.testing.assert_close(x.grad, expected)


def test_superspike_ignores_alpha_as_norse_does() -> None:
    grads = []
    for alpha in (1.0, 100.0):
        x = POINTS.clone().requires_grad_(True)
        threshold(x, "super", alpha).sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])


def test_heaviside_method_carries_no_gradient() -> None:
    x = POINTS.clone().requires_grad_(True)
    assert not threshold(x, "heaviside", 1.0).requires_grad


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown threshold method 'sigmoidish'.*super"):
        threshold(POINTS, "sigmoidish", 1.0)
