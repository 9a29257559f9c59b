"""The engine's options, defined here once with their defaults (plain Python: the engine imports no
service library), read from the environment by the service's settings (``SPIKESERVE_FUSED`` and
the others, ``worker.settings.Settings``). A process that runs simulations applies its settings
with ``configure``; the engine used on its own (a notebook) runs with the defaults."""

import dataclasses
import pathlib


@dataclasses.dataclass
class EngineOptions:
    fused: bool = True  # whole sequences in the fused kernels where they apply (False: the eager step loops)
    events: bool = True  # synaptic layers event-driven on spikes where it pays (False: dense)
    kernel_cache: pathlib.Path = pathlib.Path.home() / ".cache" / "spikeserve"  # where the compiled CPU kernels are kept
    threads: int | None = None  # a run's threads, torch's and the CPU kernels' (None: the cores other processes leave free)


ENGINE = EngineOptions()  # what the engine of this process runs with
DEFAULTS = EngineOptions()


def configure(options: EngineOptions) -> None:
    """The engine of this process runs with ``options`` from now on."""
    for option in dataclasses.fields(EngineOptions):
        setattr(ENGINE, option.name, getattr(options, option.name))
