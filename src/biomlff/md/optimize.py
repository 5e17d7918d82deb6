"""Geometry optimisation with FIRE (``jax_md.minimize.fire_descent``) for any biomlff Potential.

Runs compiled blocks of FIRE steps (with the pair lists refreshed inside the step, re-allocated on
overflow) until the largest per-atom force |F_i| of the free atoms is below ``fmax`` (eV/Å) or
``max_steps`` is reached. Fixed atoms get zero force and, starting at rest, never move.
The cell is kept fixed.

FIRE's fictitious dynamics uses unit masses and time steps in ASE time units (≈10.18 fs), like
ASE's FIRE; ``dt_start``/``dt_max`` default to JAX-MD's 0.1/0.4.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ModelError
from .neighborlist import PairLists
from .steering import Steering
from .structure import System


@dataclass
class OptResult:
    """positions (N,3) Å, energy eV (model + external), fmax eV/Å, steps taken, converged flag,
    reallocations of the pair lists."""

    positions: np.ndarray
    energy: float
    fmax: float
    steps: int
    converged: bool
    reallocations: int


def optimize(
    potential,
    system: System,
    fmax: float = 0.05,
    max_steps: int = 1000,
    fixed=None,
    precision: str = "float32",
    dt_start: float = 0.1,
    dt_max: float = 0.4,
    n_min: int = 5,
    block: int = 50,
    skin: float = 0.5,
    capacity_multiplier: float = 1.25,
    steering: Steering | None = None,
    trajectory: str | None = None,
    echo: bool = True,
) -> OptResult:
    """Minimise the energy of ``system`` with FIRE until max_i |F_i| < ``fmax`` eV/Å.

    fixed: indices (or boolean mask) of atoms held in place. trajectory: optional extxyz/H5MD path
    receiving one frame per block. Returns :class:`OptResult`."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax_md import minimize

    from ..precision import precision_context
    from .driver import keep_unless
    from .engine import as_pytree_fn, make_evaluate

    if not fmax > 0:
        raise ConfigError(f"fmax must be positive, got {fmax} eV/Å")
    if max_steps < 0:
        raise ConfigError(f"max_steps must be ≥ 0, got {max_steps}")
    n = system.n_atoms
    z = np.asarray(potential.atomic_numbers)
    if len(z) != n or np.any(z != system.atomic_numbers):
        raise ConfigError(f"the potential was built for different atoms than the structure {system.name}")
    mask = np.zeros(n, bool)
    if fixed is not None:
        fixed = np.asarray(fixed)
        if fixed.dtype == bool:
            if fixed.shape != (n,):
                raise ConfigError(f"fixed-atom mask must have length {n}")
            mask = fixed.copy()
        else:
            if fixed.size and (fixed.min() < 0 or fixed.max() >= n):
                raise ConfigError(f"fixed atom indices must be in 0..{n - 1}")
            mask[fixed.astype(int)] = True
    steering = (steering or Steering()).validate(n)
    with precision_context(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        cell = None if system.cell is None else jnp.asarray(system.cell, dtype)
        pl = PairLists(
            potential.neighbors, n, cell=system.cell, skin=skin, capacity_multiplier=capacity_multiplier
        )
        evaluate = make_evaluate(pl, steering.energy_fn())
        efn0 = as_pytree_fn(potential.energy_fn)
        fmask = jnp.asarray(mask)

        def energy(efn, R, lists=None):
            _, f = evaluate(efn, R, cell, lists)
            return f.e_model + f.e_ext

        def force(R, lists=None, efn=None):
            _, f = evaluate(efn, R, cell, lists)
            return jnp.where(fmask[:, None], 0.0, f.forces)

        init_fn, apply_fn = minimize.fire_descent(
            force, lambda R, dR, **kw: R + dR, dt_start=dt_start, dt_max=dt_max, n_min=n_min
        )
        R0 = jnp.asarray(system.positions, dtype)
        lists = pl.allocate(R0, cell)

        def fmax_of(F):
            return jnp.sqrt(jnp.max(jnp.sum(F * F, axis=-1)))

        def run_block(efn, state, lists, nsteps):
            def cond(c):
                i, st, ls, ovf = c
                return (i < nsteps) & (~ovf) & (fmax_of(st.force) >= fmax)

            def body(c):
                i, st, ls, _ = c
                st2 = apply_fn(st, lists=ls, efn=efn)
                ls2 = pl.update(ls, st2.position, cell)
                ovf = pl.overflowed(ls2)
                st, ls = keep_unless(ovf, (st, ls), (st2, ls2))
                return i + jnp.where(ovf, 0, 1), st, ls, ovf

            return lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), state, lists, jnp.zeros((), bool)))

        run_block = jax.jit(run_block)
        e_fn = jax.jit(energy)
        state = init_fn(R0, mass=1.0, lists=lists, efn=efn0)
        writer = None
        if trajectory:
            from .trajectory import open_trajectory

            writer = open_trajectory(trajectory, system.atomic_numbers, system.cell is not None)
        steps, realloc = 0, 0
        try:
            while True:
                fm = float(fmax_of(state.force))
                e = float(e_fn(efn0, state.position, lists))
                if not (math.isfinite(e) and math.isfinite(fm)):
                    raise ModelError(f"FIRE diverged at step {steps} (non-finite energy or forces)")
                if echo:
                    print(f"FIRE {steps:>6d}  E = {e:.6f} eV  max|F| = {fm:.5f} eV/Å", flush=True)
                if writer is not None:
                    writer.write(
                        steps,
                        0.0,
                        np.asarray(state.position),
                        np.zeros((n, 3)),
                        system.cell,
                        {"e_pot": e, "fmax": fm},
                    )
                if fm < fmax or steps >= max_steps:
                    break
                todo = min(block, max_steps - steps)
                i, state, lists, ovf = run_block(efn0, state, lists, jnp.asarray(todo, jnp.int32))
                steps += int(i)
                if bool(ovf):
                    lists = pl.allocate(state.position, cell)
                    realloc += 1
                    if echo:
                        print(f"# FIRE step {steps}: pair list overflow, re-allocated", file=sys.stderr)
        finally:
            if writer is not None:
                writer.close()
        return OptResult(
            positions=np.asarray(state.position, float),
            energy=e,
            fmax=fm,
            steps=steps,
            converged=fm < fmax,
            reallocations=realloc,
        )
