"""The service's bounds on one job, each checked before it is queued: one definition, with its
default; ``worker.settings.Settings`` reads each from ``SPIKESERVE_<NAME>``."""

from pydantic import BaseModel, Field


class Limits(BaseModel):
    """Upper bounds on what one job (and one sweep) may ask for; ``worker.simulation.cost`` says
    how each figure is computed."""

    max_steps: int = Field(default=10_000_000, ge=1, description="steps of one job (1,000 s at 0.1 ms: plasticity runs long)")
    max_neurons: int = Field(default=10_000_000, ge=1, description="neurons of all neuron layers together")
    max_neuron_steps: int = Field(default=10**11, ge=1, description="neurons x batch x steps")
    max_batch: int = Field(default=1024, ge=1, description="batch entries")
    max_layers: int = Field(default=128, ge=1, description="layers; a graph's nodes, and its edges")
    max_parameters: int = Field(default=100_000_000, ge=1, description="weight and bias values")
    max_synapses: int = Field(default=100_000_000, ge=1, description="synapses of one graph network (4 to 12 bytes each)")
    max_input_bytes: int = Field(default=48 * 2**20, ge=1, description="one tensor, or one step's features, x 4 bytes")
    max_record_bytes: int = Field(default=512 * 2**20, ge=1, description="what a run keeps of what it records")
    max_synaptic_ops: int = Field(
        default=10**13, ge=1, description="multiply-adds per job (about an hour at the CPU rate measured here; raise it for GPUs)"
    )
    max_step_ops: int = Field(default=5 * 10**9, ge=1, description="multiply-adds in one step, all batch entries together")
    max_chunk_bytes: int = Field(default=2 * 2**30, ge=1, description="memory of one chunk (at least one step)")
    max_spike_events: int = Field(default=10_000_000, ge=1, description="spike events recorded per job")
    max_result_bytes: int = Field(
        default=256 * 2**20, ge=1, le=500 * 2**20, description="a stored result, JSON or NPZ (Redis holds at most 512 MB a value)"
    )
    max_sweep_points: int = Field(default=1000, ge=1, description="points of one sweep")
    max_sweep_bytes: int = Field(default=64 * 2**20, ge=1, description="the requests of all points of one sweep together")
    max_sweep_synaptic_ops: int = Field(default=10**14, ge=1, description="multiply-adds of all points of one sweep together")
