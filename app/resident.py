"""The resident engine: one process per user that has imported torch and the engine and loaded
the compiled kernels once, and runs each ``spikeserve run`` in a fork of itself.

A ``spikeserve run`` spends more than a second importing torch before its first step; with the
engine running (``spikeserve engine start``) the command instead sends its arguments, working
directory, environment and its standard input, output and error (the descriptors themselves) over
a Unix socket, and the engine forks a child that runs the command with them: the same code on the
same inputs, so the same result, its output and progress bar on the caller's terminal. The child's
exit status comes back as the command's; a Ctrl-C (or SIGTERM, SIGHUP) of the command is passed on
to the child, and a command that goes away takes its child with it.

The socket lies in a directory only its user may enter (``$XDG_RUNTIME_DIR/spikeserve``, else
``/tmp/spikeserve-<uid>``, or the directory of ``SPIKESERVE_ENGINE_SOCKET``), and the engine
serves only peers of its own user id: the child runs what that user could run anyway. A command
whose code (the package's files) or import-time environment (torch's thread and library
variables) differs from the engine's runs in its own process instead, and says so.

This module imports nothing beyond the standard library on the command's side: the point is to
start fast.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

SOCKET_VARIABLE = "SPIKESERVE_ENGINE_SOCKET"
IDLE_MINUTES = 30.0  # an engine with nothing to do for this long leaves (its memory is torch's, ~0.5 GB)
# Read by torch, its OpenMP runtime, the dynamic loader or Python when the engine imported them: a
# command with other values would not get what a process of its own gives it.
IMPORT_TIME_VARIABLES = ("OMP_", "GOMP_", "KMP_", "MKL_", "TORCH_", "PYTORCH_", "LD_", "PYTHON", "CUDA_")
PACKAGE_SUFFIXES = (".py", ".c", ".h", ".lua")
MESSAGE_BYTES = 1 << 20  # one message: a command's arguments and environment
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ANSWER_S = 30.0  # an engine that has not taken a command by then (stopped, swapping) is not waited for
Command = Callable[[list[str]], int]  # what a child runs: a command's arguments -> its exit status


class EngineUnusable(Exception):
    """The engine's socket exists but may not or cannot be used; the message says why."""


def socket_path() -> pathlib.Path:
    """Where this user's engine listens."""
    given = os.environ.get(SOCKET_VARIABLE)
    if given:
        return pathlib.Path(given)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return pathlib.Path(runtime) / "spikeserve" / "engine.sock"
    return pathlib.Path(os.environ.get("TMPDIR") or "/tmp") / f"spikeserve-{os.getuid()}" / "engine.sock"


def private_directory(path: pathlib.Path, create: bool) -> None:
    """Raises EngineUnusable unless ``path`` is a real directory of this user that nobody else may
    enter (created so when asked): a socket in a directory others can write could be anyone's."""
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    problem = None
    if not path.is_dir() or path.is_symlink():
        problem = "is not a directory"
    elif info.st_uid != os.getuid():
        problem = "belongs to another user"
    elif info.st_mode & 0o077:
        problem = f"may be entered by others (mode {info.st_mode & 0o777:o}; chmod 700 it)"
    if problem:
        raise EngineUnusable(f"{path} {problem}")


def code_stamp() -> str:
    """What must be the same in the engine and a command it runs for them: the interpreter, the
    package's files (their sizes and modification times) and the import-time environment."""
    digest = hashlib.sha256(sys.executable.encode())
    root = pathlib.Path(__file__).resolve().parent.parent
    for package in ("app", "worker"):
        for directory, subdirectories, files in os.walk(root / package):
            subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
            for name in sorted(files):
                if name.endswith(PACKAGE_SUFFIXES):
                    info = os.stat(os.path.join(directory, name))
                    digest.update(f"{directory}/{name} {info.st_size} {info.st_mtime_ns}\n".encode())
    for name in sorted(os.environ):
        if name.startswith(IMPORT_TIME_VARIABLES):
            digest.update(f"{name}={os.environ[name]}\n".encode())
    return digest.hexdigest()[:32]


