"""The ``spikeserve`` command line.

    spikeserve serve                         API + worker + a private Redis on this machine
    spikeserve api | worker [--gpus 0,1]     the two halves, for a shared Redis (SPIKESERVE_REDIS_URL)
    spikeserve run request.json -o out.npz   simulate locally, no server
    spikeserve submit request.json --url URL --key KEY [-o out.npz] [--detach]
    spikeserve status | cancel | watch | result JOB_ID      one job on a server; spikeserve jobs lists them
    spikeserve sweep request.json --axis seed=0,1,2 [--axis PATH=...] [--zip] [-o summary.csv]
    spikeserve run request.json --axis PATH=V1,V2 [-o summary.csv]   the same sweep, locally
    spikeserve nir export request.json -o model.nir | nir import model.nir [--dt 0.001]
    spikeserve keys new                      a new API key and the hash to configure

Exit codes: EXIT_CODES below.
"""

import argparse
import base64
import contextlib
import functools
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from app.client import Job
    from app.redis_server import RedisServer
    from app.supervisor import Supervisor
    from worker.settings import Settings
    from worker.simulation.errors import InvalidRequest
    from worker.simulation.results import Result

EXIT_JOB_ENDED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 3, 130, 141
EXIT_CODES = f"""exit codes:
  0    done (for a job: it succeeded)
  {EXIT_JOB_ENDED}    the job failed or was cancelled
  {EXIT_USAGE}    a usage error, a problem in the given files, or a request the server refused (one line on stderr)
  {EXIT_UNREACHABLE}    the server cannot be reached
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); submit cancels its job first
  {EXIT_BROKEN_PIPE}  the reader of the output went away (spikeserve ... | head), as for other tools"""


class UsageError(Exception):
    """A problem with the user's files, reported as one line."""


