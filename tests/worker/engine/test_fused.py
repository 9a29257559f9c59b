"""Fused multi-step kernels equal the eager reference loop, forward and backward.

Both backends are checked here: the C kernels on the CPU, and the Triton kernels on a GPU when
there is one, otherwise on the CPU through Triton's interpreter (TRITON_INTERPRET=1, set before
Triton is first imported). Parameters are random per neuron, shapes cross the kernels' block size.
"""

import os
import zlib

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import worker.engine as snn
from tests.helpers import compiled_ptx
from worker.engine import native
from worker.engine.fused import FUSED_MODELS, backend_for, cpu, fused_sequence
from worker.engine.module import cast_params
from worker.engine_options import ENGINE

MODELS = {
    "lif": (snn.LIF, snn.LIFParameters),
    "lifbox": (snn.LIFBox, snn.LIFBoxParameters),
    "li": (snn.LI, snn.LIParameters),
    "iaf": (snn.IAF, snn.IAFParameters),
    "alif": (snn.ALIF, snn.ALIFParameters),
}
SPIKING = [name for name in MODELS if FUSED_MODELS[name].spiking]
METHODS = ["super", "fast_sigmoid", "triangle", "tanh", "atan", "heaviside"]
# Ranges per parameter; alpha stays small so that surrogate gradients cannot overflow in 30 steps.
RANGES = {
    "tau_syn_inv": (100.0, 300.0),
    "tau_mem_inv": (50.0, 150.0),
    "tau_adapt_inv": (0.5, 2.0),
    "v_leak": (-0.2, 0.2),
    "v_th": (0.5, 1.5),
    "v_reset": (-0.3, 0.2),
    "beta": (0.0, 2.0),
    "alpha": (0.5, 3.0),
}
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 300)]  # the last spans three blocks of 256, one partial

try:
    import triton  # noqa: F401

    BACKENDS = ["cpu", pytest.param("triton", marks=pytest.mark.slow)]  # Triton's interpreter is slow
except ImportError:
    BACKENDS = ["cpu"]


def device_for(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "triton" and torch.cuda.is_available() else "cpu")


def make_module(name: str, shape: tuple[int, ...], generator: torch.Generator, **fixed) -> torch.nn.Module:
    module_type, parameter_type = MODELS[name]
    values = {}
    for field in parameter_type._fields:
        if field in fixed:
            values[field] = fixed[field]
        elif field in RANGES:
            low, high = RANGES[field]
            values[field] = low + (high - low) * torch.rand(shape[-1:], generator=generator)
    return module_type(parameter_type(**values))


def drive(shape: tuple[int, ...], steps: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand((steps, *shape), generator=generator) * 3.0).to(device)


def reference(module: torch.nn.Module, x: torch.Tensor, state=None):
    p = cast_params(module.p, x)
    return module.reference_forward(x, module.initial_state(x[0], p) if state is None else state, p)


def fused(module: torch.nn.Module, x: torch.Tensor, backend: str, state=None, **options):
    p = cast_params(module.p, x)
    state = module.initial_state(x[0], p) if state is None else state
    result = fused_sequence(module.fused_model, x, state, p, module.dt, backend=backend, **options)
    assert result is not None, "the fused path should apply"
    return result


