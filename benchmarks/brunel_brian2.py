"""Runs a Brian2 script of Brunel's network (the reference script that issue 15 measured Brian2
with, ``brian2_brunel.py``) under Brian2's own interpreter, for ``benchmarks/brunel.py``:

    BRIAN2_PYTHON benchmarks/brunel_brian2.py SCRIPT --mode cpp --workdir DIR --out RESULT.json [...]

The script's analysis calls ``min(0.1, T / 2)`` after ``from brian2 import *``, which binds
Brian2's ``min`` (numpy's, whose second argument is an axis) and fails with numpy 2.5; here the
star import yields Python's ``min``. The script's own timings start after this file imported
Brian2, so the import time is measured here and added to the result as ``t_import``.
This file runs under Brian2's Python (3.13 or later) and imports nothing of spikeserve.
"""

import builtins
import json
import runpy
import sys
import time

started = time.perf_counter()
import brian2  # noqa: E402

brian2.min = builtins.min  # what `from brian2 import *` gives the script
imported = time.perf_counter() - started

script, *arguments = sys.argv[1:]
out = arguments[arguments.index("--out") + 1]
sys.argv = [script, *arguments]
runpy.run_path(script, run_name="__main__")
with open(out) as file:
    result = json.load(file)
result["t_import"] = imported
result["t_total"] += imported
with open(out, "w") as file:
    json.dump(result, file, indent=1)
