"""The service's bounds on one job, each checked before it is queued."""

from pydantic import BaseModel


class Limits(BaseModel):
    """Upper bounds on what one job may ask for (see worker.simulation.cost for how each figure is computed).
    The defaults suit a workstation; the service sets its own from its settings."""

    max_steps: int = 1_000_000
    max_neurons: int = 20_000_000
    max_neuron_steps: int = 2 * 10**11
    max_batch: int = 4096
    max_layers: int = 128
    max_parameters: int = 200_000_000
    max_synapses: int = 200_000_000  # of a graph network, all edges together
    max_input_bytes: int = 512 * 2**20
    max_record_bytes: int = 2 * 2**30
    max_synaptic_ops: int = 10**15
    max_step_ops: int = 10**11
    max_chunk_bytes: int = 8 * 2**30
    max_spike_events: int = 100_000_000
    max_result_bytes: int = 8 * 2**30
    # a sweep as a whole: its points, the bytes of their requests and their work (each point's
    # result is bounded like any job's)
    max_sweep_points: int = 1000
    max_sweep_bytes: int = 256 * 2**20
    max_sweep_synaptic_ops: int = 10**16
