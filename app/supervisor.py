"""Keeping the processes that ``spikeserve serve`` and ``spikeserve worker --gpus`` start alive.

A worker that exits (killed, crashed, out of memory) is started again, with a line on stderr, and
with growing pauses if it keeps dying at once. Children get the parent-death signal
(``worker.processes.die_with_parent``), so a SIGKILL of the supervising process takes them with it;
restarts are made from the supervisor's own thread, which lives until ``stop``, because Linux
sends that signal when the thread that started a child ends.
"""

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
CHECK_S = 0.5
QUICK_EXIT_S = 10.0  # a child that dies sooner than this after its start waits longer before the next
MAX_PAUSE_S = 30.0


@dataclass
class Child:
    name: str
    spawn: Callable[[], subprocess.Popen]
    stop: Callable[[subprocess.Popen], None]
    process: subprocess.Popen | None = None
    killed_in_a_hurry: bool = True  # by ``hurry``: a worker yes, Redis no (it flushes its files)
    started_at: float = 0.0
    pause_s: float = 0.0
    restarts: int = 0


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(
        self,
        name: str,
        spawn: Callable[[], subprocess.Popen],
        stop: Callable[[subprocess.Popen], None],
        killed_in_a_hurry: bool = True,
    ) -> Child:
        """Starts ``spawn()`` now (in the caller's thread) and watches it once ``start`` was called."""
        child = Child(name, spawn, stop, spawn(), killed_in_a_hurry, time.monotonic())
        self.children.append(child)
        return child

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="spikeserve-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_S):
            for child in self.children:
                if child.process is not None and child.process.poll() is None:
                    continue
                if child.process is not None:  # it just exited: decide when to start it again
                    quick = time.monotonic() - child.started_at < QUICK_EXIT_S
                    child.pause_s = min(MAX_PAUSE_S, max(1.0, child.pause_s * 2)) if quick else 0.0
                    print(
                        f"spikeserve: the {child.name} exited (code {child.process.returncode}); "
                        f"restarting it{f' in {child.pause_s:g} s' if child.pause_s else ''}",
                        file=sys.stderr,
                        flush=True,
                    )
                    child.process = None
                    child.started_at = time.monotonic()
                if time.monotonic() - child.started_at < child.pause_s:
                    continue
                try:
                    child.process = child.spawn()
                except Exception:
                    log.exception("could not restart the %s", child.name)
                child.started_at = time.monotonic()
                child.restarts += 1
        for child in reversed(self.children):  # from this thread: it is the parent of the restarted ones
            if child.process is not None:
                child.stop(child.process)

    def hurry(self) -> None:
        """Kills the children marked ``killed_in_a_hurry`` at once, while ``stop`` waits for them."""
        for child in self.children:
            if child.killed_in_a_hurry and child.process is not None and child.process.poll() is None:
                child.process.kill()

    def stop(self) -> None:
        """Stops watching, then stops every child (last added first)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        else:
            for child in reversed(self.children):
                if child.process is not None:
                    child.stop(child.process)
