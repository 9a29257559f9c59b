"""Processes that keep cores busy beside a benchmark: users and CI share their machines, and a
kernel team that waits at every barrier for the thread sharing a core with them slows down by
more than the core it lost."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator

SPIN = "while True: pass"


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` Python processes spinning until the block ends."""
    spinning = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()