def _request_bytes(path: pathlib.Path, nir_path: str | None) -> bytes:
    """The request file's bytes, with its network replaced by a NIR file when one is given."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    try:
        request = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: not valid JSON ({error})") from None
    if nir_path is None:
        return raw
    try:
        graph = pathlib.Path(nir_path).read_bytes()
    except OSError as error:
        raise UsageError(f"{nir_path}: {error.strerror or error}") from None
    if not isinstance(request, dict):
        raise UsageError(f"{path}: a request must be a JSON object")
    options = request.get("network", {}).get("nir_import") if isinstance(request.get("network"), dict) else None
    request["network"] = {"nir": base64.b64encode(graph).decode()} | ({"nir_import": options} if options else {})
    return json.dumps(request).encode()


def _axis(text: str) -> dict[str, Any]:
    """``PATH=V1,V2,...`` -> a sweep axis; the values are read as JSON where they parse as a list
    of JSON values (``0.5,1``, ``[1,2],[3,4]``, ``true``), else as strings."""
    path, separator, values = text.partition("=")
    if not separator or not path or not values:
        raise UsageError(f"--axis {text!r}: write PATH=V1,V2,... (for example seed=0,1,2)")
    try:
        parsed = json.loads(f"[{values}]")
    except json.JSONDecodeError:
        parsed = values.split(",")
    return {"path": path, "values": parsed}


def _sweep_body(path: pathlib.Path, axes: list[str], zip_mode: bool, nir_path: str | None = None) -> dict[str, Any] | None:
    """The sweep a command asks for: the file itself when it is a sweep (``base``, ``axes``),
    with any ``--axis`` added; a request file with ``--axis`` options; None for a plain request."""
    data = json.loads(_request_bytes(path, None))
    extra = [_axis(text) for text in axes]
    if isinstance(data, dict) and "base" in data and "axes" in data:
        body = {**data, "axes": [*data["axes"], *extra]}
    elif extra:
        body = {"base": json.loads(_request_bytes(path, nir_path)) if nir_path else data, "axes": extra}
    else:
        return None
    if zip_mode:
        body["mode"] = "zip"
    return body


RESULT_SUFFIXES = (".npz", ".json", ".nwb")
RESULT_OUTPUT_HELP = "write the result here: .npz, .json or .nwb (Neurodata Without Borders; pip install 'spikeserve[nwb]')"


def _result_output_problem(output: str | None) -> str | None:
    """Why a result cannot be written to ``output`` (its suffix, or .nwb without pynwb), or None;
    asked before a job runs, so that a wrong name never costs the job."""
    if output is None:
        return None
    suffix = pathlib.Path(output).suffix
    if suffix not in RESULT_SUFFIXES:
        return f"{output}: a result's file must end in {', '.join(RESULT_SUFFIXES[:-1])} or {RESULT_SUFFIXES[-1]}"
    if suffix == ".nwb":
        from worker.simulation.results import missing_library

        missing = missing_library("pynwb")
        return f"{output}: {missing}" if missing else None
    return None


def _write_result(result: "Result", output: pathlib.Path) -> None:
    if output.suffix == ".nwb":
        result.to_nwb(output)
    else:
        output.write_bytes(result.to_npz() if output.suffix == ".npz" else result.to_json())


def _write_table(columns: list[str], rows: list[list[Any]], output: pathlib.Path | None) -> None:
    """The summary table into ``output`` (.csv, .json or .npz), and lined up on stdout."""
    from app.client import Table
    from worker.simulation.sweep import table_bytes

    if output is not None:
        output.write_bytes(table_bytes(columns, rows, output.suffix[1:]))  # type: ignore[arg-type]
    print(Table(columns, rows))


def _unreachable(url: str, error: Exception) -> int:
    _fail(f"cannot reach the server at {url} ({error or type(error).__name__}); is it running? (--url, SPIKESERVE_URL)")
    return EXIT_UNREACHABLE


def _refused(error: Exception) -> int:
    """A call the server refused (``SpikeserveError``), with what to do about a missing key."""
    hint = " (give a key with --key or SPIKESERVE_KEY)" if getattr(error, "status", None) == 401 else ""
    return _fail(f"{error}{hint}")


def _fail(message: str) -> int:
    print(f"spikeserve: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _fail_settings(error: Any) -> int:
    """A setting from the environment that is not valid (pydantic's ValidationError of Settings,
    matched by name so that this module need not import pydantic): one line each, by its variable."""
    for problem in error.errors(include_url=False):
        if problem["loc"]:
            variable = "SPIKESERVE_" + "_".join(str(part) for part in problem["loc"]).upper()
            _fail(f"{variable}={problem['input']!r}: {problem['msg']}")
        else:
            _fail(f"the settings: {problem['msg']}")
    return EXIT_USAGE


def _fail_request(path: pathlib.Path, error: "InvalidRequest") -> int:
    """Every problem of a request file, one line each."""
    for problem in error.errors:
        _fail(f"{path}: {problem.line}")
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from worker.simulation.errors import InvalidRequest
    from worker.simulation.plan import parse_request

    path = pathlib.Path(args.request)
    output = pathlib.Path(args.output) if args.output else None
    try:
        sweep = _sweep_body(path, args.axis, args.zip, args.nir)
        if sweep is not None:
            return _run_sweep(path, sweep, output, args)
        raw = _request_bytes(path, args.nir)
    except UsageError as error:
        return _fail(str(error))
    problem = _result_output_problem(args.output)
    if problem:
        return _fail(problem)
    try:
        request, plan = parse_request(raw, _settings().limits)
    except InvalidRequest as error:
        return _fail_request(path, error)
    _warn(plan.warnings)
    # Imported once the request is known to be valid: torch takes seconds to load, and neither
    # `spikeserve --help`, the service commands nor a bad file need it.
    from tqdm import tqdm

    from worker.simulation.errors import Cancelled, SimulationError
    from worker.simulation.runner import simulate

    bar = tqdm(total=plan.steps, unit="step", disable=not sys.stderr.isatty() or args.quiet, leave=False)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = simulate(request, plan, device=args.device, progress=progress, job_id=path.stem)
    except SimulationError as error:
        return _fail(str(error))
    except (Cancelled, KeyboardInterrupt):
        return _interrupted("before the run ended: nothing written")
    finally:
        bar.close()
    if output is not None:
        _write_result(result, output)
    spikes = ", ".join(f"{name}={layer.spike_count}" for name, layer in result.layers.items() if layer.times is not None)
    print(
        f"{result.steps} steps on {result.device} in {result.stats['wall_s']:.3f} s, "
        f"{result.stats['neuron_steps_per_s']:.3g} neuron-steps/s; spikes: {spikes or 'none recorded'}"
        + (f"; wrote {output}" if output else "")
    )
    return 0


def _run_sweep(path: pathlib.Path, body: dict[str, Any], output: pathlib.Path | None, args: argparse.Namespace) -> int:
    """A sweep on this machine: every point validated first, then run one after another; the
    summary table as the service gives it (job ids are ``<file>-<point>``)."""
    from worker.simulation.errors import InvalidRequest
    from worker.simulation.sweep import Outcome, parse_sweep, summary_table, table_axes

    if output is not None and output.suffix not in (".csv", ".json", ".npz"):
        return _fail(f"{output}: a sweep's summary must end in .csv, .json or .npz")
    try:
        sweep, points = parse_sweep(body, _settings().limits)
    except InvalidRequest as error:
        return _fail_request(path, error)
    from tqdm import tqdm

    from worker.simulation.errors import Cancelled, SimulationError
    from worker.simulation.runner import simulate

    outcomes = []
    for index, point in enumerate(tqdm(points, unit="point", disable=not sys.stderr.isatty() or args.quiet, leave=False)):
        job_id = f"{path.stem}-{index}"
        try:
            result = simulate(point.parsed, point.plan, device=args.device, job_id=job_id)
        except SimulationError as error:
            outcomes.append(Outcome(job_id, "failed", error=str(error)))
            continue
        except (Cancelled, KeyboardInterrupt):
            return _interrupted(f"at point {index} of {len(points)}: nothing written")
        outcomes.append(Outcome(job_id, "succeeded", result.stats["wall_s"], result.spike_summary()))
    _write_table(*summary_table(table_axes(sweep), outcomes), output)
    return 0


def _settings() -> "Settings":
    """The settings of the environment, the engine of this process configured by them."""
    from worker.engine_options import configure
    from worker.settings import Settings

    settings = Settings()
    configure(settings.engine)
    return settings


def _check_bind(settings: "Settings") -> str | None:
    from worker.settings import is_loopback

    if not settings.auth_enabled and not is_loopback(settings.host):
        return (
            f"refusing to listen on {settings.host} without API keys: set SPIKESERVE_API_KEY_HASHES "
            "(see 'spikeserve keys new') or bind to 127.0.0.1"
        )
    return _port_taken(settings.host, settings.port)


def _port_taken(host: str, port: int) -> str | None:
    """Why the API cannot listen on host:port, found before anything starts (the server's own
    failure would be a traceback of Errno 98)."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot listen on {host}: {error.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (another spikeserve?): choose another with --port or SPIKESERVE_PORT"
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def _serve_api(settings: "Settings", on_ready: Callable[[], None] | None = None) -> None:
    from app.api import create_app
    from app.http_server import serve

    serve(create_app(settings), settings, on_ready)


