"""Host-side, batched evaluation of SO3LR on many structures (no ASE).

Structures of *any* composition are evaluated together: atoms are padded to a geometric sequence of
atom-count buckets (padding atoms have species 0 and no pairs, see :func:`biomlff.so3lr.so3lr_terms`),
pair lists (:func:`biomlff.neighbors.pair_indices`) to capacity buckets, and every batch to the same
number of frames, so that a dataset of many molecule sizes compiles only a handful of programs
(one per occurring (atom bucket, pair buckets) combination, shared through the settings-keyed cache
below). Units: positions Å, cell rows Å, energy eV, forces eV/Å, charges e, dipole e·Å.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..neighbors import bucket, padded_pairs, pair_indices
from ..potential import Potential
from ..precision import precision_context

#: smallest atom-count bucket; buckets grow by ≈ √2 (rounded up to multiples of 32 above it)
ATOM_BUCKET_MINIMUM = 16
#: per-compilation trace counter (a test checks that mixed sizes compile only a few programs)
TRACES = [0]


@dataclass(frozen=True)
class System:
    """One structure to evaluate: ``species`` (N,) atomic numbers, ``positions`` (N, 3) Å, total
    ``charge`` (e), ``spin`` (multiplicity − 1), optional fragments (``frag_ids`` (N,), per-fragment
    ``frag_charges`` in e) and ``cell`` (3, 3) Å rows or None (free space)."""

    species: np.ndarray
    positions: np.ndarray
    charge: float = 0.0
    spin: float = 0.0
    frag_ids: np.ndarray | None = None
    frag_charges: np.ndarray | None = None
    cell: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.species)


@functools.cache
def _kernel(model):
    """jit of ``model.apply`` (energy, forces and all outputs of a padded batch) for one static
    model; equal models share the compiled programs."""
    import jax

    def run(params, batch):
        TRACES[0] += 1  # trace-time side effect: counts compilations
        return model.apply(params, batch)

    return jax.jit(run)


def _system_pairs(neighbors, s: System) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: pair_indices(s.positions, spec.cutoff, cell=s.cell, half=spec.half)
        for name, spec in neighbors.items()
    }


def evaluate_systems(
    systems: list[System],
    config,
    params,
    *,
    batch_size: int = 16,
    progress=None,
) -> list[dict]:
    """Energy (eV), forces (eV/Å) and all SO3LR outputs for structures of any sizes.

    ``config``: a :class:`biomlff.so3lr.SO3LRConfig` or a :class:`biomlff.so3lr.model.SO3LR` model
    (with ``filters="tabulated"`` the radial tables are added to ``params`` once, cached per
    weights), evaluated through ``model.apply`` on :func:`pad_batch`'s batches; all systems must be
    either free-space or periodic (mixed lists are split by the caller). Systems are grouped by
    atom-count bucket and evaluated ``batch_size`` at a time (the last batch of a group is padded
    with copies).
    ``progress(n)`` is called after each batch with the number of real structures in it.
    Returns one dict per system, in input order, with NumPy float64 arrays trimmed to its atoms."""
    import jax

    from ..errors import ConfigError
    from .model import SO3LR, prepare_params

    if batch_size < 1:
        raise ConfigError(f"batch size must be ≥ 1, got {batch_size}")
    if not systems:
        return []
    if len({s.cell is None for s in systems}) > 1:
        raise ConfigError("evaluate_systems: mix of periodic and free-space structures; split them")
    model = config if isinstance(config, SO3LR) else SO3LR(config)
    config = model.config
    neighbors = model.neighbors
    params = prepare_params(params, config)  # radial tables when config.filters == "tabulated"
    dtype = config.dtype
    kernel = _kernel(model)
    results: list[dict | None] = [None] * len(systems)
    n_pad = [bucket(s.n_atoms, ATOM_BUCKET_MINIMUM) for s in systems]
    order = sorted(range(len(systems)), key=lambda k: (n_pad[k], k))
    groups: dict[int, list[int]] = {}
    for k in order:
        groups.setdefault(n_pad[k], []).append(k)
    for npad, members in groups.items():
        width = min(batch_size, 1 << (len(members) - 1).bit_length())  # 1, 2, 4, ... ≤ batch_size
        for start in range(0, len(members), width):
            chunk = members[start : start + width]
            lists = [_system_pairs(neighbors, systems[k]) for k in chunk]
            caps = {name: bucket(max(len(li[name][0]) for li in lists)) for name in neighbors}
            batch = pad_batch([systems[k] for k in chunk], npad, lists, caps, dtype, width)
            with precision_context(config.precision):
                out = kernel(params, batch)
                out = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), out)
            for b, k in enumerate(chunk):
                n = systems[k].n_atoms
                results[k] = jax.tree_util.tree_map(
                    lambda a, b=b, n=n, m=npad: a[b][:n] if a.ndim >= 2 and a.shape[1] == m else a[b], out
                )
            if progress is not None:
                progress(len(chunk))
    return results  # type: ignore[return-value]


def pad_batch(systems: list[System], npad: int, lists, caps, dtype, width: int) -> dict:
    """The padded batch (layout: :mod:`biomlff.potential`) of ``systems``: atoms padded to ``npad``,
    pair lists ``lists`` (per system ``{name: (i, j)}``) to the capacities ``caps``, and the frames
    to ``width`` with copies of the last one. Positions and cells in ``dtype``."""
    from .model import _fragment_arrays

    fr = [_fragment_arrays(_frag_arg(s), s.n_atoms, s.charge) for s in systems]
    n_frag = max(len(f[1]) for f in fr)
    rows = []
    for s, li, (ids, fch) in zip(systems, lists, fr, strict=True):
        n = s.n_atoms
        row = {
            "species": np.zeros(npad, np.int32),
            "positions": np.zeros((npad, 3), dtype),
            "charge": float(s.charge),
            "spin": float(s.spin),
            "frag_ids": np.zeros(npad, np.int32),
            "frag_charges": np.zeros(n_frag),
            "pairs": {name: padded_pairs(*li[name], cap) for name, cap in caps.items()},
        }
        row["species"][:n] = s.species
        row["positions"][:n] = s.positions
        row["frag_ids"][:n] = ids
        row["frag_charges"][: len(fch)] = fch
        if s.cell is not None:
            row["cell"] = np.asarray(s.cell, dtype)
        rows.append(row)
    rows += [rows[-1]] * (width - len(rows))  # fixed batch shape: pad with copies
    return {k: _stack([r[k] for r in rows]) for k in rows[0]}


def _stack(values):
    import jax

    return jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(x) for x in a]), *values)


def _frag_arg(s: System):
    if s.frag_ids is None:
        return None
    return (s.frag_ids, s.frag_charges)


def _system_of(potential: Potential, positions, cell) -> System:
    s = potential.inputs
    return System(
        species=np.asarray(s["species"]),
        positions=np.asarray(positions, dtype=float),
        charge=float(s["charge"]),
        spin=float(s["spin"]),
        frag_ids=np.asarray(s["frag_ids"]),
        frag_charges=np.asarray(s["frag_charges"]),
        cell=None if cell is None else np.asarray(cell, dtype=float),
    )


def evaluate(potential: Potential, positions, cell=None) -> dict:
    """Energy (eV), forces (eV/Å) and all outputs of an SO3LR ``potential`` for one structure."""
    return evaluate_batch(potential, np.asarray(positions)[None], cell)[0]


def evaluate_batch(potential: Potential, positions, cell=None) -> list[dict]:
    """Evaluate frames (B, N, 3) Å of an SO3LR ``potential`` (same cell or None) in batches, through
    its model's ``apply`` (the potential must come from :func:`biomlff.potential.bind`, as
    :func:`biomlff.so3lr.so3lr_potential` builds it).

    Returns one dict per frame: ``energy``, ``forces``, ``energies``, ``energy_terms``, ``charges``,
    ``dipole``, ``hirshfeld_ratios`` (NumPy, float64)."""
    from ..errors import ModelError
    from .model import SO3LR

    if not isinstance(potential.model, SO3LR):
        raise ModelError(f"{potential.name}: not an SO3LR potential bound by biomlff.potential.bind")
    x = np.asarray(positions, dtype=float)
    systems = [_system_of(potential, xi, cell) for xi in x]
    return evaluate_systems(systems, potential.model, potential.params, batch_size=max(1, min(len(x), 16)))
