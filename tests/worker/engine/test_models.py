"""Properties every engine model shares: dtype and device follow the input, the sequence module
equals its cell stepped by hand, and batch entries do not influence each other."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import worker.engine as snn


@dataclass(frozen=True)
class Model:
    name: str
    sequence: Callable[[], torch.nn.Module]
    cell: Callable[[], torch.nn.Module]
    drive: float  # input amplitude that makes the model spike within a few dozen steps


MODELS = [
    Model("lif", snn.LIF, snn.LIFCell, 3.0),
    Model("lif_box", snn.LIFBox, snn.LIFBoxCell, 3.0),
    Model("li", snn.LI, snn.LICell, 3.0),
    Model("iaf", snn.IAF, snn.IAFCell, 0.3),
    Model("alif", snn.ALIF, snn.ALIFCell, 3.0),
    Model("lif_adex", snn.LIFAdEx, snn.LIFAdExCell, 3.0),
    Model("izhikevich", snn.Izhikevich, snn.IzhikevichCell, 15.0),
    Model("lif_recurrent", lambda: snn.LIFRecurrent(4, 4), lambda: snn.LIFRecurrentCell(4, 4), 3.0),
]
IDS = [m.name for m in MODELS]


def drive(model: Model, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * model.drive).to(dtype)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_float64_input_gives_float64_outputs_and_state(model: Model) -> None:
    torch.manual_seed(0)
    out, state = model.sequence()(drive(model, (40, 2, 4), torch.float64))
    assert out.dtype == torch.float64
    assert all(field.dtype == torch.float64 for field in state)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_float64_agrees_with_float32(model: Model) -> None:
    """Same model in two precisions: close voltages over a short run (spikes may legitimately flip
    only where v lands within float32 rounding of the threshold, which this input avoids)."""
    torch.manual_seed(0)
    module = model.sequence()
    x = drive(model, (20, 4), torch.float64)
    _, s64 = module(x)
    _, s32 = module(x.float())
    torch.testing.assert_close(s32.v.double(), s64.v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_outputs_stay_on_the_input_device(model: Model) -> None:
    """On the meta device any hidden CPU tensor would raise or land on the CPU; nothing may."""
    torch.manual_seed(0)
    module = model.sequence()
    x = torch.empty(5, 2, 4, device="meta")
    out, state = module(x)
    assert out.device.type == "meta"
    assert all(field.device.type == "meta" for field in state)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_sequence_equals_cell_stepped_by_hand(model: Model) -> None:
    torch.manual_seed(0)
    sequence = model.sequence()
    torch.manual_seed(0)
    cell = model.cell()
    x = drive(model, (60, 3, 4))
    out, final = sequence(x)
    state, outputs = None, []
    for x_t in x:
        z, state = cell(x_t, state)
        outputs.append(z)
    assert torch.equal(out, torch.stack(outputs))
    for a, b in zip(final, state, strict=True):
        assert torch.equal(a, b)
    if model.name != "li":
        assert out.sum() > 0, "the drive must make the model spike"


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_batch_entries_are_independent(model: Model) -> None:
    torch.manual_seed(0)
    module = model.sequence()
    x = drive(model, (50, 3, 4))
    batched, _ = module(x)
    for b in range(3):
        single, _ = module(x[:, b])
        assert torch.equal(batched[:, b], single)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_module_can_be_cast_to_double(model: Model) -> None:
    torch.manual_seed(0)
    module = model.sequence().double()
    out, _ = module(drive(model, (10, 4), torch.float64))
    assert out.dtype == torch.float64


PARAMETER_TYPES = [
    snn.LIFParameters, snn.LIFBoxParameters, snn.LIParameters, snn.ALIFParameters, snn.LIFAdExParameters,
]  # fmt: skip


@pytest.mark.parametrize("parameter_type", PARAMETER_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf"), torch.tensor([100.0, -1.0])], ids=str)
def test_parameters_refuse_time_constants_that_are_not_positive(parameter_type: type, bad: object) -> None:
    """As the request format does; built directly or with ``_replace``."""
    for field in (name for name in parameter_type._fields if name.startswith("tau_")):
        with pytest.raises(ValueError, match=f"{field} must be positive and finite"):
            parameter_type(**{field: bad})
        with pytest.raises(ValueError, match=f"{field} must be positive and finite"):
            parameter_type()._replace(**{field: bad})
    assert parameter_type(**{field: torch.tensor([50.0, 200.0]) for field in parameter_type._fields if field.startswith("tau_")})