def _send(connection: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(connection, [data], list(fds))
    else:
        connection.send(data)


def _receive(connection: socket.socket) -> dict[str, Any] | None:
    """The next message, or None once the other side has closed the connection."""
    data = connection.recv(MESSAGE_BYTES)
    return json.loads(data) if data else None


def _connect(path: pathlib.Path) -> socket.socket | None:
    """A connection to the engine at ``path``; None when there is none (no socket, or nobody
    listening on it); EngineUnusable when its directory is not private."""
    if not path.exists():
        return None
    private_directory(path.parent, create=False)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    return connection


def ask(op: str, path: pathlib.Path | None = None) -> dict[str, Any] | None:
    """The engine's answer to ``status`` or ``stop``; None when no engine listens."""
    connection = _connect(path or socket_path())
    if connection is None:
        return None
    with connection:
        connection.settimeout(10)
        _send(connection, {"op": op})
        return _receive(connection)


# --- the command's side ------------------------------------------------------------------------------


def _standard_descriptors() -> list[int]:
    """This process's stdin, stdout and stderr for the child; /dev/null for any that is closed."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def run_in_engine(argv: Sequence[str]) -> int | None:
    """Runs the command ``spikeserve *argv`` in the resident engine and returns its exit status;
    None when there is no engine to run it (the caller runs it itself); a line on stderr when
    there is one that cannot take it."""
    try:
        connection = _connect(socket_path())
    except (EngineUnusable, OSError) as error:
        print(f"spikeserve: the resident engine is not used: {error}", file=sys.stderr)
        return None
    if connection is None:
        return None
    with connection:
        message = {"op": "run", "argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "stamp": code_stamp()}
        connection.settimeout(ANSWER_S)
        try:
            _send(connection, message, _standard_descriptors())
            reply = _receive(connection)
        except TimeoutError:
            reply = {"refused": f"it did not answer within {ANSWER_S:g} s"}
        except OSError as error:  # an environment larger than a message, say
            reply = {"refused": f"the command could not be sent ({error.strerror or error})"}
        if reply is None or "refused" in reply:
            reason = reply["refused"] if reply else "it closed the connection"
            print(f"spikeserve: running in this process, not in the resident engine: {reason}", file=sys.stderr)
            return None
        connection.settimeout(None)  # the run takes what it takes

        def forward(number: int, frame: object) -> None:
            _send(connection, {"signal": number})

        for number in FORWARDED_SIGNALS:
            signal.signal(number, forward)
        while True:
            reply = _receive(connection)  # a signal's handler runs, then the wait resumes (PEP 475)
            if reply is None:
                print("spikeserve: error: the resident engine ended during the run", file=sys.stderr)
                return 1
            if "exit" in reply:
                return int(reply["exit"])


# --- the engine's side -------------------------------------------------------------------------------


def _preload() -> None:
    """Everything a run imports and loads, so that a child starts at its request: torch, the engine,
    the compiled kernels. Nothing runs here: torch's thread pools must start in the children."""
    import tqdm  # noqa: F401

    import worker.simulation.plan
    import worker.simulation.runner
    import worker.simulation.sweep  # noqa: F401
    from worker.engine import native, projections
    from worker.engine.events import cpu as events_cpu
    from worker.engine.fused import cpu as fused_cpu
    from worker.engine.fused import refractory
    from worker.engine.network import LIBRARY as network_library

    for library in (fused_cpu.LIBRARY, refractory.LIBRARY, projections.LIBRARY, events_cpu.LIBRARY, network_library):
        native.load(library)


class Engine:
    """The engine's loop: one thread, a selector over the socket, the connections of running
    commands and the signals; a fork per run."""

    def __init__(self, command: Command, path: pathlib.Path, idle_s: float) -> None:
        self.command, self.path, self.idle_s = command, path, idle_s
        self.stamp = code_stamp()
        self.started = time.time()
        self.runs = 0
        self.children: dict[int, socket.socket] = {}  # pid -> its command's connection
        self.stopping = False

    def serve(self) -> None:
        private_directory(self.path.parent, create=True)
        # held for the engine's life: two engines started at once would take each other's socket
        self.lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock)
            raise EngineUnusable(f"another engine is starting or running on {self.path}") from None
        _preload()
        self.path.unlink(missing_ok=True)  # a socket left by an engine that died
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.listener.listen(16)
        self.inode = self.path.stat().st_ino
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, lambda number, frame: None)  # woken through the pipe instead
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "signals")
        idle_since = time.monotonic()
        print(f"spikeserve engine: pid {os.getpid()}, listening on {self.path}", file=sys.stderr, flush=True)
        try:
            while not (self.stopping and not self.children):
                timeout = None if self.children else max(0.0, idle_since + self.idle_s - time.monotonic())
                events = self.selector.select(timeout)
                for key, _ in events:
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "signals":
                        self._signals(os.read(self.wake_read, 512))
                    else:
                        self._from_command(key.data, key.fileobj)  # type: ignore[arg-type]
                if self.children or events:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= self.idle_s:
                    print(f"spikeserve engine: idle for {self.idle_s:g} s, leaving", file=sys.stderr, flush=True)
                    break
        finally:
            self._close()

    def _close(self) -> None:
        self._stop()
        for pid in self.children:  # only on an error in the loop: it waits for them otherwise
            _kill(pid, signal.SIGTERM)
        self.selector.close()

    def _stop(self) -> None:
        """Takes no more commands: the socket goes at once (a new command runs alone, without
        waiting for an answer), the engine once its running commands have ended."""
        if self.stopping:
            return
        self.stopping = True
        self.selector.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):  # only this engine's socket: another may have replaced it
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()

    def _forget(self, connection: socket.socket) -> None:
        """Stops watching a command's connection (it may have been dropped already)."""
        with contextlib.suppress(KeyError):
            self.selector.unregister(connection)

    def _signals(self, numbers: bytes) -> None:
        if {signal.SIGTERM, signal.SIGINT, signal.SIGHUP} & set(numbers):
            self._stop()  # a service manager's stop: the running commands end too (status 143)
            for pid in self.children:
                _kill(pid, signal.SIGTERM)
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = self.children.pop(pid, None)
            if connection is not None:
                code = os.waitstatus_to_exitcode(status)
                with connection:
                    self._forget(connection)
                    with contextlib.suppress(OSError):  # the command went away
                        _send(connection, {"exit": code if code >= 0 else 128 - code})

    def _from_command(self, pid: int, connection: socket.socket) -> None:
        """A running command's signal to pass on, or its end (it went away: so does its child)."""
        try:
            message = _receive(connection)
        except (OSError, ValueError):
            message = None
        if message is None:
            self._forget(connection)
            _kill(pid, signal.SIGTERM)
        elif message.get("signal") in {int(number) for number in FORWARDED_SIGNALS}:
            _kill(pid, message["signal"])

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(5)  # a peer that connects and says nothing does not hold the loop
        fds: list[int] = []
        try:
            pid_uid_gid = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", pid_uid_gid)[1] != os.getuid():
                connection.close()
                return
            data, fds, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, 3)
            request = json.loads(data) if data else {}
            if request.get("op") == "run":
                self._run(connection, request, fds)
                return
            if request.get("op") == "stop":
                self._stop()
            _send(connection, self.status())
        except (OSError, ValueError):
            pass
        for fd in fds:
            os.close(fd)
        connection.close()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "socket": str(self.path),
            "uptime_s": round(time.time() - self.started, 1),
            "runs": self.runs,
            "running": len(self.children),
            "idle_s": self.idle_s,
            "stopping": self.stopping,
        }

    def _run(self, connection: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        if self.stopping:
            refused = "it is stopping"
        elif request.get("stamp") != self.stamp:
            refused = "it was started with other code or another environment (spikeserve engine stop; then start)"
        elif len(fds) != 3 or not isinstance(request.get("argv"), list):
            refused = "the command sent no terminal"
        else:
            refused = None
        if refused:
            _send(connection, {"refused": refused})
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        # signals held until the child has its own handlers (a Ctrl-C must not find the engine's)
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            inherited = [self.listener, self.selector, connection, *self.children.values()]
            _child(self.command, request, fds, inherited, (self.wake_read, self.wake_write, self.lock))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        for fd in fds:
            os.close(fd)
        self.runs += 1
        self.children[pid] = connection
        connection.settimeout(None)
        _send(connection, {"pid": pid})
        self.selector.register(connection, selectors.EVENT_READ, pid)


def _kill(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _child(
    command: Command, request: dict[str, Any], fds: list[int], inherited: list[Any], inherited_fds: tuple[int, ...]
) -> NoReturn:
    """The forked child: the command's descriptors, directory and environment in place of the
    engine's, then the command itself; it never returns into the engine's loop."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        for thing in inherited:
            thing.close()
        for fd in inherited_fds:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's own streams)
        sys.stdout = open(1, "w", closefd=False, buffering=1 if os.isatty(1) else -1)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.argv = ["spikeserve", *request["argv"]]
        _reseed()
        code = command(request["argv"])
    except SystemExit as done:  # argparse's --help and usage errors
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 141
    os._exit(code)


def _reseed() -> None:
    """Python's and numpy's global generators were seeded when the engine imported them; each
    child would draw the same numbers a fresh process would not."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def serve(command: Command, idle_minutes: float = IDLE_MINUTES, path: pathlib.Path | None = None) -> None:
    """Runs the engine in this process until it is stopped, signalled or idle for ``idle_minutes``;
    each child runs ``command(argv)`` (the ``spikeserve`` command's ``main``) for its exit status."""
    Engine(command, path or socket_path(), idle_minutes * 60).serve()
