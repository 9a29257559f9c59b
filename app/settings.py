"""All service configuration in one place, read from ``SPIKESERVE_*`` environment variables."""

import hashlib
import ipaddress
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.schema import Limits


def hash_key(key: str) -> str:
    """How API keys are stored: SHA-256 of the key (keys are random tokens, not passwords)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPIKESERVE_", env_file=None, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="'sha256:<hex>' hashes of the accepted API keys (JSON list); empty: no auth, loopback only",
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")

    # limits per job and per key
    max_body_bytes: int = 64 * 2**20
    max_steps: int = 100_000
    max_neurons: int = 10_000_000
    max_neuron_steps: int = 10**11
    max_batch: int = 1024
    max_parameters: int = 100_000_000
    max_input_bytes: int = 48 * 2**20
    max_record_bytes: int = 512 * 2**20
    max_jobs_in_flight_per_key: int = 16

    # execution
    chunk_steps: int | None = Field(default=None, description="steps per chunk; default sized to memory")
    soft_time_limit_s: int = 3600
    hard_time_limit_s: int = 3660
    lease_s: float = Field(default=20.0, gt=0, description="a running job's lease; a worker silent this long is presumed dead")
    worker_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING",
        description="Celery worker log level; INFO logs every task twice, which the job records already hold",
    )
    result_ttl_s: int = 24 * 3600
    job_ttl_s: int = 7 * 24 * 3600

    @field_validator("api_key_hashes")
    @classmethod
    def _check_hashes(cls, hashes: list[str]) -> list[str]:
        for value in hashes:
            algorithm, _, digest = value.partition(":")
            if algorithm != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    "each API key hash must be 'sha256:' followed by 64 lowercase hex digits (see 'spikeserve keys new')"
                )
        return hashes

    @cached_property
    def limits(self) -> Limits:
        return Limits(
            max_steps=self.max_steps,
            max_neurons=self.max_neurons,
            max_neuron_steps=self.max_neuron_steps,
            max_batch=self.max_batch,
            max_parameters=self.max_parameters,
            max_input_bytes=self.max_input_bytes,
            max_record_bytes=self.max_record_bytes,
        )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key_hashes)

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers an unacknowledged task after this long: longer than any job may run."""
        return self.hard_time_limit_s + 600


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
