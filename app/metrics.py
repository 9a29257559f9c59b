"""Prometheus metrics, read from the store at scrape time so every API replica reports the same."""

import itertools
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from worker.store import DURATION_BUCKETS, QUEUE_KEY, STATES, JobStore


class StoreCollector(Collector):
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator:
        stats = self.store.stats()
        active = GaugeMetricFamily("spikeserve_jobs", "Jobs queued or running now", labels=["state"])
        for state, count in self.store.active_counts().items():
            active.add_metric([state], count)
        yield active
        entered = CounterMetricFamily("spikeserve_jobs_entered", "Jobs that entered each state", labels=["state"])
        for state in STATES:
            entered.add_metric([state], stats.get(f"entered:{state}", 0.0))
        yield entered
        yield GaugeMetricFamily(
            "spikeserve_queue_depth", "Messages waiting in the job queue", value=self.store.redis.llen(QUEUE_KEY)
        )
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
