"""The Brunel benchmark's statistics, on spike trains whose figures are known by hand: they are
what its comparison with Brian2 rests on."""

import numpy as np

from benchmarks.brunel import brunel_request, statistics
from worker.simulation.results import LayerResult, Result


def layer(times: list[int], senders: list[int], neurons: int) -> LayerResult:
    t, s = np.asarray(times, dtype=np.int64), np.asarray(senders, dtype=np.int64)
    return LayerResult(shape=(neurons,), times=t, senders=s, batch=np.zeros_like(t), counts=np.bincount(s, minlength=neurons))


def test_regular_trains_have_no_interval_variance_and_rates_count_spikes_per_second() -> None:
    dt, steps = 1e-4, 10_000  # one second
    e = layer(list(range(0, steps, 100)) * 2, [0] * 100 + [1] * 100, 2)  # 100 Hz, perfectly regular
    i = layer([5, 2000, 9000], [0, 0, 0], 1)  # intervals 1995 and 7000 steps
    result = Result("x", steps, dt, "cpu", None, {"E": e, "I": i}, {})
    figures = statistics(result, dt)
    assert figures["rate_E"] == 100.0 and figures["rate_I"] == 3.0
    isi = np.asarray([1995, 7000])
    assert np.isclose(figures["cv_mean"], np.mean([0.0, 0.0, isi.std() / isi.mean()]))
    assert figures["fano_pop_1ms"] > 0


def test_the_benchmark_sizes_the_example_and_keeps_its_in_degrees() -> None:
    request = brunel_request(5000)
    sizes = {node["name"]: node.get("size", node.get("shape", [None])[0]) for node in request["network"]["nodes"]}
    assert sizes == {"E": 4000, "I": 1000, "drive_E": 4000, "drive_I": 1000}
    assert [edge.get("k") for edge in request["network"]["edges"]] == [None, None, 800, 800, 200, 200]
