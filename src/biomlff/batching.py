"""The one host-side batcher: structures of any sizes → the padded batch of :meth:`Model.apply`.

Every path that evaluates or trains a model on many structures at once (batched SO3LR evaluation,
training and validation batches, the replay set, interaction energies over frames) pads them here,
into the batch layout of :mod:`biomlff.potential` (``species``, ``positions``, ``charge``, ``spin``,
``frag_ids``, ``frag_charges``, ``pairs``, ``cell``). Training adds its labels, masks and frame
weights *on top of* such a batch; it pads nothing itself.

**The bucket rule** (one rule for atoms and pairs, so that few shapes compile): a padded size is
:func:`biomlff.neighbors.bucket` of the largest count among the structures padded together — the
smallest member ≥ that count of the geometric sequence minimum·√2^k, rounded up to a multiple of
32 — with minimum :data:`ATOM_BUCKET_MINIMUM` (16) for atoms (:func:`atom_bucket`: 16, 32, 64, 96,
128, 192, 256, …) and :data:`PAIR_BUCKET_MINIMUM` (64) for each pair list (:func:`pair_bucket`).
Padding atoms have species 0, position 0, fragment 0 and no pairs (no energy, no charge, no force);
padded pairs have ``mask=False``. A padded batch never truncates: a capacity below the count needed
is an error.

The ASE calculators are the one exception: they evaluate one composition over and over and keep
their own capacity rule (1.25 × head-room rounded to 64, fewest padded pairs) on the pair lists of
:func:`structure_pairs`.
Units: positions Å, cell rows Å, charges e.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ConfigError, DataError
from .neighbors import bucket, padded_pairs, pair_indices
from .potential import ChemicalSystem, NeighborSpec, Pairs

#: smallest atom-count bucket (atom buckets: 16, 32, 64, 96, 128, 192, ...)
ATOM_BUCKET_MINIMUM = 16
#: smallest pair-capacity bucket (pair buckets: 64, 96, 128, 192, 256, ...)
PAIR_BUCKET_MINIMUM = 64
#: the keys of a padded batch (:mod:`biomlff.potential`); ``cell`` only for periodic structures
BATCH_KEYS = ("species", "positions", "charge", "spin", "frag_ids", "frag_charges", "pairs", "cell")


def atom_bucket(n_atoms: int) -> int:
    """Padded atom count for structures of up to ``n_atoms`` atoms (the bucket rule above)."""
    return bucket(n_atoms, ATOM_BUCKET_MINIMUM)


def pair_bucket(n_pairs: int) -> int:
    """Padded capacity of a pair list holding up to ``n_pairs`` pairs (the bucket rule above)."""
    return bucket(n_pairs, PAIR_BUCKET_MINIMUM)


def fragment_arrays(fragments, n: int, charge: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom fragment ids (n,) int32 and per-fragment charges (F,) in e of one structure.

    ``fragments``: None (one fragment: charge conserved over the whole structure) or a pair
    (per-atom fragment ids, per-fragment charges in e); ConfigError unless every id is in 0..F−1,
    every fragment has an atom and the fragment charges add up to the total ``charge`` (e)."""
    if fragments is None:
        return np.zeros(n, np.int32), np.array([charge], dtype=np.float64)
    try:
        ids, fcharges = fragments
    except (TypeError, ValueError) as exc:
        raise ConfigError("fragments must be a pair (per-atom fragment ids, per-fragment charges)") from exc
    ids = np.asarray(ids)
    fcharges = np.atleast_1d(np.asarray(fcharges, dtype=np.float64))
    if ids.shape != (n,):
        raise ConfigError(f"fragment ids must have one entry per atom ({n}), got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(fcharges):
        raise ConfigError(f"fragment ids must be integers in 0..{len(fcharges) - 1}")
    if np.any(np.bincount(ids, minlength=len(fcharges)) == 0):
        raise ConfigError("every fragment must contain at least one atom")
    if abs(fcharges.sum() - charge) > 1e-8:
        raise ConfigError(f"fragment charges {fcharges.tolist()} do not add up to the total charge {charge}")
    return ids.astype(np.int32), fcharges


def structure_pairs(
    neighbors: Mapping[str, NeighborSpec], positions, cell=None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The unpadded pair lists ``{name: (i, j)}`` of one structure (positions (N, 3) Å, cell (3, 3)
    Å rows or None) for a model's ``neighbors`` (:func:`biomlff.neighbors.pair_indices`)."""
    return {name: pair_indices(positions, s.cutoff, cell=cell, half=s.half) for name, s in neighbors.items()}


def pair_capacities(lists: Sequence[Mapping[str, tuple]]) -> dict[str, int]:
    """Capacity per list name for structures padded together: :func:`pair_bucket` of the longest."""
    if not lists:
        return {}
    return {name: pair_bucket(max(len(li[name][0]) for li in lists)) for name in lists[0]}


def stack_pairs(lists: Sequence[Mapping[str, tuple]], capacities: Mapping[str, int] | None = None) -> dict:
    """``{name: Pairs}`` of (B, capacity) NumPy arrays from per-structure lists ``{name: (i, j)}``
    (capacities default: :func:`pair_capacities`)."""
    caps = pair_capacities(lists) if capacities is None else capacities
    out = {}
    for name, cap in caps.items():
        padded = [padded_pairs(*li[name], cap) for li in lists]
        out[name] = Pairs(*(np.stack(a) for a in zip(*padded, strict=True)))
    return out


def pad_batch(
    systems: Sequence[ChemicalSystem],
    positions: Sequence,
    neighbors: Mapping[str, NeighborSpec] | None = None,
    *,
    lists: Sequence[Mapping[str, tuple]] | None = None,
    n_atoms: int | None = None,
    capacities: Mapping[str, int] | None = None,
    width: int | None = None,
    dtype=np.float64,
) -> dict:
    """The padded batch (layout: :mod:`biomlff.potential`) of structures of any sizes.

    ``systems[b]`` (atomic numbers, total charge e, multiplicity, optional fragments, cell (3, 3) Å
    rows or None) at ``positions[b]`` (N_b, 3) Å. Pair lists: ``lists`` (per structure
    ``{name: (i, j)}``, e.g. from :func:`structure_pairs`) or built here for ``neighbors``.
    Padding (the bucket rule of the module docstring unless given): atoms to ``n_atoms``, each pair
    list to ``capacities[name]``, frames to ``width`` with copies of the last structure. Positions,
    cells and charges in ``dtype``. All structures must be free-space or all periodic."""
    if len(systems) != len(positions):
        raise ConfigError(f"{len(systems)} systems but {len(positions)} position arrays")
    if not systems:
        raise ConfigError("pad_batch: no structures")
    if len({s.cell is None for s in systems}) > 1:
        raise ConfigError("a batch mixes periodic and free-space structures; split them")
    xs = [np.asarray(x, dtype=np.float64) for x in positions]
    zs = [np.asarray(s.atomic_numbers) for s in systems]
    for b, (z, x) in enumerate(zip(zs, xs, strict=True)):
        if z.ndim != 1 or x.shape != (len(z), 3):
            raise DataError(f"structure {b}: positions of shape {x.shape} for {z.size} atoms (need (N, 3))")
    if lists is None:
        if neighbors is None:
            raise ConfigError("pad_batch needs the model's neighbors or the pair lists")
        lists = [structure_pairs(neighbors, x, s.cell) for s, x in zip(systems, xs, strict=True)]
    npad = atom_bucket(max(len(z) for z in zs)) if n_atoms is None else int(n_atoms)
    if npad < max(len(z) for z in zs):
        raise ConfigError(f"atom padding {npad} is smaller than the largest structure ({max(map(len, zs))})")
    frags = [fragment_arrays(s.fragments, len(z), float(s.charge)) for s, z in zip(systems, zs, strict=True)]
    n_frag = max(len(f[1]) for f in frags)
    count = len(systems)
    batch = {
        "species": np.zeros((count, npad), np.int32),
        "positions": np.zeros((count, npad, 3), dtype),
        "charge": np.array([float(s.charge) for s in systems], dtype),
        "spin": np.array([float(s.multiplicity) - 1.0 for s in systems], dtype),
        "frag_ids": np.zeros((count, npad), np.int32),
        "frag_charges": np.zeros((count, n_frag), dtype),
        "pairs": stack_pairs(lists, capacities),
    }
    for b, (z, x, (ids, fch)) in enumerate(zip(zs, xs, frags, strict=True)):
        batch["species"][b, : len(z)] = z
        batch["positions"][b, : len(z)] = x
        batch["frag_ids"][b, : len(z)] = ids
        batch["frag_charges"][b, : len(fch)] = fch
    if systems[0].cell is not None:
        batch["cell"] = np.stack([np.asarray(s.cell, dtype).reshape(3, 3) for s in systems])
    if width is not None and width > count:
        batch = take(batch, np.concatenate([np.arange(count), np.full(width - count, count - 1)]))
    return batch


def take(batch: Mapping, rows) -> dict:
    """Frames ``rows`` (index array) of a padded batch, every array indexed along its frame axis."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, Mapping):
            out[k] = take(v, rows)
        elif isinstance(v, tuple):  # Pairs (or a plain (i, j, mask) tuple)
            parts = [np.asarray(a)[rows] for a in v]
            out[k] = type(v)(*parts) if hasattr(v, "_fields") else tuple(parts)
        else:
            out[k] = np.asarray(v)[rows]
    return out


def model_inputs(batch: Mapping) -> dict:
    """The batch keys of :mod:`biomlff.potential` only (drops what a caller added on top, e.g.
    training's ``labels``, ``masks`` and ``weight``)."""
    return {k: v for k, v in batch.items() if k in BATCH_KEYS}
