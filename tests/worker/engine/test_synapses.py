"""Synaptic layers over whole sequences: sparse spikes take the event kernels, dense spikes and
float input one dense operation over all rows, and both paths give PyTorch's layer's result
(bit for bit on weights whose sums are exact, within float32 rounding otherwise)."""

import pytest
import torch
import torch.nn.functional as F

from worker.engine import events, synapses
from worker.engine_options import ENGINE


def spikes(shape: tuple[int, ...], rate: float, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < rate


def dyadic(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randint(-127, 128, shape, generator=torch.Generator().manual_seed(seed)).to(torch.float32) / 64


@pytest.fixture
def event_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the event kernels called, in order."""
    calls: list[str] = []
    for name in ("linear_events", "conv2d_events", "avgpool2d_events"):
        kernel = getattr(events, name)
        monkeypatch.setattr(
            events, name, lambda *args, _kernel=kernel, _name=name, **kwargs: calls.append(_name) or _kernel(*args, **kwargs)
        )
    return calls


@pytest.mark.parametrize(("rate", "path"), [(0.02, ["linear_events"]), (0.6, [])])
def test_linear_picks_events_for_sparse_spikes_and_the_gemm_for_dense_ones(rate: float, path: list, event_calls: list) -> None:
    weight, bias = dyadic((40, 300)), dyadic((40,), 2)
    layer = synapses.Linear(weight, bias)
    x = spikes((50, 3, 300), rate)
    out = layer(x)
    assert event_calls == path
    assert out.shape == (50, 3, 40) and out.dtype == torch.float32
    assert torch.equal(out, F.linear(x.float(), weight, bias))


def test_linear_takes_float_input_through_one_gemm(event_calls: list) -> None:
    weight = torch.randn(7, 5)
    layer = synapses.Linear(weight, None)
    x = torch.randn(20, 2, 5)
    torch.testing.assert_close(layer(x), F.linear(x, weight), rtol=1e-6, atol=1e-6)
    assert event_calls == [] and torch.equal(layer.weight, weight)


@pytest.mark.parametrize("rate", [0.03, 0.7])
def test_conv_equals_pytorchs_conv2d_and_conv1d_on_both_paths(rate: float) -> None:
    weight_2d, weight_1d, bias = dyadic((4, 2, 3, 3)), dyadic((4, 2, 5)), dyadic((4,), 3)
    x_2d, x_1d = spikes((6, 2, 2, 9, 9), rate), spikes((6, 2, 2, 20), rate)
    conv_2d = synapses.Conv(weight_2d, bias, (2, 1), (1, 1), (2, 9, 9))
    conv_1d = synapses.Conv(weight_1d, bias, (2,), (2,), (2, 20))
    assert torch.equal(conv_2d(x_2d).flatten(0, 1), F.conv2d(x_2d.flatten(0, 1).float(), weight_2d, bias, (2, 1), (1, 1)))
    assert torch.equal(conv_1d(x_1d).flatten(0, 1), F.conv1d(x_1d.flatten(0, 1).float(), weight_1d, bias, 2, 2))


@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_avgpool2d_equals_pytorchs_on_both_paths(rate: float) -> None:
    pool = synapses.AvgPool2d((2, 2), (2, 2), (1, 1), (3, 8, 8))
    x = spikes((4, 2, 3, 8, 8), rate)
    assert torch.equal(pool(x).flatten(0, 1), F.avg_pool2d(x.flatten(0, 1).float(), 2, 2, 1))


def test_without_event_kernels_every_layer_runs_dense(monkeypatch: pytest.MonkeyPatch, event_calls: list) -> None:
    weight = dyadic((30, 100))
    x = spikes((10, 100), 0.01)
    with_events = synapses.Linear(weight, None)(x)
    assert event_calls == ["linear_events"]
    monkeypatch.setattr(ENGINE, "events", False)
    assert torch.equal(synapses.Linear(weight, None)(x), with_events) and event_calls == ["linear_events"]
