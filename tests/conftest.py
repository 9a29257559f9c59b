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
