"""Inverse-distance descriptor of sGDML, its Jacobian and matrix-free products (spec §1).

For a pair list (a_k, b_k), k = 0..D-1 (default: all pairs with a_k > b_k in
``numpy.tril_indices(N, k=-1)`` order, the order baked into sGDML files), the descriptor is

    x_k = 1 / ‖r_{a_k} − r_{b_k}‖        (1/Å)

and its Jacobian is stored "compressed" as c_k = (r_{a_k} − r_{b_k}) / ‖r_{a_k} − r_{b_k}‖³ (1/Å²):
∂x_k/∂r_{b_k} = +c_k, ∂x_k/∂r_{a_k} = −c_k.

All functions take an array module ``xp`` (numpy or jax.numpy) implicitly through the inputs: they use
only operations common to both, so the same code runs on the host and inside ``jax.jit``.
"""

from __future__ import annotations

import numpy as np


def pair_list(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Default pair list (a, b) with a > b in ``np.tril_indices(n_atoms, k=-1)`` order."""
    a, b = np.tril_indices(n_atoms, k=-1)
    return a.astype(np.int32), b.astype(np.int32)


def pair_index_matrix(n_atoms: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, N) matrix whose entry [p, q] is the index k of the pair {p, q} (−1 if absent)."""
    idx = -np.ones((n_atoms, n_atoms), dtype=np.int64)
    k = np.arange(len(a))
    idx[a, b] = k
    idx[b, a] = k
    return idx


def _xp(arr):
    if isinstance(arr, np.ndarray):
        return np
    import jax.numpy as jnp

    return jnp


def pair_vectors(positions, a, b, lattice=None):
    """Pair difference vectors r_a − r_b (..., D, 3) in Å, minimum image if ``lattice`` is given.

    lattice: (3, 3) with lattice vectors as **columns** (sGDML convention) or None.
    """
    xp = _xp(positions)
    diff = positions[..., a, :] - positions[..., b, :]
    if lattice is not None:
        lat = xp.asarray(lattice)
        lat_inv = xp.linalg.inv(lat)
        frac = diff @ lat_inv.T
        diff = diff - xp.round(frac) @ lat.T
    return diff


def descriptor_and_jacobian(positions, a, b, lattice=None):
    """Descriptor x (..., D) in 1/Å and compressed Jacobian c (..., D, 3) in 1/Å² (spec §1)."""
    xp = _xp(positions)
    diff = pair_vectors(positions, a, b, lattice)
    r2 = xp.sum(diff * diff, axis=-1)
    inv_r = 1.0 / xp.sqrt(r2)
    x = inv_r
    c = diff * (inv_r**3)[..., None]
    return x, c


def descriptor(positions, a, b, lattice=None):
    """Descriptor x (..., D) in 1/Å."""
    return descriptor_and_jacobian(positions, a, b, lattice)[0]


def jacobian_dense(c, a, b, n_atoms: int):
    """Dense Jacobian (..., D, 3N) from the compressed one (used in kernel assembly)."""
    xp = _xp(c)
    d = c.shape[-2]
    sel_b = np.zeros((d, n_atoms), dtype=np.float64)
    sel_b[np.arange(d), b] = 1.0
    sel_a = np.zeros((d, n_atoms), dtype=np.float64)
    sel_a[np.arange(d), a] = 1.0
    inc = xp.asarray(sel_b - sel_a, dtype=c.dtype)  # (D, N): +1 at b_k, −1 at a_k
    dense = inc[..., :, :, None] * c[..., :, None, :]  # (..., D, N, 3)
    return dense.reshape(c.shape[:-2] + (d, 3 * n_atoms))


def jvp(c, w, a, b):
    """J·w: (Jw)_k = c_k · (w_{b_k} − w_{a_k}); w (..., N, 3) → (..., D)."""
    xp = _xp(c)
    return xp.sum(c * (w[..., b, :] - w[..., a, :]), axis=-1)


def vjp(c, g, a, b, n_atoms: int):
    """Jᵀ·g: out_{b_k} += g_k c_k, out_{a_k} −= g_k c_k; g (..., D) → (..., N, 3)."""
    xp = _xp(c)
    contrib = g[..., None] * c  # (..., D, 3)
    if xp is np:
        out = np.zeros(c.shape[:-2] + (n_atoms, 3), dtype=np.result_type(c, g))
        # np.add.at on the last-but-one axis for any leading shape
        out_t = np.moveaxis(out, -2, 0)
        np.add.at(out_t, b, np.moveaxis(contrib, -2, 0))
        np.add.at(out_t, a, -np.moveaxis(contrib, -2, 0))
        return out
    # incidence matmul: dense, but XLA turns it into one GEMM (faster than scatter-add on CPU)
    d = c.shape[-2]
    inc = np.zeros((n_atoms, d))
    inc[b, np.arange(d)] += 1.0
    inc[a, np.arange(d)] -= 1.0
    inc = xp.asarray(inc, dtype=c.dtype)
    return xp.einsum("nd,...dk->...nk", inc, contrib)
