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


# Seconds each of the longest files took in three parallel pytest processes on the 2-core VM (a
# clean clone's run, 2026-12-07). Files are handed to the processes in collection order, one file
# each (scripts/test.sh turns off xdist's own reordering, by number of tests); starting the long
# ones first keeps one of them from running alone at the end (the longest-first rule of scheduling).
LONG_FILES = {
    "tests/app/test_cli.py": 269,
    "tests/app/test_faults.py": 200,
    "tests/frontend/test_requests_and_jobs.py": 198,
    "tests/test_deploy.py": 122,
    "tests/app/test_serve.py": 109,
    "tests/frontend/test_viewer.py": 106,
    "tests/test_fresh_clone.py": 105,
    "tests/app/test_cli_examples.py": 97,
    "tests/worker/engine/test_events.py": 93,
    "tests/test_readme.py": 70,
    "tests/worker/engine/test_fused.py": 67,
    "tests/app/test_service.py": 59,
    "tests/app/test_fuzz.py": 59,
    "tests/app/test_cli_jobs.py": 45,
    "tests/worker/engine/test_norse_parity.py": 42,
    "tests/app/test_one_key_holder.py": 41,
    "tests/worker/engine/test_network_triton.py": 40,
    "tests/worker/engine/test_network.py": 38,
    "tests/benchmarks/test_load.py": 28,
    "tests/worker/engine/test_plasticity.py": 26,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -LONG_FILES.get(item.nodeid.split("::")[0], 0))  # stable: the rest keep their order
