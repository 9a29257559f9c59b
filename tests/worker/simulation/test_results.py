"""Results encode to JSON and NPZ and decode back to the same arrays."""

import io
import json
import zipfile
import zlib
from typing import Any

import numpy as np
import pytest

from tests.helpers import assert_same_recordings
from worker.simulation import results as results_module
from worker.simulation.results import LayerResult, Result, WeightResult, deflate_library, write_npz


def sample(batched: bool) -> Result:
    rng = np.random.default_rng(0)
    events = np.sort(rng.integers(0, 50, size=40))
    counts = rng.integers(0, 9, size=(3, 6) if batched else (6,))
    voltages = rng.standard_normal((50, 3, 2) if batched else (50, 2)).astype(np.float32)
    return Result(
        job_id="j1",
        steps=50,
        dt=0.001,
        device="cpu",
        batch=3 if batched else None,
        layers={
            "hidden.1": LayerResult(
                shape=(2, 3),
                times=events.astype(np.int64),
                senders=rng.integers(0, 6, size=40).astype(np.int64),
                batch=rng.integers(0, 3 if batched else 1, size=40).astype(np.int64),
                counts=counts.astype(np.int64),
                voltages=voltages,
                voltage_neurons=np.array([1, 4], dtype=np.int64),
            ),
            "readout": LayerResult(shape=(4,), voltages=np.linspace(-1, 1, 200, dtype=np.float32).reshape(50, 4)),
            "silent": LayerResult(
                shape=(2,),
                times=np.zeros(0, np.int64),
                senders=np.zeros(0, np.int64),
                batch=np.zeros(0, np.int64),
                counts=np.zeros(2, np.int64),
            ),
        },
        stats={"wall_s": 0.5, "neuron_steps": 900},
    )


def assert_same(a: Result, b: Result) -> None:
    assert (a.job_id, a.steps, a.dt, a.device, a.batch, a.stats) == (b.job_id, b.steps, b.dt, b.device, b.batch, b.stats)
    assert_same_recordings(a, b)


@pytest.mark.parametrize("batched", [False, True])
def test_json_round_trip(batched: bool) -> None:
    result = sample(batched)
    assert_same(Result.from_json(result.to_json()), result)


@pytest.mark.parametrize("batched", [False, True])
def test_npz_round_trip(batched: bool) -> None:
    result = sample(batched)
    assert_same(Result.from_npz(result.to_npz()), result)


def test_npz_loads_with_one_numpy_load_and_no_pickle() -> None:
    npz = np.load(io.BytesIO(sample(False).to_npz()), allow_pickle=False)
    assert np.array_equal(npz["hidden.1/voltages"], sample(False).layers["hidden.1"].voltages)
    assert json.loads(str(npz["meta"]))["steps"] == 50


def test_json_layout_is_the_documented_one() -> None:
    data = json.loads(sample(False).to_json())
    assert set(data) == {"job_id", "steps", "dt", "device", "batch", "layers", "stats"}
    layer = data["layers"]["hidden.1"]
    assert set(layer) == {"shape", "spikes", "counts", "voltages"}
    assert set(layer["spikes"]) == {"times", "senders", "batch"}
    assert layer["voltages"]["shape"] == [50, 2] and len(layer["voltages"]["data"]) == 100
    assert "spikes" not in data["layers"]["readout"]


def test_float32_voltages_survive_json_exactly() -> None:
    values = np.array([[0.1, 1 / 3, -2.5e-8, 3.4e38]], dtype=np.float32)
    result = Result("j", 1, 0.001, "cpu", None, {"v": LayerResult(shape=(4,), voltages=values)})
    assert np.array_equal(Result.from_json(result.to_json()).layers["v"].voltages, values)


