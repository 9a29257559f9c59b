"""The resident engine (`spikeserve engine`): `spikeserve run` in a fork of a process that has
loaded torch and the kernels, with the same result, output, exit codes and signals as a run of
its own, for its user only."""

import json
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from app.resident import SOCKET_VARIABLE
from tests.app.conftest import SPIKESERVE
from tests.helpers import assert_same_recordings
from worker.simulation.results import Result

pytestmark = pytest.mark.slow  # starts processes that import torch

ROOT = pathlib.Path(__file__).parents[2]
POISSON = ROOT / "examples" / "poisson_population.json"


def spikeserve(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SPIKESERVE), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def runs_served(env: dict[str, str]) -> tuple[int, int]:
    """(runs served, runs running) from `spikeserve engine status`."""
    words = spikeserve(env, "engine", "status").stdout.replace(",", "").split()
    return int(words[words.index("run(s)") - 1]), int(words[words.index("running;") - 1])


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def engine(resident_engine: dict[str, str]) -> dict[str, str]:
    return resident_engine


def long_request(tmp_path: pathlib.Path, steps: int = 200_000) -> pathlib.Path:
    """The Poisson example for ``steps`` ms of network time (200 s: minutes, unless stopped)."""
    request = json.loads(POISSON.read_text())
    request["input"]["steps"] = steps
    request["record"] = {"spikes": []}
    path = tmp_path / "long.json"
    path.write_text(json.dumps(request))
    return path


def test_a_run_in_the_engine_gives_the_result_and_output_of_a_run_alone(engine: dict[str, str], tmp_path: pathlib.Path) -> None:
    before, _ = runs_served(engine)
    served = spikeserve(engine, "run", str(POISSON), "-o", str(tmp_path / "engine.npz"))
    alone = spikeserve(engine, "run", "--no-engine", str(POISSON), "-o", str(tmp_path / "alone.npz"))
    assert served.returncode == alone.returncode == 0, (served.stderr, alone.stderr)
    assert runs_served(engine)[0] == before + 1, "the first command ran in the engine, the second did not"
    served_result, alone_result = (Result.from_npz((tmp_path / name).read_bytes()) for name in ("engine.npz", "alone.npz"))
    assert_same_recordings(served_result, alone_result)
    assert served.stderr == alone.stderr == ""
    # "1000 steps on cpu in 0.1 s, 1e+07 neuron-steps/s; spikes: population=...; wrote ..."
    steps_and_spikes = lambda text: (text.split(" in ")[0], text.split("; spikes: ")[1].split(";")[0])  # noqa: E731
    assert steps_and_spikes(served.stdout) == steps_and_spikes(alone.stdout)
    assert steps_and_spikes(served.stdout)[1].startswith("population=")


