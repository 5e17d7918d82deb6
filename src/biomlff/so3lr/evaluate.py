"""Host-side, batched evaluation of SO3LR on many structures (no ASE).

Structures of *any* composition are evaluated together: they are padded by the one batcher,
:mod:`biomlff.batching` (atoms to atom-count buckets, padding atoms with species 0 and no pairs, see
:func:`biomlff.so3lr.so3lr_terms`; pair lists to capacity buckets; every batch to the same number of
frames), so that a dataset of many molecule sizes compiles only a handful of programs (one per
occurring (atom bucket, pair buckets) combination, shared through the settings-keyed cache below).
Units: positions Å, cell rows Å, energy eV, forces eV/Å, charges e, dipole e·Å.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import batching
from ..batching import ATOM_BUCKET_MINIMUM, atom_bucket, structure_pairs
from ..potential import Potential
from ..precision import precision_context
from ..system import System  # the one structure type (core; was a class of its own here)

__all__ = ["ATOM_BUCKET_MINIMUM", "System", "evaluate", "evaluate_batch", "evaluate_systems", "pad_batch"]

#: per-compilation trace counter (a test checks that mixed sizes compile only a few programs)
TRACES = [0]


@functools.cache
def _kernel(model):
    """jit of ``model.apply`` (energy, forces and all outputs of a padded batch) for one static
    model; equal models share the compiled programs. Each program is also kept on disk
    (:func:`biomlff.aot.cached_jit`, keyed by the model's repr): a later process loads it untraced."""
    from .. import aot

    def count():
        TRACES[0] += 1  # one program per argument signature (traced, or loaded from the AOT cache)

    return aot.cached_jit(model.apply, key=repr(model), name="so3lr-apply", on_program=count)


def _system_pairs(neighbors, s: System) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return structure_pairs(neighbors, s.positions, s.cell)


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
    weights), evaluated through ``model.apply`` on :func:`biomlff.batching.pad_batch`'s batches; all
    systems must be either free-space or periodic (mixed lists are split by the caller). Systems are
    grouped by atom-count bucket and evaluated ``batch_size`` at a time (the last batch of a group
    is padded with copies).
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
    n_pad = [atom_bucket(s.n_atoms) for s in systems]
    order = sorted(range(len(systems)), key=lambda k: (n_pad[k], k))
    groups: dict[int, list[int]] = {}
    for k in order:
        groups.setdefault(n_pad[k], []).append(k)
    for npad, members in groups.items():
        width = min(batch_size, 1 << (len(members) - 1).bit_length())  # 1, 2, 4, ... ≤ batch_size
        for start in range(0, len(members), width):
            chunk = members[start : start + width]
            batch = batching.pad_batch(
                [systems[k].chemical() for k in chunk],
                [systems[k].positions for k in chunk],
                neighbors,
                n_atoms=npad,
                width=width,
                dtype=dtype,
            )
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
    to ``width`` with copies of the last one. Positions, cells and charges in ``dtype``
    (:func:`biomlff.batching.pad_batch`)."""
    return batching.pad_batch(
        [s.chemical() for s in systems],
        [s.positions for s in systems],
        lists=lists,
        n_atoms=npad,
        capacities=caps,
        width=width,
        dtype=dtype,
    )


def _system_of(potential: Potential, positions, cell) -> System:
    s = potential.inputs
    return System(
        atomic_numbers=np.asarray(s["species"]),
        positions=np.asarray(positions, dtype=float),
        charge=float(s["charge"]),
        multiplicity=float(s["spin"]) + 1.0,
        fragments=(np.asarray(s["frag_ids"]), np.asarray(s["frag_charges"])),
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
