"""Prometheus metrics, read from the store at scrape time so every API replica reports the same."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from worker.store import DURATION_BUCKETS, STATES, AsyncJobStore


@dataclass(frozen=True)
class StoreFigures:
    """What the metrics report, read from the store in one go."""

    stats: dict[str, float]  # the store's counters
    active: dict[str, int]  # jobs queued and running now
    queue_depth: int  # messages waiting in the queue

    @classmethod
    async def read(cls, store: AsyncJobStore) -> "StoreFigures":
        return cls(await store.stats(), await store.active_counts(), await store.queue_depth())


class StoreCollector(Collector):
    def __init__(self, figures: StoreFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator:
        stats = self.figures.stats
        active = GaugeMetricFamily("spikeserve_jobs", "Jobs queued or running now", labels=["state"])
        for state, count in self.figures.active.items():
            active.add_metric([state], count)
        yield active
        entered = CounterMetricFamily("spikeserve_jobs_entered", "Jobs that entered each state", labels=["state"])
        for state in STATES:
            entered.add_metric([state], stats.get(f"entered:{state}", 0.0))
        yield entered
        yield GaugeMetricFamily("spikeserve_queue_depth", "Messages waiting in the job queue", value=self.figures.queue_depth)
        yield CounterMetricFamily(
            "spikeserve_neuron_steps", "Neuron-steps simulated by succeeded jobs", value=stats.get("neuron_steps", 0.0)
        )
        total: float = stats.get("duration_count", 0.0)
        under = itertools.accumulate(stats.get(f"duration_in:{bound}", 0.0) for bound in DURATION_BUCKETS)
        buckets = [*zip(map(str, DURATION_BUCKETS), under, strict=True), ("+Inf", total)]
        yield HistogramMetricFamily(
            "spikeserve_job_duration_seconds",
            "Simulation wall time of succeeded jobs",
            buckets=buckets,
            sum_value=stats.get("duration_sum", 0.0),
        )


def metrics_text(figures: StoreFigures) -> bytes:
    """The figures in Prometheus's text format."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(figures))
    return generate_latest(registry)