def assert_states_close(actual, expected) -> None:
    assert type(actual) is type(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        torch.testing.assert_close(a.cpu(), e.cpu(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["value", "subtract"])
@pytest.mark.parametrize("name", list(MODELS))
def test_forward_equals_the_reference_loop(backend: str, name: str, reset: str) -> None:
    generator = torch.Generator().manual_seed(zlib.crc32(f"{name}{reset}".encode()))
    device = device_for(backend)
    for shape in SHAPES:
        fixed = {} if name == "li" else {"reset_method": reset}
        module = make_module(name, shape, generator, **fixed).to(device)
        x = drive(shape, 40, generator, device)
        module.record_states = True
        expected_out, expected_states = reference(module, x)
        out, states = fused(module, x, backend, record_states=True)
        if FUSED_MODELS[name].spiking:
            assert torch.equal(out, expected_out), f"spikes differ for {shape}"
            assert 0 < out.sum() < out.numel(), "the drive should make some, not all, neurons spike"
        else:
            torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-5)
        assert_states_close(states, expected_states)
        module.record_states = False
        _, final = fused(module, x, backend)
        assert_states_close(final, type(final)(*(value[-1] for value in expected_states)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SPIKING)
def test_bool_spikes_are_the_same_spikes_in_one_byte(backend: str, name: str) -> None:
    generator = torch.Generator().manual_seed(3)
    device = device_for(backend)
    module = make_module(name, (4, 9), generator).to(device)
    x = drive((4, 9), 30, generator, device)
    spikes, _ = fused(module, x, backend, bool_spikes=True)
    assert spikes.dtype == torch.bool and spikes.element_size() == 1
    assert torch.equal(spikes.float(), reference(module, x)[0])


# LI has no threshold, so one case covers it. The C kernels are checked on every combination; the
# Triton kernels, run by Triton's interpreter here (3-5 s a case on a busy 2-core machine, 49
# cases took about 3 minutes of the suite), on a set in which every model meets both resets and
# every surrogate occurs (a surrogate is a branch of its own, whatever the model).
GRADIENT_CASES = [(name, reset, method) for name in SPIKING for reset in ("value", "subtract") for method in METHODS]
GRADIENT_CASES.append(("li", "value", "super"))
TRITON_GRADIENT_CASES = [
    (name, reset, METHODS[k % len(METHODS)])
    for k, (name, reset) in enumerate((name, reset) for name in SPIKING for reset in ("value", "subtract"))
]
TRITON_GRADIENT_CASES.append(("li", "value", "super"))
assert {method for _, _, method in TRITON_GRADIENT_CASES} == set(METHODS)
GRADIENT_PARAMS = [("cpu", *case) for case in GRADIENT_CASES] + [
    pytest.param("triton", *case, marks=pytest.mark.slow) for case in TRITON_GRADIENT_CASES if len(BACKENDS) > 1
]


@pytest.mark.parametrize(("backend", "name", "reset", "method"), GRADIENT_PARAMS)
def test_gradients_equal_the_reference_loop(backend: str, name: str, reset: str, method: str) -> None:
    generator = torch.Generator().manual_seed(zlib.crc32(f"{name}{reset}{method}".encode()))
    device = device_for(backend)
    shape = (3, 300)
    fixed = {} if name == "li" else {"reset_method": reset, "method": method}
    module = make_module(name, shape, generator, **fixed).to(device)
    x0 = drive(shape, 30, generator, device)
    weights = torch.randn((30, *shape), generator=generator).to(device)
    grads = []
    for run in (lambda m, x, s: reference(m, x, s), lambda m, x, s: fused(m, x, backend, s)):
        x = x0.clone().requires_grad_()
        p = cast_params(module.p, x)
        state = type(module.initial_state(x[0], p))(*(v.detach().clone().requires_grad_() for v in module.initial_state(x[0], p)))
        out, final = run(module, x, state)
        loss = (out * weights).sum() + sum((value * (k + 1)).sum() for k, value in enumerate(final))
        loss.backward()
        grads.append([x.grad, *(value.grad for value in state)])
    for got, expected in zip(grads[1], grads[0], strict=True):
        assert torch.isfinite(expected).all()
        scale = expected.abs().max().clamp_min(1e-12)
        assert ((got - expected).abs().max() / scale).item() < 1e-5
    if method != "heaviside" and name != "li":
        assert grads[0][0].abs().sum() > 0


@pytest.mark.parametrize("name", list(MODELS))
def test_parameters_all_neurons_share_are_read_once_by_the_c_kernels(name: str) -> None:
    """A single value (the usual case) reaches the kernels as one number, not N copies; mixed with
    per-neuron ones, forward and backward equal the reference loop."""
    generator = torch.Generator().manual_seed(zlib.crc32(f"shared{name}".encode()))
    module_type, parameter_type = MODELS[name]
    fields = [field for field in parameter_type._fields if field in RANGES]
    values = {field: sum(RANGES[field]) / 2 for field in fields[::2]}  # every other one shared
    shape = (2, 300)
    values |= {field: RANGES[field][0] + torch.rand(shape[-1:], generator=generator) for field in fields[1::2]}
    module = module_type(parameter_type(**values))
    x = drive(shape, 30, generator, torch.device("cpu"))
    assert all(getattr(module, field).dim() == 0 for field in fields[::2])
    bits = {name: cpu._coefficients({name: torch.zeros(())}).shared for name in ("a", "v_th", "alpha")}
    assert bits == {"a": 1, "v_th": 16, "alpha": 128}, "one bit per shared coefficient, in the struct's order"
    module.record_states = True
    expected_out, expected_states = reference(module, x)
    out, states = fused(module, x, "cpu", record_states=True)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=0 if FUSED_MODELS[name].spiking else 1e-5)
    assert_states_close(states, expected_states)
    x = x.requires_grad_()
    grads = []
    for run in (reference, lambda m, x: fused(m, x, "cpu")):
        x.grad = None
        out, _ = run(module, x)
        out.sum().backward()
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_broadcast_over_time_is_read_in_place(backend: str) -> None:
    device = device_for(backend)
    generator = torch.Generator().manual_seed(5)
    module = make_module("lif", (3, 7), generator).to(device)
    x = drive((3, 7), 1, generator, device).expand(25, 3, 7)  # stride 0 along time, as constant input arrives
    out, final = fused(module, x, backend)
    expected_out, expected_final = reference(module, x.contiguous())
    assert torch.equal(out, expected_out)
    assert_states_close(final, expected_final)


def test_cpu_sequence_modules_pick_the_fused_kernels_and_agree_with_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend_for(torch.device("cpu")) is cpu, "the C kernels should build on the CI machine"
    generator = torch.Generator().manual_seed(11)
    for name in MODELS:
        module = make_module(name, (2, 50), generator)
        x = drive((2, 50), 20, generator, torch.device("cpu"))
        auto_out, auto_state = module(x)
        monkeypatch.setattr(ENGINE, "fused", False)
        assert backend_for(x.device) is None
        eager_out, eager_state = module(x)
        monkeypatch.setattr(ENGINE, "fused", True)
        assert torch.equal(auto_out, eager_out)
        assert_states_close(auto_state, eager_state)


def test_split_runs_equal_one_run_through_the_kernels() -> None:
    generator = torch.Generator().manual_seed(13)
    module = make_module("alif", (2, 40), generator)
    x = drive((2, 40), 60, generator, torch.device("cpu"))
    whole, whole_state = module(x)
    first, state = module(x[:23])
    second, split_state = module(x[23:], state)
    assert torch.equal(torch.cat([first, second]), whole)
    assert_states_close(split_state, whole_state)


def test_fallbacks_to_the_eager_loop() -> None:
    generator = torch.Generator().manual_seed(17)
    module = make_module("lif", (4,), generator)
    x = drive((4,), 10, generator, torch.device("cpu"))
    p = cast_params(module.p, x)
    state = module.initial_state(x[0], p)
    assert fused_sequence("lif", x.double(), state, cast_params(module.p, x.double()), 0.001) is None  # float64
    learnable = snn.LIF(snn.LIFParameters(v_th=torch.nn.Parameter(torch.full((4,), 0.8))))
    assert fused_sequence("lif", x, state, cast_params(learnable.p, x), 0.001) is None
    x_grad = x.clone().requires_grad_()
    assert fused_sequence("lif", x_grad, state, p, 0.001, record_states=True) is None
    # and the modules still work on those paths, learnable threshold included
    out, _ = learnable(x * 10)
    out.sum().backward()
    assert learnable.v_th.grad is not None and learnable.v_th.grad.abs().sum() > 0
    assert snn.LIF()(x.double())[0].dtype == torch.float64


def test_compiled_library_is_cached_by_source_and_flags(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ENGINE, "kernel_cache", tmp_path)
    first = native.build(cpu.SOURCE)
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert native.build(cpu.SOURCE) == first and first.stat().st_mtime_ns == stamp  # second call compiles nothing
    with pytest.raises(RuntimeError, match="no C compiler"):
        native.build(cpu.SOURCE, compiler="no-such-compiler-here")


@pytest.mark.slow
@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs triton")
def test_triton_kernels_compile_for_hopper_without_fused_multiply_adds() -> None:
    """Compiles every kernel variant to PTX for sm_90, which needs no GPU: CI catches what the
    interpreter would let through (types, constexpr branches, loop-carried values). A fused
    multiply-add rounds once where the eager engine rounds twice, so the forward kernels must
    have none. Runs in a child process: this one has TRITON_INTERPRET set, which compiles nothing."""
    kernels = compiled_ptx("worker.engine.fused.triton_kernels", "('fma.rn.f32' in ptx, len(ptx))")
    assert len(kernels) == 5 * 2 * (1 + 6)
    assert all(size > 1000 for _, size in kernels.values())
    assert not [name for name, (fused, _) in kernels.items() if fused and "forward" in name]


# --- the refractory box LIF (its own kernels, forward only) -----------------------------------------


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs triton")
@pytest.mark.parametrize(("synapse", "reset_method"), [("delta", "value"), ("current", "subtract")])
def test_the_refractory_box_kernel_in_triton_equals_the_c_kernel_and_the_step_loop(synapse: str, reset_method: str) -> None:
    from worker.engine.fused.refractory import box_refrac_sequence

    g = torch.Generator().manual_seed(2)
    p = snn.LIFBoxRefracParameters(
        tau_mem_inv=50.0, v_th=20.0 + torch.rand(70, generator=g), v_reset=10.0, synapse=synapse, reset_method=reset_method,
        rho_reset=3.0,
    )  # fmt: skip
    x = (torch.rand(60, 2, 70, generator=g) < 0.4).float() * (4.0 if synapse == "delta" else 800.0)
    start = snn.LIFBoxRefracFeedForwardState(v=torch.rand(2, 70, generator=g) * 20, rho=torch.zeros(2, 70))
    with torch.inference_mode():
        params = cast_params(p, x)
        runs = {backend: box_refrac_sequence(x, start, params, 1e-4, backend=backend) for backend in ("cpu", "triton")}
        eager, eager_state = snn.LIFBoxRefrac(p, dt=1e-4).reference_forward(x, start, params)
    for spikes, state in runs.values():
        assert torch.equal(spikes, eager.bool())
        assert torch.equal(state.v, eager_state.v) and torch.equal(state.rho, eager_state.rho)
    assert 100 < eager.sum() < x.numel() / 4


@pytest.mark.slow
@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs triton")
def test_the_refractory_triton_kernel_compiles_for_hopper_without_fused_multiply_adds() -> None:
    kernels = compiled_ptx("worker.engine.fused.refractory_triton", "('fma.rn.f32' in ptx, len(ptx))")
    assert len(kernels) == 4 and all(not fma and size > 1000 for fma, size in kernels.values())
