"""Atomic file output shared by every writer (datasets, models, checkpoints, restarts, figures).

A file is written to a temporary name beside its target and renamed over it only when the writer
finished without error, so the target is either the complete new file or left untouched (never
half-written). Below every pillar: imports only NumPy, the standard library and :mod:`biomlff.errors`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, make_parents: bool = False, fsync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on any error remove
    it, so that ``path`` is either the complete new file or untouched.

    The temporary name keeps the target's suffix (``np.savez`` and friends look at it) and the
    file gets the usual permissions (0666 less the umask). ``make_parents`` creates missing
    folders (otherwise a missing folder is a DataError); ``fsync`` flushes the file to disk before
    the rename (restart files)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise DataError(f"{path}: output folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=folder)
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
