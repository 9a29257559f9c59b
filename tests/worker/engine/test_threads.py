"""A run's thread count (torch's, which the CPU kernels use too): taken from the cores other
processes leave free, or fixed by ENGINE.threads; any count gives the same bits, so it may change
between the chunks of one run."""

import json
import pathlib
import time

import pytest
import torch

from tests.helpers import assert_same_recordings
from worker.engine import threads
from worker.engine_options import ENGINE
from worker.simulation.plan import parse_request
from worker.simulation.runner import simulate

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"


class Readings:
    """``look`` for FreeCores: the (time, machine's busy CPU s, own CPU s) readings given, in turn."""

    readings: list[tuple[float, float, float]]

    def __init__(self, *readings: tuple[float, float, float]) -> None:
        self.readings = list(readings)

    def __call__(self) -> tuple[float, float, float]:
        return self.readings.pop(0)


def test_free_cores_are_the_cores_less_what_other_processes_used_since_the_last_look() -> None:
    # over 1 s the machine was busy for 1.7 CPU s, 0.6 s of them this process's; over the next
    # second only this process was
    clock = Readings((1.0, 0, 0), (1.1, 0, 0), (2.0, 0, 0))
    look = Readings((0.0, 10.0, 2.0), (1.0, 11.7, 2.6), (2.0, 11.8, 3.5))
    free = threads.FreeCores(cores=2, look=look, clock=lambda: clock()[0])
    assert free() == pytest.approx(0.9)
    assert free() == pytest.approx(0.9) and len(look.readings) == 1, "no new look within LOOK_EVERY_S"
    assert free() == pytest.approx(2.0), "this process's own time is not taken from the free cores"


def test_without_the_machines_cpu_time_every_core_counts_as_free() -> None:
    assert threads.FreeCores(cores=3, look=lambda: None)() == 3.0


@pytest.mark.parametrize(("free", "expected"), [(0.0, 1), (0.4, 1), (1.2, 1), (1.6, 2), (3.0, 2)])
def test_a_run_takes_the_free_cores_up_to_torchs_first_count(free: float, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ENGINE, "threads", None)
    monkeypatch.setattr(threads, "FREE_CORES", lambda: free)
    monkeypatch.setattr(threads, "MOST", 2)
    assert threads.run_threads() == expected


def test_a_configured_count_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ENGINE, "threads", 5)
    monkeypatch.setattr(threads, "FREE_CORES", lambda: 0.0)
    assert threads.run_threads() == 5


def test_torchs_count_follows_each_chunk_and_is_restored_after_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    counts = iter([3, 1])
    monkeypatch.setattr(threads, "run_threads", lambda: next(counts))
    with threads.adapting_threads() as adapt:
        adapt()
        assert torch.get_num_threads() == 3
        adapt()
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_machines_busy_time_includes_this_process_spinning() -> None:
    before = threads._look()
    assert before is not None
    while time.process_time() - before[2] < 0.3:
        pass
    after = threads._look()
    assert after is not None
    own = after[2] - before[2]
    assert after[1] - before[1] >= own - 0.05, "the machine's busy CPU time counts ours (to a clock tick or so)"


def shortened(name: str, steps: int) -> dict:
    request = json.loads((EXAMPLES / name).read_text())
    if "steps" in request:
        request["steps"] = steps
    else:
        request["input"]["steps"] = steps
    return request


@pytest.mark.parametrize(
    ("example", "steps"),
    [
        ("poisson_population.json", 300),  # Poisson spikes and the fused LIF
        ("conv_feedforward.json", 50),  # event-driven convolution, pooling and linear layers
        ("brunel.json", 300),  # the projection and refractory kernels, Poisson counts, drawn partners
        ("coba.json", 300),  # the network kernel with conductance channels
        ("stdp_song2000.json", 2000),  # plastic rows
    ],
)
def test_any_thread_count_gives_the_same_bits(example: str, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    request = shortened(example, steps)
    results = []
    for count in (1, 2, 3):
        monkeypatch.setattr(ENGINE, "threads", count)
        results.append(simulate(*parse_request(request)))
    assert sum(layer.spike_count for layer in results[0].layers.values() if layer.counts is not None) > 0
    for other in results[1:]:
        assert_same_recordings(other, results[0])
