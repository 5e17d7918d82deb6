"""Padded training batches of ragged datasets, in a few shapes only.

Every frame is padded to an atom-count bucket (padding atoms have species 0, no pairs, no labels:
the convention of :func:`biomlff.so3lr.evaluate.evaluate_systems`), and its pair lists to the
capacity of its bucket (the largest pair count of the bucket's frames, rounded up by
:func:`biomlff.neighbors.bucket`). A batch holds ``batch_size`` frames of one bucket; a short last batch
is filled with weight-0 copies, so a dataset of any mix of sizes compiles one program per bucket.

Labels (eV, eV/Å, e·Å) come with masks: a frame without a dipole contributes no dipole term.
The order of the frames is a pure function of (seed, epoch): resuming a run replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..neighbors import bucket, padded_pairs, pair_indices

#: smallest atom bucket
ATOM_BUCKET_MINIMUM = 8
LABELS = ("energy", "forces", "dipole", "hirshfeld_ratios")


@dataclass
class Frames:
    """Host arrays of one bucket: all frames padded to ``n_pad`` atoms and the bucket's capacities."""

    index: np.ndarray  # (F,) indices into the source dataset
    species: np.ndarray  # (F, n_pad) int32
    positions: np.ndarray  # (F, n_pad, 3)
    charge: np.ndarray  # (F,)
    spin: np.ndarray  # (F,)
    cell: np.ndarray | None  # (F, 3, 3) or None (free space)
    pairs: dict  # name -> (i, j, mask) each (F, capacity)
    labels: dict  # name -> array
    masks: dict  # name -> (F,) bool: label present

    @property
    def n_pad(self) -> int:
        return self.species.shape[1]

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray, weight: np.ndarray, dtype) -> dict:
        """A batch dict (NumPy) of the given rows with per-frame weights (0 = filler)."""
        b = {
            "species": self.species[rows],
            "positions": self.positions[rows].astype(dtype),
            "charge": self.charge[rows].astype(dtype),
            "spin": self.spin[rows].astype(dtype),
            "weight": weight.astype(dtype),
            "pairs": {k: tuple(a[rows] for a in v) for k, v in self.pairs.items()},
            "labels": {k: v[rows].astype(dtype) for k, v in self.labels.items()},
            "masks": {k: v[rows] & (weight > 0) for k, v in self.masks.items()},
        }
        if self.cell is not None:
            b["cell"] = self.cell[rows].astype(dtype)
        return b


def _frame_cell(f) -> np.ndarray | None:
    pbc = f.get("pbc")
    if f.get("cell") is None or pbc is None or not bool(np.any(pbc)):
        return None
    return np.asarray(f["cell"], float).reshape(3, 3)


def check_labels(ds, weights: dict, source: str = "dataset") -> list[str]:
    """Check the labels of a training set: DataError without forces (always required) or when a
    weighted label is NaN in every frame. Returns the weighted labels the dataset lacks entirely
    (their terms are masked out, e.g. dipoles of rMD17), for the caller to report."""
    if "forces" not in ds.atom_data:
        raise DataError(f"{source}: no forces; SO3krates/SO3LR training needs force labels")
    missing = []
    for name, w in weights.items():
        if not w:
            continue
        store = ds.atom_data if name in ("forces", "hirshfeld_ratios") else ds.frame_data
        if name not in store:
            missing.append(name)
            continue
        arr = np.asarray(store[name], float)
        if np.isnan(arr).all():
            raise DataError(f"{source}: every {name!r} label is NaN")
    return missing


def build_frames(
    ds, neighbors: dict, *, source: str = "dataset", single_bucket: bool = False
) -> list[Frames]:
    """Group the frames of ``ds`` by atom bucket and pad them (see module docstring).

    ``neighbors``: the model's {name: NeighborSpec}. Labels that are NaN in a frame are masked.
    ``single_bucket``: pad every frame to the largest bucket (one compiled shape; used for the
    replay set, whose many small molecules would otherwise add a program per bucket)."""
    n = len(ds)
    if n == 0:
        raise DataError(f"{source}: empty dataset (no frames)")
    groups: dict[tuple, list[int]] = {}
    cells = []
    for k in range(n):
        na = int(ds.n_atoms[k])
        cell = _frame_cell(ds.frame(k))
        cells.append(cell)
        groups.setdefault((bucket(na, ATOM_BUCKET_MINIMUM), cell is not None), []).append(k)
    if single_bucket:
        merged: dict[tuple, list[int]] = {}
        top = max(npad for npad, _ in groups)
        for (_, periodic), members in groups.items():
            merged.setdefault((top, periodic), []).extend(members)
        groups = {key: sorted(v) for key, v in merged.items()}
    out = []
    for (npad, periodic), members in sorted(groups.items()):
        out.append(_pad_group(ds, members, npad, periodic, cells, neighbors))
    return out


