"""Helpers for the worker's processes."""

import os

from worker.processes import ForkSharedFlag


def test_a_flag_raised_in_the_parent_after_a_fork_is_seen_by_the_child() -> None:
    flag = ForkSharedFlag()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child waits for the parent's word, then reports what it sees
        os.close(write)
        os.read(read, 1)
        os._exit(0 if flag.is_set() else 1)
    os.close(read)
    assert not flag.is_set()
    flag.set()
    os.write(write, b"x")
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw the flag the parent raised after forking it"