@pytest.mark.parametrize("batched", [False, True])
def test_json_is_written_in_slices_identical_to_one_dump(batched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.simulation.results

    result = sample(batched)
    whole = json.dumps(result.to_dict(), separators=(",", ":"), allow_nan=False).encode()
    assert result.to_json() == whole
    monkeypatch.setattr(worker.simulation.results, "JSON_SLICE", 7)  # many slices per array, some empty arrays
    assert result.to_json() == whole


NPZ_ARRAYS = {
    "meta": np.asarray(json.dumps({"job": "é", "steps": 3})),
    "a/times": np.arange(7, dtype=np.int64),
    "a/voltages": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
    "a/empty": np.zeros((0, 5), dtype=np.int64),
    "b/transposed": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # not C-contiguous
    "b/scalar": np.asarray(2.5),
    "long/" + "x" * 80: np.ones(3, dtype=np.uint8),  # a header that needs more padding
}


def test_the_direct_npz_writer_equals_numpys_savez_entry_by_entry() -> None:
    ours = np.load(io.BytesIO(write_npz(NPZ_ARRAYS)), allow_pickle=False)
    reference_bytes = io.BytesIO()
    np.savez(reference_bytes, **NPZ_ARRAYS)
    reference = np.load(io.BytesIO(reference_bytes.getvalue()), allow_pickle=False)
    assert ours.files == reference.files == list(NPZ_ARRAYS)
    for key in NPZ_ARRAYS:
        assert ours[key].dtype == reference[key].dtype and ours[key].shape == reference[key].shape
        assert np.array_equal(ours[key], reference[key])


def test_the_direct_npz_writer_writes_what_zipfile_and_numpy_save_would() -> None:
    with zipfile.ZipFile(io.BytesIO(write_npz(NPZ_ARRAYS))) as archive:
        assert archive.testzip() is None, "every entry's CRC matches"
        for key, array in NPZ_ARRAYS.items():
            saved = io.BytesIO()
            np.save(saved, array.copy(order="C"), allow_pickle=False)  # ours is always C order
            assert archive.read(f"{key}.npy") == saved.getvalue(), key


def test_the_direct_npz_writer_refuses_object_arrays() -> None:
    with pytest.raises(ValueError, match="pickle"):
        write_npz({"bad": np.asarray([{}], dtype=object)})


def test_results_are_deflated_by_isa_l() -> None:
    assert deflate_library.__name__ == "isal.isal_zlib", "installed with the service: zlib is the fallback only"


@pytest.mark.parametrize("library", [deflate_library, zlib], ids=["isal", "zlib"])
def test_the_compressed_npz_loads_like_numpys_and_is_smaller(library: Any) -> None:
    rng = np.random.default_rng(1)
    arrays = {**NPZ_ARRAYS, "big/times": np.sort(rng.integers(0, 10_000, 50_000))}
    compressed = write_npz(arrays, deflate_level=1, library=library)
    with zipfile.ZipFile(io.BytesIO(compressed)) as archive:
        assert archive.testzip() is None and {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    loaded = np.load(io.BytesIO(compressed), allow_pickle=False)
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array)
    assert len(compressed) < len(write_npz(arrays)) / 2


def test_integer_arrays_are_written_as_json_dumps_writes_them() -> None:
    result = sample(True)
    result.layers["hidden.1"].counts = np.asfortranarray(result.layers["hidden.1"].counts)  # not C-contiguous: the slow path
    assert result.to_json() == json.dumps(result.to_dict(), separators=(",", ":")).encode()
    big = sample(False)
    big.layers["hidden.1"].times = np.arange(3 * results_module.JSON_SLICE, dtype=np.int64)  # several slices
    big.layers["hidden.1"].senders = big.layers["hidden.1"].batch = np.zeros(3 * results_module.JSON_SLICE, dtype=np.int64)
    assert big.to_json() == json.dumps(big.to_dict(), separators=(",", ":")).encode()


@pytest.mark.parametrize("batched", [False, True])
def test_json_made_from_the_npz_is_the_json_of_the_result(batched: bool) -> None:
    """The API makes a mid-sized result's JSON from its NPZ: the bytes the worker would have stored."""
    result = sample(batched)
    result.stats = {"wall_s": 0.012345, "neuron_steps": 300, "neuron_steps_per_s": 24301.7}
    assert Result.from_npz(result.to_npz()).to_json() == result.to_json()


def test_mid_sized_results_are_kept_as_npz_only() -> None:
    low, high = results_module.JSON_ON_REQUEST_BYTES
    result = sample(False)
    assert not result.json_on_request, "small: its JSON is cheap to store"
    layer = result.layers["hidden.1"]
    layer.times = layer.senders = layer.batch = np.zeros(low // 24 + 1, dtype=np.int64)
    assert result.json_on_request
    layer.times = layer.senders = layer.batch = np.zeros(high // 24 + 1, dtype=np.int64)
    assert not result.json_on_request, "large: streamed in pieces, so stored"


def plastic_sample() -> Result:
    """A result with two plastic edges' weights, one named with characters a layer's name may not hold."""
    rng = np.random.default_rng(2)
    result = sample(False)

    def weights(synapses: int, snapshots: int) -> WeightResult:
        final = rng.random(synapses).astype(np.float32)
        return WeightResult(
            pre=rng.integers(0, 9, synapses).astype(np.int32),
            post=rng.integers(0, 9, synapses).astype(np.int32),
            final=final,
            steps=np.arange(snapshots, dtype=np.int64) * 10 + 9,
            snapshots=rng.random((snapshots, synapses)).astype(np.float32),
        )

    result.weights = {"in->P": weights(7, 3), "E/E learning": weights(4, 0)}
    return result


def test_plastic_weights_survive_json_and_npz() -> None:
    result = plastic_sample()
    assert_same(Result.from_json(result.to_json()), result)
    assert_same(Result.from_npz(result.to_npz()), result)
    assert json.loads(result.to_json()) == json.loads(json.dumps(result.to_dict()))


def test_plastic_weights_are_npz_entries_under_weights_and_json_under_weights() -> None:
    result = plastic_sample()
    npz = np.load(io.BytesIO(result.to_npz()), allow_pickle=False)
    assert np.array_equal(npz["weights/in->P/final"], result.weights["in->P"].final)
    assert npz["weights/E/E learning/snapshots"].shape == (0, 4)
    document = json.loads(result.to_json())
    assert list(document) == ["job_id", "steps", "dt", "device", "batch", "layers", "weights", "stats"]
    assert document["weights"]["in->P"]["steps"] == [9, 19, 29] and len(document["weights"]["in->P"]["snapshots"]) == 3
    assert "weights" not in json.loads(sample(False).to_json()), "a result without plastic edges is as before"