def _worker_command(name: str) -> list[str]:
    from worker.settings import Settings

    # prefork: the pool's children run the jobs (and initialise CUDA); the parent never does.
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool=prefork", "--concurrency=1",
            f"--loglevel={Settings().worker_log_level}", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]  # fmt: skip


def _start_worker(name: str, env: dict[str, str], keep_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A Celery worker that the kernel kills if this process dies, however it dies."""
    from worker.processes import die_with_parent

    return subprocess.Popen(
        _worker_command(name), env=env, preexec_fn=functools.partial(die_with_parent, os.getpid()), pass_fds=keep_fds
    )


def _stop(process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bind(settings: "Settings", args: argparse.Namespace) -> "Settings":
    """--host and --port override SPIKESERVE_HOST and SPIKESERVE_PORT."""
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    return settings


def _without_redis_url(command: str) -> str | None:
    """Why ``command`` must not start: no SPIKESERVE_REDIS_URL. The settings' default (Redis on
    127.0.0.1:6379) is, on a shared machine, somebody else's Redis and queue."""
    if os.environ.get("SPIKESERVE_REDIS_URL"):
        return None
    return (
        f"spikeserve {command} needs SPIKESERVE_REDIS_URL, the Redis that the API and its workers share "
        "(e.g. SPIKESERVE_REDIS_URL=redis://127.0.0.1:6379/0); spikeserve serve starts a private one instead"
    )


def _api(args: argparse.Namespace) -> int:
    if problem := _without_redis_url("api"):
        return _fail(problem)
    settings = _bind(_settings(), args)
    if problem := _check_bind(settings):
        return _fail(problem)
    _serve_api(settings)
    return 0


def _exit_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, kill) raises SystemExit so that `finally` blocks run.

    uvicorn catches SIGTERM, shuts down, then raises it again; with the default handler that
    second SIGTERM would end the process before it stops its worker and Redis.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def _gpu_indices(spec: str) -> list[str]:
    """``0,1`` -> ["0", "1"]; ``all`` -> every GPU nvidia-smi lists (asked without initialising CUDA here)."""
    if spec.strip() != "all":
        return [g.strip() for g in spec.split(",") if g.strip()]
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise UsageError(f"--gpus all: nvidia-smi could not list the GPUs ({error})") from None
    if not listed:
        raise UsageError("--gpus all: nvidia-smi lists no GPU")
    return listed


def _worker(args: argparse.Namespace) -> int:
    """One worker process per GPU (CUDA_VISIBLE_DEVICES set per process), or one on the CPU."""
    if problem := _without_redis_url("worker"):
        return _fail(problem)
    if not args.gpus:
        # Become the Celery worker: signals then reach it directly (SIGTERM = warm shutdown).
        command = _worker_command("cpu")
        os.execv(command[0], command)
    from app.supervisor import Supervisor

    try:
        gpus = _gpu_indices(args.gpus)
    except UsageError as error:
        return _fail(str(error))
    supervisor = Supervisor()
    for gpu in gpus:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
        supervisor.add(f"worker for GPU {gpu}", functools.partial(_start_worker, f"gpu{gpu}", env), _stop)
    _exit_on_sigterm()
    supervisor.start()
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:  # each worker gets SIGTERM (a warm shutdown) and up to 15 s to finish
        supervisor.stop()
    return 0


