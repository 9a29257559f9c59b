"""Fixtures shared across the suite: a private Redis server per test session."""

import pathlib
from collections.abc import Iterator

import pytest

from app.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped by its PID at the end."""
    with RedisServer(pathlib.Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


# Seconds each of the longest files took in three parallel pytest processes on the 2-core VM.
# Files are handed to the processes in collection order, one file each; starting the long ones
# first keeps one of them from running alone at the end (the longest-first rule of scheduling).
LONG_FILES = {
    "tests/app/test_cli.py": 138,
    "tests/test_deploy.py": 120,
    "tests/worker/engine/test_fused.py": 87,
    "tests/test_fresh_clone.py": 64,
    "tests/app/test_serve.py": 61,
    "tests/frontend/test_requests_and_jobs.py": 75,
    "tests/frontend/test_viewer.py": 70,
    "tests/app/test_faults.py": 70,
    "tests/worker/engine/test_norse_parity.py": 33,
    "tests/test_readme.py": 31,
    "tests/app/test_service.py": 30,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -LONG_FILES.get(item.nodeid.split("::")[0], 0))  # stable: the rest keep their order
