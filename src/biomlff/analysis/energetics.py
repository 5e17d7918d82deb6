"""Energetics: interaction (binding) energies of complexes with any biomlff model, and cumulative
averages of time series (equilibration checks).

A *builder* is any callable ``builder(atomic_numbers, charge) -> Potential`` (see
``docs/architecture.md``), e.g. ``lambda z, q, fragments=None: so3lr_potential(z, charge=q,
fragments=fragments, lr_cutoff=None)``.
Energies in eV (``kcal_mol`` helpers convert).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import ConfigError, DataError


def frame_energies(potential, positions, cell=None) -> np.ndarray:
    """Energies (T,) in eV of frames (T, N, 3) Å of one system under a
    :class:`~biomlff.potential.Potential` (cell (3, 3) Å or None): host-built pair lists padded by
    the one batcher (:func:`biomlff.batching.stack_pairs`, one capacity bucket for all frames), all
    frames in one compiled call of the potential's energy function."""
    from ..batching import stack_pairs, structure_pairs

    x = np.asarray(positions, dtype=float).reshape(-1, np.shape(positions)[-2], 3)
    c = None if cell is None else np.asarray(cell, dtype=float)
    pairs = stack_pairs([structure_pairs(potential.neighbors, xt, c) for xt in x])
    return np.asarray(_vmapped_energy()(_as_pytree(potential.energy_fn), x, pairs, c), dtype=float)


def potential_energy(potential, positions, cell=None) -> float:
    """Energy (eV) of one structure (positions (N, 3) Å, cell (3, 3) Å or None) under a
    :class:`~biomlff.potential.Potential`, with host-built pair lists for every list it needs."""
    return float(frame_energies(potential, np.asarray(positions, dtype=float)[None], cell)[0])


def _as_pytree(fn):
    import jax

    return fn if isinstance(fn, jax.tree_util.Partial) else jax.tree_util.Partial(fn)


@functools.cache
def _vmapped_energy():
    """jit(vmap(energy_fn)) over frames, the energy function passed as a pytree argument (its
    weights are arguments, not constants folded at compile time)."""
    import jax

    return jax.jit(lambda fn, x, pairs, cell: jax.vmap(fn, in_axes=(0, 0, None))(x, pairs, cell))


def _check_fragments(n_atoms: int, fragments: Sequence[Sequence[int]]) -> list[np.ndarray]:
    if len(fragments) < 2:
        raise ConfigError(f"an interaction energy needs at least 2 fragments, got {len(fragments)}")
    frags = [np.asarray(f, dtype=int) for f in fragments]
    allidx = np.concatenate(frags)
    if any(f.size == 0 for f in frags):
        raise DataError("a fragment is empty")
    if allidx.min() < 0 or allidx.max() >= n_atoms:
        raise DataError(f"fragment indices outside 0…{n_atoms - 1}")
    if np.unique(allidx).size != allidx.size:
        raise DataError("fragments overlap (an atom is in two fragments)")
    return frags


def _accepts_fragments(builder) -> bool:
    import inspect

    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False
    return "fragments" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@dataclass
class InteractionEnergy:
    """E_int = E(complex) − E(reference) per frame (eV), with the parts.

    ``method`` is ``"separated"`` (reference = the same complex with the fragments translated
    ``separation`` Å apart, evaluated at the complex's total charge with per-fragment charge
    conservation — the SO3LR definition, required for charged fragments because SO3LR totals at
    different total charges are not on a common scale) or ``"fragments"`` (reference = Σ E(fragment),
    for models without per-fragment charges)."""

    interaction: np.ndarray
    complex: np.ndarray
    reference: np.ndarray  # (T,)
    method: str

    @property
    def interaction_kcal_mol(self) -> np.ndarray:
        return self.interaction / units.kcal_mol


def interaction_energy(
    builder: Callable, numbers, positions, fragments, charges=None, cell=None, separation: float = 1000.0
) -> InteractionEnergy:
    """Interaction energy (eV) of a complex for each frame of positions (T, N, 3) or (N, 3) Å.

    ``fragments``: lists of atom indices; ``charges``: total charge (e) of each fragment (default 0);
    the complex gets their sum. Atoms outside every fragment are ignored. Positive = repulsive; the
    binding energy is −E_int.

    A builder with a ``fragments`` keyword (e.g. SO3LR's) is used as the SO3LR paper does:
    E_int = E(complex) − E(complex with fragments ≥ ``separation`` Å apart), both at the total
    charge, the separated one built with ``fragments=(ids (N,), charges (F,))`` so that each
    fragment's partial charges sum to its own charge (free space only; give the builder a long-range
    cutoff ≥ ``separation`` or none). Other builders give E(complex) − Σ E(fragment).
    """
    numbers = np.asarray(numbers, dtype=int)
    x = np.asarray(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    frags = _check_fragments(x.shape[1], fragments)
    q = [0] * len(frags) if charges is None else list(charges)
    if len(q) != len(frags):
        raise ConfigError(f"{len(q)} fragment charges for {len(frags)} fragments")
    allidx = np.concatenate(frags)
    total = int(sum(q))
    pot_ab = builder(numbers[allidx], total)
    e_ab = frame_energies(pot_ab, x[:, allidx], cell)
    if _accepts_fragments(builder):
        if cell is not None:
            raise ConfigError("interaction energies by fragment separation need free space (no cell)")
        from ..geometry import separate_fragments

        ids = np.concatenate([np.full(f.size, k) for k, f in enumerate(frags)])
        pot_sep = builder(numbers[allidx], total, fragments=(ids, np.asarray(q, dtype=float)))
        e_ref = frame_energies(pot_sep, [separate_fragments(xt[allidx], ids, separation) for xt in x])
        return InteractionEnergy(interaction=e_ab - e_ref, complex=e_ab, reference=e_ref, method="separated")
    pots = [builder(numbers[f], int(qi)) for f, qi in zip(frags, q, strict=True)]
    e_ref = sum(frame_energies(p, x[:, f], cell) for p, f in zip(pots, frags, strict=True))
    return InteractionEnergy(interaction=e_ab - e_ref, complex=e_ab, reference=e_ref, method="fragments")


def cumulative_average(values) -> np.ndarray:
    """Running mean ⟨x⟩_k = (1/k) Σ_{i≤k} x_i of a series (same units as the input)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0:
        raise DataError("cumulative average of an empty series")
    return np.cumsum(v) / np.arange(1, v.size + 1)
