"""LIF neurons with a refractory period, fed by synaptic channels (CUBA's and COBA's neuron).

A population has C channels, one per distinct synapse of the edges into it (``worker.registry``'s
``SYNAPSE_MODELS``): an exponential current (``current_exp``) or conductance
(``conductance_exp``), each with its own time constant. The input of a step is ``x`` of shape
``(1 + C, *neurons)``: ``x[0]`` the delta input (the membrane jumps by it), ``x[1 + k]`` what
arrives in channel k. One step, with every right-hand side from the values before it:

    g_k   <- g_k + x[1 + k]                          (this step's spikes, in every channel)
    euler:  v' = v + dt / tau_m * ((v_leak - v) + sum_k I_k),
            I_k = g_k (current) or g_k * (e_rev_k - v) (conductance);   g_k <- g_k * (1 - dt / tau_k)
    exact:  v' = v_leak + (v - v_leak) * exp(-dt / tau_m) + sum_k g_k * P_k,
            P_k = tau_k / (tau_k - tau_m) * (exp(-dt / tau_k) - exp(-dt / tau_m))
            (dt / tau_m * exp(-dt / tau_m) where tau_k = tau_m);          g_k <- g_k * exp(-dt / tau_k)
    v' <- v' + x[0]
    refractory (rho > 0): v stays v, no spike, rho <- rho - 1 (at least 0)
    otherwise:            z = v' > v_th; v <- v_reset and rho <- rho_reset where z, else v <- v'

so a spike that arrives in step n acts on the membrane in step n (the graph's delay of one step is
Brian2's delay of zero: its increment after step n's update, felt from step n + 1), the channels
go on decaying and receiving through the refractory period, and a neuron that spikes at step k
is held at ``v_reset`` through step k + rho_reset and may spike again at step k + rho_reset + 1
(Brian2's ``refractory = (rho_reset + 1) * dt``). ``exact`` integrates the linear equations
exactly (current channels only, as CUBA's benchmark); with conductances the equation is not
linear in v and ``euler`` is the one method (COBA's).

The coefficients (``coefficients``) are computed once in float64 and rounded to the state's
dtype; the C network kernel (``worker.engine.network``) and, on CUDA, a Triton kernel of the
whole sequence (``worker.engine.network.triton_kernels``) read the same tensors and do the same
float32 operations in the same order, so they agree with this step function bit for bit.
"""

import math
from typing import Any, NamedTuple

import torch

from worker.engine.module import SequenceModule
from worker.engine.parameter_types import LIFChannelsParameters


class LIFChannelsState(NamedTuple):
    v: torch.Tensor
    rho: torch.Tensor  # refractory steps left
    g: torch.Tensor  # (C, *neurons): each channel's current or conductance


class Channels(NamedTuple):
    """A population's synaptic channels, in their order in the input: per channel whether it is a
    conductance, its time constant (s) and its reversal potential (conductances only)."""

    conductance: tuple[bool, ...] = ()
    tau_syn: tuple[float, ...] = ()
    e_rev: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        return len(self.conductance)


NO_CHANNELS = Channels()


class Coefficients(NamedTuple):
    """A step's constants: ``membrane`` is dt / tau_m (euler) or exp(-dt / tau_m) (exact), per
    neuron or one; ``decay`` (C,) the channels' factor per step; ``gain`` (C, *membrane's shape)
    the exact update's P_k (zeros for euler); ``e_rev`` (C,)."""

    membrane: torch.Tensor
    decay: torch.Tensor
    gain: torch.Tensor
    e_rev: torch.Tensor


def coefficients(p: Any, channels: Channels, dt: float, dtype: torch.dtype = torch.float32) -> Coefficients:
    tau_mem_inv = torch.as_tensor(p.tau_mem_inv, dtype=torch.float64)
    exact = p.integration == "exact"
    if exact and any(channels.conductance):
        raise ValueError("exact integration takes current channels only")
    membrane = torch.exp(-dt * tau_mem_inv) if exact else dt * tau_mem_inv
    decay = [math.exp(-dt / tau) if exact else 1.0 - dt / tau for tau in channels.tau_syn]
    gains = []
    for tau in channels.tau_syn if exact else ():
        tau_m = 1.0 / tau_mem_inv
        decay_m = torch.exp(-dt * tau_mem_inv)
        same = torch.isclose(tau_m, torch.tensor(tau, dtype=torch.float64), rtol=1e-12, atol=0.0)
        general = tau / torch.where(same, torch.ones_like(tau_m), tau - tau_m) * (math.exp(-dt / tau) - decay_m)
        gains.append(torch.where(same, dt * tau_mem_inv * decay_m, general))
    shape = membrane.shape
    gain = torch.stack(gains) if gains else torch.zeros((channels.size, *shape), dtype=torch.float64)
    return Coefficients(
        membrane.to(dtype),
        torch.tensor(decay, dtype=torch.float64).to(dtype),
        gain.to(dtype),
        torch.tensor(channels.e_rev, dtype=torch.float64).to(dtype),
    )