def _engine(args: argparse.Namespace) -> int:
    from app import resident

    path = resident.socket_path()
    try:
        if args.engine_command == "status":
            state = resident.ask("status")
            if state is None:
                print(f"no resident engine listens on {path}")
                return EXIT_JOB_ENDED
            print(
                f"resident engine pid {state['pid']} on {state['socket']}: up {state['uptime_s']:g} s, "
                f"{state['runs']} run(s), {state['running']} running; leaves after {state['idle_s']:g} s idle"
            )
            return 0
        if args.engine_command == "stop":
            state = resident.ask("stop")
            if state is None:
                print(f"no resident engine listens on {path}")
                return 0
            if state["running"]:
                print(f"resident engine pid {state['pid']} stops once its {state['running']} running command(s) end")
            else:
                print(f"resident engine pid {state['pid']} stopped ({state['runs']} run(s))")
            return 0
        if args.foreground:
            resident.serve(main, args.idle_minutes)
            return 0
        return _start_engine(path, args.idle_minutes)
    except resident.EngineUnusable as error:
        return _fail(str(error))


def _start_engine(path: pathlib.Path, idle_minutes: float) -> int:
    """Starts the engine in the background, its own session, its messages in a log beside its
    socket; returns once it answers (it has imported torch and loaded the kernels by then)."""
    from app import resident

    state = resident.ask("status")
    if state is not None:
        print(f"a resident engine already runs: pid {state['pid']} on {state['socket']}")
        return 0
    resident.private_directory(path.parent, create=True)
    log = path.with_suffix(".log")
    command = [sys.executable, "-m", "app.cli", "engine", "start", "--foreground", "--idle-minutes", f"{idle_minutes:g}"]
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
    if not _wait_for(lambda: process.poll() is not None or resident.ask("status") is not None, 120):
        return _fail(f"the resident engine did not answer within 120 s (its log: {log})")
    if process.poll() is not None:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        return _fail(f"the resident engine did not start: {' '.join(tail) or 'no message'} (its log: {log})")
    print(
        f"resident engine started: pid {process.pid} on {path}; spikeserve run uses it from now on "
        f"(--no-engine: not); it leaves after {idle_minutes:g} min idle, or with spikeserve engine stop"
    )
    return 0


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, and another user's
        pass
    return True


def _lock_data_dir(data_dir: pathlib.Path, wait_s: float = 10.0) -> int:
    """An exclusive lock on the data directory, held by this process and inherited by its Redis
    and worker: two Redis servers never share one append-only file. Waits a little for the
    processes of a serve that was just killed to go; raises UsageError if the lock stays taken."""
    import fcntl
    import time

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = path.read_text().strip()
            if _alive(holder) or time.monotonic() > deadline:  # else: a killed serve whose children are going
                os.close(fd)
                holder = holder or "unknown"
                message = f"another spikeserve serve (pid {holder}) is using {data_dir}; stop it, or give another --data-dir"
                raise UsageError(message) from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _serve(args: argparse.Namespace) -> int:
    from app.redis_server import RedisServer
    from app.supervisor import Supervisor

    data_dir = pathlib.Path(args.data_dir).expanduser()
    try:
        lock = _lock_data_dir(data_dir)
    except UsageError as error:
        return _fail(str(error))
    redis_server = RedisServer(data_dir / "redis", keep_fds=(lock,), maxmemory_bytes=_settings().redis_maxmemory_bytes)
    supervisor = Supervisor()
    try:
        supervisor.add("Redis server", lambda: _started(redis_server), lambda _: redis_server.stop(), killed_in_a_hurry=False)
    except RuntimeError as error:
        return _fail(str(error))
    os.environ["SPIKESERVE_REDIS_URL"] = redis_server.url
    os.environ.pop("SPIKESERVE_REDIS_PASSWORD", None)  # the private Redis has none
    settings = _bind(_settings(), args)
    if problem := _check_bind(settings):
        redis_server.stop()
        return _fail(problem)
    _exit_on_sigterm()
    worker = supervisor.add("worker", functools.partial(_start_worker, "local", dict(os.environ), (lock,)), _stop)
    supervisor.start()
    assert worker.process is not None  # add() starts it
    print(f"spikeserve: Redis on {redis_server.url} (data in {data_dir}), worker pid {worker.process.pid}", flush=True)
    url = f"http://{settings.host}:{settings.port}"

    def ready() -> None:  # once the API listens
        print(f"spikeserve: open {url}/  (API docs at /docs; Ctrl-C stops everything)", flush=True)
        from app.services import FIRST_EXAMPLE

        key = " --key YOUR_KEY" if settings.api_key_hashes else ""  # the server holds only the keys' hashes
        command = f"{sys.argv[0]} submit examples/{FIRST_EXAMPLE}.json --url {url}{key}"
        print(f"spikeserve: try it from another terminal: {command}", flush=True)

    try:
        _serve_api(settings, ready)
    finally:
        _stop_serving(supervisor, redis_server.url)
    return 0


def _started(server: "RedisServer") -> subprocess.Popen:
    process = server.start().process
    assert process is not None  # start() returns once it runs
    return process


