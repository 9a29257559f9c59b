"""Deployment files: the compose file is valid (GPU reservation included), the Dockerfile lints
clean, and its install steps work in a fresh virtual environment (no Docker engine here)."""

import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow  # installs the images' packages into a new venv

ROOT = pathlib.Path(__file__).parents[1]
BIN = pathlib.Path(sys.executable).parent


def test_compose_file_is_valid_for_a_real_compose_binary() -> None:
    done = subprocess.run(
        [str(BIN / "docker-compose"), "-f", "docker-compose.yml", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_services_are_what_the_design_promises() -> None:
    rendered = subprocess.run(
        [str(BIN / "docker-compose"), "-f", "docker-compose.yml", "--profile", "flower", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    services = yaml.safe_load(rendered)["services"]
    assert set(services) == {"redis", "api", "worker", "flower"}
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert any(volume["target"] == "/data" for volume in services["redis"]["volumes"])
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "container_name" not in services["worker"] and "ports" not in services["worker"], "scalable with --scale worker=N"
    assert services["flower"]["profiles"] == ["flower"]


def test_dockerfile_lints_clean() -> None:
    done = subprocess.run([str(BIN / "hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text


@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3 to make a venv")
def test_dockerfile_install_steps_work_in_a_fresh_venv(tmp_path: pathlib.Path) -> None:
    """Replays the final stage's COPY and pip steps in a new venv, then starts the CLI."""
    context = tmp_path / "app"
    context.mkdir()
    pip_steps = []
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()  # continued lines joined, as Docker reads them
    final_stage = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    for line in lines[final_stage:]:
        if not line.startswith(("COPY ", "RUN ")):
            continue
        words = shlex.split(line)
        if words[0] == "COPY" and not words[1].startswith("--from="):
            for source in words[1:-1]:
                path = ROOT / source
                (shutil.copytree if path.is_dir() else shutil.copy)(path, context / source)
        elif words[0] == "RUN":
            for step in " ".join(words[1:]).split("&&"):
                if step.strip().startswith("pip install"):
                    pip_steps.append(shlex.split(step))
    assert pip_steps, "the Dockerfile installs with pip"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for step in pip_steps:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", *step, "-q"], cwd=context, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(
        [str(venv / "bin" / "spikeserve"), "run", "examples/seed.json"], cwd=context, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "4 steps on cpu" in done.stdout, done.stderr
