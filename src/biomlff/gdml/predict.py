"""sGDML prediction (spec §4) in JAX: batched energies and forces, and the energy function of a
:class:`biomlff.potential.Potential`.

For a query with descriptor x and Jacobian c, training descriptors X_j and coefficients
u_j = J_j α_j (both permuted by every π of the group: rows of Xp, Up with M·P rows), d = x − P_π X_j,
r = ‖d‖, e = exp(−√5 r/σ):

    E = c + s Σ (5/(3σ³)) (σ + √5 r) e (d·u)
    g = s Σ (5/(3σ⁴)) e [5 (d·u) d − (σ² + √5 σ r) u],     F = J(x)ᵀ g

so that F = −∇E exactly. The batched path expands ‖d‖² = ‖x‖² + ‖X‖² − 2 x·X so that every sum
over training rows is a matrix product (GEMM); the single-geometry energy function keeps the direct
differences (exact at d = 0 and safe for autodiff).
"""

from __future__ import annotations

import math

SQRT5 = math.sqrt(5.0)


def batch_energy_forces(x, c, xp, up, x2p, xup, sigma, std, const, a, b, n_atoms: int):
    """Energies (B,) and forces (B, N, 3) for descriptors x (B, D), Jacobians c (B, D, 3).

    xp, up: (R, D) permuted training descriptors and coefficients; x2p = Σ xp², xup = Σ xp·up (R,).
    Units follow the model (eV, eV/Å for biomlff models).
    """
    import jax.numpy as jnp

    from .descriptor import vjp

    x2 = jnp.sum(x * x, axis=-1)
    r2 = x2[:, None] + x2p[None, :] - 2.0 * (x @ xp.T)
    r = jnp.sqrt(jnp.maximum(r2, 0.0))
    du = x @ up.T - xup[None, :]
    e = jnp.exp(-SQRT5 * r / sigma)
    energy = const + std * jnp.sum((5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e * du, axis=-1)
    w = (5.0 / (3.0 * sigma**4)) * e
    c1 = 5.0 * w * du
    c2 = w * (sigma**2 + SQRT5 * sigma * r)
    g = x * jnp.sum(c1, axis=-1, keepdims=True) - c1 @ xp - c2 @ up
    forces = vjp(c, std * g, a, b, n_atoms)
    return energy, forces


def single_energy(x, xp, up, sigma, std, const):
    """Energy of one descriptor x (D,) with direct differences (autodiff-safe at d = 0)."""
    import jax.numpy as jnp

    d = x[None, :] - xp
    r2 = jnp.sum(d * d, axis=-1)
    pos = r2 > 1e-30
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)  # double-where: finite gradient at 0
    du = jnp.sum(d * up, axis=-1)
    e = jnp.exp(-SQRT5 * r / sigma)
    return const + std * jnp.sum((5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e * du)


def potential_energy(params, positions, pairs, cell):
    """energy_fn of the GDML Potential: positions (N, 3) Å → energy (eV). ``pairs`` is ignored
    (global model); ``cell`` (rows = lattice vectors, Å) switches on the minimum image, otherwise
    the model's own lattice (if any) is used."""
    from .descriptor import descriptor

    a, b = params["a"], params["b"]
    lattice = params.get("lattice")
    if cell is not None:
        lattice = cell.T
    x = descriptor(positions, a, b, lattice)
    return single_energy(x, params["xp"], params["up"], params["sigma"], params["std"], params["c"])
