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


def tril_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index of each pair (a_k > b_k) in the full default list: a(a − 1)/2 + b (spec §0)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    return a * (a - 1) // 2 + b


def check_pair_list(n_atoms: int, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Validate a descriptor pair list for a molecule of ``n_atoms`` atoms and return it as int32
    arrays. Raises ModelError unless every pair (a_k, b_k) has 0 ≤ b_k < a_k < N, no pair repeats
    and the list is not empty."""
    from ..errors import ModelError

    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ModelError(
            f"pair list: a and b must be 1-D arrays of equal length, got {a.shape} and {b.shape}"
        )
    if len(a) == 0:
        raise ModelError("pair list is empty: the descriptor needs at least one atom pair")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ModelError("pair list: atom indices must be integers")
    bad = (a <= b) | (b < 0) | (a >= n_atoms)
    if bad.any():
        k = int(np.nonzero(bad)[0][0])
        raise ModelError(
            f"pair list does not match the molecule ({n_atoms} atoms): pair {k} is "
            f"({int(a[k])}, {int(b[k])}); every pair needs 0 ≤ b < a < {n_atoms}"
        )
    idx = tril_index(a, b)
    if len(np.unique(idx)) != len(idx):
        raise ModelError("pair list contains a pair twice")
    return a.astype(np.int32), b.astype(np.int32)


def pairs_from_removed(n_atoms: int, removed) -> tuple[np.ndarray, np.ndarray]:
    """Reduced pair list = the default list without the pairs at indices ``removed`` (the rGDML
    ``rm_arr`` / index-file convention: indices into the full tril order of spec §0)."""
    from ..errors import ModelError

    a, b = pair_list(n_atoms)
    rm = np.asarray(removed).reshape(-1)
    if rm.size and not np.issubdtype(rm.dtype, np.integer):
        if not np.all(rm == np.round(rm)):
            raise ModelError("removed pair indices must be integers")
    rm = rm.astype(np.int64)
    d = len(a)
    if rm.size and (rm.min() < 0 or rm.max() >= d):
        raise ModelError(
            f"removed pair indices out of range for {n_atoms} atoms (D = {d}): "
            f"min {int(rm.min())}, max {int(rm.max())}"
        )
    if len(np.unique(rm)) != len(rm):
        raise ModelError("removed pair indices contain duplicates")
    if len(rm) >= d:
        raise ModelError(f"all {d} descriptor pairs would be removed")
    keep = np.setdiff1d(np.arange(d), rm)
    return a[keep], b[keep]


def removed_from_pairs(n_atoms: int, a, b) -> np.ndarray:
    """Indices (tril order) of the default pairs that are absent from the pair list (a, b); raises
    ModelError if the list is not a subset of the default list in its order (sgdml ``desc_type=2``
    files can only express such lists)."""
    from ..errors import ModelError

    a, b = check_pair_list(n_atoms, a, b)
    idx = tril_index(a, b)
    if np.any(np.diff(idx) <= 0):
        raise ModelError("pair list is not in the default (tril) order; sgdml files need that order")
    return np.setdiff1d(np.arange(n_atoms * (n_atoms - 1) // 2), idx).astype(np.int64)


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