def kernel_arrays(p: Any, channels: Channels, c: Coefficients, shape: torch.Size, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the kernels read of a population of ``shape`` (its state's) with parameters ``p``,
    ``channels`` and coefficients ``c``, on ``like``'s device: the parameters and the membrane's
    coefficient one per neuron, the exact update's gains (channels, neurons), each channel's decay,
    reversal potential and kind (one row or value of zeros where it has no channels, so that no
    array is empty)."""

    def flat(value: Any) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        return torch.broadcast_to(value, shape).reshape(-1).contiguous()

    arrays = {name: flat(getattr(p, name)) for name in ("v_leak", "v_th", "v_reset", "rho_reset")}
    arrays["membrane"] = flat(c.membrane)
    zero = torch.zeros(1, dtype=like.dtype, device=like.device)
    arrays["gain"] = torch.stack([flat(gain) for gain in c.gain]) if channels.size else flat(0.0)[None]
    arrays["decay"], arrays["e_rev"] = (t.contiguous() if channels.size else zero for t in (c.decay, c.e_rev))
    arrays["conductance"] = torch.tensor(channels.conductance or (False,), dtype=torch.uint8, device=like.device)
    return arrays


def _per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(C,) -> (C, 1, ...) broadcasting against a (C, *neurons) tensor."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def lif_channels_step(
    x: torch.Tensor,
    state: LIFChannelsState,
    p: LIFChannelsParameters,
    channels: Channels,
    c: Coefficients,
) -> tuple[torch.Tensor, LIFChannelsState]:
    """One step (see the module's docstring): ``x`` is (1 + C, *neurons); returns float spikes."""
    v = state.v
    g = state.g + x[1:]
    if p.integration == "exact":
        v_new = (v - p.v_leak) * c.membrane
        for k in range(channels.size):
            v_new = v_new + g[k] * c.gain[k]
        v_new = v_new + p.v_leak
    else:
        drive = p.v_leak - v
        for k in range(channels.size):
            drive = drive + (g[k] * (c.e_rev[k] - v) if channels.conductance[k] else g[k])
        v_new = v + c.membrane * drive
    v_new = v_new + x[0]
    refractory = state.rho > 0
    z = (v_new > p.v_th) & ~refractory
    v_after = torch.where(refractory, v, torch.where(z, torch.as_tensor(p.v_reset, dtype=v.dtype), v_new))
    rho = torch.where(z, torch.as_tensor(p.rho_reset, dtype=v.dtype), torch.clamp(state.rho - 1, min=0))
    return z.to(v.dtype), LIFChannelsState(v=v_after, rho=rho, g=g * _per_channel(c.decay, g))


class LIFChannels(SequenceModule):
    """A time-major sequence of LIF neurons with channels. With ``channels`` the input is
    ``(T, 1 + C, *neurons)`` (the delta input, then each channel's); without, ``(T, *neurons)``,
    all of it delta input."""

    default_p = LIFChannelsParameters()

    def __init__(
        self, p: Any = None, dt: float = 0.001, channels: Channels = NO_CHANNELS, backend: str | None = None, **options: Any
    ) -> None:
        super().__init__(p, dt, **options)
        self.channels = channels
        self.backend = backend  # "triton" runs the Triton kernel wherever the input is (tests run it interpreted)
        self._coefficients: Coefficients | None = None

    def coefficients(self, like: torch.Tensor) -> Coefficients:
        if self._coefficients is None or self._coefficients.membrane.device != like.device:
            c = coefficients(self.p, self.channels, self.dt, like.dtype)
            self._coefficients = Coefficients(*(t.to(like.device) for t in c))
        return self._coefficients

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return super().forward(x if self.channels.size else x.unsqueeze(1), state)

    def initial_state(self, x: torch.Tensor, p: LIFChannelsParameters) -> LIFChannelsState:
        neurons = x[0]
        v = torch.as_tensor(p.v_leak, dtype=neurons.dtype, device=neurons.device).expand_as(neurons).clone()
        g = torch.zeros((self.channels.size, *neurons.shape), dtype=neurons.dtype, device=neurons.device)
        return LIFChannelsState(v=v, rho=torch.zeros_like(neurons), g=g)

    def step_fn(self, x: torch.Tensor, state: LIFChannelsState, p: LIFChannelsParameters) -> tuple[torch.Tensor, Any]:
        return lif_channels_step(x, state, p, self.channels, self.coefficients(x))

    def kernel_arrays(self, shape: torch.Size, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the C and Triton kernels read of this population of ``shape`` (its state's), on
        ``like``'s device (``kernel_arrays`` below)."""
        return kernel_arrays(self.p, self.channels, self.coefficients(like), shape, like)

    def sequence_kernel(self, x: torch.Tensor, state: Any, p: Any) -> tuple[torch.Tensor, Any] | None:
        """On CUDA (or with ``backend="triton"``), the whole sequence in one Triton kernel call."""
        if not (x.device.type == "cuda" or self.backend == "triton") or x.dtype != torch.float32 or torch.is_grad_enabled():
            return None
        try:
            from worker.engine.network import triton_kernels
        except ImportError:
            return None
        neurons = state.v.shape
        n = state.v.numel()
        v, rho = state.v.reshape(-1).clone(), state.rho.reshape(-1).clone()
        g = state.g.reshape(self.channels.size, n).clone()
        arrays = self.kernel_arrays(neurons, x)
        spikes = triton_kernels.lif_channels(
            x.reshape(x.shape[0], x.shape[1], n).contiguous(), v, rho, g, arrays, p.integration == "exact", None
        )
        state = LIFChannelsState(v.reshape(neurons), rho.reshape(neurons), g.reshape(state.g.shape))
        return spikes.reshape(x.shape[0], *neurons), state
