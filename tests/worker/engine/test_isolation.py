"""The engine is PyTorch only: no service, broker or web framework import anywhere in it."""

import ast
import pathlib
import subprocess
import sys

ENGINE = pathlib.Path(__file__).parents[3] / "worker" / "engine"
FORBIDDEN = {"fastapi", "celery", "redis", "kombu", "starlette", "uvicorn", "pydantic", "app"}


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_engine_source_file_imports_service_code() -> None:
    files = sorted(ENGINE.rglob("*.py"))
    assert files
    for path in files:
        assert not imported_roots(path) & FORBIDDEN, path


def test_importing_the_engine_loads_no_service_module() -> None:
    code = "import sys, worker.engine; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not set(ast.literal_eval(loaded)) & FORBIDDEN
