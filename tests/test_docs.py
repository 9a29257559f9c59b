"""The documents in docs/ describe what exists: every HTTP route is in the API page and nothing
else is, the command-line reference is what the parser prints, and local links lead somewhere."""

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
