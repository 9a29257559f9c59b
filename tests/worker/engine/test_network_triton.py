"""The Triton kernels of synaptic channels and STDP equal the PyTorch steps bit for bit: a
population's whole sequence (every channel kind, both integrations, per-neuron parameters) and
STDP's presynaptic and postsynaptic events (hard and soft bounds, both pairings); and they compile
for Hopper.

They run on a GPU when there is one, otherwise on the CPU through Triton's interpreter
(TRITON_INTERPRET=1, set before Triton is first imported).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

import worker.engine as snn  # noqa: E402
from tests.helpers import compiled_ptx  # noqa: E402
from worker.engine import projections as proj  # noqa: E402
from worker.engine.lif_channels import Channels  # noqa: E402
from worker.engine.parameter_types import STDPParameters  # noqa: E402
from worker.engine.plasticity import PlasticProjection  # noqa: E402

pytestmark = pytest.mark.slow  # Triton's interpreter
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DT = 1e-4


@pytest.mark.parametrize(
    ("integration", "channels"),
    [
        ("euler", Channels((False, True), (0.005, 0.01), (0.0, -80.0))),
        ("exact", Channels((False, False), (0.005, 0.02), (0.0, 0.0))),
        ("euler", Channels()),
    ],
)
def test_the_triton_sequence_is_the_step_function(integration: str, channels: Channels) -> None:
    g = torch.Generator().manual_seed(5)
    steps, batch, n = 120, 2, 37
    p = snn.LIFChannelsParameters(
        tau_mem_inv=50.0, v_leak=-60.0, v_th=-50.0 - torch.rand(n, generator=g), v_reset=-60.0, rho_reset=20.0,
        integration=integration,
    )  # fmt: skip
    x = torch.zeros(steps, 1 + channels.size, batch, n)
    x[:, 0] = (torch.rand(steps, batch, n, generator=g) < 0.05) * 8.0
    for k in range(channels.size):
        x[:, 1 + k] = (torch.rand(steps, batch, n, generator=g) < 0.1) * (30.0 if k == 0 else 0.5)
    start = snn.LIFChannelsState(
        -65.0 + 5 * torch.rand(batch, n, generator=g), torch.zeros(batch, n), torch.rand(channels.size, batch, n, generator=g)
    )  # fmt: skip
    eager = snn.LIFChannels(p, dt=DT, channels=channels)
    kernel = snn.LIFChannels(p, dt=DT, channels=channels, backend="triton")
    with torch.inference_mode():
        z_eager, s_eager = eager.reference_forward(x if channels.size else x[:, 0:1], start, eager.p)
        z_kernel, s_kernel = kernel.to(DEVICE)(x.to(DEVICE) if channels.size else x[:, 0].to(DEVICE), start._replace(
            **{name: value.to(DEVICE) for name, value in start._asdict().items()}))  # fmt: skip
    assert z_eager.sum() > 20, "the neurons must spike"
    assert torch.equal(z_kernel.cpu().bool(), z_eager.bool())
    for name in ("v", "rho", "g"):
        assert torch.equal(getattr(s_kernel, name).cpu(), getattr(s_eager, name)), name


@pytest.mark.parametrize(("bounds", "pairing"), [("hard", "all_to_all"), ("soft", "nearest")])
def test_the_triton_stdp_events_are_the_pytorch_step(bounds: str, pairing: str) -> None:
    """Two plastic projections of the same synapses driven by the same spikes for 30 steps, one
    through the Triton kernels (interpreted on the CPU: half a second a step): the same
    deliveries, weights and traces to the bit."""
    g = torch.Generator().manual_seed(2)
    n_pre, n_post = 30, 20
    p = STDPParameters(tau_pre=0.01, tau_post=0.02, a_pre=0.05, a_post=-0.06, w_min=0.0, w_max=1.0, bounds=bounds,
                       pairing=pairing)  # fmt: skip
    built = proj.pairwise_bernoulli(n_pre, n_post, 0.3, g)
    weights = torch.rand(built.synapses, generator=g)
    delay = torch.tensor(2, dtype=torch.int32)
    projection = proj.Projection(built.n_pre, built.n_post, built.offsets, built.post, weights, delay)
    eager = PlasticProjection.of(projection, p, DT)
    kernel = PlasticProjection.of(projection, p, DT).on(DEVICE)
    kernel.backend = "triton"
    for t in range(30):
        emitted, fired = torch.rand(n_pre, generator=g) < 0.2, torch.rand(n_post, generator=g) < 0.2
        into_eager, into_kernel = torch.zeros(n_post), torch.zeros(n_post, device=DEVICE)
        eager.step(t, emitted, fired, into_eager)
        kernel.step(t, emitted.to(DEVICE), fired.to(DEVICE), into_kernel)
        assert torch.equal(into_kernel.cpu(), into_eager), f"step {t}"
    assert torch.equal(kernel.weight.cpu(), eager.weight) and not torch.equal(eager.weight, weights)
    for name in ("x_pre", "pre_stamp", "x_post"):
        assert torch.equal(getattr(kernel, name).cpu(), getattr(eager, name)), name


def test_the_kernels_compile_for_hopper_without_fused_multiply_adds() -> None:
    found = compiled_ptx("worker.engine.network.triton_kernels", "'fma.rn' in ptx")
    assert set(found) == {"lif_channels", "stdp_presynaptic", "stdp_postsynaptic"}
    assert not any(found.values()), "a fused multiply-add rounds differently from the CPU's two operations"
