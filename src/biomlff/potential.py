"""The one interface every biomlff model implements.

A :class:`Potential` is a pure, jit-compilable JAX function

    energy_fn(positions, pairs, cell) -> energy

* ``positions``: (N, 3) Cartesian positions in Å.
* ``pairs``: a dict ``{name: Pairs}`` with one padded pair list per entry of
  ``Potential.neighbors`` (e.g. ``{"sr": ..., "lr": ...}`` for SO3LR, ``{}`` for sGDML).
* ``cell``: (3, 3) cell in Å with lattice vectors as rows (ASE convention), or ``None`` for free
  space. Models apply the minimum-image convention themselves.
* returns the total potential energy in eV (a scalar).

Everything else (forces, stress, Hessians) follows by autodiff — see :func:`energy_and_forces`,
:func:`stress`. Pair lists are built outside the energy function: on the host by
:mod:`biomlff.neighbors` (calculators, evaluation) or inside a compiled MD step by JAX-MD
(:mod:`biomlff.md`). A model states what lists it needs with :class:`NeighborSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Pairs(NamedTuple):
    """A padded list of directed atom pairs (i, j) — a JAX pytree.

    ``i``, ``j``: int32 arrays of length ``capacity``; ``mask``: bool array, True for real pairs.
    Padded entries point at atom 0 and must be ignored through ``mask`` (never rely on a distance
    of 0 to drop them: erf(r)/r at r = 0 is NaN and poisons gradients).
    """

    i: Any
    j: Any
    mask: Any

    @property
    def capacity(self) -> int:
        return int(self.i.shape[0])


@dataclass(frozen=True)
class NeighborSpec:
    """What pair list a model needs.

    cutoff: Å, or ``None`` for all pairs (gas-phase long-range terms).
    half:   True for each unordered pair once (i < j), False for both directions.
    """

    cutoff: float | None
    half: bool = False


@dataclass(frozen=True)
class Potential:
    """A model bound to one chemical system (species, charge, settings).

    energy_fn: ``(positions [Å], pairs: dict[str, Pairs], cell [Å] | None) -> energy [eV]``; pure
        and jit-compilable.
    neighbors: the pair lists ``energy_fn`` expects, by name.
    outputs_fn: optional ``(positions, pairs, cell) -> dict`` of extra per-structure outputs
        (partial charges in e, dipole in e·Å, per-atom energies in eV, energy terms, ...).
    atomic_numbers: (N,) atomic numbers the potential was built for.
    """

    energy_fn: Callable[..., Any]
    neighbors: Mapping[str, NeighborSpec]
    atomic_numbers: Any
    outputs_fn: Callable[..., dict] | None = None
    name: str = "potential"
    info: Mapping[str, Any] = field(default_factory=dict)


def energy_and_forces(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> (energy [eV], forces [eV/Å])`` with F = −∇E."""
    import jax

    vg = jax.value_and_grad(potential.energy_fn, argnums=0)

    def fn(positions, pairs, cell=None):
        e, g = vg(positions, pairs, cell)
        return e, -g

    return fn


def strained_energy(potential: Potential) -> Callable:
    """``f(strain (3,3), positions, pairs, cell) -> energy`` with positions and cell deformed by
    (I + strain); its gradient at strain = 0 divided by the volume is the stress (eV/Å³)."""
    import jax.numpy as jnp

    def fn(strain, positions, pairs, cell):
        sym = 0.5 * (strain + strain.T)
        deform = jnp.eye(3, dtype=positions.dtype) + sym
        return potential.energy_fn(positions @ deform, pairs, cell @ deform)

    return fn


def stress(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> stress (3,3)`` in eV/Å³ (ASE sign convention:
    σ = (1/V) ∂E/∂ε; positive = tensile)."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(strained_energy(potential), argnums=0)

    def fn(positions, pairs, cell):
        z = jnp.zeros((3, 3), dtype=positions.dtype)
        volume = jnp.abs(jnp.linalg.det(cell))
        return grad(z, positions, pairs, cell) / volume

    return fn


def hessian(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> (N, 3, N, 3)`` Hessian in eV/Å² (pairs held fixed)."""
    import jax

    return jax.hessian(potential.energy_fn, argnums=0)
