"""Checks of a :class:`~biomlff.data.dataset.Dataset`; every problem raises DataError naming the
file, the frame and the field (and the atoms where that helps)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .fields import ATOM_FIELDS, FRAME_FIELDS, MAX_Z


def _frame_of_atom(offsets: np.ndarray, atom: int) -> int:
    return int(np.searchsorted(offsets, atom, side="right") - 1)


def validate_dataset(ds, source: str = "<dataset>", min_distance: float = 0.1, frame_offset: int = 0) -> None:
    """Raise DataError if ``ds`` is inconsistent or unphysical.

    Checks: offsets and array lengths agree; known fields have their shapes; atomic numbers are
    1…118; every float is finite; multiplicity ≥ 1; no two atoms of a frame are closer than
    ``min_distance`` Å (minimum image for periodic frames; ``min_distance=0`` skips the check).
    ``frame_offset`` is added to the frame numbers in messages (for frames checked one at a time).
    """
    fo = int(frame_offset)
    off = ds.offsets
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or np.any(np.diff(off) < 0):
        raise DataError(f"{source}: field 'offsets': must start at 0 and not decrease")
    n_frames = off.size - 1
    n_total = int(off[-1])
    if ds.atomic_numbers.shape != (n_total,):
        raise DataError(
            f"{source}: field 'atomic_numbers': shape {ds.atomic_numbers.shape}, expected ({n_total},)"
        )
    if ds.positions.shape != (n_total, 3):
        raise DataError(f"{source}: field 'positions': shape {ds.positions.shape}, expected ({n_total}, 3)")
    counts = np.diff(off)
    if np.any(counts == 0):
        f = int(np.argmax(counts == 0))
        raise DataError(f"{source}: frame {f + fo}, field 'positions': frame has no atoms")
    bad = np.nonzero((ds.atomic_numbers < 1) | (ds.atomic_numbers > MAX_Z))[0]
    if bad.size:
        a = int(bad[0])
        f = _frame_of_atom(off, a)
        raise DataError(
            f"{source}: frame {f + fo}, atom {a - int(off[f])}, field 'atomic_numbers': "
            f"{int(ds.atomic_numbers[a])} is not an element (1..{MAX_Z})"
        )
    _check_finite(ds.positions, "positions", source, off, per_atom=True, fo=fo)
    for fields, shapes, n, what, per_atom in (
        (ds.frame_data, FRAME_FIELDS, n_frames, "frames", False),
        (ds.atom_data, ATOM_FIELDS, n_total, "atoms", True),
    ):
        for name, arr in fields.items():
            if arr.shape[:1] != (n,):
                raise DataError(f"{source}: field '{name}': {arr.shape[0]} entries for {n} {what}")
            want = shapes.get(name)
            if want is not None and arr.shape[1:] != want:
                raise DataError(f"{source}: field '{name}': shape {arr.shape}, expected {(n,) + want}")
            _check_finite(arr, name, source, off, per_atom=per_atom, fo=fo)
    mult = ds.frame_data.get("multiplicity")
    if mult is not None and np.any(mult < 1):
        f = int(np.argmax(mult < 1))
        raise DataError(f"{source}: frame {f + fo}, field 'multiplicity': {mult[f]} (must be ≥ 1)")
    if min_distance > 0:
        check_min_distance(ds, min_distance, source, frame_offset=fo)


def _check_finite(
    arr: np.ndarray, name: str, source: str, offsets: np.ndarray, per_atom: bool, fo: int = 0
) -> None:
    if arr.dtype.kind not in "fc":
        return
    flat = arr.reshape(arr.shape[0], -1)
    ok = np.isfinite(flat).all(axis=1)
    if ok.all():
        return
    row = int(np.argmin(ok))
    what = "NaN" if np.isnan(flat[row]).any() else "inf"
    if per_atom:
        f = _frame_of_atom(offsets, row)
        raise DataError(
            f"{source}: frame {f + fo}, atom {row - int(offsets[f])}, field '{name}': contains {what}"
        )
    raise DataError(f"{source}: frame {row + fo}, field '{name}': contains {what}")


def check_min_distance(
    ds, min_distance: float = 0.1, source: str = "<dataset>", frame_offset: int = 0
) -> None:
    """Raise DataError naming the first frame with two atoms closer than ``min_distance`` Å."""
    fo = int(frame_offset)
    cells = ds.frame_data.get("cell")
    pbcs = ds.frame_data.get("pbc")
    periodic = (
        np.zeros(len(ds), bool)
        if pbcs is None or cells is None
        else np.any(pbcs.astype(bool), axis=1) & (np.abs(np.linalg.det(cells)) > 1e-12)
    )
    n = ds.n_atoms
    free = ~periodic
    # fast vectorised path for frames of equal size in free space (MD17-like data): all pairs at once,
    # in chunks so memory stays bounded
    if free.any() and np.all(n == n[0]) and n[0] <= 256:
        n0 = int(n[0])
        pos = ds.positions.reshape(len(ds), n0, 3)
        iu, ju = np.triu_indices(n0, 1)
        frames = np.nonzero(free)[0]
        chunk = max(1, 2_000_000 // max(1, iu.size))
        for start in range(0, frames.size, chunk):
            sel = frames[start : start + chunk]
            d = np.linalg.norm(pos[sel][:, iu] - pos[sel][:, ju], axis=-1)
            if d.size and d.min() < min_distance:
                k, p = np.unravel_index(int(np.argmin(d)), d.shape)
                _raise_close(source, int(sel[k]) + fo, int(iu[p]), int(ju[p]), float(d[k, p]), min_distance)
        todo = np.nonzero(periodic)[0]
    else:
        todo = np.arange(len(ds))
    if todo.size == 0:
        return
    from scipy.spatial import cKDTree

    for f in todo:
        s = ds.atoms_slice(int(f))
        pos = ds.positions[s]
        if periodic[f]:
            # the host pair lists (cKDTree, any cell size): ASE's binned neighbour list allocated
            # ~13 GB for a molecule in a 1000 Å box (the shipped SO3LR reference frames)
            from ..checks import _close_pairs

            cell = cells[f] if np.all(pbcs[f]) else None
            i, j, d = _close_pairs(pos, cell, float(min_distance))
            keep = d < min_distance
            i, j, d = i[keep], j[keep], d[keep]
            if d.size:
                k = int(np.argmin(d))
                _raise_close(source, int(f) + fo, int(i[k]), int(j[k]), float(d[k]), min_distance)
        else:
            pairs = cKDTree(pos).query_pairs(min_distance, output_type="ndarray")
            if pairs.size:
                d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
                k = int(np.argmin(d))
                _raise_close(source, int(f) + fo, *map(int, pairs[k]), float(d[k]), min_distance)


def _raise_close(source, frame, i, j, d, min_distance):
    raise DataError(
        f"{source}: frame {frame}, field 'positions': atoms {i} and {j} are {d:.4g} Å apart "
        f"(closer than {min_distance} Å; overlapping or duplicated atoms)"
    )
