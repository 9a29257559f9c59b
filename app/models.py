"""Response bodies of the HTTP API (requests use worker.simulation.request.JobRequest)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Warnings = Annotated[
    list[str], Field(default_factory=list, description="what a valid request may not mean as written (a NIR import's notes)")
]

# "cancelling": running, with a cancel asked for; the job stops before its next chunk.
JobState = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]


class Links(BaseModel):
    self: str
    result: str
    events: str


class JobCreated(BaseModel):
    id: str
    status: JobState
    links: Links
    warnings: Warnings


class Progress(BaseModel):
    steps_done: int
    steps_total: int


class JobStatus(BaseModel):
    id: str
    status: JobState
    progress: Progress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = Field(default=None, description="why the job failed, when it did")
    device: str | None = Field(default=None, description="the device that ran (or runs) the job")
    attempts: int = Field(description="how many times a worker started the job (more than 1 after a worker crash)")
    name: str | None = Field(default=None, description="the request's name, if it gave one")
    wall_s: float | None = Field(default=None, description="how long the successful run took, in seconds")
    spikes: int | None = Field(default=None, description="spike events in the result (every recorded layer), once it succeeded")
    warnings: Warnings
    links: Links


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    offset: int
    limit: int
    next: str | None = Field(default=None, description="the next page, if any")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="path of the offending field")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorDetail]


class Message(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok"]


class Storage(BaseModel):
    stored_bytes: int = Field(description="requests and results this key keeps in the job store")
    quota_bytes: int = Field(description="the most it may keep; beyond it new jobs and sweeps get a 403")


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    redis: bool
    workers: int


class LayerSummary(BaseModel):
    name: str
    type: str
    shape: list[int]


class Cost(BaseModel):
    """A valid request's cost, as the limits count it (see the reliability document for the formulas)."""

    synaptic_ops: int = Field(description="multiply-adds of the synaptic layers, all steps and batch entries")
    step_ops: int = Field(description="multiply-adds of one step, all batch entries")
    neuron_steps: int
    chunk_steps: int = Field(description="steps simulated between progress reports and cancel checks")
    chunk_bytes: int = Field(description="activation memory of one chunk")
    spike_event_bound: int = Field(description="recorded neurons x batch x steps: the most spike events possible")
    max_spike_events: int = Field(description="the job fails if its recorded layers produce more spike events")
    record_bytes: int = Field(description="the most memory the recorded arrays can take")
    result_bytes: int = Field(description="the largest the stored result (JSON or NPZ) can be")


class Validation(BaseModel):
    """What a valid request would run."""

    steps: int
    batch: int | None
    neurons: int
    neuron_steps: int
    layers: list[LayerSummary] = Field(description="the layers of a chain, or the neuron populations of a graph")
    synapses: int | None = Field(default=None, description="a graph's synapses, all edges together (none for a chain)")
    record_spikes: list[str] = Field(description="the layers whose spikes the result holds (and record.live may name)")
    record_live: list[str] = Field(description="the layers whose spikes the event stream carries while the job runs")
    cost: Cost
    warnings: Warnings
    network: "NetworkDiagram"


class DiagramNode(BaseModel):
    name: str
    kind: Literal["input", "population", "layer"]
    type: str
    size: int


class DiagramEdge(BaseModel):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    name: str | None = None
    type: str | None = Field(default=None, description="the connectivity (a graph's edges)")
    k: int | None = Field(default=None, description="a fixed degree")
    p: float | None = Field(default=None, description="a Bernoulli edge's probability")
    synapses: int | None = None
    weight: str | None = Field(default=None, description="the number, the distribution, or 'per synapse'")
    delay: list[int] | None = Field(default=None, description="the shortest and longest delay, in steps")
    synapse: str | None = None
    plastic: bool = False


class NetworkDiagram(BaseModel):
    """The network as a diagram draws it: its nodes, and the edges between them (a chain: each
    layer into the next)."""

    nodes: list[DiagramNode]
    edges: list[DiagramEdge]


# --- sweeps -----------------------------------------------------------------------------------------

SweepState = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]


class SweepLinks(BaseModel):
    self: str
    summary: str
    events: str
    request: str


class SweepValidation(BaseModel):
    """What a valid sweep would run (``POST /sweeps/validate``): every point checked, none queued."""

    mode: str = Field(description="grid or zip, as the sweep says")
    points: int
    steps: int = Field(description="the steps of all points together")
    batches: int = Field(description="how many runs its points make (points batched together run as one)")


class SweepCreated(BaseModel):
    id: str
    status: SweepState
    points: int
    links: SweepLinks


class PointCounts(BaseModel):
    total: int
    ended: int
    succeeded: int
    failed: int
    cancelled: int
    running: int | None = Field(default=None, description="points running now (not in lists)")


class SweepStatus(BaseModel):
    id: str
    status: SweepState = Field(
        description="running until every point ended; then succeeded (all did), failed (some failed) or cancelled"
    )
    mode: Literal["grid", "zip"]
    points: PointCounts
    progress: Progress | None = Field(default=None, description="steps of all points together (not in lists)")
    created_at: datetime
    finished_at: datetime | None = None
    links: SweepLinks


class SweepList(BaseModel):
    sweeps: list[SweepStatus]
    total: int
    offset: int
    limit: int
    next: str | None = Field(default=None, description="the next page, if any")
