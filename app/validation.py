"""Validating job requests off the API's event loop.

Parsing and validating a request is CPU work that holds the GIL: a 47 MiB body took the event
loop 3.6 s, and a NIR file that declares a large dataset longer still, so no other request (not
even /healthz) was answered meanwhile. Large requests, and every request with a NIR network, are
therefore validated in separate processes (``python -m app.validation``), each with a time
budget and an address-space limit: a request that takes too long, or crashes its process (HDF5
is C code reading untrusted bytes), costs that process, which is replaced, and gets a 422. Small
requests without NIR are validated in a thread, where their work is bounded by their size, and
tiny ones (a few KiB) on the event loop itself, which a thread hop would cost more.

Both paths run ``check_request``, the same function the worker's parse goes through, and what is
stored for the worker is the request as it will run: a NIR network is expanded to its layers
once, here, so the worker never reads HDF5.

The processes speak length-prefixed JSON over their stdin and stdout: no pickle.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from worker.simulation.errors import FieldError, InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.parsing import loads_strict
from worker.simulation.plan import prepare_request
from worker.simulation.request import InitSpec
from worker.simulation.sweep import parse_sweep, point_groups, table_axes

log = logging.getLogger(__name__)
INLINE_MAX_BYTES = 64 * 1024
ON_LOOP_MAX_BYTES = 8 * 1024  # checked in about 0.2 ms: less than a thread hop with its wake-ups
HEADER_BYTES = 8
PIPE_PIECE_BYTES = 2**20  # a large body goes to its validation process a piece at a time
JOB, SWEEP = b"j", b"s"  # what a validation process is asked to check
READY = b"r"  # a validation process's first byte: its imports are done
START_TIMEOUT_S = 60.0  # for a validation process's imports: about a second quiet, many on a busy machine


@dataclass(frozen=True)
class Validated:
    """What the API needs of a valid request."""

    summary: dict[str, Any]  # steps, batch, neurons, neuron_steps, layers, cost
    run: bytes | None  # the request as it will run, when it differs from the body (NIR expanded)

    @property
    def steps(self) -> int:
        return int(self.summary["steps"])


def _reply_or_errors(check: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    """``check()``'s reply, or ``{"errors": [...]}`` with why ``what`` is refused."""
    try:
        return check()
    except InvalidRequest as error:
        return {"errors": [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in error.errors]}
    except (MemoryError, RecursionError):
        return {
            "errors": [{"loc": [], "msg": f"the {what} needs more memory to validate than the server allows", "type": "limit"}]
        }


def _raise_errors(reply: dict[str, Any]) -> None:
    """InvalidRequest (a 422 naming the fields) for a reply that holds errors."""
    if "errors" in reply:
        raise InvalidRequest([FieldError(tuple(e["loc"]), e["msg"], e["type"]) for e in reply["errors"]])


def check_request(body: bytes | bytearray, limits: Limits) -> dict[str, Any]:
    """Validates ``body`` completely; returns a JSON-able reply: ``{"errors": [...]}`` or the
    request's summary with ``run`` (the expanded request as text, or None)."""
    return _reply_or_errors(lambda: _request_summary(body, limits), "request")


def _request_summary(body: bytes | bytearray, limits: Limits) -> dict[str, Any]:
    loaded = loads_strict(body)
    request, plan, data = prepare_request(loaded, limits)
    assert plan.cost is not None
    return {
        "name": request.name,
        "steps": plan.steps,
        "batch": plan.batch,
        "neurons": plan.neurons,
        "neuron_steps": plan.neuron_steps,
        "layers": [{"name": layer.name, "type": layer.type, "shape": list(layer.out_shape)} for layer in plan.layers],
        "synapses": None if plan.graph is None else sum(edge.synapses for edge in plan.graph.edges),
        "record_spikes": plan.record_spikes,
        "record_live": plan.record_live,
        "cost": plan.cost.summary(),
        "warnings": plan.warnings,
        "network": network_diagram(request, plan),
        "run": None if data is loaded else json.dumps(data, separators=(",", ":")),
    }


def _weight_text(weight: Any) -> str:
    """An edge's weight as a diagram labels it: the number, the distribution, or 'per synapse'."""
    if weight is None:
        return "PyTorch's init"
    if isinstance(weight, (int, float)):
        return f"{weight:g}"
    if isinstance(weight, InitSpec):
        return {
            "normal": f"normal({weight.mean:g}, {weight.std:g})",
            "uniform": f"uniform({weight.low:g}, {weight.high:g})",
            "constant": f"{weight.value:g}",
        }[weight.init]
    return "per synapse"


