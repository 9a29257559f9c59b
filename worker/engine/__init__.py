"""spikeserve's spiking engine: Norse-compatible neuron models in plain PyTorch.

Each model comes as a pure step function ``(x, state, p, dt) -> (out, state)`` over immutable
NamedTuple state and parameters, a one-step ``*Cell`` module, and a whole-sequence module that
takes time-major input ``(T, *shape)`` or ``(T, B, *shape)``. This package imports nothing but
PyTorch.
"""

from worker.engine.alif import ALIF, ALIFCell, ALIFFeedForwardState, ALIFParameters, alif_feed_forward_step
from worker.engine.encode import (
    ConstantCurrentLIFEncoder,
    PoissonEncoder,
    PopulationEncoder,
    SpikeLatencyEncoder,
    SpikeLatencyLIFEncoder,
    constant_current_lif_encode,
    poisson_encode,
    population_encode,
    spike_latency_encode,
    spike_latency_lif_encode,
)
from worker.engine.iaf import IAF, IAFCell, IAFFeedForwardState, IAFParameters, iaf_feed_forward_step
from worker.engine.izhikevich import (
    PRESETS as IZHIKEVICH_PRESETS,
)
from worker.engine.izhikevich import (
    Izhikevich,
    IzhikevichCell,
    IzhikevichParameters,
    IzhikevichSpikingBehavior,
    IzhikevichState,
    izhikevich_feed_forward_step,
)
from worker.engine.li import LI, LICell, LIParameters, LIState, li_feed_forward_step
from worker.engine.lif import (
    LIF,
    LIFCell,
    LIFFeedForwardState,
    LIFParameters,
    LIFRecurrent,
    LIFRecurrentCell,
    LIFState,
    lif_feed_forward_step,
    lif_recurrent_step,
)
from worker.engine.lif_adex import (
    LIFAdEx,
    LIFAdExCell,
    LIFAdExFeedForwardState,
    LIFAdExParameters,
    lif_adex_feed_forward_step,
)
from worker.engine.lif_box import LIFBox, LIFBoxCell, LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step
from worker.engine.lif_channels import (
    Channels,
    LIFChannels,
    LIFChannelsParameters,
    LIFChannelsState,
    lif_channels_step,
)
from worker.engine.lif_refrac import (
    LIFBoxRefrac,
    LIFBoxRefracCell,
    LIFBoxRefracFeedForwardState,
    LIFBoxRefracParameters,
    LIFRefrac,
    LIFRefracCell,
    LIFRefracFeedForwardState,
    LIFRefracParameters,
    lif_box_refrac_feed_forward_step,
    lif_refrac_feed_forward_step,
    refractory_update,
)
from worker.engine.module import SequenceModule, as_float
from worker.engine.reset import reset
from worker.engine.sequential import Lift, SequentialState
from worker.engine.threshold import heaviside, threshold

__all__ = [
    "ALIF", "ALIFCell", "ALIFFeedForwardState", "ALIFParameters", "alif_feed_forward_step",
    "ConstantCurrentLIFEncoder", "PoissonEncoder", "PopulationEncoder", "SpikeLatencyEncoder",
    "SpikeLatencyLIFEncoder", "constant_current_lif_encode", "poisson_encode", "population_encode",
    "spike_latency_encode", "spike_latency_lif_encode",
    "IAF", "IAFCell", "IAFFeedForwardState", "IAFParameters", "iaf_feed_forward_step",
    "IZHIKEVICH_PRESETS", "Izhikevich", "IzhikevichCell", "IzhikevichParameters",
    "IzhikevichSpikingBehavior", "IzhikevichState", "izhikevich_feed_forward_step",
    "LI", "LICell", "LIParameters", "LIState", "li_feed_forward_step",
    "LIF", "LIFCell", "LIFFeedForwardState", "LIFParameters", "LIFRecurrent", "LIFRecurrentCell",
    "LIFState", "lif_feed_forward_step", "lif_recurrent_step",
    "LIFAdEx", "LIFAdExCell", "LIFAdExFeedForwardState", "LIFAdExParameters", "lif_adex_feed_forward_step",
    "Channels", "LIFChannels", "LIFChannelsParameters", "LIFChannelsState", "lif_channels_step",
    "LIFBox", "LIFBoxCell", "LIFBoxFeedForwardState", "LIFBoxParameters", "lif_box_feed_forward_step",
    "LIFRefrac", "LIFRefracCell", "LIFRefracFeedForwardState", "LIFRefracParameters", "lif_refrac_feed_forward_step",
    "LIFBoxRefrac", "LIFBoxRefracCell", "LIFBoxRefracFeedForwardState", "LIFBoxRefracParameters",
    "lif_box_refrac_feed_forward_step", "refractory_update",
    "Lift", "SequenceModule", "SequentialState", "as_float", "heaviside", "reset", "threshold",
]  # fmt: skip
