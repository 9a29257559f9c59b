"""Simulation results and their two encodings, JSON and NPZ. Needs numpy only, so clients can
decode results without installing torch; with Neo or pynwb installed, a result also becomes a
Neo ``Block`` or an NWB file (the section "Neo and NWB").

JSON: spikes as NEST-style events (``times`` in steps, ``senders`` = flat
neuron index, ``batch``), spike ``counts`` per neuron, and dense ``voltages`` as ``{"shape",
"data"}`` with ``data`` flat in row-major order. NPZ holds the same arrays under
``<layer>/<field>`` keys plus a ``meta`` JSON string, and loads with one ``numpy.load``.
"""

import datetime
import importlib
import io
import json
import math
import pathlib
import struct
import time
import types
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

deflate_library: types.ModuleType
try:  # ISA-L's deflate: four to ten times zlib's speed on spike events, and smaller (benchmarks/RESULTS.md)
    from isal import isal_zlib as deflate_library
except ImportError:  # a platform without its wheels: zlib writes the same format, slower
    deflate_library = zlib

NPZ_COMPRESS_FROM_BYTES = 64 * 1024
# Results whose arrays hold 64 KiB to 4 MiB are stored as NPZ only; the API makes their JSON when
# asked (``Result.from_npz(...).to_json()``, the same bytes): encoding and storing it eagerly was
# most of a sweep point's cost. Smaller ones are cheap to encode, larger ones are streamed in pieces.
JSON_ON_REQUEST_BYTES = (NPZ_COMPRESS_FROM_BYTES, 4 * 2**20)
NPZ_DEFLATE_LEVEL = 1
JSON_SLICE = 2**20  # array elements converted to text at a time


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _write_array(out: io.BytesIO, array: np.ndarray) -> None:
    """``array`` as nested JSON lists (as ``tolist`` gives), its rows a slice at a time."""
    out.write(b"[")
    if array.ndim > 1:
        for index, row in enumerate(array):
            if index:
                out.write(b",")
            _write_array(out, row)
    elif array.dtype.kind in "iu" and array.flags.c_contiguous:
        import orjson  # the service's; clients only decode

        for start in range(0, array.size, JSON_SLICE):  # integers as json.dumps writes them, ten times faster
            out.write(
                (b"," if start else b"")
                + orjson.dumps(array[start : start + JSON_SLICE], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
            )
    else:
        for start in range(0, array.size, JSON_SLICE):
            out.write((b"," if start else b"") + _dumps(array[start : start + JSON_SLICE].tolist())[1:-1])
    out.write(b"]")


def _npy(array: np.ndarray) -> tuple[bytes, memoryview]:
    """``array`` in the NPY 1.0 format, as ``numpy.save`` writes it (C order): its header, and its
    data as bytes without a copy (a C-ordered array's own memory)."""
    if array.dtype.hasobject:
        raise ValueError("object arrays are never written: they would need pickle to load")
    header = f"{{'descr': {np.lib.format.dtype_to_descr(array.dtype)!r}, 'fortran_order': False, 'shape': {array.shape!r}, }}"
    # magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in a newline
    padded = header.encode("latin1") + b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded, data


def write_npz(arrays: dict[str, np.ndarray], deflate_level: int | None = None, library: Any = None) -> bytes:
    """What ``numpy.savez`` writes (a ZIP of ``<key>.npy`` entries), or with ``deflate_level``
    what ``numpy.savez_compressed`` writes, deflated at that level by ``library`` (a module with
    zlib's ``compressobj`` and ``crc32``; ``deflate_library`` unless given); for results below
    4 GiB. Written directly, each array's memory read in place: ``zipfile`` took most of a tiny
    job's encoding, and savez_compressed's zlib level 6 took five times level 1's time for a
    third less size on spike events (benchmarks/RESULTS.md)."""
    library = library or deflate_library
    out = io.BytesIO()
    directory = []
    for key, array in arrays.items():
        name, (header, data) = f"{key}.npy".encode(), _npy(array)
        crc, size = library.crc32(data, library.crc32(header)), len(header) + len(data)
        method = 0 if deflate_level is None else 8
        pieces: list[bytes | memoryview] = [header, data]
        if deflate_level is not None:
            packer = library.compressobj(deflate_level, zlib.DEFLATED, -15)  # a raw deflate stream, as ZIP holds it
            pieces = [packer.compress(header), packer.compress(data), packer.flush()]
        stored = sum(map(len, pieces))
        if max(size, stored, out.tell()) >= 2**32:
            raise ValueError("an NPZ entry of 4 GiB or more needs ZIP64")
        # version 2.0, no flags, the method, time and date of 1980-01-01 00:00, crc, sizes, name length
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, stored, size, len(name), 0)
        directory.append(b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, out.tell()) + name)
        out.write(b"PK\x03\x04" + fields + name)
        for piece in pieces:
            out.write(piece)
    start = out.tell()
    out.write(b"".join(directory))
    out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(directory), len(directory), out.tell() - start, start, 0))
    return out.getvalue()


