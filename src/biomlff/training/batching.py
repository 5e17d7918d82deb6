"""Training batches of ragged datasets: the core padded batch plus labels, masks and weights.

The frames are padded by the one batcher, :func:`biomlff.batching.pad_batch` (atoms to an atom-count
bucket, padding atoms with species 0, no pairs and no labels; pair lists to the capacity of their
bucket, :func:`biomlff.batching.pair_bucket` of the largest pair count of the bucket's frames), once
per bucket when the data are read; training adds only its labels (energy eV, forces eV/Å, dipole
e·Å, Hirshfeld ratios), their masks and frame weights on top. A batch holds ``batch_size`` frames of
one bucket; a short last batch is filled with weight-0 copies, so a dataset of any mix of sizes
compiles one program per bucket.

Labels come with masks: a frame without a dipole contributes no dipole term.
The order of the frames is a pure function of (seed, epoch): resuming a run replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import batching
from ..batching import atom_bucket
from ..errors import DataError
from ..potential import ChemicalSystem

LABELS = ("energy", "forces", "dipole", "hirshfeld_ratios")
#: labels per atom (the others are per frame)
ATOM_LABELS = ("forces", "hirshfeld_ratios")


@dataclass
class Frames:
    """The frames of one bucket, padded once: ``batch`` is the core padded batch of all of them
    (:mod:`biomlff.potential` layout, host arrays in float64), ``labels`` and ``masks`` (label
    present) are training's additions, ``index`` the frames' indices in the source dataset."""

    index: np.ndarray  # (F,)
    batch: dict
    labels: dict  # name -> (F, ...) array, 0 where absent
    masks: dict  # name -> (F,) bool: label present

    @property
    def species(self) -> np.ndarray:
        """(F, n_pad) atomic numbers, 0 = padding atom."""
        return self.batch["species"]

    @property
    def n_pad(self) -> int:
        return self.species.shape[1]

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray, weight: np.ndarray, dtype) -> dict:
        """A batch dict (NumPy) of the given rows: the core batch (floats in ``dtype``) plus
        ``labels``, ``masks`` and per-frame ``weight`` (0 = filler)."""
        core = batching.take(self.batch, rows)
        for k in ("positions", "charge", "spin", "frag_charges", "cell"):
            if k in core:
                core[k] = core[k].astype(dtype)
        return {
            **core,
            "weight": weight.astype(dtype),
            "labels": {k: v[rows].astype(dtype) for k, v in self.labels.items()},
            "masks": {k: v[rows] & (weight > 0) for k, v in self.masks.items()},
        }


def _frame_cell(f, name: str = "frame") -> np.ndarray | None:
    """The frame's cell (3, 3) Å or None: the one periodicity rule (geometry.cell_from_pbc)."""
    from ..geometry import cell_from_pbc

    return cell_from_pbc(f.get("cell"), f.get("pbc"), name=name)


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
    ``single_bucket``: pad every frame to the largest bucket (one compiled shape)."""
    n = len(ds)
    if n == 0:
        raise DataError(f"{source}: empty dataset (no frames)")
    frames = [ds.frame(k) for k in range(n)]
    systems = [frame_system(f, f"{source}, frame {k}") for k, f in enumerate(frames)]
    groups = bucket_groups(systems, single_bucket)
    return [
        Frames(
            np.asarray(members),
            batching.pad_batch(
                [systems[k] for k in members],
                [frames[k]["positions"] for k in members],
                neighbors,
                n_atoms=npad,
            ),
            *frame_labels([frames[k] for k in members], npad),
        )
        for (npad, _), members in groups
    ]


def frame_system(f: dict, name: str = "frame") -> ChemicalSystem:
    """The :class:`~biomlff.potential.ChemicalSystem` of a dataset frame (charge e, multiplicity,
    cell by the one periodicity rule)."""
    return ChemicalSystem(
        np.asarray(f["atomic_numbers"], np.int32),
        float(f.get("charge") or 0.0),
        int(f.get("multiplicity") or 1),
        cell=_frame_cell(f, name),
    )


def bucket_groups(systems, single_bucket: bool = False) -> list[tuple[tuple[int, bool], list[int]]]:
    """((atom bucket, periodic), member indices) of structures padded together, sorted by key;
    ``single_bucket``: one atom bucket (the largest) for all (per periodicity)."""
    groups: dict[tuple, list[int]] = {}
    for k, s in enumerate(systems):
        groups.setdefault((atom_bucket(len(s.atomic_numbers)), s.cell is not None), []).append(k)
    if single_bucket:
        top = max(npad for npad, _ in groups)
        merged: dict[tuple, list[int]] = {}
        for (_, periodic), members in groups.items():
            merged.setdefault((top, periodic), []).extend(members)
        groups = {key: sorted(v) for key, v in merged.items()}
    return sorted(groups.items())


def frame_labels(frames: list[dict], npad: int) -> tuple[dict, dict]:
    """(labels, masks) of dataset frames padded to ``npad`` atoms: energy (F,) eV, forces
    (F, npad, 3) eV/Å, dipole (F, 3) e·Å, hirshfeld_ratios (F, npad); a label absent or NaN in a
    frame is 0 with mask False."""
    m = len(frames)
    labels = {
        "energy": np.zeros(m),
        "forces": np.zeros((m, npad, 3)),
        "dipole": np.zeros((m, 3)),
        "hirshfeld_ratios": np.zeros((m, npad)),
    }
    masks = {k: np.zeros(m, bool) for k in LABELS}
    for r, f in enumerate(frames):
        na = len(f["atomic_numbers"])
        for name in LABELS:
            v = f.get(name)
            if v is None:
                continue
            v = np.asarray(v, float)
            if np.isnan(v).any():
                continue
            if name in ATOM_LABELS:
                labels[name][r, :na] = v
            else:
                labels[name][r] = v
            masks[name][r] = True
    return labels, masks


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