def network_diagram(request: Any, plan: Any) -> dict[str, Any]:
    """The network as the viewer draws it (a NIR network as converted): its nodes (inputs, neuron
    populations and layer nodes, each with its size) and the edges between them, each with its
    connectivity, weight, delay in steps and synapse. A chain is its input, then each layer into
    the next."""
    nodes = [{"name": layer.name, "kind": "population" if layer.is_neuron else "layer", "type": layer.type,
              "size": math.prod(layer.out_shape)} for layer in plan.layers]  # fmt: skip
    if plan.graph is None:
        nodes.insert(0, {"name": "input", "kind": "input", "type": request.input.type, "size": math.prod(plan.input_shape)})
        return {"nodes": nodes, "edges": [{"from": a["name"], "to": b["name"]} for a, b in itertools.pairwise(nodes)]}
    inputs = [{"name": s.name, "kind": "input", "type": s.type, "size": s.size} for s in plan.graph.sources]
    edges = []
    for edge in plan.graph.edges:
        spec = request.network.edges[edge.index]
        rule = {key: getattr(spec, key) for key in ("k", "p") if getattr(spec, key, None) is not None}
        edges.append({
            "from": edge.source, "to": edge.target, "name": edge.name, "type": edge.type, **rule,
            "synapses": edge.synapses, "weight": _weight_text(getattr(spec, "weight", None)),
            "delay": [edge.min_delay, edge.max_delay], "synapse": spec.synapse.type, "plastic": edge.plastic,
        })  # fmt: skip
    return {"nodes": inputs + nodes, "edges": edges}


def check_sweep(body: bytes | bytearray, limits: Limits) -> dict[str, Any]:
    """Validates a sweep and every point of it; returns ``{"errors": [...]}`` or the sweep's mode,
    its points, each as the request it runs (JSON text) with its number of steps, the groups of
    points that run batched (``worker.simulation.sweep.point_groups``) and what its summary table
    needs (``table_axes``)."""
    return _reply_or_errors(lambda: _sweep_summary(body, limits), "sweep")


def _sweep_summary(body: bytes | bytearray, limits: Limits) -> dict[str, Any]:
    sweep, points = parse_sweep(body, limits)
    runs = [
        {"run": json.dumps(point.request, separators=(",", ":")), "steps": point.plan.steps, "live": bool(point.plan.record_live)}
        for point in points
    ]
    groups = point_groups(sweep, points) if sweep.batched else [[index] for index in range(len(points))]
    return {"mode": sweep.mode, "points": runs, "groups": groups, "axes": table_axes(sweep)}


def _validated(reply: dict[str, Any]) -> Validated:
    _raise_errors(reply)
    run = reply.pop("run")
    return Validated(summary=reply, run=None if run is None else run.encode())


def _refused(message: str) -> InvalidRequest:
    return InvalidRequest([FieldError((), message, "limit")])


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not start a validation process", exc_info=task.exception())


