"""Cheap analytic potentials for tests, examples and the analysis helpers.

Both are ordinary :class:`biomlff.potential.Potential` objects, so everything in :mod:`biomlff.md`
treats them exactly like SO3LR or sGDML.

* :func:`lennard_jones` — pairwise 12-6 Lennard-Jones with a smooth (C²) switch to zero between
  ``r_on`` and ``cutoff``; uses one pair list (``"lj"``), full or half, or all pairs in free space.
* :func:`harmonic_tether` — every atom tied to a reference point, E = ½ k Σ|r − r₀|² (no pair list);
  its minimum and its dynamics are known in closed form.
"""

from __future__ import annotations

import numpy as np

from .geometry import minimum_image  # noqa: F401  (re-exported: biomlff.md.testing.minimum_image)
from .potential import NeighborSpec, Potential


def _smooth_switch(r, r_on: float, r_off: float):
    """C² switch: 1 for r ≤ r_on, 0 for r ≥ r_off, 1 − 10x³ + 15x⁴ − 6x⁵ in between (x ∈ [0, 1])."""
    import jax.numpy as jnp

    x = jnp.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


def lennard_jones(
    atomic_numbers,
    epsilon: float = 0.0104,
    sigma: float = 3.40,
    cutoff: float | None = 8.5,
    r_on: float | None = None,
    half: bool = True,
) -> Potential:
    """Lennard-Jones potential (ε in eV, σ, cutoff, r_on in Å; argon defaults).

    E = Σ_{i<j} 4ε[(σ/r)¹² − (σ/r)⁶]·S(r), S a C² switch from ``r_on`` (default 0.85·cutoff) to
    ``cutoff``. ``cutoff=None`` uses all pairs (free space only). ``half`` chooses the pair-list
    format the potential asks for (both must give the same energy)."""
    import jax.numpy as jnp

    z = np.asarray(atomic_numbers, dtype=np.int32)
    if cutoff is not None and r_on is None:
        r_on = 0.85 * cutoff
    weight = 1.0 if half else 0.5

    def energy_fn(positions, pairs, cell=None):
        p = pairs["lj"]
        d = minimum_image(positions[p.j] - positions[p.i], cell)
        r2 = jnp.sum(d * d, axis=-1)
        r2 = jnp.where(p.mask, r2, 4.0 * sigma**2)  # padded pairs: harmless finite distance
        r = jnp.sqrt(r2)
        sr6 = (sigma**2 / r2) ** 3
        e = 4.0 * epsilon * (sr6 * sr6 - sr6)
        if cutoff is not None:
            e = e * _smooth_switch(r, r_on, cutoff)
        return weight * jnp.sum(jnp.where(p.mask, e, 0.0))

    return Potential(
        energy_fn=energy_fn,
        neighbors={"lj": NeighborSpec(cutoff, half=half)},
        atomic_numbers=z,
        name="lennard-jones",
        info={"epsilon_eV": epsilon, "sigma_A": sigma, "cutoff_A": cutoff},
    )


def harmonic_tether(atomic_numbers, reference_positions, k: float = 1.0) -> Potential:
    """E = ½ k Σ_i |r_i − r0_i|² (k in eV/Å², r0 in Å); no pair list, ignores the cell."""
    import jax.numpy as jnp

    z = np.asarray(atomic_numbers, dtype=np.int32)
    r0 = np.asarray(reference_positions, dtype=float)

    def energy_fn(positions, pairs, cell=None):
        d = positions - jnp.asarray(r0, dtype=positions.dtype)
        return 0.5 * k * jnp.sum(d * d)

    return Potential(
        energy_fn=energy_fn, neighbors={}, atomic_numbers=z, name="harmonic-tether", info={"k_eV_A2": k}
    )


def fcc_lattice(n_cells: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (4·n³, 3) Å of an fcc lattice with lattice constant ``a`` Å and its cubic cell (3, 3)."""
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    g = np.stack(np.meshgrid(*[np.arange(n_cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = (g[:, None, :] + base[None]).reshape(-1, 3) * a
    return pos, np.eye(3) * a * n_cells


def lj_cluster(n: int = 13, sigma: float = 3.40, seed: int = 0, jitter: float = 0.05) -> np.ndarray:
    """A compact cluster of ``n`` atoms (positions Å) cut from an fcc lattice near its minimum, with a
    small random jitter (Å) — a free-space test system."""
    a = sigma * 2 ** (1 / 6) * np.sqrt(2)
    pos, _ = fcc_lattice(4, a)
    centre = pos.mean(0)
    order = np.argsort(np.linalg.norm(pos - centre, axis=1), kind="stable")
    sel = pos[order[:n]]
    rng = np.random.default_rng(seed)
    return sel - sel.mean(0) + jitter * rng.standard_normal(sel.shape)