def _stop_serving(supervisor: "Supervisor", redis_url: str) -> None:
    """Stops the worker (waiting for its running job a little), then Redis; a second Ctrl-C kills
    the worker at once. Its unfinished job stays accepted and runs again at the next start."""
    import redis

    from worker.store import state_set_key

    try:
        running = redis.Redis.from_url(redis_url, socket_timeout=1).scard(state_set_key("running"))
    except redis.RedisError:
        running = 0
    if running:
        print(
            f"spikeserve: stopping: waiting up to 15 s for {running} running job(s) to finish "
            "(Ctrl-C again to stop now; an unfinished job runs again at the next start)",
            file=sys.stderr,
            flush=True,
        )
    try:
        supervisor.stop()  # the worker first, then Redis
    except KeyboardInterrupt:
        print("spikeserve: stopping now", file=sys.stderr, flush=True)
        supervisor.hurry()
        supervisor.stop()


def _sweep(args: argparse.Namespace) -> int:
    from app.client import Client

    path = pathlib.Path(args.request)
    output = pathlib.Path(args.output) if args.output else None
    if output is not None and output.suffix not in (".csv", ".json", ".npz"):
        return _fail(f"{output}: a sweep's summary must end in .csv, .json or .npz")
    try:
        body = _sweep_body(path, args.axis, args.zip, args.nir)
    except UsageError as error:
        return _fail(str(error))
    if body is None:
        return _fail(f"{path}: give at least one --axis PATH=V1,V2,... (or a sweep file with base and axes)")
    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        sweep = client.submit_sweep(body)
        print(f"sweep {sweep.id}: {sweep.status()['points']['total']} points", file=sys.stderr)
        status = sweep.wait(progress=sys.stderr.isatty() and not args.quiet)
        table = sweep.summary()
    if failed.code:
        return failed.code
    _write_table(table.columns, table.rows, output)
    ended = status["points"]
    if status["status"] != "succeeded":
        _fail(f"sweep {sweep.id} {status['status']}: {ended['failed']} failed, {ended['cancelled']} cancelled")
        return EXIT_JOB_ENDED
    return 0


def _submit(args: argparse.Namespace) -> int:
    from app.client import Client

    problem = _result_output_problem(args.output)
    if problem:
        return _fail(problem)
    try:
        body = _request_bytes(pathlib.Path(args.request), args.nir)
    except UsageError as error:
        return _fail(str(error))
    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        try:
            job = client.submit(json.loads(body))
        except KeyboardInterrupt:
            return _interrupted("before the server answered: `spikeserve jobs` lists what it accepted")
        print(f"job {job.id} submitted", file=sys.stderr if not args.detach else sys.stdout, flush=True)
        _warn(job.warnings)
        if args.detach:
            return 0
        try:
            return _finish(job, args)
        except KeyboardInterrupt:
            try:
                job.cancel()
            except Exception as error:  # whatever broke, the user must learn the id
                return _interrupted(f"job {job.id} may still run (cancelling it failed: {error}); `spikeserve cancel {job.id}`")
            return _interrupted(f"job {job.id} cancelled")
    return failed.code


def _finish(job: "Job", args: argparse.Namespace) -> int:
    """Waits for ``job``, fetches its result (to ``args.output`` if given) and prints a line about it."""
    from worker.simulation.results import Result

    status = job.wait(progress=sys.stderr.isatty() and not args.quiet)
    if status["status"] != "succeeded":
        _fail(f"job {job.id} {status['status']}" + (f": {status['error']}" if status.get("error") else ""))
        return EXIT_JOB_ENDED
    output = pathlib.Path(args.output) if args.output else None
    as_json = output is not None and output.suffix == ".json"
    data = job.result_bytes("json" if as_json else "npz")
    result = Result.from_json(data) if as_json else Result.from_npz(data)
    if output is not None and output.suffix == ".nwb":
        _write_result(result, output)
    elif output is not None:  # the server's bytes as they came
        output.write_bytes(data)
    spikes = ", ".join(f"{name}={layer.spike_count}" for name, layer in result.layers.items() if layer.times is not None)
    print(
        f"job {job.id}: {result.steps} steps on {result.device}; spikes: {spikes or 'none recorded'}"
        + (f"; wrote {args.output}" if args.output else "")
    )
    return 0


