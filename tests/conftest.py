"""Fixtures shared across the suite: a private Redis server per test session."""

import os
import pathlib
from collections.abc import Iterator

import pytest
import torch

from app.redis_server import RedisServer
from app.resident import SOCKET_VARIABLE
from worker.engine_options import ENGINE

# The kernels in this process run with torch's thread count, as many as the cores, whatever the
# load: otherwise a busy test run would take the one-thread path and leave the teams untested
# (worker.engine.threads; tests/worker/engine/test_threads.py checks the choice and that every
# count gives the same bits). Services started by the tests choose for themselves.
ENGINE.threads = max(1, torch.get_num_threads())
# `spikeserve run` in the tests runs in its own process, whatever resident engine its user may
# have started (tests/app/test_resident.py starts its own).
os.environ[SOCKET_VARIABLE] = "/nonexistent/spikeserve-tests/engine.sock"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped by its PID at the end."""
    with RedisServer(pathlib.Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


# Seconds each of the longest files took in three parallel pytest processes on a 2-core VM (a
# run of the whole suite, 2026-12-08, on a VM about 2.7x slower than the day before's; the
# example commands, the Triton batches and the resident engine's tests from the runs after that
# day's changes). Files are handed to the processes in collection order, one file each
# (scripts/test.sh turns off xdist's own reordering, by number of tests); starting the long ones
# first keeps one of them from running alone at the end (the longest-first rule of scheduling).
LONG_FILES = {
    "tests/app/test_cli.py": 238,
    "tests/app/test_faults.py": 223,
    "tests/frontend/test_requests_and_jobs.py": 192,
    "tests/app/test_serve.py": 160,
    "tests/frontend/test_viewer.py": 159,
    "tests/test_deploy.py": 149,
    "tests/test_fresh_clone.py": 108,
    "tests/worker/engine/test_fused.py": 68,
    "tests/test_readme.py": 64,
    "tests/app/test_service.py": 63,
    "tests/worker/engine/test_events.py": 60,
    "tests/app/test_fuzz.py": 56,
    "tests/worker/engine/test_norse_parity.py": 55,
    "tests/app/test_one_key_holder.py": 43,
    "tests/app/test_cli_jobs.py": 42,
    "tests/app/test_resident.py": 38,
    "tests/worker/engine/test_network.py": 35,
    "tests/worker/engine/test_network_triton.py": 34,
    "tests/benchmarks/test_load.py": 32,
    "tests/app/test_hostile.py": 29,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -LONG_FILES.get(item.nodeid.split("::")[0], 0))  # stable: the rest keep their order
