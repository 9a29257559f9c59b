"""The README's code blocks run as written, and print what the README shows they print.

Python blocks run as scripts (the client's against a running `spikeserve serve`, whose URL
replaces the README's); bash blocks run line by line in a directory with a copy of examples/,
and a `# ...` line after a command is its expected output, with timings left out of the
comparison. The two set-up commands are left to CI itself and to the fresh-clone test.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.app.test_serve import Serve

pytestmark = pytest.mark.slow  # starts spikeserve serve, and simulates

ROOT = pathlib.Path(__file__).parents[1]
BIN = pathlib.Path(sys.executable).parent
SET_UP = ("scripts/serve.sh", "scripts/test.sh")
README_URL = "http://127.0.0.1:8000"


def blocks() -> list[tuple[int, str, str]]:
    """(line number, language, code) of every fenced block with a language."""
    found = []
    text = (ROOT / "README.md").read_text()
    for match in re.finditer(r"^```(\w+)\n(.*?)^```$", text, re.M | re.S):
        found.append((text[: match.start()].count("\n") + 1, match.group(1), match.group(2)))
    return found


RUNNABLE = [block for block in blocks() if block[1] in ("python", "bash") and not any(s in block[2] for s in SET_UP)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = pathlib.Path(tmp_path_factory.mktemp("readme"))
    shutil.copytree(ROOT / "examples", path / "examples")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    serve = Serve(pathlib.Path(tmp_path_factory.mktemp("readme-serve")) / "data").ready()
    try:
        yield serve.url
    finally:
        serve.stop()


TIMINGS = r"(in [0-9.]+ s|[0-9.]+e[+-][0-9]+ neuron-steps/s)"


def matches(expected: str, printed: str) -> bool:
    """``printed`` is ``expected`` but for the run time and the speed, which vary."""
    parts = re.split(TIMINGS, expected)
    wildcards = {True: r"in [0-9.]+ s", False: r"[0-9.]+e[+-][0-9]+ neuron-steps/s"}
    pattern = "".join(re.escape(part) if i % 2 == 0 else wildcards[part.startswith("in ")] for i, part in enumerate(parts))
    return re.fullmatch(pattern, printed) is not None


def test_a_set_up_command_and_a_test_command_and_nothing_else_to_install() -> None:
    commands = [code for _, language, code in blocks() if any(s in code for s in SET_UP)]
    assert commands == ["bash scripts/serve.sh\n", "bash scripts/test.sh\n"]


@pytest.mark.parametrize(("line", "language", "code"), RUNNABLE, ids=[f"line-{block[0]}" for block in RUNNABLE])
def test_each_code_block_runs_and_prints_what_it_shows(
    line: int, language: str, code: str, workdir: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    if language == "python":
        if README_URL in code:
            code = code.replace(README_URL, request.getfixturevalue("server"))
        done = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README line {line}: {done.stderr[-2000:]}"
        return
    lines = code.splitlines()
    for index, command in enumerate(lines):
        if command.startswith("#") or not command.strip():
            continue
        done = subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README line {line}: {command}: {done.stderr[-2000:]}"
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following.startswith("# "):  # what the command prints
            assert matches(following[2:], done.stdout.strip()), f"README line {line}: printed {done.stdout.strip()!r}"
