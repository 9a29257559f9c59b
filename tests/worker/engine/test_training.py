"""Surrogate gradients train: a small spiking classifier learns a toy task."""

import pytest
import torch

import worker.engine as snn


def toy_task(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of Poisson inputs: class k fires the k-th half of 20 input channels faster."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(16) % 2
    rates = torch.full((16, 20), 0.1)
    rates[labels == 0, :10] = 0.8
    rates[labels == 1, 10:] = 0.8
    return snn.poisson_encode(rates, 60, f_max=200, generator=g), labels


def train(method: str, steps: int = 60) -> tuple[list[float], torch.nn.Module]:
    torch.manual_seed(0)
    x, labels = toy_task()
    model = snn.SequentialState(
        torch.nn.Linear(20, 32),
        snn.LIF(snn.LIFParameters(method=method, alpha=torch.as_tensor(1.0 if method == "triangle" else 100.0))),
        torch.nn.Linear(32, 2),
        snn.LI(),
    )
    with torch.no_grad():
        model[0].weight.mul_(4.0)  # start with a hidden layer that spikes
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(steps):
        voltages, _ = model(x)
        loss = torch.nn.functional.cross_entropy(voltages.max(0).values, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model


@pytest.mark.parametrize("method", ["super", "triangle", "fast_sigmoid", "atan"])
def test_loss_goes_down_and_the_task_is_learned(method: str) -> None:
    losses, model = train(method)
    assert losses[-1] < 0.5 * losses[0]
    x, labels = toy_task(seed=1)  # fresh samples of the same classes
    voltages, _ = model(x)
    accuracy = (voltages.max(0).values.argmax(-1) == labels).float().mean().item()
    assert accuracy >= 0.9


def test_hidden_layer_learns_only_through_a_surrogate() -> None:
    x, labels = toy_task()
    for method, expect_gradient in (("super", True), ("heaviside", False)):
        torch.manual_seed(0)
        first = torch.nn.Linear(20, 8)
        model = snn.SequentialState(first, snn.LIF(snn.LIFParameters(method=method)), torch.nn.Linear(8, 2), snn.LI())
        voltages, _ = model(x)
        torch.nn.functional.cross_entropy(voltages.max(0).values, labels).backward()
        has_gradient = first.weight.grad is not None and first.weight.grad.abs().sum().item() > 0
        assert has_gradient == expect_gradient, method
