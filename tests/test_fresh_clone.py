"""A newcomer's first minutes: on a fresh clone, with a fresh home directory, the README's serve
command sets everything up and prints the URL and a command to try, and that command works.

Two shortcuts, said here: torch itself is linked into the clone's new venv from this one instead
of being unpacked again (a minute of CPU), and so is pip (``python -m venv`` installs it from a
bundled wheel, 7 s of CPU); installing them is the first thing CI's own set-up does on every
run. Everything else (spikeserve and its dependencies, the viewer) is set up by the README's
command, from the package registries.
"""

import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import pytest

from app.redis_server import free_port
from tests.helpers import link_torch, new_venv

pytestmark = pytest.mark.slow  # sets up a new venv

ROOT = pathlib.Path(__file__).parents[1]


def registries_unreachable() -> str | None:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
    except OSError as error:
        return f"PyPI is unreachable, so nothing can be installed: {error}"
    return None


def test_the_readme_serve_command_on_a_fresh_clone_prints_a_command_that_works(tmp_path: pathlib.Path) -> None:
    if reason := registries_unreachable():
        pytest.skip(reason)
    clone, home = tmp_path / "clone", tmp_path / "home"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    home.mkdir()
    new_venv(clone / ".venv")
    link_torch(clone / ".venv")
    env = {key: os.environ[key] for key in ("PATH", "LANG", "PIP_CONFIG_FILE") if key in os.environ}
    env |= {"HOME": str(home), "SPIKESERVE_PORT": str(free_port())}
    # the package caches of this machine's user: set-up downloads what it needs only once
    env |= {"PIP_CACHE_DIR": str(pathlib.Path.home() / ".cache" / "pip"), "npm_config_cache": str(pathlib.Path.home() / ".npm")}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        serve = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while "try it from another terminal: " not in log_path.read_text():
            assert serve.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        output = log_path.read_text()
        assert "source .venv/bin/activate" in output
        assert f"open http://127.0.0.1:{env['SPIKESERVE_PORT']}/" in output
        command = output.split("try it from another terminal: ")[1].splitlines()[0]
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("job ") and "1000 steps on cpu; spikes: population=" in done.stdout
        assert int(done.stdout.split("population=")[1].split()[0].rstrip(";")) > 100_000, "a first try that spikes"
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(60)
