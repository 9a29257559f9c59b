"""Reading a NIR (HDF5) file that came from an untrusted request.

HDF5 can make a reader open other files: a dataset may keep its data in *external storage* (raw
bytes of any file, read by name), a *virtual dataset* maps other files' datasets, and *external
links* and *soft links* resolve to objects elsewhere. User-defined filters run plugin code, and a
small compressed file can declare gigabytes. ``nir.read`` follows all of these, so a request could
read the server's files back as weights. Here every object is checked before anything is read:

- only hard links (a soft or external link is refused, never resolved);
- datasets stored compactly, contiguously or in chunks inside the file (no external storage, no
  virtual layout), with at most the filters h5py itself provides (deflate, shuffle, fletcher32,
  lzf);
- numeric or string data only; at most ``MAX_DIMS`` dimensions; a declared size (shape times item
  size, and the size of one chunk, which is what decompression allocates) within the caller's byte
  budget, counted over the whole file, before the data is read;
- at most ``MAX_OBJECTS`` objects, nested at most ``MAX_DEPTH`` deep (hard links can form loops).

Attributes are never read. What passes becomes the nested dict that ``nir.dict2NIRNode`` takes.
"""

import io
import math
from typing import Any

MAX_DIMS = 8
MAX_DEPTH = 16
MAX_OBJECTS = 10_000
MAX_STRING_ELEMENTS = 1_024
# Filters that ship with HDF5 or h5py and decompress only: deflate, shuffle, fletcher32, lzf.
SAFE_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
COMPACT, CONTIGUOUS, CHUNKED = 0, 1, 2


class NIRError(ValueError):
    """The graph cannot be read or represented; the message names the node and why."""


def _node_of(path: str) -> str:
    """The NIR node an HDF5 path belongs to: ``node/nodes/fc/weight`` -> ``fc``."""
    parts = path.split("/")
    names = [parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "nodes"]
    return names[-1] if names else "the graph"


def _refuse(path: str, why: str) -> NIRError:
    return NIRError(f"node {_node_of(path)!r} (HDF5 object '{path}'): {why}")


class _Budget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.objects = 0

    def take(self, path: str, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.max_bytes:
            raise _refuse(path, f"the file declares over {self.max_bytes} bytes of data in all, the limit")


def _check_dataset(dataset: Any, path: str, budget: _Budget) -> None:
    import h5py

    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if dataset.is_virtual or layout not in (COMPACT, CONTIGUOUS, CHUNKED):
        raise _refuse(path, "is a virtual dataset (data mapped from other files), which is refused")
    if dataset.external:
        raise _refuse(path, "keeps its data in external storage (another file), which is refused")
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in SAFE_FILTERS:
            raise _refuse(path, f"uses HDF5 filter {code}; only {', '.join(SAFE_FILTERS.values())} are accepted")
    shape = dataset.shape if dataset.shape is not None else ()
    if len(shape) > MAX_DIMS:
        raise _refuse(path, f"has {len(shape)} dimensions, more than {MAX_DIMS}")
    dtype = dataset.dtype
    if h5py.check_string_dtype(dtype) is not None:
        if math.prod(shape) > MAX_STRING_ELEMENTS:
            raise _refuse(path, f"holds {math.prod(shape)} strings, more than {MAX_STRING_ELEMENTS}")
        itemsize = 16  # a string's data lives in the file itself, which is bounded by the body size
    elif dtype.kind in "biuf" and dtype.fields is None and dtype.subdtype is None:
        itemsize = dtype.itemsize
    else:
        raise _refuse(path, f"has data type {dtype}; only numbers and strings are accepted")
    declared = math.prod(shape) * itemsize
    if dataset.chunks is not None:  # one chunk is decompressed whole, whatever the dataset's shape
        declared = max(declared, math.prod(dataset.chunks) * itemsize)
    budget.take(path, declared)


def _read_group(group: Any, path: str, depth: int, budget: _Budget) -> dict[str, Any]:
    import h5py

    if depth > MAX_DEPTH:
        raise _refuse(path, f"groups are nested more than {MAX_DEPTH} deep")
    out: dict[str, Any] = {}
    for name in group:
        child_path = f"{path}/{name}" if path else name
        budget.objects += 1
        if budget.objects > MAX_OBJECTS:
            raise _refuse(child_path, f"the file holds more than {MAX_OBJECTS} objects")
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):
            raise _refuse(child_path, "is a soft link, which is refused")
        if isinstance(link, h5py.ExternalLink):
            raise _refuse(child_path, "is an external link (to another file), which is refused")
        if not isinstance(link, h5py.HardLink):
            raise _refuse(child_path, f"is a link of type {type(link).__name__}, which is refused")
        item = group.get(name)
        if isinstance(item, h5py.Group):
            out[name] = _read_group(item, child_path, depth + 1, budget)
        elif isinstance(item, h5py.Dataset):
            _check_dataset(item, child_path, budget)
            value = item[()]
            out[name] = value.decode("utf8", errors="replace") if isinstance(value, bytes) else value
        else:
            raise _refuse(child_path, f"is a {type(item).__name__}, not a group or a dataset")
    return out


def read_nir_dict(data: bytes, max_bytes: int) -> dict[str, Any]:
    """The ``node`` group of a NIR file as nested dicts of arrays and strings, read safely."""
    import h5py

    try:
        file = h5py.File(io.BytesIO(data), "r")
    except Exception as error:  # h5py raises OSError and ValueError subclasses for malformed files
        raise NIRError(f"not a readable NIR file ({type(error).__name__}: {error})") from None
    with file:
        budget = _Budget(max_bytes)
        link = file.get("node", getlink=True)
        if link is None:
            raise NIRError("not a NIR file: it has no 'node' group")
        if not isinstance(link, h5py.HardLink) or not isinstance(file.get("node"), h5py.Group):
            raise _refuse("node", "must be a group stored in the file")
        try:
            return _read_group(file["node"], "node", 1, budget)
        except NIRError:
            raise
        except Exception as error:  # corrupt data inside an otherwise well-formed file
            raise NIRError(f"not a readable NIR file ({type(error).__name__}: {error})") from None
