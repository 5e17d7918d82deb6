"""File input and output shared by every pillar: atomic writers and the one loader of binary files.

*Writing.* A file is written to a temporary name beside its target and renamed over it only when
the writer finished without error, so the target is either the complete new file or left untouched
(never half-written). A process killed while writing leaves its temporary behind; the names say
whose it is (``.<target name>.<random>.<pid>.biomlff-tmp<suffix>``), so that a resumed run removes
the stale temporaries of its outputs (:func:`remove_stale_temporaries`) and nothing else.

*Reading.* Every ``.npz`` and HDF5 file (datasets, model files, sGDML models, MD/PIMD and training
checkpoints, H5MD trajectories) is opened through :func:`open_npz` / :func:`load_npz` or
:func:`open_h5` / :func:`h5_file`: an empty, truncated, corrupt or foreign file becomes one
:class:`~biomlff.errors.DataError` naming the file and what it should have been, never a traceback,
and a file is never unpickled except for the object arrays of sGDML models, through a restricted
unpickler that builds only arrays, numbers, strings and containers.

*Containers.* biomlff's own binary files (MD/PIMD and training checkpoints, SO3krates model files,
GDML models) are one layout, :func:`save_tree` / :func:`load_tree`: every leaf of a tree under its
path key and a JSON header with the format, version, kind and metadata.

Below every pillar: imports only NumPy, the standard library and :mod:`biomlff.errors` (h5py lazily).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BiomlffError, DataError

#: marks biomlff's temporary files (with the writer's process id before it)
TMP_TAG = ".biomlff-tmp"


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, make_parents: bool = False, fsync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on any error remove
    it, so that ``path`` is either the complete new file or untouched.

    The temporary is ``.<name>.<random>.<pid>.biomlff-tmp<suffix>`` in the target's folder (the
    rename must not cross file systems): it keeps the target's suffix (``np.savez`` and friends
    look at it). The file gets the usual permissions (0666 less the umask). ``make_parents`` creates missing
    folders (otherwise a missing folder is a DataError); ``fsync`` flushes the file to disk before
    the rename (restart files)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise DataError(f"{path}: output folder {folder} does not exist")
    # the name keeps the target's suffix last and names the writer's process, so that a resumed run
    # can tell a stale temporary of a killed writer (remove_stale_temporaries) from a live one
    suffix = f".{os.getpid()}{TMP_TAG}{path.suffix}"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    make_parents: bool = False,
    fsync: bool = False,
    **open_kwargs,
):
    """Open a temporary file beside ``path`` (``open(tmp, mode, **open_kwargs)``) and yield the file
    object; it replaces ``path`` only if the block finishes without error (:func:`atomic_path`)."""
    with atomic_path(path, make_parents=make_parents, fsync=fsync) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh


def atomic_savez(
    path: str | os.PathLike,
    arrays: dict,
    *,
    compressed: bool = False,
    fsync: bool = False,
    make_parents: bool = False,
) -> Path:
    """Write ``arrays`` ({name: array}) to the .npz file ``path`` atomically (``np.savez`` or, with
    ``compressed``, ``np.savez_compressed`` into a file object, so the name is kept as given);
    returns ``path``."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_write(path, "wb", make_parents=make_parents, fsync=fsync) as fh:
        save(fh, **arrays)
    return Path(path)


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy arrays/scalars turned into lists/Python numbers, paths into strings and
    dict keys into strings, recursively (metadata stored as JSON inside model files)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------- stale temporaries
#: characters of tempfile.mkstemp's random part (8 of them)
_RANDOM = r"[a-z0-9_]{8}"


