"""Reading NIR files from untrusted requests: every HDF5 indirection that could read another
file, run plugin code or inflate memory is refused before any data is read, naming the node."""

import base64
import io
import pathlib
from collections.abc import Callable

import h5py
import nir
import numpy as np
import pytest

from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.nir_file import MAX_DEPTH, NIRError, read_nir_dict
from worker.simulation.plan import parse_request

SECRET = b"TOP-SECRET-0123456789abcdef" * 8  # 216 bytes: 54 float32 values


def valid_graph() -> nir.NIRGraph:
    weight = np.arange(15, dtype=np.float32).reshape(3, 5) / 16
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([5])}),
            "fc": nir.Affine(weight=weight, bias=np.zeros(3, dtype=np.float32)),
            "readout": nir.LI(tau=np.full(3, 0.001), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "fc"), ("fc", "readout"), ("readout", "output")],
    )


def nir_bytes(change: Callable[[h5py.Group], None] | None = None) -> bytes:
    """A valid NIR file, with ``change`` applied to the ``fc`` node's group."""
    buffer = io.BytesIO()
    nir.write(buffer, valid_graph())
    if change is not None:
        with h5py.File(buffer, "r+") as file:
            change(file["node/nodes/fc"])
    return buffer.getvalue()


@pytest.fixture
def secret(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    return path


def replace_weight(**create: object) -> Callable[[h5py.Group], None]:
    def change(group: h5py.Group) -> None:
        del group["weight"]
        group.create_dataset("weight", **create)

    return change


def external_storage(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    return replace_weight(shape=(3, 5), dtype="<f4", external=[(str(secret), 0, 60)])


def external_link(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as file:
        file["weight"] = np.frombuffer(SECRET[:60], dtype="<f4").reshape(3, 5)

    def change(group: h5py.Group) -> None:
        del group["weight"]
        group["weight"] = h5py.ExternalLink(str(other), "/weight")

    return change


def soft_link(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    def change(group: h5py.Group) -> None:
        group["stolen"] = group["weight"][()]
        del group["weight"]
        group["weight"] = h5py.SoftLink("/node/nodes/fc/stolen")

    return change


def virtual_dataset(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    other = secret.with_suffix(".vds.h5")
    with h5py.File(other, "w") as file:
        file["weight"] = np.frombuffer(SECRET[:60], dtype="<f4").reshape(3, 5)
    layout = h5py.VirtualLayout(shape=(3, 5), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(other), "weight", shape=(3, 5))

    def change(group: h5py.Group) -> None:
        del group["weight"]
        group.create_virtual_dataset("weight", layout)

    return change


def plugin_filter(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    return replace_weight(shape=(3, 5), dtype="<f4", compression=32001, allow_unknown_filter=True)


def declared_gigabytes(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    return replace_weight(shape=(50_000_000, 5), dtype="<f8", chunks=(1000, 5), compression="gzip")


def compressed_bomb(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    # 64 MB of zeros compress to about 64 KB: the declared size, not the file size, is what counts
    return replace_weight(data=np.zeros((16_000_000, 1), dtype="<f4"), compression="gzip", compression_opts=9, chunks=(2**20, 1))


def oversized_chunk(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    # a tiny dataset whose one chunk declares gigabytes: decompressing it would allocate them
    return replace_weight(shape=(3, 5), maxshape=(None, None), chunks=(2**14, 2**14), dtype="<f4", compression="gzip")


def object_dtype(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    return replace_weight(shape=(3,), dtype=h5py.ref_dtype)


def too_deep(secret: pathlib.Path) -> Callable[[h5py.Group], None]:
    def change(group: h5py.Group) -> None:
        for _ in range(MAX_DEPTH + 1):
            group = group.create_group("deeper")

    return change


INDIRECTIONS = [
    (external_storage, "keeps its data in external storage (another file), which is refused"),
    (external_link, "is an external link (to another file), which is refused"),
    (soft_link, "is a soft link, which is refused"),
    (virtual_dataset, "is a virtual dataset (data mapped from other files), which is refused"),
    (plugin_filter, "uses HDF5 filter 32001; only deflate, shuffle, fletcher32, lzf are accepted"),
    (declared_gigabytes, "declares over 1048576 bytes of data in all, the limit"),
    (compressed_bomb, "declares over 1048576 bytes of data in all, the limit"),
    (oversized_chunk, "declares over 1048576 bytes of data in all, the limit"),
    (object_dtype, "has data type object; only numbers and strings are accepted"),
    (too_deep, f"groups are nested more than {MAX_DEPTH} deep"),
]


def request_with(data: bytes) -> dict:
    return {"network": {"nir": base64.b64encode(data).decode()}, "input": {"type": "constant", "value": [1.0] * 5, "steps": 4}}


@pytest.mark.parametrize(("attack", "message"), INDIRECTIONS, ids=[attack.__name__ for attack, _ in INDIRECTIONS])
def test_each_hdf5_indirection_is_refused_naming_the_node(secret: pathlib.Path, attack: Callable, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(request_with(nir_bytes(attack(secret))), Limits(max_input_bytes=2**20))
    error = caught.value.errors[0]
    assert error.path == "network.nir"
    assert error.msg.startswith("node 'fc' (HDF5 object 'node/nodes/fc/"), error.msg
    assert message in error.msg
    assert "TOP-SECRET" not in str(caught.value)


def test_the_unchanged_file_is_read_and_runs_as_its_layers() -> None:
    request, plan = parse_request(request_with(nir_bytes()), Limits(max_input_bytes=2**20))
    assert [layer.type for layer in request.network.layers] == ["linear", "li"]
    assert plan.layers[0].arrays["weight"].tolist() == (np.arange(15, dtype=np.float32).reshape(3, 5) / 16).tolist()


def test_the_byte_budget_counts_every_dataset_of_the_file() -> None:
    data = nir_bytes()
    read_nir_dict(data, 2**20)
    with pytest.raises(NIRError, match="the file declares over 100 bytes of data in all"):
        read_nir_dict(data, 100)


def test_garbage_and_files_without_a_graph_are_clear_errors() -> None:
    with pytest.raises(NIRError, match=r"not a readable NIR file \(OSError"):
        read_nir_dict(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200, 2**20)
    empty = io.BytesIO()
    h5py.File(empty, "w").close()
    with pytest.raises(NIRError, match="not a NIR file: it has no 'node' group"):
        read_nir_dict(empty.getvalue(), 2**20)
