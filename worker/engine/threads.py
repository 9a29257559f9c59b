"""How many threads a run uses: torch's thread count, which the engine's CPU kernels use too.

A team of threads waits at every barrier (and torch's every parallel operation waits) for its
slowest thread, so a team of as many threads as cores, beside another busy process, runs at the
speed of the thread that is not running: on a 2-core machine, 3,000 steps of Brunel's network
took 0.85 s quiet with two threads, and beside one busy process 3.9 s with two threads but 1.7 s
with one. A run therefore counts the cores that other processes leave free, from the machine's CPU
time (``/proc/stat``) less this process's own since the last look, and sets torch's thread count
to that (at least one, at most the count it had when the engine was imported) before each chunk;
it looks again at most every ``LOOK_EVERY_S``.

The kernels give the same bits with any number of threads (each owns fixed ranges of neurons and
targets; tests check it), so the choice changes the time a run takes, never its result.
``ENGINE.threads`` (the service's ``SPIKESERVE_THREADS``) fixes the count instead.
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import torch

from worker.engine_options import ENGINE

LOOK_EVERY_S = 0.25
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MOST = max(1, torch.get_num_threads())  # torch's count at import: as many as the cores, or as set


def _look() -> tuple[float, float, float] | None:
    """(now, the machine's busy CPU seconds, this process's CPU seconds), or None where the
    machine's CPU time cannot be read (not Linux)."""
    try:
        with open("/proc/stat", "rb") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(ticks) < 4:
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait are taken (steal too:
    # a hypervisor's other guests had the core); guest time is already inside user and nice
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return time.monotonic(), busy / TICKS_PER_S, time.process_time()


Look = Callable[[], tuple[float, float, float] | None]


class FreeCores:
    """The number of cores other processes left free over the time since the last look."""

    def __init__(self, cores: int | None = None, look: Look = _look, clock: Callable[[], float] = time.monotonic) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.look, self.clock = look, clock
        self._lock = threading.Lock()
        self._last, self._pid = look(), os.getpid()
        self.free = float(self.cores)

    def __call__(self) -> float:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: its own CPU time starts again from zero
                self._last, self._pid = self.look(), os.getpid()
            last = self._last
            if last is None or self.clock() - last[0] < LOOK_EVERY_S:
                return self.free
            now = self.look()
            if now is None:
                return self.free
            elapsed = now[0] - last[0]
            others = max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / elapsed
            self.free, self._last = max(0.0, self.cores - others), now
            return self.free


FREE_CORES = FreeCores()


def run_threads() -> int:
    """Threads for the next chunk of a run: ``ENGINE.threads`` where set, else the free cores (half
    a core counts), from one to ``MOST``."""
    if ENGINE.threads is not None:
        return ENGINE.threads
    return max(1, min(MOST, int(FREE_CORES() + 0.5)))


@contextlib.contextmanager
def adapting_threads() -> Iterator[Callable[[], None]]:
    """A function that sets torch's thread count to ``run_threads()`` (called before each chunk);
    the count before is restored at the end."""
    before = torch.get_num_threads()

    def adapt() -> None:
        count = run_threads()
        if count != torch.get_num_threads():
            torch.set_num_threads(count)

    try:
        yield adapt
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