def _pad_group(ds, members, npad, periodic, cells, neighbors) -> Frames:
    m = len(members)
    species = np.zeros((m, npad), np.int32)
    pos = np.zeros((m, npad, 3))
    charge = np.zeros(m)
    spin = np.zeros(m)
    cell = np.zeros((m, 3, 3)) if periodic else None
    lists = {name: [] for name in neighbors}
    labels = {
        "energy": np.zeros(m),
        "forces": np.zeros((m, npad, 3)),
        "dipole": np.zeros((m, 3)),
        "hirshfeld_ratios": np.zeros((m, npad)),
    }
    masks = {k: np.zeros(m, bool) for k in LABELS}
    for r, k in enumerate(members):
        f = ds.frame(k)
        na = len(f["atomic_numbers"])
        species[r, :na] = f["atomic_numbers"]
        pos[r, :na] = f["positions"]
        charge[r] = float(f.get("charge") or 0.0)
        spin[r] = float((f.get("multiplicity") or 1) - 1)
        if periodic:
            cell[r] = cells[k]
        for name, spec in neighbors.items():
            lists[name].append(pair_indices(f["positions"], spec.cutoff, cell=cells[k], half=spec.half))
        for name in LABELS:
            v = f.get(name)
            if v is None:
                continue
            v = np.asarray(v, float)
            if np.isnan(v).any():
                continue
            if name in ("forces", "hirshfeld_ratios"):
                labels[name][r, :na] = v
            else:
                labels[name][r] = v
            masks[name][r] = True
    pairs = {}
    for name, li in lists.items():
        cap = bucket(max(len(i) for i, _ in li))
        padded = [padded_pairs(i, j, cap) for i, j in li]
        pairs[name] = tuple(np.stack([getattr(p, a) for p in padded]) for a in ("i", "j", "mask"))
    return Frames(np.asarray(members), species, pos, charge, spin, cell, pairs, labels, masks)


def epoch_batches(
    groups: list[Frames], batch_size: int, seed: int, epoch: int
) -> list[tuple[int, np.ndarray]]:
    """The batches of one epoch as (group index, row indices), in a shuffled order that depends only
    on (seed, epoch). Rows are −1 where a short last batch is filled (weight 0)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    out = [b for g, fr in enumerate(groups) for b in _batches_of(g, rng.permutation(len(fr)), batch_size)]
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def make_batch(fr: Frames, rows: np.ndarray, dtype) -> dict:
    """Batch dict of rows of one bucket; rows = −1 are weight-0 fillers (copies of row 0)."""
    weight = (rows >= 0).astype(float)
    safe = np.where(rows >= 0, rows, rows[0] if rows[0] >= 0 else 0)
    return fr.take(safe, weight, dtype)


def all_batches(groups: list[Frames], batch_size: int) -> list[tuple[int, np.ndarray]]:
    """Every frame once, in order (validation / prediction)."""
    return [b for g, fr in enumerate(groups) for b in _batches_of(g, np.arange(len(fr)), batch_size)]


def _batches_of(g: int, idx: np.ndarray, batch_size: int) -> list[tuple[int, np.ndarray]]:
    """(g, rows) per ``batch_size`` consecutive entries of ``idx``; a short last batch is filled
    with −1 (weight-0 rows)."""
    out = []
    for s in range(0, len(idx), batch_size):
        rows = idx[s : s + batch_size]
        if len(rows) < batch_size:
            rows = np.concatenate([rows, -np.ones(batch_size - len(rows), int)])
        out.append((g, rows))
    return out
