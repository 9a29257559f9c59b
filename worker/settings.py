"""All service configuration in one place, read from ``SPIKESERVE_*`` environment variables."""

import hashlib
import ipaddress
import pathlib
import urllib.parse
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.engine_options import DEFAULTS as ENGINE_DEFAULTS
from worker.engine_options import EngineOptions
from worker.simulation.limits import Limits

SOURCE = pathlib.Path(__file__).parents[1]  # the source tree, when spikeserve runs from one


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (any characters: URL-encoded) in place of the one it may hold."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(urllib.parse.unquote(parts.username), safe="") if parts.username else ""
    where = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{urllib.parse.quote(password, safe='')}@{where}").geturl()


def hash_key(key: str) -> str:
    """How API keys are stored: SHA-256 of the key (keys are random tokens, not passwords)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Settings(BaseSettings, Limits):  # the limits are read from the environment too
    model_config = SettingsConfigDict(env_prefix="SPIKESERVE_", env_file=None, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = Field(
        default=None,
        description="Redis's password, apart from redis_url so that it may hold any character (encoded into the URL here)",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="'sha256:<hex>' hashes of the accepted API keys (JSON list); empty: no auth, loopback only",
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")
    metrics_public: bool = Field(default=False, description="serve /metrics without a key even when keys are configured")
    viewer_dir: pathlib.Path = Field(default=SOURCE / "frontend" / "dist", description="the built viewer, served at /")
    examples_dir: pathlib.Path = Field(default=SOURCE / "examples", description="example requests, offered on /docs")
    anonymous_jobs_to: str | None = Field(
        default=None,
        description="the hash of a configured key that takes over the jobs made while the server ran without keys",
    )

    # the API process under load: connections, bodies, streams, validation
    max_connections: int = Field(default=4096, description="open HTTP connections per API process; beyond it 503")
    header_timeout_s: float = Field(default=10.0, gt=0, description="a request's headers must arrive within this")
    body_timeout_s: float = Field(default=60.0, gt=0, description="a request's whole body must arrive within this")
    body_idle_timeout_s: float = Field(default=10.0, gt=0, description="... with no pause longer than this")
    max_buffered_body_bytes: int = Field(
        default=256 * 2**20, description="request bodies one API process holds at once; beyond it 503"
    )
    max_streams_per_key: int = Field(default=64, ge=1, description="event streams and long polls open per key and API process")
    redis_connections: int = Field(default=32, ge=2, description="Redis connections of one API process for reads")
    validation_processes: int = Field(default=2, ge=1, description="processes validating large and NIR requests")
    validation_timeout_s: float = Field(default=10.0, gt=0, description="time budget to validate one request")
    validation_memory_bytes: int | None = Field(default=2 * 2**30, description="address-space limit of each validation process")

    # limits per job (the rest are Limits' fields) and per key
    max_body_bytes: int = 64 * 2**20
    max_jobs_in_flight_per_key: int = 16
    max_sweep_points_in_flight_per_key: int = Field(
        default=4000, ge=1, description="unfinished sweep points per key (they do not count as jobs in flight)"
    )
    max_stored_bytes_per_key: int = Field(
        default=2 * 2**30,
        ge=1,
        description="requests and results one key keeps in the job store; beyond it new jobs and sweeps get a 403 "
        "until finished ones are deleted or expire",
    )
    redis_maxmemory_bytes: int = Field(
        default=4 * 2**30, ge=2**24, description="the memory limit of the Redis that 'spikeserve serve' starts"
    )
    store_full_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="beyond this share of Redis's maxmemory the API refuses new jobs and sweeps (507), keeping the "
        "rest for the results of jobs already accepted",
    )

    # the engine (worker.engine_options, where the defaults are)
    fused: bool = Field(default=ENGINE_DEFAULTS.fused, description="false: the eager step loops instead of the fused kernels")
    events: bool = Field(default=ENGINE_DEFAULTS.events, description="false: synaptic layers always dense, never event-driven")
    kernel_cache: pathlib.Path = Field(
        default=ENGINE_DEFAULTS.kernel_cache, description="where the compiled CPU kernels are kept"
    )
    threads: int | None = Field(
        default=ENGINE_DEFAULTS.threads,
        ge=1,
        description="threads a run uses (torch's, which the CPU kernels use too); unset: as many as the cores other "
        "processes leave free, looked at before each chunk (at most torch's count when the worker started)",
    )

    # execution
    soft_time_limit_s: int = Field(default=3600, gt=0, description="a job's time limit; it then fails with that reason")
    hard_time_limit_s: int = Field(default=3660, gt=0, description="a run still going this long is killed")
    max_attempts: int = Field(
        default=3, ge=1, description="runs of a job whose worker dies (killed, out of memory) before it fails with that reason"
    )
    worker_memory_bytes: int | None = Field(
        default=None,
        description="address-space limit of each worker process running jobs (CPU workers): beyond it a job fails as out "
        "of memory instead of the kernel killing the worker",
    )
    lease_s: float = Field(default=20.0, gt=0, description="a running job's lease; a worker silent this long is presumed dead")
    worker_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING",
        description="Celery worker log level; INFO logs every task twice, which the job records already hold",
    )

    @field_validator("worker_log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    result_ttl_s: int = 24 * 3600
    job_ttl_s: int = 7 * 24 * 3600

    @model_validator(mode="after")
    def _put_the_password_in_the_url(self) -> "Settings":
        if self.redis_password is not None:
            self.redis_url = with_password(self.redis_url, self.redis_password.get_secret_value())
        return self

    @model_validator(mode="after")
    def _check_time_limits(self) -> "Settings":
        if self.hard_time_limit_s <= self.soft_time_limit_s:
            raise ValueError("hard_time_limit_s must be larger than soft_time_limit_s")
        return self

    @model_validator(mode="after")
    def _check_adopting_key(self) -> "Settings":
        if self.anonymous_jobs_to is not None and self.anonymous_jobs_to not in self.api_key_hashes:
            raise ValueError("anonymous_jobs_to must be one of api_key_hashes")
        return self

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

    @property
    def engine(self) -> EngineOptions:
        """The engine's options, as configured (``worker.engine_options.configure`` applies them)."""
        return EngineOptions(fused=self.fused, events=self.events, kernel_cache=self.kernel_cache, threads=self.threads)

    @cached_property
    def limits(self) -> Limits:
        """The limits on one job, as configured (plain ``Limits``, for the checks and their processes)."""
        return Limits.model_validate({name: getattr(self, name) for name in Limits.model_fields})

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key_hashes)

    @property
    def celery_soft_time_limit_s(self) -> float:
        """Celery's own soft limit, a backstop behind the runner's check between chunks: it raises
        wherever the job is (encoding, storing), still before the hard limit kills the process."""
        return min(self.soft_time_limit_s + 30, (self.soft_time_limit_s + self.hard_time_limit_s) / 2)

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
