"""The Python client's plain requests: kept-alive connections, and what happens when they break.
(The client against the real service: tests/app/test_service.py and the CLI's tests.)"""

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from app.client import Client, _proxied
from app.redis_server import free_port


class OneRequestPerConnection(http.server.BaseHTTPRequestHandler):
    """Answers as HTTP/1.1 (the connection may stay open), then closes it anyway, as a server
    does whose keep-alive timeout passed while the client's connection sat idle."""

    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[int]] = []  # the client port of each request handled

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        OneRequestPerConnection.connections.append(self.client_address[1])
        reply = json.dumps({"id": "0" * 32, "method": self.command, "echo": body.decode()}).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        self.wfile.flush()
        self.close_connection = True  # without saying so in a header

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    OneRequestPerConnection.connections.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneRequestPerConnection)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_request(closing_server: str) -> None:
    with Client(closing_server) as client:
        assert client._plain is not None, "no proxy here: plain connections"
        first = client.submit({"seed": 1})
        second = client.submit({"seed": 2})  # a submission is never sent twice: the dead connection is seen first
        assert first.id == second.id == "0" * 32
        assert client.request("GET", "/api/v1/jobs/x").json()["method"] == "GET"
        assert client.request("DELETE", "/api/v1/jobs/x").json()["method"] == "DELETE"
    assert len(OneRequestPerConnection.connections) == 4, "each request once, each on a new connection"
    assert len(set(OneRequestPerConnection.connections)) == 4


def test_requests_share_one_kept_alive_connection(service_url: str) -> None:
    with Client(service_url) as client:
        for _ in range(5):
            assert client.request("GET", "/healthz").status_code == 200
        assert client._plain is not None and len(client._plain._idle) == 1


def test_an_unreachable_server_raises_httpxs_transport_error() -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(httpx.TransportError):
        client.submit({"seed": 1})


def test_a_proxy_in_the_environment_sends_every_request_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert _proxied("http://spikeserve.example:8000")
    assert not _proxied("http://localhost:8000")
    assert Client("http://spikeserve.example:8000")._plain is None
    monkeypatch.delenv("http_proxy")
    assert not _proxied("http://spikeserve.example:8000")


@pytest.fixture
def service_url() -> Iterator[str]:
    """A uvicorn-served app that answers /healthz, with HTTP/1.1 keep-alive as the API has it."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