@pytest.fixture
def bad(tmp_path: pathlib.Path) -> pathlib.Path:
    """A request that fails its check: a command that runs it alone ends before importing torch."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"network": {"layers": [{"type": "lif", "parms": {}}]}, "input": {"type": "zeros"}}))
    return path


def test_a_bad_request_fails_the_same_in_the_engine(engine: dict[str, str], bad: pathlib.Path) -> None:
    before, _ = runs_served(engine)
    served = spikeserve(engine, "run", str(bad))
    alone = spikeserve(engine, "run", "--no-engine", str(bad))
    assert runs_served(engine)[0] == before + 1
    assert served.returncode == alone.returncode == 2
    assert served.stderr == alone.stderr and served.stderr.startswith(f"spikeserve: error: {bad}: ")
    assert served.stdout == alone.stdout == ""


def test_ctrl_c_stops_the_run_in_the_engine_and_the_engine_stays(engine: dict[str, str], tmp_path: pathlib.Path) -> None:
    command = [str(SPIKESERVE), "run", str(long_request(tmp_path)), "-o", str(tmp_path / "long.npz")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=engine)
    wait_until(lambda: runs_served(engine)[1] == 1)
    time.sleep(0.5)  # into its steps
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr == "spikeserve: interrupted before the run ended: nothing written\n", "one line, no traceback"
    assert not (tmp_path / "long.npz").exists()
    wait_until(lambda: runs_served(engine)[1] == 0, 10)


def test_a_command_that_is_killed_takes_its_run_with_it(engine: dict[str, str], tmp_path: pathlib.Path) -> None:
    command = [str(SPIKESERVE), "run", str(long_request(tmp_path))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=engine)
    wait_until(lambda: runs_served(engine)[1] == 1)
    process.kill()
    process.wait(timeout=10)
    wait_until(lambda: runs_served(engine)[1] == 0, 30)


def test_a_command_with_another_import_environment_runs_in_its_own_process(engine: dict[str, str], bad: pathlib.Path) -> None:
    other = dict(engine, OMP_NUM_THREADS="1" if engine.get("OMP_NUM_THREADS") != "1" else "2")
    before, _ = runs_served(engine)
    done = spikeserve(other, "run", str(bad))
    assert runs_served(engine)[0] == before
    reason = "it was started with other code or another environment (spikeserve engine stop; then start)"
    notice, error = done.stderr.splitlines()[:2]
    assert notice == f"spikeserve: running in this process, not in the resident engine: {reason}"
    assert done.returncode == 2 and error.startswith(f"spikeserve: error: {bad}: ")


def test_a_command_too_large_for_one_message_runs_in_its_own_process(engine: dict[str, str], bad: pathlib.Path) -> None:
    large = dict(engine, **{f"LARGE_{index}": "x" * 100_000 for index in range(4)})  # 400 kB of environment
    before, _ = runs_served(engine)
    done = spikeserve(large, "run", str(bad))
    assert runs_served(engine)[0] == before
    notice, error = done.stderr.splitlines()[:2]
    reason = "the command could not be sent (Message too long)"
    assert notice == f"spikeserve: running in this process, not in the resident engine: {reason}"
    assert done.returncode == 2 and error.startswith(f"spikeserve: error: {bad}: ")


def test_the_engine_starts_only_once_and_its_status_says_so(engine: dict[str, str]) -> None:
    again = spikeserve(engine, "engine", "start")
    assert again.returncode == 0 and "already runs" in again.stdout
    second = spikeserve(engine, "engine", "start", "--foreground")  # as two starts at once would meet
    assert second.returncode == 2
    assert second.stderr == f"spikeserve: error: another engine is starting or running on {engine[SOCKET_VARIABLE]}\n"
    status = spikeserve(engine, "engine", "status")
    assert status.returncode == 0 and status.stdout.startswith("resident engine pid ")


def test_no_engine_is_no_engine(tmp_path: pathlib.Path, bad: pathlib.Path) -> None:
    env = dict(os.environ, **{SOCKET_VARIABLE: str(tmp_path / "none" / "engine.sock")})
    status = spikeserve(env, "engine", "status")
    assert status.returncode == 1 and status.stdout.startswith("no resident engine listens on ")
    assert spikeserve(env, "engine", "stop").returncode == 0
    done = spikeserve(env, "run", str(bad))
    assert done.returncode == 2 and done.stderr.startswith(f"spikeserve: error: {bad}: "), "a run of its own, silently"


def test_a_socket_directory_others_may_enter_is_refused(tmp_path: pathlib.Path, bad: pathlib.Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    env = dict(os.environ, **{SOCKET_VARIABLE: str(shared / "engine.sock")})
    started = spikeserve(env, "engine", "start")
    assert started.returncode == 2
    assert started.stderr == f"spikeserve: error: {shared} may be entered by others (mode 755; chmod 700 it)\n"
    (shared / "engine.sock").touch()  # a socket placed there by someone else is not used either
    done = spikeserve(env, "run", str(bad))
    not_used = f"spikeserve: the resident engine is not used: {shared} may be entered by others (mode 755; chmod 700 it)\n"
    assert done.returncode == 2 and done.stderr.startswith(not_used + f"spikeserve: error: {bad}: ")


def test_an_idle_engine_leaves_and_removes_its_socket(tmp_path: pathlib.Path) -> None:
    socket_path = tmp_path / "private" / "engine.sock"
    env = dict(os.environ, **{SOCKET_VARIABLE: str(socket_path)})
    command = [str(SPIKESERVE), "engine", "start", "--foreground", "--idle-minutes", "0.02"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "idle for 1.2 s, leaving" in stderr
    assert not socket_path.exists()
    assert (socket_path.parent.stat().st_mode & 0o777) == 0o700


def test_stop_lets_running_commands_end_and_new_ones_run_alone(tmp_path: pathlib.Path, bad: pathlib.Path) -> None:
    socket_path = tmp_path / "private" / "engine.sock"
    env = dict(os.environ, **{SOCKET_VARIABLE: str(socket_path)})
    assert spikeserve(env, "engine", "start").returncode == 0
    command = [str(SPIKESERVE), "run", str(long_request(tmp_path, 20_000)), "-o", str(tmp_path / "result.npz")]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    wait_until(lambda: runs_served(env)[1] == 1)
    stopped = spikeserve(env, "engine", "stop")
    assert stopped.returncode == 0 and stopped.stdout.endswith("stops once its 1 running command(s) end\n")
    assert not socket_path.exists(), "the socket goes at once"
    alone = spikeserve(env, "run", str(bad))
    assert alone.returncode == 2 and alone.stderr.startswith(f"spikeserve: error: {bad}: "), "no engine, no wait"
    _, stderr = running.communicate(timeout=300)
    assert running.returncode == 0 and stderr == "", "the running command ended as it would have"
    assert (tmp_path / "result.npz").stat().st_size > 0


def test_sigterm_to_the_engine_ends_it_and_its_running_commands(tmp_path: pathlib.Path) -> None:
    """A service manager's stop: the engine does not wait for its commands, which end as killed."""
    socket_path = tmp_path / "private" / "engine.sock"
    env = dict(os.environ, **{SOCKET_VARIABLE: str(socket_path)})
    engine_command = [str(SPIKESERVE), "engine", "start", "--foreground"]
    engine = subprocess.Popen(engine_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until(lambda: socket_path.exists(), 120)
        command = [str(SPIKESERVE), "run", str(long_request(tmp_path))]
        running = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        wait_until(lambda: runs_served(env)[1] == 1)
        engine.send_signal(signal.SIGTERM)
        assert running.wait(timeout=60) == 128 + signal.SIGTERM
        assert engine.wait(timeout=60) == 0
        assert not socket_path.exists()
    finally:
        engine.kill()
