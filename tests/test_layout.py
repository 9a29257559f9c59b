"""The package layout: ``app`` (the HTTP API, CLI and client) imports ``worker``, never the other
way round; the simulation core imports neither Celery nor Redis; no module import cycle exists,
counting imports inside functions (which hide cycles at import time) and leaving out imports
made only for type checking."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]
PACKAGES = ("app", "worker")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _runtime_imports(tree: ast.AST, type_checking: bool = False) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except inside ``if TYPE_CHECKING:`` unless
    ``type_checking``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if not type_checking and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(name: str, type_checking: bool = False) -> set[str]:
    """The project modules ``name`` imports (``from package import module`` names the module);
    with ``type_checking`` also those it imports for type checking only."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text()), type_checking):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
        for alias in node.names:
            targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {target for target in targets if target in MODULES and target != name}


GRAPH = {name: imports_of(name) for name in MODULES}
TYPED_GRAPH = {name: imports_of(name, type_checking=True) for name in MODULES}  # what mypy follows too


def test_the_worker_never_imports_the_app() -> None:
    offending = {name: sorted(t for t in targets if t.split(".")[0] == "app") for name, targets in GRAPH.items()}
    assert not {name: targets for name, targets in offending.items() if name.startswith("worker") and targets}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[name] = "done"
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_module_import_cycle_not_even_for_type_checking() -> None:
    """Modules import downhill: a circle, even one closed only by an import for type checking,
    means two modules that cannot be read (or changed) one without the other."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]  # the finder finds
    cycle = find_cycle(TYPED_GRAPH)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("core", ["worker.simulation", "worker.engine"])
def test_the_simulation_core_needs_no_queue_or_store(core: str) -> None:
    """Nothing in the simulation core reaches Celery, Redis, the job store or the settings; it
    reads the model registry, which imports nothing of the project."""
    forbidden = {"celery", "redis", "kombu", "fastapi"}
    for name, path in MODULES.items():
        if not name.startswith(core):
            continue
        roots = {
            node.module.split(".")[0]
            for node in _runtime_imports(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        roots |= {
            alias.name.split(".")[0]
            for node in _runtime_imports(ast.parse(path.read_text()))
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not roots & forbidden, name
        assert not {t for t in GRAPH[name] if not t.startswith(("worker.simulation", "worker.engine", "worker.registry"))}, name


def test_the_graph_sees_imports_inside_functions() -> None:
    """The check would be blind without these: the API reaches the runner's modules lazily."""
    assert "worker.simulation.build" in GRAPH["worker.simulation.nir_export"]
    assert any(target.startswith("worker.simulation") for target in GRAPH["app.cli"])


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_api_builds_no_worker_celery_app() -> None:
    """The API sends with a Celery instance of its own (``worker.broker``); importing the worker's
    module would build the worker's app, its settings and its signal handlers in the API too."""
    assert "worker.broker" in reachable("app.api")
    assert "worker.celery_app" not in reachable("app.api") | reachable("app.jobs")


def test_the_api_and_its_validation_processes_never_load_torch() -> None:
    """The API image is slim (no torch) and its processes start fast: validating a job or a sweep,
    and deciding which sweep points run batched, needs no engine."""
    import subprocess
    import sys

    probe = (
        "import sys, json; from app.api import create_app; from worker.settings import Settings; create_app(Settings());"
        "from app.validation import check_request, check_sweep; from worker.simulation.limits import Limits;"
        "request = json.load(open('examples/poisson_population.json'));"
        "check_request(json.dumps(request).encode(), Limits());"
        "check_sweep(json.dumps({'base': request, 'axes': [{'path': 'input.rates', 'values': [1.0, 2.0]}]}).encode(), Limits());"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_model_registry_is_at_the_bottom() -> None:
    """Everything may read it; it reads nothing of the project (the API reads it without torch)."""
    assert GRAPH["worker.registry"] == set()


def test_the_api_reaches_the_store_only_on_its_event_loop() -> None:
    """Every route reads and writes through ``AsyncJobStore``: none blocks a thread on Redis, and
    none has to choose between two stores."""
    serving = [name for name in MODULES if name.startswith("app.") and name not in ("app.cli", "app.client", "app.cli_reference")]
    for name in serving:
        tree = ast.parse(MODULES[name].read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert "JobStore" not in names, name