class ValidatorBusy(Exception):
    """No validation process could take the request in time (a 503): all stayed busy for the whole
    time budget, or a new one did not start."""


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready = False

    async def started(self) -> None:
        """Waits for the process's ready byte, written once its imports are done."""
        if not self.ready:
            assert self.process.stdout is not None
            if await self.process.stdout.readexactly(len(READY)) != READY:
                raise ConnectionError("a validation process wrote something else before its ready byte")
            self.ready = True

    async def ask(self, body: bytes | bytearray, kind: bytes) -> dict[str, Any]:
        """``kind`` (one byte): JOB or SWEEP."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((len(body) + 1).to_bytes(HEADER_BYTES, "little") + kind)
        view = memoryview(body)
        for start in range(0, len(body), PIPE_PIECE_BYTES):  # the transport copies what the pipe does not take
            self.process.stdin.write(view[start : start + PIPE_PIECE_BYTES])
            await self.process.stdin.drain()
        size = int.from_bytes(await self.process.stdout.readexactly(HEADER_BYTES), "little")
        return json.loads(await self.process.stdout.readexactly(size))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class Validator:
    """Validates request bodies: tiny ones on the event loop, small ones in a thread, the rest in a
    pool of processes."""

    def __init__(self, limits: Limits, processes: int = 2, timeout_s: float = 10.0, memory_bytes: int | None = None) -> None:
        self.limits = limits
        self.processes = processes
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: set[_Child] = set()

    async def check_sweep(self, body: bytes | bytearray) -> dict[str, Any]:
        """The sweep's mode and points (``check_sweep``), always in a validation process: a sweep
        validates every point, work a thread would do holding the event loop's GIL."""
        reply = await self._in_process(body, SWEEP)
        _raise_errors(reply)
        return reply

    async def check(self, body: bytes | bytearray) -> Validated:
        """The request's summary; InvalidRequest (a 422) naming the field, or ValidatorBusy. A tiny
        body is checked on the event loop, where its check costs less than a thread hop would (it
        holds the GIL either way), a small one in a thread, the rest in a validation process."""
        if len(body) <= ON_LOOP_MAX_BYTES and b'"nir"' not in body:
            return _validated(check_request(body, self.limits))
        if len(body) <= INLINE_MAX_BYTES and b'"nir"' not in body:
            return await anyio.to_thread.run_sync(lambda: _validated(check_request(body, self.limits)))
        return _validated(await self._in_process(body, JOB))

    async def _in_process(self, body: bytes | bytearray, kind: bytes) -> dict[str, Any]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.processes):
                await self._spawn()
        try:
            child = await asyncio.wait_for(self._idle.get(), self.timeout_s)
        except TimeoutError:
            raise ValidatorBusy(
                f"the server is busy validating other requests: all {self.processes} validation processes stayed busy "
                f"for {self.timeout_s:g} s"
            ) from None
        try:
            # A new process's imports are not the request's time: its budget starts once the
            # process can read it (the first large request after a start was refused on a busy machine).
            await asyncio.wait_for(child.started(), START_TIMEOUT_S)
        except TimeoutError:
            self._replace(child)
            raise ValidatorBusy(f"a new validation process took over {START_TIMEOUT_S:g} s to start") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            self._replace(child)
            log.error("a validation process ended as it started (exit code %s)", await child.process.wait())
            raise ValidatorBusy("a new validation process ended as it started (the server's log says why)") from None
        except BaseException:
            self._replace(child)
            raise
        try:
            reply = await asyncio.wait_for(child.ask(body, kind), self.timeout_s)
        except TimeoutError:
            self._replace(child)
            raise _refused(
                f"the request took longer than {self.timeout_s:g} s to validate; it is too large or too complex"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, json.JSONDecodeError):
            self._replace(child)
            code = await child.process.wait()
            log.warning("a validation process ended (exit code %s) on a request of %d bytes", code, len(body))
            raise _refused(f"the request could not be validated: its validation process ended (exit code {code})") from None
        except BaseException:  # cancelled (client gone): the child may be mid-request, never reuse it
            self._replace(child)
            raise
        self._idle.put_nowait(child)
        return reply

    def _replace(self, child: _Child) -> None:
        child.kill()
        self._children.discard(child)
        asyncio.get_running_loop().create_task(self._spawn()).add_done_callback(_log_failure)

    async def _spawn(self) -> None:
        assert self._idle is not None
        command = [
            sys.executable,
            "-m",
            "app.validation",
            "--limits",
            self.limits.model_dump_json(),
            "--parent",
            str(os.getpid()),
        ]
        if self.memory_bytes is not None:
            command += ["--memory-bytes", str(self.memory_bytes)]
        threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env={**os.environ, **threads}
        )
        child = _Child(process)
        self._children.add(child)
        self._idle.put_nowait(child)

    async def aclose(self) -> None:
        for child in list(self._children):
            child.kill()
            await child.process.wait()
        self._children.clear()
        self._idle = None


def _serve(limits: Limits) -> None:
    """The child's loop: one request in, one reply out, until its input closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply stream
    stdout.write(READY)
    stdout.flush()
    while True:
        header = stdin.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            return
        message = stdin.read(int.from_bytes(header, "little"))
        check = check_sweep if message[:1] == SWEEP else check_request
        reply = json.dumps(check(message[1:], limits), separators=(",", ":")).encode()
        stdout.write(len(reply).to_bytes(HEADER_BYTES, "little") + reply)
        stdout.flush()


def main() -> None:
    from worker.processes import die_with_parent, limit_address_space

    parser = argparse.ArgumentParser(description="spikeserve's request validation process (started by the API)")
    parser.add_argument("--limits", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--memory-bytes", type=int, default=None)
    args = parser.parse_args()
    die_with_parent(args.parent)
    limit_address_space(args.memory_bytes)
    _serve(Limits.model_validate_json(args.limits))


if __name__ == "__main__":
    main()
