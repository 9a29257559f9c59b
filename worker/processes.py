"""Child processes that never outlive the process that started them, memory limits, and a flag
that forked processes share.

Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``) makes the kernel signal a process when
its parent exits, however the parent ends: SIGKILL included, where no cleanup code of the parent
can run. Elsewhere these functions do nothing.
"""

import contextlib
import ctypes
import mmap
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Asks the kernel to send ``sig`` to this process when its parent exits. If the parent
    (``expected_parent``, when given) is already gone, exits at once: the signal would never come.
    Safe as a ``preexec_fn``: it only calls into libc."""
    if _LIBC is None or _LIBC.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def limit_address_space(max_bytes: int | None) -> None:
    """Caps this process's virtual memory: an allocation beyond it raises MemoryError (or the
    library's own out-of-memory error) instead of the kernel killing the process."""
    if max_bytes is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        max_bytes = min(max_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, hard))


def raise_open_files_limit() -> None:
    """Many slow clients or event streams each hold a socket: use the hard limit, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ForkSharedFlag:
    """A flag that a process and the children it forks after making it share: one byte of
    anonymous shared memory, read without a system call. Set in one, it is set in all."""

    def __init__(self) -> None:
        self._byte = mmap.mmap(-1, 1)  # anonymous and MAP_SHARED: the mapping survives fork, shared

    def set(self) -> None:
        self._byte[0] = 1

    def is_set(self) -> bool:
        return self._byte[0] == 1
