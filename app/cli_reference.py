"""The command-line reference, ``docs/cli.md``, written from the parser itself.

    python -m app.cli_reference > docs/cli.md

``tests/app/test_cli.py`` checks that the file is what this writes.
"""

import argparse
import os
import sys

from app.cli import build_parser

WIDTH = "100"  # argparse wraps to the terminal's width; the reference is the same everywhere
ENVIRONMENT = [
    (
        "SPIKESERVE_URL",
        "the server of `submit`, `status`, `cancel`, `watch`, `result`, `jobs` and `sweep` (else "
        "`http://127.0.0.1:$SPIKESERVE_PORT`, port 8000 if unset)",
    ),
    ("SPIKESERVE_KEY", "their API key"),
    ("SPIKESERVE_HOST, SPIKESERVE_PORT", "where `serve` and `api` listen (`--host`, `--port` win)"),
    (
        "SPIKESERVE_REDIS_URL",
        "the Redis of `api` and `worker`, required: they refuse to start without it (`serve` starts its own)",
    ),
    ("SPIKESERVE_DATA_DIR", "`serve`'s data directory (`--data-dir` wins)"),
    ("SPIKESERVE_API_KEY_HASHES", "the accepted keys' hashes, a JSON list (`spikeserve keys new` makes one)"),
    (
        "SPIKESERVE_ENGINE_SOCKET",
        "the socket of `engine` and of `run` (else `$XDG_RUNTIME_DIR/spikeserve/engine.sock`, or "
        "`/tmp/spikeserve-$UID/engine.sock`); its directory must be yours alone",
    ),
    ("SPIKESERVE_*", "every other setting of the service: the README's Settings paragraph"),
]


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}")
    return found


def reference() -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        sections = [(name, parser.format_help()) for name, parser in _commands(build_parser(), "spikeserve")]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    lines = [
        "# The `spikeserve` command",
        "",
        "<!-- Written by `python -m app.cli_reference > docs/cli.md`; a test keeps it current. -->",
        "",
        "Installed into `.venv` by the README's set-up commands: run it as `.venv/bin/spikeserve`, or",
        "`source .venv/bin/activate` first. Errors in your files are one line each on stderr, with exit",
        "code 2.",
        "",
        "## Environment",
        "",
        "| variable | meaning |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT),
        "",
    ]
    for name, text in sections:
        lines += [f"## `{name}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