def _temporary_pattern(target: Path) -> re.Pattern:
    """Names of temporaries of ``target``: ours (``.<name>.<random>.<pid>.biomlff-tmp<suffix>``) and
    those of biomlff before the process id was part of the name (``.<name>.<random>.tmp<suffix>``)."""
    name, suffix = re.escape(target.name), re.escape(target.suffix)
    tag = re.escape(TMP_TAG)
    return re.compile(rf"^\.{name}\.{_RANDOM}(?:\.(?P<pid>\d+){tag}|\.tmp){suffix}$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process may be writing it right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def remove_stale_temporaries(*targets: str | os.PathLike | None) -> list[Path]:
    """Remove the temporaries that :func:`atomic_path` left beside each of ``targets`` when its
    writer was killed (e.g. a checkpoint being written at SIGKILL); returns the removed paths.

    Only files named as this module names the temporaries of exactly that target are candidates,
    and one whose writer (the process id in its name) is still running on this machine is kept.
    Called when a run resumes, before it writes the same targets again."""
    removed = []
    for target in targets:
        if target is None:
            continue
        target = Path(target)
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            continue
        pattern = _temporary_pattern(target)
        for entry in folder.iterdir():
            m = pattern.match(entry.name)
            if m is None or not entry.is_file() or entry.is_symlink():
                continue
            if m.group("pid") is not None and _process_alive(int(m.group("pid"))):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


# ------------------------------------------------------------------------------- text tables
def truncate_rows(path: str | os.PathLike, step: int) -> bool:
    """Cut a text table whose rows start with a step number (an MD log) back to ``step``, before a
    run resumed from the checkpoint of that step appends to it: everything from the first row of a
    later step on goes, and so does an unfinished last line (a write interrupted by a kill); the
    header and comment lines before it stay. Rewritten atomically; returns whether it changed."""
    path = Path(path)
    if not path.is_file():
        return False
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    keep = []
    for line in lines:
        head = line.split(None, 1)
        if head and head[0].isdigit() and int(head[0]) > step:
            break
        keep.append(line)
    new = "".join(keep)
    if new == text:
        return False
    with atomic_write(path, "w") as fh:
        fh.write(new)
    return True


# ------------------------------------------------------------------------------- reading .npz
#: what a corrupt .npz raises while it is opened or read (besides DataError)
_NPZ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    NotImplementedError,  # zip entry with an unknown compression method
    RuntimeError,  # encrypted zip entry
    pickle.UnpicklingError,
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty archive
_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _not_a_zip(path: Path) -> str | None:
    """Why ``path`` cannot be an .npz archive, judged from its size and first bytes (None: a zip)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return None
    if head.startswith(_NPY_MAGIC):
        return "it is a single .npy array, not an .npz archive of named arrays"
    if head.startswith(_HDF5_MAGIC):
        return "it is an HDF5 file, not an .npz (zip) archive"
    if head[:1] == b"\x80":
        return "it is a Python pickle, which biomlff never loads (unpickling can run code)"
    return "not a zip archive (another format, or overwritten)"


class _ObjectArrayUnpickler(pickle.Unpickler):
    """Unpickles the object arrays that sgdml stores in its models (None, dicts of error numbers,
    strings) and nothing else: the only globals are NumPy's array, dtype and scalar constructors,
    so a tampered file cannot run code. (np.load's allow_pickle=True would run any pickle.)"""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
    _RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED | self._RECONSTRUCT:
            if module == "numpy.core.multiarray":
                module = "numpy._core.multiarray"  # numpy 2 moved it; the old name warns
            found = super().find_class(module, name)
            if name != "_reconstruct":
                return found

            def reconstruct(cls, *args):
                if cls is not np.ndarray:
                    raise pickle.UnpicklingError(f"refusing to build {cls!r} (only NumPy arrays)")
                return found(cls, *args)

            return reconstruct
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (only arrays, numbers, strings)")


class NpzArchive:
    """The entries of an open .npz archive (``files``, ``z[key]``, ``key in z``, ``z.get``); reading
    a missing, corrupt or non-array entry raises a DataError naming the file, the entry and what
    the file should be. Made by :func:`open_npz`."""

    def __init__(self, npz, path: Path, what: str, object_arrays: bool):
        self._npz, self.path, self.what, self._objects = npz, path, what, object_arrays
        self.files = list(npz.files)

    def __contains__(self, key) -> bool:
        return key in self.files

    def __iter__(self):
        return iter(self.files)

    def keys(self):
        return list(self.files)

    def get(self, key, default=None):
        return self[key] if key in self.files else default

    def missing(self, key: str) -> DataError:
        """The DataError for an entry ``key`` that a file of this kind must have."""
        held = ", ".join(self.files[:12]) + (", …" if len(self.files) > 12 else "")
        return DataError(
            f"{self.what} {self.path}: no entry '{key}' (the file holds {held or 'no arrays'}); "
            "is it another kind of file?"
        )

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.files:
            raise self.missing(key)
        try:
            value = self._read_object_array(key) if self._objects else None
            if value is None:
                value = self._npz[key]
        except BiomlffError:
            raise
        except _NPZ_ERRORS as exc:
            if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
                reason = "an object array, which would need unpickling (refused: it can run code)"
            elif isinstance(exc, pickle.UnpicklingError):
                reason = f"refused ({exc})"
            else:
                reason = f"corrupt data ({_error_text(exc)})"
            raise DataError(f"{self.what} {self.path}: entry '{key}': {reason}") from None
        if not isinstance(value, np.ndarray):
            raise DataError(f"{self.what} {self.path}: entry '{key}' is not a NumPy array")
        return value

    def _read_object_array(self, key: str) -> np.ndarray | None:
        """An object array read through the restricted unpickler (None: not an object array)."""
        member = key + ".npy" if key + ".npy" in self._npz.zip.namelist() else key
        with self._npz.zip.open(member) as fp:
            raw = fp
            version = np.lib.format.read_magic(raw)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(raw)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(raw)
            else:
                return None
            if not dtype.hasobject:
                return None
            value = _ObjectArrayUnpickler(raw).load()
        if not isinstance(value, np.ndarray):
            raise pickle.UnpicklingError(f"holds a {type(value).__name__}, not an array")
        return value


@contextlib.contextmanager
def open_npz(path: str | os.PathLike, what: str, *, object_arrays: bool = False) -> Iterator[NpzArchive]:
    """Open the .npz archive ``path`` that should be a ``what`` (e.g. "MD checkpoint", "dataset") and
    yield an :class:`NpzArchive`. An empty, truncated, corrupt or foreign file — whether found when
    opening or while the block reads it (BadZipFile, zlib and EOF errors, OSError, ValueError,
    KeyError, …) — becomes one DataError naming ``path`` and ``what``; BiomlffErrors of the block
    pass unchanged. FileNotFoundError if ``path`` does not exist.

    Never unpickles: whole-file pickles are refused, and object arrays too unless
    ``object_arrays`` (sGDML model files), which reads them with a restricted unpickler."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: no such file")
    if path.is_dir():
        raise DataError(f"{what} {path}: is a folder, not a file")
    reason = _not_a_zip(path)
    if reason is not None:
        raise DataError(f"{what} {path}: cannot read as .npz: {reason}")
    try:
        npz = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        if isinstance(exc, PermissionError):
            raise
        raise DataError(
            f"{what} {path}: cannot read as .npz: truncated or corrupt zip archive ({_error_text(exc)})"
        ) from None
    try:
        yield NpzArchive(npz, path, what, object_arrays)
    except BiomlffError:
        raise
    except _NPZ_ERRORS as exc:
        raise DataError(f"{what} {path}: corrupt, or another kind of file ({_error_text(exc)})") from None
    finally:
        npz.close()


def load_npz(path: str | os.PathLike, what: str, *, object_arrays: bool = False) -> dict[str, np.ndarray]:
    """All arrays of the .npz archive ``path`` (a ``what``), read completely: {name: array}. Errors
    as :func:`open_npz`."""
    with open_npz(path, what, object_arrays=object_arrays) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------- reading HDF5
#: what h5py raises for corrupt content while a file is read (besides DataError)
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, EOFError)


def _not_hdf5(path: Path) -> str | None:
    """Why ``path`` cannot be an HDF5 file, from its size and signature (at 0, 512, 1024, … bytes:
    HDF5 allows a user block before it); None if the signature is there."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(_HDF5_MAGIC) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
                return None
            offset = 512 if offset == 0 else 2 * offset
        fh.seek(0)
        head = fh.read(4)
    kind = " (it is a zip/.npz archive)" if head.startswith(b"PK") else ""
    return f"not an HDF5 file{kind}"


def h5_file(path: str | os.PathLike, what: str, mode: str = "r"):
    """Open the HDF5 file ``path`` (a ``what``, e.g. "H5MD trajectory") with h5py in ``mode`` ('r' or
    'a' for an existing file); an empty, foreign, truncated or corrupt file is a DataError naming
    ``path`` and ``what``. FileNotFoundError if it does not exist (mode 'r'). The caller closes it;
    :func:`open_h5` also converts errors met while reading."""
    import h5py

    path = Path(path)
    if mode == "r" and not path.exists():
        raise FileNotFoundError(f"{what} {path}: no such file")
    if path.exists():
        if path.is_dir():
            raise DataError(f"{what} {path}: is a folder, not a file")
        reason = _not_hdf5(path)
        if reason is not None:
            raise DataError(f"{what} {path}: cannot read as HDF5: {reason}")
    try:
        return h5py.File(path, mode)
    except PermissionError:
        raise
    except _H5_ERRORS as exc:
        raise DataError(f"{what} {path}: cannot read as HDF5: {_error_text(exc)}") from None


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str, mode: str = "r"):
    """:func:`h5_file` as a context manager that also turns h5py's errors for corrupt content met
    inside the block (OSError, KeyError, ValueError, …) into a DataError naming ``path`` and ``what``;
    BiomlffErrors of the block pass unchanged. The file is closed on exit."""
    f = h5_file(path, what, mode)
    try:
        yield f
    except BiomlffError:
        raise
    except _H5_ERRORS as exc:
        raise DataError(f"{what} {path}: corrupt, or another kind of file ({_error_text(exc)})") from None
    finally:
        f.close()


# ------------------------------------------------------------------------------- tree containers
#: the one container layout of biomlff's own binary files (MD/PIMD and training checkpoints, model
#: files, GDML models): the format name and version in each file's header
TREE_FORMAT = "biomlff-tree"
TREE_VERSION = 1
#: the entry that holds a container's header (UTF-8 JSON as uint8 bytes)
TREE_HEADER = "__meta__"
#: names np.savez takes as its own arguments: they cannot be entry names at the root
_SAVEZ_ARGUMENTS = ("file", "allow_pickle")
_SCALARS = {bool: "bool", int: "int", float: "float", complex: "complex", str: "str"}


def _escape(key: str) -> str:
    """A dict key as one path component ('/' separates components, so it and '%' are escaped)."""
    return key.replace("%", "%25").replace("/", "%2F")


def _join(prefix: str, part: str) -> str:
    return f"{prefix}/{part}" if prefix else part


def _is_namedtuple(node) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _children(node, where: str) -> list[tuple[str, str, Any]] | None:
    """(path component, JSON key, child) of a container node; None for a leaf. Dicts must have
    string keys. NamedTuples (optax states) are keyed by field name, sequences by index."""
    if isinstance(node, dict):
        for key in node:
            if not isinstance(key, str):
                raise TypeError(f"tree at '{where or '/'}': dict key {key!r} is not a string")
        return [(_escape(k), k, v) for k, v in node.items()]
    if _is_namedtuple(node):
        return [(f, f, getattr(node, f)) for f in type(node)._fields]
    if isinstance(node, list | tuple):
        return [(str(i), str(i), v) for i, v in enumerate(node)]
    return None


def flatten_tree(tree) -> dict[str, Any]:
    """{path: leaf} of a tree of dicts (string keys), lists, tuples and NamedTuples with arrays,
    NumPy/Python scalars and strings as leaves (None: no leaf). A path joins the dict keys, field
    names and sequence indices from the root with '/' ('/' and '%' inside a key escaped as %2F, %25),
    so it names the same leaf whatever the flatten order: ``{"opt": (s0, Adam(mu={"w": ..}))}`` has
    the leaf ``opt/1/mu/w``. JAX arrays are leaves (``jax.tree_util`` itself is not used: this
    module stays below every pillar and imports no JAX)."""
    out: dict[str, Any] = {}

    def walk(node, path):
        if node is None:
            return
        kids = _children(node, path)
        if kids is None:
            out[path] = node
            return
        for part, _, child in kids:
            walk(child, _join(path, part))

    walk(tree, "")
    return out


def _as_array(leaf, where: str) -> np.ndarray:
    arr = np.asarray(leaf)
    if arr.dtype.hasobject:
        raise TypeError(f"tree leaf '{where}': {type(leaf).__name__} is not an array, number or string")
    return arr


def _skeleton(node, where: str = ""):
    """The JSON description of a tree's containers (what load_tree rebuilds without a template)."""
    if node is None:
        return None
    kids = _children(node, where)
    if kids is None:
        return _SCALARS.get(type(node), "array")
    sub = {key: _skeleton(child, _join(where, part)) for part, key, child in kids}
    if isinstance(node, dict):
        return {"dict": sub}
    if _is_namedtuple(node):
        return {"namedtuple": type(node).__name__, "fields": sub}
    return {"list" if isinstance(node, list) else "tuple": list(sub.values())}


def save_tree(
    path: str | os.PathLike,
    tree,
    meta: dict,
    *,
    kind: str,
    fsync: bool = False,
    compressed: bool = False,
    make_parents: bool = False,
) -> Path:
    """Write ``tree`` (nested dicts with string keys, lists, tuples, NamedTuples, None; leaves:
    arrays of any NumPy dtype, JAX arrays, Python numbers and strings) to the .npz file ``path``
    atomically (:func:`atomic_savez`; ``fsync`` for restarts): every leaf under its path key
    (:func:`flatten_tree`), bit for bit, and the header entry ``__meta__``, UTF-8 JSON with the
    format name and version, ``kind`` (e.g. "md-checkpoint"), the JSON-able ``meta`` dict and the
    tree's container structure. Read back by :func:`load_tree`. Returns ``path``."""
    if _children(tree, "") is None:
        raise TypeError("save_tree: the root of a tree must be a dict, list or tuple")
    flat = flatten_tree(tree)
    arrays = {key: _as_array(leaf, key) for key, leaf in flat.items()}
    for key in (TREE_HEADER, *_SAVEZ_ARGUMENTS):
        if key in arrays:
            raise ValueError(f"save_tree: '{key}' is reserved and cannot be a leaf at the root")
    header = {
        "format": TREE_FORMAT,
        "version": TREE_VERSION,
        "kind": kind,
        "meta": jsonable(meta),
        "tree": _skeleton(tree),
    }
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return atomic_savez(
        path, {TREE_HEADER: blob, **arrays}, compressed=compressed, fsync=fsync, make_parents=make_parents
    )


def tree_header(z: NpzArchive) -> dict | None:
    """The header of an open container (:func:`save_tree`), or None if the archive is not one (a
    file of an older layout, or a foreign .npz). A header that is no JSON is a DataError."""
    if TREE_HEADER not in z:
        return None
    raw = z[TREE_HEADER]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        return None
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = _error_text(exc)
        raise DataError(f"{z.what} {z.path}: its {TREE_HEADER} entry is not JSON ({reason})") from None
    if not isinstance(header, dict) or header.get("format") != TREE_FORMAT:
        return None
    return header


def _rebuild(node, z: NpzArchive, path: str):
    """The tree described by the skeleton ``node``, leaves read from ``z`` (NamedTuples as dicts)."""
    if node is None:
        return None
    if isinstance(node, str):
        if path not in z:
            raise z.missing(path)
        value = z[path]
        if node == "array":
            return value
        if node not in _SCALARS.values() or value.ndim != 0:
            raise DataError(f"{z.what} {z.path}: entry '{path}' is not a {node}")
        return value.item() if node != "str" else str(value)
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise DataError(f"{z.what} {z.path}: the tree structure in its header is damaged at '{path}'")
    if "dict" in node or "fields" in node:
        sub = node.get("dict", node.get("fields"))
        return {k: _rebuild(v, z, _join(path, _escape(k))) for k, v in sub.items()}
    seq = node.get("list", node.get("tuple"))
    if not isinstance(seq, list):
        raise DataError(f"{z.what} {z.path}: the tree structure in its header is damaged at '{path}'")
    items = [_rebuild(v, z, _join(path, str(i))) for i, v in enumerate(seq)]
    return items if "list" in node else tuple(items)


def fill_tree(like, flat: dict[str, Any], what: str = "tree"):
    """``like`` (a template tree: dicts, lists, tuples, NamedTuples such as optax states) with its
    leaves replaced by ``flat[path]`` (:func:`flatten_tree` paths): how a stored tree becomes the
    structure a program expects. A path missing from ``flat`` or left over, or a leaf whose shape
    differs from the template's, is a DataError naming ``what`` and the paths."""
    want = flatten_tree(like)
    missing = [k for k in want if k not in flat]
    extra = [k for k in flat if k not in want]
    shapes = [
        f"{k} {tuple(np.shape(flat[k]))} (expected {tuple(np.shape(want[k]))})"
        for k in want
        if k in flat and np.shape(flat[k]) != np.shape(want[k])
    ]
    if missing or extra or shapes:
        parts = [
            f"{label} {', '.join(items[:4])}{', …' if len(items) > 4 else ''}"
            for label, items in (("missing", missing), ("unexpected", extra), ("other shapes:", shapes))
            if items
        ]
        raise DataError(f"{what} does not match the expected structure: {'; '.join(parts)}")

    def build(node, path):
        if node is None:
            return None
        kids = _children(node, path)
        if kids is None:
            return flat[path]
        values = [build(child, _join(path, part)) for part, _, child in kids]
        if isinstance(node, dict):
            return dict(zip(node.keys(), values, strict=True))
        if _is_namedtuple(node):
            return type(node)(*values)
        return type(node)(values)

    return build(like, "")


def read_tree(z: NpzArchive, *, kind: str, like=None) -> tuple[Any, dict]:
    """(tree, meta) of an open container archive ``z`` (see :func:`load_tree`)."""
    header = tree_header(z)
    if header is None:
        raise DataError(
            f"{z.what} {z.path}: not a biomlff container (no {TREE_HEADER} header of format {TREE_FORMAT})"
        )
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise DataError(f"{z.what} {z.path}: container version {version!r} is not valid")
    if version > TREE_VERSION:
        raise DataError(
            f"{z.what} {z.path}: container version {version} was written by a newer biomlff "
            f"(this one reads up to {TREE_VERSION})"
        )
    if header.get("kind") != kind:
        raise DataError(f"{z.what} {z.path}: holds a {header.get('kind')!r}, not a {kind!r}")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise DataError(f"{z.what} {z.path}: its {TREE_HEADER} header holds no metadata")
    tree = _rebuild(header.get("tree"), z, "")
    if like is not None:
        tree = fill_tree(like, flatten_tree(tree), f"{z.what} {z.path}")
    return tree, meta


def load_tree(path: str | os.PathLike, *, kind: str, like=None, what: str | None = None) -> tuple[Any, dict]:
    """Read a container written by :func:`save_tree` → (tree, meta). Without ``like`` the tree is
    rebuilt from its stored structure: dicts, lists, tuples and None as saved, NamedTuples as dicts
    of their fields, Python numbers and strings as such, arrays with their dtype and bits; with
    ``like`` (a template, e.g. the optimiser state a program just initialised) the leaves are put
    into the template's structure by path (:func:`fill_tree`).

    An empty, corrupt or foreign file, a file of another ``kind`` or of a newer container version,
    or one that does not match ``like``, is a DataError naming the file as a ``what`` (default:
    ``kind``), through the one loader :func:`open_npz`."""
    with open_npz(path, what or kind) as z:
        return read_tree(z, kind=kind, like=like)
