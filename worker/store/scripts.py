"""The store's Lua scripts, read from ``lua/`` when the store is first imported.

Each script is its file after a prelude: the key layout (``keys.lua_prelude``: ``key.job(id)``
and the others), the constants the scripts share, and the libraries its ``-- needs:`` line names
(``lua/lib/*.lua``, each with needs of its own; ``envelope``, how a queue message names its task,
comes from ``worker.broker``). A script names its main keys in KEYS; keys it reaches from a
record (a sweep's points, an owner's sets) it builds with ``key``, from the one layout.
"""

import pathlib
import re

from worker.broker import ENVELOPE_LUA
from worker.store.keys import lua_prelude

LUA = pathlib.Path(__file__).with_name("lua")
LIVE_TTL_S = 60  # a finished job's live stream is kept this long: enough for a reader to drain it
_NEEDS = re.compile(r"^-- needs: (.+)$", re.MULTILINE)


def _libraries() -> dict[str, str]:
    found = {path.stem: path.read_text() for path in sorted((LUA / "lib").glob("*.lua"))}
    return {**found, "envelope": ENVELOPE_LUA}


def _needs(text: str) -> list[str]:
    match = _NEEDS.search(text)
    return match.group(1).split() if match else []


def _with_libraries(text: str, libraries: dict[str, str]) -> str:
    """``text`` after the libraries it needs, each once, every library after those it needs."""
    ordered: list[str] = []

    def add(name: str) -> None:
        if name not in ordered:
            for needed in _needs(libraries[name]):
                add(needed)
            ordered.append(name)

    for name in _needs(text):
        add(name)
    return "\n".join([*(libraries[name] for name in ordered), text])


def load() -> dict[str, str]:
    """Every script of ``lua/`` by its file's name, ready for ``register_script``."""
    prelude = lua_prelude() + f"local LIVE_TTL_S = {LIVE_TTL_S}\n"
    libraries = _libraries()
    scripts = {path.stem: prelude + _with_libraries(path.read_text(), libraries) for path in sorted(LUA.glob("*.lua"))}
    if not scripts:  # an install that left them out: say so at import, not at a job's first state change
        raise RuntimeError(f"the store's Lua scripts are missing from {LUA}")
    return scripts


SCRIPTS = load()
