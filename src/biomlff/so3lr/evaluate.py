"""Host-side evaluation of an SO3LR :class:`~biomlff.potential.Potential` on structures (no ASE).

Pair lists come from :func:`biomlff.neighbors.build_pairs`, padded to capacity buckets; frames of one
composition are evaluated in batches with ``jax.vmap`` over a common capacity. Compiled programs are
shared between potentials with equal settings (the weights travel as arguments), so a dataset of one
molecule compiles once per (batch size, capacity bucket). Units: positions Å, cell rows Å, energy eV,
forces eV/Å, charges e, dipole e·Å.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from ..neighbors import bucket, padded_pairs, pair_indices
from ..potential import Pairs, Potential


def precision_context(precision: str):
    """``jax.enable_x64(True)`` for float64 (thread-local, restored on exit), else a no-op."""
    if precision == "float64":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


@functools.cache
def _kernel():
    import jax

    def one(efn, ofn, positions, pairs, cell):
        (e, out), g = jax.value_and_grad(lambda x: (efn(x, pairs, cell), ofn(x, pairs, cell)), has_aux=True)(
            positions
        )
        return {**out, "forces": -g, "energy": e}

    single = jax.jit(one)
    batched = jax.jit(jax.vmap(one, in_axes=(None, None, 0, 0, None)))
    return single, batched


def host_pairs(
    potential: Potential, positions, cell=None, capacities: dict | None = None
) -> dict[str, Pairs]:
    """Padded NumPy pair lists for every neighbour list of ``potential`` (capacity ≥ the given one)."""
    out = {}
    for name, spec in potential.neighbors.items():
        i, j = pair_indices(positions, spec.cutoff, cell=cell, half=spec.half)
        cap = max(bucket(len(i)), (capacities or {}).get(name, 0))
        out[name] = padded_pairs(i, j, cap)
    return out


def evaluate(potential: Potential, positions, cell=None) -> dict:
    """Energy (eV), forces (eV/Å) and all outputs of ``potential`` for one structure."""
    return evaluate_batch(potential, np.asarray(positions)[None], cell)[0]


def evaluate_batch(potential: Potential, positions, cell=None) -> list[dict]:
    """Evaluate frames (B, N, 3) Å of one composition (same cell or None) in one vmapped call.

    Returns one dict per frame: ``energy``, ``forces``, ``energies``, ``energy_terms``, ``charges``,
    ``dipole``, ``hirshfeld_ratios`` (NumPy, float64)."""
    import jax

    x = np.asarray(positions, dtype=float)
    precision = potential.info.get("precision", "float32")
    dtype = np.float64 if precision == "float64" else np.float32
    lists = [host_pairs(potential, xi, cell) for xi in x]
    caps = {k: max(p[k].capacity for p in lists) for k in potential.neighbors}
    lists = [{k: _repad(p[k], caps[k]) for k in p} for p in lists]
    pairs = jax.tree_util.tree_map(lambda *a: np.stack(a), *lists)
    single, batched = _kernel()
    c = None if cell is None else np.asarray(cell, dtype=dtype)
    with precision_context(precision):
        if len(x) == 1:
            out = single(potential.energy_fn, potential.outputs_fn, x[0].astype(dtype), lists[0], c)
            out = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], out)
        else:
            out = batched(potential.energy_fn, potential.outputs_fn, x.astype(dtype), pairs, c)
        out = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), out)
    return [jax.tree_util.tree_map(lambda a, k=k: a[k], out) for k in range(len(x))]


def _repad(p: Pairs, capacity: int) -> Pairs:
    n = int(p.mask.sum())
    return padded_pairs(p.i[:n], p.j[:n], capacity)
