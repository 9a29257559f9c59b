"""Deployment files: both compose configurations (CPU, and the GPU override) render with a real
Compose binary and hold what the README promises; the Dockerfile lints clean and its two images'
install steps work in fresh virtual environments; the images are built where a Docker engine
answers (none does on the development machines)."""

import fnmatch
import functools
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
import redis
import yaml

from tests.helpers import link_torch, new_venv

pytestmark = pytest.mark.slow  # installs the images' packages into new venvs

ROOT = pathlib.Path(__file__).parents[1]
BIN = pathlib.Path(sys.executable).parent
HASHES = '["sha256:' + "a" * 64 + '"]'
NEEDED = {"SPIKESERVE_API_KEY_HASHES": HASHES, "REDIS_PASSWORD": "s3cret"}


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in NEEDED} | (env if env is not None else NEEDED)
    return subprocess.run([str(BIN / "docker-compose"), *args], cwd=ROOT, capture_output=True, text=True, env=environment)


def rendered(*files: str) -> dict:
    return rendered_with(NEEDED, *files)


def rendered_with(env: dict[str, str], *files: str) -> dict:
    arguments = [part for name in files for part in ("-f", name)]
    done = compose(*arguments, "--profile", "flower", "config", env=env)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_the_cpu_configuration_runs_anywhere_with_a_protected_redis() -> None:
    services = rendered("docker-compose.yml")
    assert set(services) == {"redis", "api", "worker", "flower"}
    redis_command = " ".join(services["redis"]["command"])
    for option in ("--appendonly yes", "--maxmemory $${REDIS_MAXMEMORY}", "--maxmemory-policy noeviction", "requirepass"):
        assert option in redis_command
    assert "s3cret" not in redis_command, "the password is never on a command line"
    assert services["redis"]["user"] == "redis"
    assert "ports" not in services["redis"], "Redis is reachable from the containers only"
    assert any(volume["target"] == "/data" for volume in services["redis"]["volumes"])
    assert "deploy" not in services["worker"], "no GPU reservation: the default works without one"
    assert services["worker"]["build"]["target"] == "worker" and services["api"]["build"]["target"] == "api"
    assert any(volume["target"] == "/var/cache/spikeserve" for volume in services["worker"]["volumes"])
    for name in ("api", "worker"):
        assert services[name]["environment"]["SPIKESERVE_REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["environment"]["SPIKESERVE_REDIS_PASSWORD"] == "s3cret"
        assert services[name]["environment"]["SPIKESERVE_API_KEY_HASHES"] == HASHES
    assert "container_name" not in services["worker"] and "ports" not in services["worker"], "scalable with --scale worker=N"
    flower = services["flower"]
    assert flower["profiles"] == ["flower"]
    assert [(port["host_ip"], port["published"]) for port in flower["ports"]] == [("127.0.0.1", "5555")], "loopback only"
    assert "--basic-auth" in " ".join(flower["command"])


HOSTILE_PASSWORD = 'p@ss/word:1 "q\\ $HOME`x`'  # URL and shell characters, quotes, a backslash


def unescaped_value(value: str) -> str:
    """A rendered value as the container gets it: ``compose config`` writes each $ as $$."""
    return value.replace("$$", "$")


def unescaped(command: list[str]) -> str:
    """A rendered ``sh -c`` command as the container's shell gets it."""
    assert command[:2] == ["sh", "-c"]
    return unescaped_value(command[2])


def test_any_redis_password_works_and_stays_off_the_command_line(tmp_path: pathlib.Path) -> None:
    """The compose file's own Redis command run with a real redis-server (on a free port here)
    and a password full of URL and shell characters: the API's settings reach it with that
    password, which neither redis-server's command line nor the URL in the environment shows."""
    from app.redis_server import free_port
    from worker.settings import Settings

    services = rendered_with({**NEEDED, "REDIS_PASSWORD": HOSTILE_PASSWORD}, "docker-compose.yml")
    assert unescaped_value(services["api"]["environment"]["SPIKESERVE_REDIS_PASSWORD"]) == HOSTILE_PASSWORD
    port = free_port()
    command = unescaped(services["redis"]["command"]).replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
    command += f" --port {port} --dir {tmp_path} --bind 127.0.0.1"
    env = {**os.environ, **{name: unescaped_value(value) for name, value in services["redis"]["environment"].items()}}
    server = subprocess.Popen(["sh", "-c", command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_password=HOSTILE_PASSWORD)
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "Redis did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        assert client.config_get("maxmemory")["maxmemory"] == str(4 * 2**30)
        cmdline = pathlib.Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert "redis-server" in cmdline and HOSTILE_PASSWORD not in cmdline and "p@ss" not in cmdline
    finally:
        server.terminate()
        server.wait(30)


def test_the_gpu_override_gives_one_container_every_gpu_and_a_process_per_gpu() -> None:
    worker = rendered("docker-compose.yml", "docker-compose.gpu.yml")["worker"]
    assert worker["command"] == ["spikeserve", "worker", "--gpus", "all"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] in (-1, "all")


@pytest.mark.parametrize("missing", sorted(NEEDED))
def test_up_without_keys_or_a_redis_password_says_what_is_missing(missing: str) -> None:
    done = compose("config", "--quiet", env={k: v for k, v in NEEDED.items() if k != missing})
    assert f"required variable {missing} is missing a value: set {missing}" in done.stderr


def test_dockerfile_lints_clean() -> None:
    done = subprocess.run([str(BIN / "hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def stages() -> dict[str, list[str]]:
    """Each stage's instructions, a stage built FROM another one including that one's."""
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()  # continued lines joined, as Docker reads them
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if line.startswith("FROM "):
            words = line.split()
            current = list(found.get(words[1], []))
            found[words[-1]] = current
        elif line and not line.startswith("#"):
            current.append(line)
    return found


@pytest.mark.parametrize("target", ["api", "worker"])
def test_each_image_runs_as_a_non_root_user_with_a_healthcheck(target: str) -> None:
    instructions = stages()[target]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in instructions)


def test_the_api_image_installs_no_torch_and_the_worker_image_does() -> None:
    api, worker = stages()["api"], stages()["worker"]
    assert not any("torch" in line for line in api if line.startswith("RUN "))
    assert any('"torch==2.13.0"' in line for line in worker if line.startswith("RUN "))
    assert not any(" -e " in line for line in api + worker), "no editable install"


@functools.cache
def dockerignore_patterns() -> tuple[str, ...]:
    """.dockerignore's patterns, read once (copytree asks about every directory)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return (*(line.strip() for line in lines if line.strip()), "tests")


def docker_ignored(directory: str, names: list[str]) -> set[str]:
    """The names in ``directory`` that .dockerignore keeps out of an image's build context (for
    ``shutil.copytree``; the tests too, which the images never read). A pattern is a path from the
    root, or with ``**/`` a name anywhere."""
    patterns = dockerignore_patterns()
    relative = pathlib.Path(directory).relative_to(ROOT)

    def ignored(name: str, pattern: str) -> bool:
        if pattern.startswith("**/"):
            return fnmatch.fnmatch(name, pattern[3:])
        return fnmatch.fnmatch(str(relative / name), pattern)

    return {name for name in names if any(ignored(name, pattern) for pattern in patterns)}


def replay(target: str, context: pathlib.Path, venv: pathlib.Path, replayed: frozenset[str] = frozenset()) -> frozenset[str]:
    """The target's pip steps (and those of the stages it copies from, but for those ``replayed``
    already) in ``venv``, run by bash as in the image, with /wheels moved into the build context;
    the stages replayed."""
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "TORCH_INDEX": "https://pypi.org/simple"}
    built_from = [line.split()[1].removeprefix("--from=") for line in stages()[target] if line.startswith("COPY --from=")]
    built_from = [stage for stage in built_from if stage not in replayed]
    for line in [*(step for stage in built_from for step in stages()[stage]), *stages()[target]]:
        if line.startswith("RUN "):
            for step in line[4:].split("&&"):
                if step.split()[:1] == ["pip"]:
                    # no byte-compiling here: half the CPU of an install, and nothing a test needs
                    extra = " --no-compile" if step.split()[1:2] == ["install"] else ""
                    command = step.replace("/wheels", str(context / "wheels")) + " -q" + extra
                    done = subprocess.run(["bash", "-c", command], cwd=context, env=env, capture_output=True, text=True)
                    assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    return replayed | {target, *built_from}


def test_the_wheel_holds_every_file_the_packages_read(tmp_path: pathlib.Path) -> None:
    """The images install the wheel, not the source: every file of app/ and worker/ that is not
    Python (the store's Lua scripts, the kernels' C sources and headers) must be in it."""
    listed = subprocess.run(["git", "ls-files", "app", "worker"], cwd=ROOT, capture_output=True, text=True, check=True)
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "app", "worker"], cwd=ROOT, capture_output=True, text=True
    )
    read = {name for name in (listed.stdout + untracked.stdout).split() if not name.endswith(".py")}
    assert any(name.endswith(".lua") for name in read) and any(name.endswith(".c") for name in read)
    source = tmp_path / "source"  # the files a clean checkout has (an editable install's egg-info lists more)
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("app", "worker"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    import zipfile

    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl")))
    assert read - set(wheel.namelist()) == set()


@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3 to make a venv")
def test_the_images_install_steps_work_in_a_fresh_venv(tmp_path: pathlib.Path) -> None:
    """The API image's steps in a new venv: no torch anywhere, and the API starts. Then the worker
    image's steps on top (torch linked from this venv instead of unpacked again, a minute of CPU
    that CI's own set-up spends anyway): a working simulator."""
    context, venv = tmp_path / "context", tmp_path / "venv"
    shutil.copytree(ROOT, context, ignore=docker_ignored)
    new_venv(venv)
    replayed = replay("api", context, venv)
    check = "import importlib.util, app.api; print(importlib.util.find_spec('torch') is None)"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", check], cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
    assert subprocess.run([str(venv / "bin" / "spikeserve"), "api", "--help"], capture_output=True).returncode == 0
    link_torch(venv)
    replay("worker", context, venv, replayed)  # the wheel the API's steps built
    seed = str(ROOT / "examples" / "seed.json")
    done = subprocess.run([str(venv / "bin" / "spikeserve"), "run", seed], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "4 steps on cpu" in done.stdout, done.stderr


def docker_engine() -> str | None:
    """Why the images cannot be built here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no docker command"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True)
    return None if done.returncode == 0 else "no Docker engine answers (docker info failed)"


@pytest.mark.skipif(docker_engine() is not None, reason=f"images not built: {docker_engine()}")
@pytest.mark.parametrize("target", ["api", "worker"])
def test_the_images_build(target: str) -> None:
    done = subprocess.run(["docker", "build", "--target", target, "-t", f"spikeserve-{target}:test", "."], cwd=ROOT)
    assert done.returncode == 0


def test_flower_needs_a_login_and_reaches_redis_with_any_password() -> None:
    """Flower's command as its container runs it, up to starting Flower: without FLOWER_BASIC_AUTH
    it stops saying why; with it, the broker URL it builds carries the password, encoded."""
    from kombu.utils.url import url_to_parts

    services = rendered_with({**NEEDED, "REDIS_PASSWORD": HOSTILE_PASSWORD}, "docker-compose.yml")
    command = unescaped(services["flower"]["command"])
    assert command.count("exec celery flower") == 1
    probe = command.replace("exec celery flower", 'printf %s "$CELERY_BROKER_URL"; exit 0; celery flower')
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env |= {name: unescaped_value(value) for name, value in services["flower"]["environment"].items()}
    refused = subprocess.run(["sh", "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr == "set FLOWER_BASIC_AUTH=user:password for Flower\n"
    started = subprocess.run(["sh", "-c", probe], env={**env, "FLOWER_BASIC_AUTH": "me:pw"}, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    parts = url_to_parts(started.stdout)
    assert (parts.hostname, parts.port, parts.password) == ("redis", 6379, HOSTILE_PASSWORD)