def _interrupted(what: str) -> int:
    print(f"spikeserve: interrupted {what}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


class _Failure:
    """Where ``_talking_to`` leaves the exit code of a call that broke."""

    code = 0


@contextlib.contextmanager
def _talking_to(args: argparse.Namespace) -> Iterator[_Failure]:
    """The errors of a conversation with the server as exit codes: a refusal (2, with its detail),
    an unreachable server (3); the code is left in the object it yields."""
    import httpx

    from app.client import SpikeserveError

    failure = _Failure()
    try:
        yield failure
    except SpikeserveError as error:
        failure.code = _refused(error)
    except (OSError, httpx.TransportError) as error:
        failure.code = _unreachable(args.url, error)


def _status_line(status: dict[str, Any]) -> str:
    progress = status["progress"]
    parts = [f"job {status['id']}: {status['status']}", f"{progress['steps_done']:,}/{progress['steps_total']:,} steps"]
    parts += [f"{key} {status[key]}" for key in ("device", "wall_s", "spikes", "name", "error") if status.get(key) is not None]
    return ", ".join(parts)


def _status(args: argparse.Namespace) -> int:
    from app.client import Client

    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        status = client.job(args.job).status()
        print(json.dumps(status, indent=2) if args.json else _status_line(status))
        return EXIT_JOB_ENDED if status["status"] in ("failed", "cancelled") else 0
    return failed.code


def _cancel(args: argparse.Namespace) -> int:
    from app.client import Client

    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        print(_status_line(client.job(args.job).cancel()))
        return 0
    return failed.code


def _watch(args: argparse.Namespace) -> int:
    """The job's progress (a line per status change) and, where its request has ``record.live``,
    the spikes of each chunk as it runs, until it ends."""
    from app.client import Client
    from worker.simulation.results import LiveChunk

    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        job = client.job(args.job)
        try:
            for item in job.follow():
                if isinstance(item, LiveChunk):
                    counts = ", ".join(f"{name} {spikes.count:,}" for name, spikes in item.layers.items())
                    print(f"steps {item.start:,}-{item.stop - 1:,}: {counts or 'no spikes'}", flush=True)
                elif not args.quiet:
                    print(f"{item['status']}: {item['steps_done']:,}/{item['steps_total']:,} steps", flush=True)
        except KeyboardInterrupt:
            return _interrupted(f"watching; job {job.id} goes on (`spikeserve cancel {job.id}` stops it)")
        status = job.status()
        print(_status_line(status))
        return 0 if status["status"] == "succeeded" else EXIT_JOB_ENDED
    return failed.code


def _jobs(args: argparse.Namespace) -> int:
    from app.client import Client

    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        page = client.jobs(offset=args.offset, limit=args.limit)
        rows = [
            [job["id"], job["status"], f"{job['progress']['steps_done']}/{job['progress']['steps_total']}",
             job["created_at"], job.get("name") or ""]
            for job in page["jobs"]
        ]  # fmt: skip
        _write_table(["id", "status", "steps", "created", "name"], rows, None)
        shown = f"{args.offset + 1}-{args.offset + len(rows)}" if rows else "none"
        print(f"{shown} of {page['total']} jobs, newest first", file=sys.stderr)
        return 0
    return failed.code


def _result(args: argparse.Namespace) -> int:
    from app.client import Client

    problem = _result_output_problem(args.output)
    if problem:
        return _fail(problem)
    with _talking_to(args) as failed, Client(args.url, args.key) as client:
        try:
            return _finish(client.job(args.job), args)
        except KeyboardInterrupt:
            return _interrupted(f"waiting; job {args.job} goes on")
    return failed.code


def _keys_new(args: argparse.Namespace) -> int:
    from worker.settings import hash_key

    key = "ss_" + secrets.token_urlsafe(32)
    print(f"key:  {key}\nhash: {hash_key(key)}")
    print(f"configure the server with: SPIKESERVE_API_KEY_HASHES='[\"{hash_key(key)}\"]'", file=sys.stderr)
    return 0


def _nir_export(args: argparse.Namespace) -> int:
    from worker.simulation.errors import InvalidRequest
    from worker.simulation.nir_export import network_to_nir_bytes
    from worker.simulation.nir_import import NIRError
    from worker.simulation.plan import parse_request

    path = pathlib.Path(args.request)
    try:
        request, plan = parse_request(_request_bytes(path, None), _settings().limits)
        data = network_to_nir_bytes(request, plan)
    except UsageError as error:
        return _fail(str(error))
    except InvalidRequest as error:
        return _fail_request(path, error)
    except NIRError as error:
        return _fail(f"{path}: {error}")
    pathlib.Path(args.output).write_bytes(data)
    size = f"{len(plan.layers)} layers" if plan.graph is None else f"a graph of {len(plan.layers)} nodes"
    print(f"wrote {args.output}: {size}, dt = {request.dt} s")
    return 0


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"spikeserve: note: {warning}", file=sys.stderr)


def _nir_import(args: argparse.Namespace) -> int:
    from worker.simulation.nir_import import ImportOptions, NIRError, if_notes, nir_to_network, read_graph

    options = ImportOptions(if_input=args.if_input, reset=args.reset)
    try:
        graph = read_graph(pathlib.Path(args.graph).read_bytes())
        network, input_shape = nir_to_network(graph, args.dt, options)
    except OSError as error:
        return _fail(f"{args.graph}: {error.strerror or error}")
    except NIRError as error:
        return _fail(f"{args.graph}: {error}")
    text = json.dumps(network, indent=1)
    if args.output:
        pathlib.Path(args.output).write_text(text)
    else:
        print(text)
    shape = "unknown" if input_shape is None else list(input_shape)
    size = f"{len(network['layers'])} layers" if "layers" in network else f"a graph of {len(network['nodes'])} nodes"
    print(f"{size} for dt = {args.dt} s; input features per step: {shape}", file=sys.stderr)
    if options.if_input == "continuous":  # the notes a request with an input of spikes would get
        notes = if_notes(graph, args.dt, steps=args.steps)
        _warn([note.replace('with if_input "per_step"', "with --if-input per_step") for note in notes])
    return 0


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes above 0")
    return value


