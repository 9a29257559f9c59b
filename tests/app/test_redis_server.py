"""The ports the tests and benchmarks give to servers they start."""

import socket

from app.redis_server import _ephemeral_ports, free_port


def test_a_free_port_is_bindable_and_outside_the_range_outgoing_connections_use() -> None:
    ephemeral = _ephemeral_ports()
    ports = {free_port() for _ in range(50)}
    assert len(ports) > 40  # random: processes choosing at the same moment rarely meet
    for port in ports:
        assert port not in ephemeral
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
