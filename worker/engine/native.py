"""The engine's native code: C sources compiled on first use for the machine they run on, cached,
and loaded once per process through ctypes.

A library is built with the system C compiler (``-march=native``) into the kernel cache
(``worker.engine_options``: ``SPIKESERVE_KERNEL_CACHE``, default ``~/.cache/spikeserve``), keyed
by its source, the headers beside it and the engine's shared ones, the flags and the CPU's feature list; concurrent first uses
race harmlessly (each writes a private file and renames it into place). Without a compiler the
engine keeps its reference paths. Each kernel module declares its library (``NativeLibrary``: the
source and its functions' signatures) and loads it here.
"""

import ctypes
import functools
import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from worker.engine_options import ENGINE

log = logging.getLogger(__name__)
# -ffp-contract=off: no fused multiply-adds, so every operation rounds as PyTorch's eager ops do.
ENGINE_ROOT = pathlib.Path(__file__).parent
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-fPIC", "-shared")


@dataclass(frozen=True)
class NativeLibrary:
    source: pathlib.Path
    declare: Callable[[ctypes.CDLL], None]  # sets its functions' argtypes and restype
    without: str  # what the engine does without it, for the warning


def _cpu_features() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return ""


def build(source: pathlib.Path, compiler: str | None = None) -> pathlib.Path:
    """Compiles ``source`` (if not cached) and returns the shared library's path."""
    compiler = compiler or os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} on PATH")
    # what it may include: the headers beside it and the engine's shared ones
    headers = [header.read_text() for header in sorted({*source.parent.glob("*.h"), *ENGINE_ROOT.glob("*.h")})]
    stamp = "\0".join([source.read_text(), *headers, compiler, *FLAGS, _cpu_features()])
    target = ENGINE.kernel_cache / f"{source.stem}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        private = pathlib.Path(scratch) / target.name
        done = subprocess.run([compiler, *FLAGS, "-o", str(private), str(source), "-lm"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiling {source.name} failed:\n{done.stderr.strip()}")
        os.replace(private, target)
    return target


@functools.cache
def load(library: NativeLibrary) -> ctypes.CDLL | None:
    """The loaded library with its functions declared, or None (logged once) when it cannot be
    built here."""
    try:
        lib = ctypes.CDLL(str(build(library.source)))
    except (RuntimeError, OSError) as error:
        log.warning("%s unavailable, %s: %s", library.source.name, library.without, error)
        return None
    library.declare(lib)
    return lib
