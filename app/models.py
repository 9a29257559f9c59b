"""Response bodies of the HTTP API (requests use worker.schema.JobRequest)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Links(BaseModel):
    self: str
    result: str
    events: str


class JobCreated(BaseModel):
    id: str
    status: JobState
    links: Links


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


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    redis: bool
    workers: int


class LayerSummary(BaseModel):
    name: str
    type: str
    shape: list[int]


class Validation(BaseModel):
    """What a valid request would run."""

    steps: int
    batch: int | None
    neurons: int
    neuron_steps: int
    layers: list[LayerSummary]
