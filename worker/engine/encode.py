"""Encoders: turn static values into spike trains (time-major output ``(T, *shape)``)."""

from collections.abc import Callable

import torch

from worker.engine.module import as_float, cast_params
from worker.engine.parameter_types import LIFParameters
from worker.engine.threshold import threshold


def lif_current_encoder_step(
    current: torch.Tensor, v: torch.Tensor, p: LIFParameters = LIFParameters(), dt: float = 0.001
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a membrane driven directly by ``current`` (no synaptic current): ``(z, v)``."""
    v = v + dt * p.tau_mem_inv * ((p.v_leak - v) + current)
    z = threshold(v - p.v_th, p.method, p.alpha)
    return z, v - z * (v - p.v_reset)


def constant_current_lif_encode(
    current: torch.Tensor, seq_length: int, p: LIFParameters = LIFParameters(), dt: float = 0.001
) -> torch.Tensor:
    """Spikes of LIF membranes each driven by a constant current for ``seq_length`` steps."""
    current = as_float(current)
    v = torch.zeros_like(current)
    spikes = []
    for _ in range(seq_length):
        z, v = lif_current_encoder_step(current, v, p, dt)
        spikes.append(z)
    return torch.stack(spikes)


def spike_latency_encode(spikes: torch.Tensor) -> torch.Tensor:
    """Keeps each neuron's input until its outputs so far add up to more than zero: of a spike
    train, the first spike. Graded values pass through as in Norse (its running sum of outputs,
    in the default float dtype, is the mask)."""
    fired = torch.zeros(spikes.shape[1:], device=spikes.device)
    silent = torch.zeros_like(spikes[0])
    out = []
    for z in spikes:
        out.append(torch.where(fired > 0, silent, z))
        fired += out[-1]
    return torch.stack(out)


def spike_latency_lif_encode(
    current: torch.Tensor, seq_length: int, p: LIFParameters = LIFParameters(), dt: float = 0.001
) -> torch.Tensor:
    """One spike per neuron at the time a constant-current LIF first fires: stronger inputs fire earlier."""
    return spike_latency_encode(constant_current_lif_encode(current, seq_length, p, dt))


def poisson_encode(
    rates: torch.Tensor,
    seq_length: int,
    f_max: float = 100.0,
    dt: float = 0.001,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bernoulli approximation of Poisson spike trains with rate ``f_max * rates`` Hz.

    Each step fires with probability ``dt * f_max * rates``. Pass a seeded ``generator`` (on the
    same device as ``rates``) for reproducible trains.
    """
    rates = as_float(rates)
    draws = torch.rand(seq_length, *rates.shape, device=rates.device, dtype=rates.dtype, generator=generator)
    return (draws < dt * f_max * rates).to(rates.dtype)


def gaussian_rbf(distance: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    return torch.exp(-distance / (2 * sigma**2))


def euclidean_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2)


def population_encode(
    values: torch.Tensor,
    out_features: int,
    scale: float | torch.Tensor | None = None,
    kernel: Callable[[torch.Tensor], torch.Tensor] = gaussian_rbf,
    distance_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = euclidean_distance,
) -> torch.Tensor:
    """Population code: each value becomes ``out_features`` graded activations of neurons whose
    preferred values are spread evenly over ``[0, scale]`` (Norse's receptive-field formula).
    ``scale`` defaults to the largest value."""
    values = as_float(values)
    size = (*values.shape, out_features)
    if scale is None:
        scale = values.max()
    centres = torch.linspace(0, float(scale), out_features, device=values.device, dtype=values.dtype).expand(size)
    distances = distance_function(values.unsqueeze(-1).expand(size), centres) * scale
    return kernel(distances)


class ConstantCurrentLIFEncoder(torch.nn.Module):
    def __init__(self, seq_length: int, p: LIFParameters = LIFParameters(), dt: float = 0.001) -> None:
        super().__init__()
        self.seq_length = seq_length
        self.p = p
        self.dt = dt

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return constant_current_lif_encode(current, self.seq_length, cast_params(self.p, as_float(current)), self.dt)


class SpikeLatencyLIFEncoder(ConstantCurrentLIFEncoder):
    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return spike_latency_encode(super().forward(current))


class SpikeLatencyEncoder(torch.nn.Module):
    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return spike_latency_encode(spikes)


class PoissonEncoder(torch.nn.Module):
    """Poisson spike trains; with a ``seed`` the trains are reproducible.

    The seeded generator lives on the input's device and advances from call to call, so repeated
    calls give fresh trains; ``reset()`` rewinds it to the seed.
    """

    def __init__(self, seq_length: int, f_max: float = 100.0, dt: float = 0.001, seed: int | None = None) -> None:
        super().__init__()
        self.seq_length = seq_length
        self.f_max = f_max
        self.dt = dt
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def reset(self) -> None:
        self._generators.clear()

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def forward(self, rates: torch.Tensor) -> torch.Tensor:
        return poisson_encode(rates, self.seq_length, self.f_max, self.dt, self._generator(rates.device))


class PopulationEncoder(torch.nn.Module):
    def __init__(
        self,
        out_features: int,
        scale: float | torch.Tensor | None = None,
        kernel: Callable[[torch.Tensor], torch.Tensor] = gaussian_rbf,
        distance_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = euclidean_distance,
    ) -> None:
        super().__init__()
        self.out_features = out_features
        self.scale = scale
        self.kernel = kernel
        self.distance_function = distance_function

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return population_encode(values, self.out_features, self.scale, self.kernel, self.distance_function)
