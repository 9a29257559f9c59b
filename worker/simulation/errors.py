"""Why a request must not run (field errors with the path of the offending field), and why a run
stopped (cancelled, failed, out of time)."""

from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    msg: str
    type: str = "value_error"

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    @property
    def line(self) -> str:
        """``path: message``, or the message alone for the request as a whole."""
        return f"{self.path}: {self.msg}" if self.loc else self.msg


class InvalidRequest(ValueError):
    """A request that must not run; ``errors`` name the offending fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.line for e in errors))


def format_loc(loc: Loc) -> str:
    """``("network", "layers", 1, "weight")`` -> ``network.layers[1].weight``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def fail(loc: Loc, msg: str, kind: str = "value_error") -> InvalidRequest:
    """One field's error, ready to raise."""
    return InvalidRequest([FieldError(tuple(loc), msg, kind)])


class Cancelled(Exception):
    """The cancel check said stop; raised between chunks (or passes, or pieces of a build)."""


class SimulationError(RuntimeError):
    """The simulation itself failed (non-finite state, unavailable device); the message says why."""


class TimeLimitExceeded(SimulationError):
    """The run took longer than its time limit; checked before every chunk."""
