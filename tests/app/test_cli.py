"""`spikeserve run`: every example through the real command, its errors, and its progress bar."""

import fcntl
import json
import os
import pathlib
import pty
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
import redis

from app.redis_server import RedisServer
from tests.helpers import assert_same_recordings, wait_gone
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.slow  # starts processes, a service among them

ROOT = pathlib.Path(__file__).parents[2]
SEED = json.loads((ROOT / "examples" / "seed.json").read_text())
SPIKESERVE = pathlib.Path(sys.executable).parent / "spikeserve"


def spikeserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SPIKESERVE), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_console_script_is_installed() -> None:
    assert SPIKESERVE.exists(), "pip install -e . must install the spikeserve command"


def test_json_output_and_the_seed_network(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "seed.json"
    done = spikeserve("run", str(ROOT / "examples" / "seed.json"), "-o", str(output))
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    assert result["steps"] == 4 and result["layers"]["out"]["spikes"]["times"] == []
    assert result["layers"]["out"]["voltages"]["shape"] == [4, 1]


def test_run_writes_an_nwb_file_of_the_same_spikes(tmp_path: pathlib.Path) -> None:
    from pynwb import NWBHDF5IO

    path = ROOT / "examples" / "izhikevich_tonic_bursting.json"
    done = spikeserve("run", str(path), "-o", str(tmp_path / "bursts.nwb"))
    assert done.returncode == 0, done.stderr
    result = simulate(*parse_request(path.read_bytes()))
    ((name, layer),) = ((name, layer) for name, layer in result.layers.items() if layer.times is not None)
    with NWBHDF5IO(str(tmp_path / "bursts.nwb"), "r") as io:
        units = io.read().units.to_dataframe()
    assert list(units["layer"]) == [name] * layer.counts.size and layer.spike_count > 0
    for neuron, times in enumerate(units["spike_times"]):
        np.testing.assert_allclose(times, np.sort(layer.times[layer.senders == neuron]) * result.dt)


def write(tmp_path: pathlib.Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["run", str(tmp / "missing.json")], "missing.json: No such file or directory"),
        (lambda tmp: ["run", write(tmp, "broken.json", "{not json")], "broken.json: not valid JSON"),
        (
            lambda tmp: ["run", write(tmp, "bad.json", json.dumps({"network": {"layers": []}, "input": {"type": "constant"}}))],
            ("bad.json: network.layers: List should have at least 1 item", "bad.json: input.value: Field required"),
        ),
        (
            lambda tmp: ["run", write(tmp, "typo.json", json.dumps({**SEED, "recrod": {}}))],
            "typo.json: recrod: Extra inputs are not permitted; "
            "the fields here are name, dt, network, input, steps, batch, record",
        ),
        (lambda tmp: ["run", str(ROOT / "examples" / "seed.json"), "-o", str(tmp / "out.csv")], "end in .npz, .json or .nwb"),
    ],
    ids=["missing file", "invalid JSON", "invalid request", "unknown field", "unknown output format"],
)
def test_errors_are_one_line_each_with_exit_code_2(make_args, message: str | tuple, tmp_path: pathlib.Path) -> None:
    done = spikeserve(*make_args(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("spikeserve: error: ") for line in lines), done.stderr
    for fragment in (message,) if isinstance(message, str) else message:  # every problem, one line each
        assert fragment in done.stderr


def test_a_terminal_gets_a_progress_bar() -> None:
    controller, terminal = pty.openpty()
    # A new pty is 0x0 and tqdm would draw a zero-width bar; give it a real terminal's size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    path = str(ROOT / "examples" / "poisson_population.json")
    process = subprocess.Popen([str(SPIKESERVE), "run", path], stdout=subprocess.PIPE, stderr=terminal, cwd=ROOT)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = process.communicate(timeout=120)
    os.close(controller)
    assert process.returncode == 0
    assert b"step" in seen and b"%|" in seen, seen[:200]
    assert b"%|" not in stdout, "the summary on stdout stays clean"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_starts_redis_worker_and_api_runs_a_job_and_stops_cleanly(tmp_path: pathlib.Path, stop: signal.Signals) -> None:
    from app.client import Client
    from app.redis_server import free_port
    from tests.app.conftest import wait_ready

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
    process = subprocess.Popen(
        [str(SPIKESERVE), "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [process])
        redis_pid = int((tmp_path / "redis" / "redis.pid").read_text())
        os.kill(redis_pid, 0)  # a private redis-server runs
        with Client(url) as client:
            job = client.submit(ROOT / "examples" / "seed.json")
            assert job.wait(timeout=60)["status"] == "succeeded"
            assert job.result().layers["out"].voltages.shape == (4, 1)
    finally:
        process.send_signal(stop)  # SIGINT is Ctrl-C; SIGTERM is docker stop, systemd, kill
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    text = output.decode()
    assert f"open http://127.0.0.1:{port}/" in text
    worker_pid = int(text.split("worker pid ")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(redis_pid, 0)  # redis-server stopped
    assert wait_gone(text.split("Redis on ")[1].split()[0]) == [], "no worker is left behind"
    assert (tmp_path / "redis" / "appendonlydir").exists() or (tmp_path / "redis" / "appendonly.aof").exists()


def test_without_keys_the_api_refuses_to_listen_beyond_loopback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")} | {"SPIKESERVE_REDIS_URL": "redis://x:1/0"}
    done = subprocess.run([str(SPIKESERVE), "api", "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_api_and_a_worker_refuse_to_guess_their_redis(command: str) -> None:
    """Without SPIKESERVE_REDIS_URL they would take Redis on 127.0.0.1:6379: on a shared machine,
    somebody else's jobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
    done = subprocess.run([str(SPIKESERVE), command], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"spikeserve: error: spikeserve {command} needs SPIKESERVE_REDIS_URL")
    assert done.stderr.count("\n") == 1, "one line"


@pytest.mark.parametrize("command", ["api", "worker", "serve"])
def test_a_setting_that_is_not_valid_is_one_line_naming_its_variable(command: str) -> None:
    env = {**os.environ, "SPIKESERVE_REDIS_URL": "redis://127.0.0.1:1/0", "SPIKESERVE_MAX_NEURONS": "-3"}
    done = subprocess.run([str(SPIKESERVE), command], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "spikeserve: error: SPIKESERVE_MAX_NEURONS='-3': Input should be greater than or equal to 1\n"


def test_the_worker_log_level_is_read_in_any_case() -> None:
    from worker.settings import Settings

    assert Settings(worker_log_level="debug").worker_log_level == "DEBUG"


def test_worker_starts_one_process_per_gpu(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter("ss:workers:*"):
        client.delete(key)
    env = {**os.environ, "SPIKESERVE_REDIS_URL": redis_server.url}
    process = subprocess.Popen(
        [str(SPIKESERVE), "worker", "--gpus", "0,1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        beats: dict[bytes, bytes] = {}
        while time.monotonic() < deadline and len(beats) < 2:
            beats = {key: client.get(key) for key in client.scan_iter("ss:workers:*")}
            time.sleep(0.2)
        assert sorted(beats.values()) == [b"0", b"1"], "each process sees only its own GPU (CUDA_VISIBLE_DEVICES)"
        assert sorted(key.split(b"@")[0] for key in beats) == [b"ss:workers:gpu0", b"ss:workers:gpu1"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert wait_gone(redis_server.url) == [], "SIGTERM reaches every per-GPU worker"


def test_a_single_worker_stops_on_sigterm(redis_server: RedisServer) -> None:
    env = {**os.environ, "SPIKESERVE_REDIS_URL": redis_server.url}
    process = subprocess.Popen([str(SPIKESERVE), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(client.scan_iter("ss:workers:cpu@*")):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert wait_gone(redis_server.url) == []


@pytest.mark.parametrize("module", ["app.client", "app.api", "app.validation"])
def test_the_client_and_the_api_need_no_torch(module: str) -> None:
    """The API's image does without torch (several GB): nothing it imports may need it."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
        == "False"
    )


def test_keys_new_prints_a_key_and_its_hash() -> None:
    from worker.settings import hash_key

    done = spikeserve("keys", "new")
    key = done.stdout.split("key:")[1].split()[0]
    digest = done.stdout.split("hash:")[1].split()[0]
    assert len(key) > 40 and digest == hash_key(key)


@pytest.fixture(scope="module")
def conv_nir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """conv_feedforward's network exported by the command, for the tests that read a NIR file."""
    graph = tmp_path_factory.mktemp("nir") / "conv.nir"
    exported = spikeserve("nir", "export", str(ROOT / "examples" / "conv_feedforward.json"), "-o", str(graph))
    assert exported.returncode == 0 and "8 layers" in exported.stdout, exported.stderr
    return graph


def test_nir_export_import_and_run_with_a_nir_network(conv_nir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    graph, network = conv_nir, tmp_path / "network.json"
    imported = spikeserve("nir", "import", str(graph), "-o", str(network))
    assert imported.returncode == 0 and "input features per step: [1, 16, 16]" in imported.stderr
    assert [layer["type"] for layer in json.loads(network.read_text())["layers"]][:3] == ["conv2d", "lif", "avgpool2d"]
    with_nir = spikeserve(
        "run", str(ROOT / "examples" / "conv_feedforward.json"), "--nir", str(graph), "-o", str(tmp_path / "a.npz")
    )
    assert with_nir.returncode == 0, with_nir.stderr
    plain = simulate(*parse_request((ROOT / "examples" / "conv_feedforward.json").read_bytes()))  # the command: another test
    assert_same_recordings(Result.from_npz((tmp_path / "a.npz").read_bytes()), plain)
    refused = spikeserve(
        "nir", "export", str(ROOT / "examples" / "izhikevich_tonic_bursting.json"), "-o", str(tmp_path / "x.nir")
    )
    assert refused.returncode == 2 and "has no NIR counterpart" in refused.stderr
    missing = spikeserve("run", str(ROOT / "examples" / "seed.json"), "--nir", str(tmp_path / "absent.nir"))
    assert missing.returncode == 2 and "absent.nir: No such file or directory" in missing.stderr


@pytest.mark.parametrize("command", ["serve", "api"])
def test_host_and_port_come_from_the_environment_unless_given(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import _bind, build_parser
    from worker.settings import Settings

    monkeypatch.setenv("SPIKESERVE_HOST", "127.0.0.2")
    monkeypatch.setenv("SPIKESERVE_PORT", "18080")
    from_env = _bind(Settings(), build_parser().parse_args([command]))
    assert (from_env.host, from_env.port) == ("127.0.0.2", 18080)
    given = _bind(Settings(), build_parser().parse_args([command, "--host", "127.0.0.3", "--port", "18081"]))
    assert (given.host, given.port) == ("127.0.0.3", 18081)


def test_output_into_a_closed_pipe_ends_quietly(conv_nir: pathlib.Path) -> None:
    """``spikeserve nir import model.nir | head``: the reader goes away; no traceback, exit 141 (as
    a process killed by SIGPIPE reports it to a shell)."""
    process = subprocess.Popen([str(SPIKESERVE), "nir", "import", str(conv_nir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command writes (its imports alone take longer)
    errors = process.stderr.read().decode()
    assert process.wait(60) == 141
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors


def test_a_port_in_use_is_one_line_naming_it(tmp_path: pathlib.Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "SPIKESERVE_REDIS_URL": "redis://127.0.0.1:1/0"}
        done = subprocess.run([str(SPIKESERVE), "api", "--port", str(port)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (f"spikeserve: error: port {port} on 127.0.0.1 is in use (another spikeserve?): choose another "
                           "with --port or SPIKESERVE_PORT\n")  # fmt: skip


def test_nir_import_reads_if_nodes_as_asked_and_names_those_a_continuous_reading_silences(tmp_path: pathlib.Path) -> None:
    import nir

    from tests.worker.simulation.test_nir import sinabs_style_if_cnn

    graph = tmp_path / "sinabs.nir"
    nir.write(str(graph), sinabs_style_if_cnn())
    continuous = spikeserve("nir", "import", str(graph), "--steps", "100", "-o", str(tmp_path / "a.json"))
    assert continuous.returncode == 0 and "spikeserve: note: IF node 'if1' cannot spike within 100 steps" in continuous.stderr
    assert "import it with --if-input per_step" in continuous.stderr
    options = ("--if-input", "per_step", "--reset", "subtract")
    per_step = spikeserve("nir", "import", str(graph), *options, "-o", str(tmp_path / "b.json"))
    assert per_step.returncode == 0 and "note" not in per_step.stderr
    layers = json.loads((tmp_path / "b.json").read_text())["layers"]
    assert [layer["name"] for layer in layers if layer["type"] == "scale"] == ["pool.sum"]  # r = 1 per step: no scale
    assert {layer["params"]["reset_method"] for layer in layers if layer["type"] == "iaf"} == {"subtract"}