def _nir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nir", help="use the network of this NIR file instead of the request's")


def _server_options(parser: argparse.ArgumentParser, output_help: str | None) -> None:
    """What the commands that talk to a server share."""
    parser.add_argument(
        "--url",
        default=os.environ.get("SPIKESERVE_URL", f"http://127.0.0.1:{os.environ.get('SPIKESERVE_PORT', '8000')}"),
        help="the server (default: SPIKESERVE_URL, else http://127.0.0.1:SPIKESERVE_PORT, port 8000 if unset)",
    )
    parser.add_argument("--key", default=os.environ.get("SPIKESERVE_KEY"), help="an API key (default: SPIKESERVE_KEY)")
    if output_help is not None:
        parser.add_argument("-o", "--output", help=output_help)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _sweep_options(parser: argparse.ArgumentParser, axis_help: str) -> None:
    parser.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help=f"sweep PATH (e.g. network.layers[1].params.v_th, input.rates, seed) over the values: {axis_help}",
    )
    parser.add_argument("--zip", action="store_true", help="take the axes' values pairwise instead of every combination")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeserve",
        description="Spiking-network simulation, locally or as a service.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="simulate a request file locally, with no server",
        description="Simulate a request file on this machine. The request is checked against the engine's own "
        "limits, sized for a workstation (1,000,000 steps, 20 M neurons, ...); a server applies its settings "
        "(100,000 steps by default), so a request that runs here may be too large for a server.",
    )
    run.add_argument("request", help="job request JSON (the format: docs/requests.md; examples/ has some)")
    run.add_argument("-o", "--output", help=RESULT_OUTPUT_HELP)
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    _nir_option(run)
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    in_process = "run in this process even if a resident engine runs (spikeserve engine)"
    run.add_argument("--no-engine", action="store_true", help=in_process)
    _sweep_options(run, "run the request once per point and print the summary table (-o: .csv, .json or .npz)")
    run.set_defaults(handler=_run)

    serve = commands.add_parser(
        "serve",
        help="API, worker and a private Redis on this machine",
        description="Start a private Redis (its data in --data-dir), a simulation worker and the API with the "
        "browser viewer, and stop all three on Ctrl-C. Jobs and results survive a restart. Without API keys "
        "(SPIKESERVE_API_KEY_HASHES) it listens on 127.0.0.1 only.",
    )
    serve.add_argument("--host", default=None, help="default SPIKESERVE_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default SPIKESERVE_PORT or 8000")
    serve.add_argument(
        "--data-dir",
        default=os.environ.get("SPIKESERVE_DATA_DIR", "~/.local/share/spikeserve"),
        help="where Redis keeps its data",
    )
    serve.set_defaults(handler=_serve)

    api = commands.add_parser(
        "api",
        help="the HTTP API only (needs SPIKESERVE_REDIS_URL)",
        description="Serve the HTTP API and the viewer on the Redis named by SPIKESERVE_REDIS_URL (required), "
        "for workers elsewhere (spikeserve worker) that share that Redis.",
    )
    api.add_argument("--host", default=None, help="default SPIKESERVE_HOST or 127.0.0.1")
    api.add_argument("--port", type=int, default=None, help="default SPIKESERVE_PORT or 8000")
    api.set_defaults(handler=_api)

    worker = commands.add_parser(
        "worker",
        help="a simulation worker (needs SPIKESERVE_REDIS_URL)",
        description="Run jobs from the queue in the Redis named by SPIKESERVE_REDIS_URL (required): one "
        "process on the CPU, or one per GPU with --gpus. SIGTERM lets a running chunk finish; an unfinished "
        "job runs again on another worker.",
    )
    worker.add_argument(
        "--gpus", default=None, help="comma-separated GPU indices, or 'all': one worker process per GPU (default: one on the CPU)"
    )
    worker.set_defaults(handler=_worker)

    submit = commands.add_parser(
        "submit",
        help="submit a request to a server and wait for its result",
        description="Submit a request to a server: the job's id is printed first (stderr), then a progress bar "
        "while it runs, then a line about its result. Ctrl-C cancels the job on the server.",
    )
    submit.add_argument("request", help="job request JSON (the format: docs/requests.md; examples/ has some)")
    _server_options(submit, RESULT_OUTPUT_HELP)
    _nir_option(submit)
    submit.add_argument("--detach", action="store_true", help="print the job's id (stdout) and return without waiting")
    submit.set_defaults(handler=_submit)

    job_commands = (
        ("status", _status, "a job's status: state, steps done, device, error"),
        ("cancel", _cancel, "cancel a queued or running job"),
        ("watch", _watch, "follow a job as it runs: its progress and, with record.live, its spikes per chunk"),
        ("result", _result, "wait for a job and fetch its result"),
    )
    for name, handler, text in job_commands:
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        command.add_argument("job", help="the job's id (submit prints it; spikeserve jobs lists them)")
        _server_options(command, RESULT_OUTPUT_HELP if name == "result" else None)
        if name == "status":
            command.add_argument("--json", action="store_true", help="the whole status as JSON")
        command.set_defaults(handler=handler)
    jobs = commands.add_parser("jobs", help="list your jobs on a server, newest first")
    _server_options(jobs, None)
    jobs.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 200)")
    jobs.add_argument("--offset", type=int, default=0, help="skip this many of the newest first")
    jobs.set_defaults(handler=_jobs)

    sweep = commands.add_parser(
        "sweep",
        help="submit a parameter sweep to a server, wait for it and print its summary",
        description="Submit a request with axes (or a sweep file with base, axes and mode) to a server: every point "
        "is validated before any runs, the points run on the server's workers, and the summary table (one row per "
        "point: axis values, spikes and mean rate per layer, wall time) is printed. Each point's full result is a "
        "job of its own (its id is in the table).",
    )
    sweep.add_argument("request", help="a job request with --axis options, or a sweep file ({base, axes, mode})")
    _server_options(sweep, "write the summary here: .csv, .json or .npz")
    _nir_option(sweep)
    _sweep_options(sweep, "the values of one axis (repeat for more axes)")
    sweep.set_defaults(handler=_sweep)

    nir_command = commands.add_parser(
        "nir",
        help="NIR (Neuromorphic Intermediate Representation) files",
        description="Convert between NIR graphs (written by snnTorch, Norse, Sinabs, ...) and spikeserve's networks.",
    )
    nir_commands = nir_command.add_subparsers(dest="nir_command", required=True)
    export = nir_commands.add_parser(
        "export", help="write a request's network as a NIR file", description="Write a request's network as a NIR file."
    )
    export.add_argument("request", help="job request JSON")
    export.add_argument("-o", "--output", required=True, help="the NIR file to write (HDF5)")
    export.set_defaults(handler=_nir_export)
    imported = nir_commands.add_parser(
        "import",
        help="print a NIR file as a spikeserve network definition",
        description="Print a NIR file as a spikeserve network definition (JSON), to use as a request's network.",
    )
    imported.add_argument("graph", help="the NIR file (HDF5)")
    imported.add_argument("--dt", type=float, default=0.001, help="the time step the network will run with (s)")
    imported.add_argument("-o", "--output", help="write the network JSON here instead of stdout")
    imported.add_argument(
        "--if-input",
        choices=("continuous", "per_step"),
        default="continuous",
        help="IF nodes: as NIR defines them, r I dt per step (default); or r I per step, as Sinabs and Norse write them",
    )
    imported.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="the run's length, for the note on IF nodes that cannot spike in it when read continuously (default 1000)",
    )
    imported.add_argument(
        "--reset",
        choices=("value", "subtract"),
        default="value",
        help="LIF, CubaLIF and IF nodes after a spike: to v_reset (default), or by subtracting v_threshold - v_reset",
    )
    imported.set_defaults(handler=_nir_import)

    from app import resident

    engine = commands.add_parser(
        "engine",
        help="a resident engine that starts each 'spikeserve run' at once",
        description="A process of yours that has imported torch and the engine and loaded the kernels once: "
        "while it runs, 'spikeserve run' runs in a fork of it instead of spending a second or more on start-up "
        "(the same result, output and exit code). It serves only your user, through a socket in a private "
        f"directory (${resident.SOCKET_VARIABLE} to choose one), and leaves when idle.",
    )
    engine_commands = engine.add_subparsers(dest="engine_command", required=True)
    start = engine_commands.add_parser("start", help="start it in the background (nothing if one runs)")
    start.add_argument("--idle-minutes", type=_positive_minutes, default=resident.IDLE_MINUTES, metavar="M",
                       help="leave after M minutes without a run (default %(default)g)")  # fmt: skip
    start.add_argument("--foreground", action="store_true", help="run it in this process (for a service manager)")
    engine_commands.add_parser("stop", help="stop it (running commands finish first)")
    engine_commands.add_parser("status", help="whether it runs, since when, and how many runs it served (exit 1: none)")
    engine.set_defaults(handler=_engine)

    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser("new", help="print a new random key and its hash").set_defaults(handler=_keys_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _handle(build_parser().parse_args(argv))


def _handle(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except BrokenPipeError:
        # the reader of the output went away (``| head``): stop quietly, as other tools do; the
        # interpreter's own flush of stdout at exit must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:
        if type(error).__name__ == "ValidationError" and getattr(error, "title", None) == "Settings":
            return _fail_settings(error)
        raise


def console() -> NoReturn:
    """The ``spikeserve`` command. After ``run`` it leaves without the interpreter's teardown: the
    result file is written and closed and the output flushed by then, and tearing torch's modules
    down took 0.5-0.7 s on a 2-core machine, a fifth of a Brunel run from command to NPZ."""
    args = build_parser().parse_args()
    if args.handler is _run and not args.no_engine:
        from app.resident import run_in_engine

        code = run_in_engine(sys.argv[1:])
        if code is not None:
            os._exit(code)
    code = _handle(args)
    if args.handler is _run:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = EXIT_BROKEN_PIPE
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