@dataclass
class LayerResult:
    shape: tuple[int, ...]
    times: np.ndarray | None = None  # int64 (events,), only for layers whose spikes were recorded
    senders: np.ndarray | None = None
    batch: np.ndarray | None = None
    counts: np.ndarray | None = None  # int64 (neurons,), or (batch, neurons) in a batched job
    voltages: np.ndarray | None = None  # float32 (steps, [batch,] kept neurons)
    voltage_neurons: np.ndarray | None = None  # int64 flat indices kept; None: every neuron

    ARRAYS = ("times", "senders", "batch", "counts", "voltages", "voltage_neurons")

    @property
    def spike_count(self) -> int:
        return 0 if self.times is None else int(self.times.size)


@dataclass
class WeightResult:
    """A plastic edge's synapses (``pre[s] -> post[s]``, in the edge's order: by source, then
    target), their final weights, and the snapshots taken after ``steps``: (snapshots, synapses)."""

    pre: np.ndarray  # int32 (synapses,)
    post: np.ndarray  # int32 (synapses,)
    final: np.ndarray  # float32 (synapses,)
    steps: np.ndarray  # int64 (snapshots,)
    snapshots: np.ndarray  # float32 (snapshots, synapses)

    ARRAYS = ("pre", "post", "final", "steps", "snapshots")
    DTYPES: ClassVar[dict[str, type]] = {
        "pre": np.int32,
        "post": np.int32,
        "final": np.float32,
        "steps": np.int64,
        "snapshots": np.float32,
    }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "WeightResult":
        values: dict[str, np.ndarray] = {key: np.asarray(arrays[key], dtype=cls.DTYPES[key]) for key in cls.ARRAYS}
        values["snapshots"] = values["snapshots"].reshape(len(values["steps"]), len(values["final"]))
        return cls(**values)


WEIGHTS = "weights"  # NPZ keys of a plastic edge's arrays: weights/<edge>/<array> (a layer's have one slash)


