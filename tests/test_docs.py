"""The documents describe what exists: every HTTP route is in the API page and nothing else is,
the command-line reference is what the parser prints, local links lead somewhere, and the
README names every edge, layer node, synapse and plasticity rule of the request format and every
public method of the Python client, and says what a sweep's table holds as it holds it."""

import pathlib
import re

import pytest

from app.api import create_app
from app.cli_reference import reference as cli_reference
from worker.settings import Settings

ROOT = pathlib.Path(__file__).parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def test_the_api_page_has_every_route_and_no_other() -> None:
    schema = create_app(Settings()).openapi()
    routes = {f"{method.upper()} {path}" for path, operations in schema["paths"].items() for method in operations}
    documented = set(re.findall(r"^### `([A-Z]+ /[^`]*)`", (ROOT / "docs" / "api.md").read_text(), re.M))
    assert documented == routes


def test_the_cli_page_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == cli_reference(), "run: python -m app.cli_reference > docs/cli.md"


@pytest.mark.parametrize("document", DOCS, ids=[path.name for path in DOCS])
def test_local_links_lead_to_files_that_exist(document: pathlib.Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text()):
        assert (document.parent / target).exists(), f"{document.name} links to {target}"


# --- the README's statements about the request format and the Python client ------------------------

README = (ROOT / "README.md").read_text()


def graph_types(field: str) -> dict[str, str]:
    """The request schema's ``type`` values of a graph's nodes or edges, by their class's name."""
    from worker.simulation.request import GraphNetwork

    mapping = GraphNetwork.model_json_schema()["properties"][field]["items"]["discriminator"]["mapping"]
    return {reference.rsplit("/", 1)[1]: kind for kind, reference in mapping.items()}


def backticked(text: str) -> set[str]:
    return set(re.findall(r"`([a-z0-9_]+)`", text))


def test_the_readme_names_every_edge_type_and_layer_node_of_the_request_format() -> None:
    edges = re.search(r"^- \*\*Edges\*\*:(.*?)^- ", README, re.M | re.S)
    assert edges is not None
    assert set(graph_types("edges").values()) <= backticked(edges.group(1))
    layer_nodes = re.search(r"layer nodes \((.*?)\)", README, re.S)
    assert layer_nodes is not None
    nodes = {kind for name, kind in graph_types("nodes").items() if name.endswith("Node")}
    assert nodes and nodes == backticked(layer_nodes.group(1)) - {"name", "identity"}


def test_the_readme_names_every_synapse_and_plasticity_rule() -> None:
    from worker.simulation.request import PLASTICITY_CLASSES, SYNAPSE_CLASSES

    section = README.split("### Synaptic channels and plasticity", 1)[1].split("\n## ", 1)[0]
    assert set(SYNAPSE_CLASSES) | set(PLASTICITY_CLASSES) <= set(re.findall(r'`(?:\{"type": ")?([a-z_]+)', section))


SERVICE_SIDE = {"array_bytes", "json_on_request"}  # Result's figures for the store, not the client's user


def test_the_readmes_client_table_has_every_public_method() -> None:
    from app.client import Client, Job, Sweep, Table
    from worker.simulation.results import Result

    rows = dict(re.findall(r"^\| `(\w+)(?:\([^)]*\))?` \| (.*) \|$", README, re.M))
    for cls in (Client, Job, Sweep, Table, Result):
        public = {name for name, member in vars(cls).items() if not name.startswith("_") and callable(member)}
        public |= {name for name, member in vars(cls).items() if isinstance(member, (classmethod, property))} - {"ARRAYS"}
        assert cls.__name__ in rows, f"the README's client table has no row for {cls.__name__}"
        missing = {name for name in public - SERVICE_SIDE if f"`{name}" not in rows[cls.__name__]}
        assert not missing, f"the README's {cls.__name__} row lacks {sorted(missing)}"


def test_a_sweep_tables_rows_are_lists_and_iterating_gives_dicts_as_the_readme_says() -> None:
    from app.client import Table

    assert "`rows` (lists)" in README and "iterating gives each row as a dict" in README
    table = Table(["seed", "spikes"], [[0, 12], [1, 15]])
    assert table.rows == [[0, 12], [1, 15]] and list(table) == [{"seed": 0, "spikes": 12}, {"seed": 1, "spikes": 15}]
    assert table.column("spikes") == [12, 15]