@dataclass
class Result:
    job_id: str
    steps: int
    dt: float
    device: str
    batch: int | None
    layers: dict[str, LayerResult]
    stats: dict[str, float] = field(default_factory=dict)
    weights: dict[str, WeightResult] = field(default_factory=dict)  # plastic edges, by name

    # --- JSON ---------------------------------------------------------------------------------

    def to_dict(self, arrays: bool = True) -> dict[str, Any]:
        """The JSON layout as Python objects; ``arrays=False`` leaves the layers out."""
        layers = {}
        for name, layer in self.layers.items() if arrays else ():
            entry: dict[str, Any] = {"shape": list(layer.shape)}
            if layer.times is not None:
                assert layer.senders is not None and layer.batch is not None and layer.counts is not None
                entry["spikes"] = {
                    "times": layer.times.tolist(),
                    "senders": layer.senders.tolist(),
                    "batch": layer.batch.tolist(),
                }
                entry["counts"] = layer.counts.tolist()
            if layer.voltages is not None:
                entry["voltages"] = {"shape": list(layer.voltages.shape), "data": layer.voltages.ravel().tolist()}
                if layer.voltage_neurons is not None:
                    entry["voltages"]["neurons"] = layer.voltage_neurons.tolist()
            layers[name] = entry
        whole = {
            "job_id": self.job_id,
            "steps": self.steps,
            "dt": self.dt,
            "device": self.device,
            "batch": self.batch,
            "layers": layers,
        }
        if self.weights:
            whole[WEIGHTS] = {
                name: {key: getattr(weights, key).tolist() for key in WeightResult.ARRAYS} if arrays else {}
                for name, weights in self.weights.items()
            }
        return {**whole, "stats": self.stats}

    def to_json(self) -> bytes:
        """``to_dict`` as compact JSON, byte for byte, written piece by piece: arrays are converted
        a slice at a time, so a large result never exists as Python numbers all at once."""
        out = io.BytesIO()
        header = {key: value for key, value in self.to_dict(arrays=False).items() if key not in ("layers", WEIGHTS, "stats")}
        out.write(_dumps(header)[:-1] + b',"layers":{')
        for position, (name, layer) in enumerate(self.layers.items()):
            out.write((b"," if position else b"") + _dumps(name) + b':{"shape":' + _dumps(list(layer.shape)))
            if layer.times is not None:
                for key, opening in (("times", b',"spikes":{"times":'), ("senders", b',"senders":'), ("batch", b',"batch":')):
                    out.write(opening)
                    _write_array(out, getattr(layer, key))
                out.write(b'},"counts":')
                assert layer.counts is not None  # recorded with the spikes
                _write_array(out, layer.counts)
            if layer.voltages is not None:
                out.write(b',"voltages":{"shape":' + _dumps(list(layer.voltages.shape)) + b',"data":')
                _write_array(out, layer.voltages.reshape(-1))
                if layer.voltage_neurons is not None:
                    out.write(b',"neurons":')
                    _write_array(out, layer.voltage_neurons)
                out.write(b"}")
            out.write(b"}")
        out.write(b"}")
        if self.weights:
            out.write(b',"weights":{')
            for position, (name, weights) in enumerate(self.weights.items()):
                out.write((b"," if position else b"") + _dumps(name) + b":{")
                for index, key in enumerate(WeightResult.ARRAYS):
                    out.write((b"," if index else b"") + _dumps(key) + b":")
                    _write_array(out, getattr(weights, key))
                out.write(b"}")
            out.write(b"}")
        out.write(b',"stats":' + _dumps(self.stats) + b"}")
        return out.getvalue()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        layers = {}
        for name, entry in data["layers"].items():
            layer = LayerResult(shape=tuple(entry["shape"]))
            if "spikes" in entry:
                for key in ("times", "senders", "batch"):
                    setattr(layer, key, np.asarray(entry["spikes"][key], dtype=np.int64))
                layer.counts = np.asarray(entry["counts"], dtype=np.int64)
            if "voltages" in entry:
                voltages = entry["voltages"]
                layer.voltages = np.asarray(voltages["data"], dtype=np.float32).reshape(voltages["shape"])
                if "neurons" in voltages:
                    layer.voltage_neurons = np.asarray(voltages["neurons"], dtype=np.int64)
            layers[name] = layer
        weights = {name: WeightResult.from_arrays(entry) for name, entry in data.get(WEIGHTS, {}).items()}
        return cls(
            data["job_id"], data["steps"], data["dt"], data["device"], data.get("batch"), layers, data.get("stats", {}), weights
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Result":
        return cls.from_dict(json.loads(raw))

    def spike_summary(self) -> dict[str, dict[str, float]]:
        """Per layer whose spikes were recorded: the number of spikes and the mean rate per
        neuron in Hz (over every batch entry and the whole run)."""
        seconds = self.steps * self.dt * (self.batch or 1)
        return {
            name: {"spikes": layer.spike_count, "rate_hz": layer.spike_count / (math.prod(layer.shape) * seconds)}
            for name, layer in self.layers.items()
            if layer.times is not None
        }

    # --- Neo and NWB (optional extras) -------------------------------------------------------------

    def to_neo(self, layers: Iterable[str] | None = None) -> Any:
        """A ``neo.Block`` of spike trains and voltages (``pip install 'spikeserve[neo]'``); see
        ``to_neo`` below."""
        return to_neo(self, layers)

    def to_nwb(self, path: str | pathlib.Path | None = None, **options: Any) -> Any:
        """The result as a ``pynwb.NWBFile`` (``pip install 'spikeserve[nwb]'``), written to
        ``path`` if given; see ``to_nwb`` below for its layout and options."""
        return to_nwb(self, **options) if path is None else write_nwb(self, path, **options)

    # --- NPZ ----------------------------------------------------------------------------------

    @property
    def array_bytes(self) -> int:
        """The bytes of every recorded array together."""
        layers = sum(
            getattr(layer, key).nbytes
            for layer in self.layers.values()
            for key in LayerResult.ARRAYS
            if getattr(layer, key) is not None
        )
        return layers + sum(getattr(w, key).nbytes for w in self.weights.values() for key in WeightResult.ARRAYS)

    @property
    def json_on_request(self) -> bool:
        """Whether the store keeps this result as NPZ only (see JSON_ON_REQUEST_BYTES)."""
        low, high = JSON_ON_REQUEST_BYTES
        return low <= self.array_bytes < high

    def to_npz(self) -> bytes:
        meta = {key: value for key, value in self.to_dict(arrays=False).items() if key != "layers"}
        meta["layers"] = {name: {"shape": list(layer.shape)} for name, layer in self.layers.items()}
        arrays = {"meta": np.asarray(json.dumps(meta))}
        for name, layer in self.layers.items():
            for key in LayerResult.ARRAYS:
                value = getattr(layer, key)
                if value is not None:
                    arrays[f"{name}/{key}"] = value
        for name, weights in self.weights.items():
            for key in WeightResult.ARRAYS:
                arrays[f"{WEIGHTS}/{name}/{key}"] = getattr(weights, key)
        # compression pays for itself on large results only; on small ones zlib is most of the cost
        small = sum(array.nbytes for array in arrays.values()) < NPZ_COMPRESS_FROM_BYTES
        return write_npz(arrays, None if small else NPZ_DEFLATE_LEVEL)

    @classmethod
    def from_npz(cls, raw: bytes) -> "Result":
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            layers = {name: LayerResult(shape=tuple(entry["shape"])) for name, entry in meta["layers"].items()}
            weights: dict[str, dict[str, np.ndarray]] = {name: {} for name in meta.get(WEIGHTS, {})}
            for key in npz.files:
                if key == "meta":
                    continue
                name, _, field_name = key.rpartition("/")
                if key.startswith(f"{WEIGHTS}/") and name.count("/"):  # weights/<edge>/<array>; an edge's name may hold "/"
                    weights[name.partition("/")[2]][field_name] = npz[key]
                else:
                    setattr(layers[name], field_name, npz[key])
        return cls(
            meta["job_id"], meta["steps"], meta["dt"], meta["device"], meta.get("batch"), layers, meta.get("stats", {}),
            {name: WeightResult.from_arrays(arrays) for name, arrays in weights.items()},
        )  # fmt: skip


# --- tables -----------------------------------------------------------------------------------------


def table_cell(value: Any) -> Any:
    """A table value as a CSV or text cell: empty for none, JSON for lists and objects."""
    return "" if value is None else value if isinstance(value, (str, int, float)) else json.dumps(value)


def write_csv(out: Any, columns: list[str], rows: list[list[Any]]) -> None:
    """RFC 4180 CSV of a table (a sweep's summary) into the text stream ``out``."""
    import csv

    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([table_cell(value) for value in row] for row in rows)


# --- live chunks ----------------------------------------------------------------------------------

LIVE_MAX_EVENTS = 10_000  # per layer and chunk in a job's event stream; above it, every k-th event


@dataclass
class LiveSpikes:
    """One layer's spikes of one chunk as the event stream carries them: the events (every
    ``every``-th of the chunk's ``count``, in the result's order) and their total."""

    times: np.ndarray
    senders: np.ndarray
    batch: np.ndarray
    count: int
    every: int = 1


@dataclass
class LiveChunk:
    """The spikes of steps ``[start, stop)`` of a running job, for the layers in ``record.live``."""

    start: int
    stop: int
    steps: int
    dt: float
    layers: dict[str, LiveSpikes]
    finished_at: float  # Unix time when the chunk's simulation finished

    @classmethod
    def of(
        cls, start: int, stop: int, steps: int, dt: float, events: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> "LiveChunk":
        """From each layer's chunk events ``(times, batch, senders)``, thinned to LIVE_MAX_EVENTS."""
        finished_at = time.time()
        layers = {}
        for name, (times, batch, senders) in events.items():
            every = max(1, -(-times.size // LIVE_MAX_EVENTS))
            layers[name] = LiveSpikes(times[::every], senders[::every], batch[::every], int(times.size), every)
        return cls(start, stop, steps, dt, layers, finished_at)

    def to_json(self) -> bytes:
        layers = {
            name: {
                "times": spikes.times.tolist(),
                "senders": spikes.senders.tolist(),
                "batch": spikes.batch.tolist(),
                "count": spikes.count,
                "every": spikes.every,
            }
            for name, spikes in self.layers.items()
        }
        header = {"start": self.start, "stop": self.stop, "steps": self.steps, "dt": self.dt, "finished_at": self.finished_at}
        return _dumps({**header, "layers": layers})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LiveChunk":
        layers = {
            name: LiveSpikes(
                times=np.asarray(entry["times"], dtype=np.int64),
                senders=np.asarray(entry["senders"], dtype=np.int64),
                batch=np.asarray(entry["batch"], dtype=np.int64),
                count=entry["count"],
                every=entry["every"],
            )
            for name, entry in data["layers"].items()
        }
        return cls(data["start"], data["stop"], data["steps"], data["dt"], layers, data["finished_at"])


# --- Neo and NWB ----------------------------------------------------------------------------------
# A result in the formats neuroscientists analyse with: a Neo ``Block`` (``SpikeTrain``s and
# ``AnalogSignal``s, which Elephant's analyses take as they are) and an NWB file (written by
# pynwb). Both libraries are optional extras, imported on first use: ``pip install
# 'spikeserve[neo]'`` or ``'spikeserve[nwb]'``. Times are in seconds: a spike of step ``t`` is at
# ``t * dt``, and a run of ``steps`` steps covers ``[0, steps * dt)``. Voltages are in the model's
# own unit (dimensionless for the LIF family, mV for Izhikevich), which the result does not carry;
# both formats say so.

VOLTAGE_UNIT = "the model's own voltage unit (dimensionless for the LIF family, mV for Izhikevich)"
EXTRAS = {"neo": "neo", "quantities": "neo", "pynwb": "nwb", "hdmf": "nwb"}  # module: the extra installing it


def _library(module: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed: pip install 'spikeserve[{EXTRAS[module]}]'") from error


def missing_library(module: str) -> str | None:
    """A line saying how to install ``module``'s extra if it is not installed, else None."""
    try:
        _library(module)
    except ImportError as error:
        return str(error)
    return None


def _chosen(result: "Result", layers: Iterable[str] | None) -> dict[str, LayerResult]:
    """The layers asked for (default: every layer with recorded spikes or voltages), refusing
    names the result does not have or holds nothing of."""
    recorded = {name: layer for name, layer in result.layers.items() if layer.times is not None or layer.voltages is not None}
    if layers is None:
        return recorded
    chosen = {}
    for name in layers:
        if name not in recorded:
            known = ", ".join(recorded) or "none"
            raise ValueError(f"layer {name!r} has no recorded spikes or voltages in this result (recorded: {known})")
        chosen[name] = recorded[name]
    return chosen


def _entries(result: "Result") -> range:
    return range(result.batch or 1)


def spike_trains(layer: LayerResult, entry: int, dt: float) -> Iterator[tuple[int, np.ndarray]]:
    """``(neuron, its spike times in seconds, ascending)`` for every neuron of ``layer`` in batch
    entry ``entry``, silent neurons included."""
    assert layer.times is not None and layer.senders is not None and layer.batch is not None
    mine = layer.batch == entry
    times, senders = layer.times[mine], layer.senders[mine]
    order = np.lexsort((times, senders))
    seconds, senders = times[order] * dt, senders[order]
    bounds = np.searchsorted(senders, np.arange(int(np.prod(layer.shape)) + 1))
    for neuron in range(bounds.size - 1):
        yield neuron, seconds[bounds[neuron] : bounds[neuron + 1]]


def _voltages_of(result: "Result", layer: LayerResult, entry: int) -> np.ndarray:
    """``(steps, kept neurons)`` of batch entry ``entry``."""
    assert layer.voltages is not None
    return layer.voltages[:, entry, :] if result.batch is not None else layer.voltages


def _kept(layer: LayerResult) -> np.ndarray:
    assert layer.voltages is not None
    return layer.voltage_neurons if layer.voltage_neurons is not None else np.arange(layer.voltages.shape[-1])


# --- Neo ------------------------------------------------------------------------------------------


def to_neo(result: "Result", layers: Iterable[str] | None = None) -> Any:
    """The result as a ``neo.Block``: a ``Segment`` per batch entry (one for an unbatched job)
    holding a ``SpikeTrain`` per neuron of each layer whose spikes were recorded (silent neurons
    included, so rates average over the whole population) and an ``AnalogSignal`` per layer whose
    voltages were recorded (a channel per kept neuron, its index in the array annotation
    ``neuron``); and a ``Group`` per layer gathering its trains and signals over the segments.
    Each train is annotated with its ``layer``, ``neuron`` (flat index) and ``batch`` entry."""
    neo, pq = _library("neo"), _library("quantities")
    from neo.core.spiketrainlist import SpikeTrainList

    chosen = _chosen(result, layers)
    start, stop, rate = 0 * pq.s, result.steps * result.dt * pq.s, (1 / result.dt) * pq.Hz
    block = neo.Block(name=result.job_id, description=f"spikeserve job {result.job_id}", file_origin="spikeserve")
    block.annotate(dt_s=result.dt, steps=result.steps, device=result.device)
    groups = {name: neo.Group(name=name, layer=name, shape=list(layer.shape)) for name, layer in chosen.items()}
    block.groups.extend(groups.values())
    trains_of: dict[str, list[Any]] = {name: [] for name in chosen}
    for entry in _entries(result):
        segment = neo.Segment(name=f"batch {entry}" if result.batch is not None else "run", index=entry)
        block.segments.append(segment)
        trains = []
        for name, layer in chosen.items():
            if layer.times is not None:
                mine = [
                    neo.SpikeTrain(
                        times * pq.s,
                        t_start=start,
                        t_stop=stop,
                        sampling_rate=rate,
                        name=f"{name}[{neuron}]",
                        layer=name,
                        neuron=neuron,
                        batch=entry,
                    )
                    for neuron, times in spike_trains(layer, entry, result.dt)
                ]
                trains.extend(mine)
                trains_of[name].extend(mine)
            if layer.voltages is not None:
                signal = neo.AnalogSignal(
                    _voltages_of(result, layer, entry),
                    units=pq.dimensionless,
                    sampling_period=result.dt * pq.s,
                    t_start=start,
                    name=f"{name} voltage",
                    array_annotations={"neuron": _kept(layer)},
                    layer=name,
                    batch=entry,
                    voltage_unit=VOLTAGE_UNIT,
                )
                segment.analogsignals.append(signal)
                groups[name].add(signal)
        # Built whole: appending to Neo's lists one by one checks each against all before it
        # (quadratic: 11 s for 10,000 trains).
        for train in trains:
            train.segment = segment
        segment.spiketrains = SpikeTrainList(items=trains, parent=segment)
    for name, trains in trains_of.items():
        groups[name].spiketrains = SpikeTrainList(items=trains)
    block.check_relationships()
    return block


# --- NWB ------------------------------------------------------------------------------------------


def _units_table(result: "Result", chosen: dict[str, LayerResult]) -> Any:
    """NWB's ``units`` table, built column by column (``add_unit`` costs 0.2 ms a row): a row per
    neuron and batch entry of each spiking layer, with its ``layer``, ``neuron`` and ``batch``."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    layer_of, neuron_of, batch_of, trains = [], [], [], []
    for entry in _entries(result):
        for name, layer in chosen.items():
            if layer.times is None:
                continue
            for neuron, times in spike_trains(layer, entry, result.dt):
                layer_of.append(name)
                neuron_of.append(neuron)
                batch_of.append(entry)
                trains.append(times)
    if not trains:
        return None
    spike_times = VectorData(name="spike_times", description="spike times (s)", data=np.concatenate(trains))
    ends = np.cumsum([times.size for times in trains])
    seconds = result.steps * result.dt
    observed = VectorData(
        name="obs_intervals", description="the simulated time (s)", data=np.tile([0.0, seconds], (len(trains), 1))
    )
    columns = [
        spike_times,
        VectorIndex(name="spike_times_index", data=ends, target=spike_times),
        observed,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, len(trains) + 1), target=observed),
        VectorData(name="layer", description="the network layer (population) of the neuron", data=layer_of),
        VectorData(name="neuron", description="the neuron's flat index in its layer", data=np.asarray(neuron_of)),
    ]
    if result.batch is not None:
        columns.append(VectorData(name="batch", description="the batch entry", data=np.asarray(batch_of)))
    return Units(name="units", description="simulated neurons", id=np.arange(len(trains)), columns=columns)


def to_nwb(result: "Result", session_start_time: datetime.datetime | None = None, layers: Iterable[str] | None = None) -> Any:
    """The result as a ``pynwb.NWBFile``: spikes in its ``units`` table (a row per neuron of each
    spiking layer and batch entry, silent ones included, with ``layer``, ``neuron`` and ``batch``
    columns and the run as observation interval), each recorded voltage as a ``TimeSeries`` in
    ``acquisition`` named ``<layer> voltage`` (dimensions: time, [batch,] kept neuron; the kept
    neurons' indices in its ``comments``, as JSON), and each plastic edge's synapses and weights
    in the processing module ``plasticity``: a table ``<edge> synapses`` (``pre``, ``post``,
    ``final_weight``) and, if snapshots were taken, a ``TimeSeries`` ``<edge> weights`` (a
    snapshot after step s at (s + 1) * dt, the end of that step).
    ``session_start_time``: when the simulation started (default: now)."""
    pynwb = _library("pynwb")
    _library("hdmf")
    from hdmf.common import DynamicTable, VectorData

    chosen = _chosen(result, layers)
    started = session_start_time or datetime.datetime.now(datetime.timezone.utc)
    nwb = pynwb.NWBFile(
        session_description=f"spikeserve simulation: {result.steps} steps of {result.dt} s on {result.device}",
        identifier=result.job_id or str(uuid.uuid4()),
        session_start_time=started,
        source_script="spikeserve",
        source_script_file_name="spikeserve",
    )
    units = _units_table(result, chosen)
    if units is not None:
        nwb.units = units
    for name, layer in chosen.items():
        if layer.voltages is not None:
            dimensions = "time, batch entry, neuron" if result.batch is not None else "time, neuron"
            nwb.add_acquisition(
                pynwb.TimeSeries(
                    name=f"{name} voltage",
                    data=layer.voltages,
                    unit=VOLTAGE_UNIT,
                    rate=1 / result.dt,
                    starting_time=0.0,
                    description=f"membrane voltage of layer {name!r}; dimensions: {dimensions}",
                    comments=json.dumps({"layer": name, "neurons": _kept(layer).tolist()}),
                )
            )
    if result.weights:
        plasticity = nwb.create_processing_module("plasticity", "the weights of the plastic edges")
        for edge, weights in result.weights.items():
            plasticity.add(
                DynamicTable(
                    name=f"{edge} synapses",
                    description=f"the synapses of plastic edge {edge!r} and their final weights",
                    id=np.arange(weights.final.size),
                    columns=[
                        VectorData(name="pre", description="source neuron (flat index)", data=weights.pre),
                        VectorData(name="post", description="target neuron (flat index)", data=weights.post),
                        VectorData(name="final_weight", description="the weight at the end of the run", data=weights.final),
                    ],
                )
            )
            if weights.steps.size:
                plasticity.add(
                    pynwb.TimeSeries(
                        name=f"{edge} weights",
                        data=weights.snapshots,
                        unit="the edge's weight unit",
                        timestamps=((weights.steps + 1) * result.dt).astype(np.float64),  # the end of each step
                        description=f"snapshots of the weights of {edge!r}, a column per synapse of '{edge} synapses'",
                    )
                )
    return nwb


def write_nwb(result: "Result", path: str | pathlib.Path, **options: Any) -> Any:
    """``to_nwb(result, **options)`` written to ``path`` (HDF5); returns the ``NWBFile``."""
    pynwb = _library("pynwb")
    nwb = to_nwb(result, **options)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return nwb
