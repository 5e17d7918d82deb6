"""Geometry shared by every pillar: minimum-image displacements, cell heights and the one cell check.

Below every pillar: imports only NumPy (and JAX lazily inside the JAX functions).

Conventions: positions and displacements in Å; a cell is (3, 3) Å with the lattice vectors as rows
(ASE), or ``None`` for free space.

* :func:`minimum_image` (JAX) and :func:`minimum_image_np` (NumPy) are one formula,
  ``s = d @ inv(cell); d' = (s − round(s)) @ cell``, in one operation order (the SO3LR float64
  references are reproduced bit for bit through it).
* Fractional rounding gives the true nearest image of every pair closer than ``r`` whenever all cell
  heights are ≥ 2 r (|s_k| ≤ r / h_k < ½), for any triclinic cell; that is the rule of
  :func:`check_cell`, used by the MD neighbour lists, the host pair lists and the SO3LR model alike.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError


def _round_to_image(d, cell, xp):
    """The one minimum-image formula, for the array module ``xp`` (numpy or jax.numpy)."""
    s = d @ xp.linalg.inv(cell)
    return (s - xp.round(s)) @ cell


def minimum_image(d, cell):
    """Minimum-image copies of displacement vectors ``d`` (..., 3) Å under ``cell`` (3, 3) Å (rows =
    lattice vectors; ``None`` returns ``d``), in JAX (jit- and grad-safe). Exact for every vector
    shorter than half the smallest cell height (:func:`cell_heights`)."""
    if cell is None:
        return d
    import jax.numpy as jnp

    return _round_to_image(d, cell, jnp)


def minimum_image_elementwise(d, cell, inverse):
    """:func:`minimum_image` of ``d`` (..., 3) Å with the cell (3, 3) Å and its inverse given, written
    as broadcast products instead of (..., 3)·(3, 3) matrix products: XLA fuses it into the
    surrounding element-wise code, where a K = 3 matrix product is a separate, slow call on CPU (the
    SO3LR long-range pass spent ~40 % of its time there). Equal up to float rounding."""
    s = d[..., 0:1] * inverse[0] + d[..., 1:2] * inverse[1] + d[..., 2:3] * inverse[2]
    s = s - _round(s)
    return s[..., 0:1] * cell[0] + s[..., 1:2] * cell[1] + s[..., 2:3] * cell[2]


def _round(x):
    import jax.numpy as jnp

    return jnp.round(x)


def minimum_image_np(d, cell) -> np.ndarray:
    """NumPy twin of :func:`minimum_image` (same formula): displacements ``d`` (..., 3) Å under one
    cell (3, 3) Å, or (T, ..., 3) under per-frame cells (T, 3, 3) Å; ``None`` returns ``d``."""
    d = np.asarray(d, dtype=float)
    if cell is None:
        return d
    c = np.asarray(cell, dtype=float)
    if c.ndim == 2:
        return _round_to_image(d, c, np)
    v = d.reshape(d.shape[0], -1, 3)  # (T, K, 3) @ (T, 3, 3): one cell per frame
    return _round_to_image(v, c, np).reshape(d.shape)


def cell_heights(cell) -> np.ndarray:
    """Distances (Å) between opposite faces of the cell(s) (..., 3, 3) Å → (..., 3): h_k = |a_k · n_k|
    with n_k the unit normal of the face spanned by the other two lattice vectors (for an orthorhombic
    cell exactly its edge lengths)."""
    c = np.asarray(cell, dtype=float)
    out = []
    for k in range(3):
        n = np.cross(c[..., (k + 1) % 3, :], c[..., (k + 2) % 3, :])
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
        out.append(np.abs(np.sum(c[..., k, :] * n, axis=-1)))
    return np.stack(out, axis=-1)


def cell_from_pbc(cell, pbc, name: str = "structure") -> np.ndarray | None:
    """The one periodicity rule: the (3, 3) cell in Å (rows = lattice vectors) when ``pbc`` is set in
    all three directions, ``None`` (free space) when it is set in none.

    ``pbc``: a bool or three bools (None = free space). Raises ConfigError naming ``name`` for mixed
    pbc (slabs and wires: no biomlff model sums a 2-D lattice) and for a periodic structure whose cell
    is missing, of the wrong shape or singular. Every path that turns a structure into a model input
    (eval, finetune, train, md, opt, the calculators, labels) uses this rule."""
    from .errors import PeriodicityError as ConfigError

    flags = np.broadcast_to(np.asarray(False if pbc is None else pbc, dtype=bool), (3,))
    if not flags.any():
        return None
    if not flags.all():
        raise ConfigError(
            f"{name}: mixed periodic boundary conditions pbc={flags.tolist()} (a slab or wire) are not "
            "supported; use pbc in all three directions (a 3-D box with vacuum) or none (free space)"
        )
    if cell is None:
        raise ConfigError(f"{name}: pbc is set but there is no cell; give a cell or set pbc=False")
    c = np.asarray(cell, dtype=float)
    if c.size != 9:
        raise ConfigError(f"{name}: the cell must have 9 entries (3 × 3 Å), got shape {c.shape}")
    c = c.reshape(3, 3)
    if abs(np.linalg.det(c)) < 1e-9:
        raise ConfigError(
            f"{name}: pbc is set but the cell is zero or singular; give a cell or set pbc=False"
        )
    return c


def check_cell(cell, cutoff: float | None, name: str = "cutoff") -> np.ndarray | None:
    """Validate a periodic cell (3, 3) Å (rows = lattice vectors) for minimum-image pairs within
    ``cutoff`` Å: every cell height (:func:`cell_heights`) must be ≥ 2 × cutoff. Returns the cell as
    float64, or ``None`` for free space (``cell=None``). ``name`` names the cutoff in the error.

    Raises ModelError for a wrong shape, a singular cell, a cutoff of None (an all-pairs list exists
    only in free space) or a cell that is too small (naming its heights and the cutoff)."""
    if cell is None:
        return None
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3):
        raise ModelError(f"cell must have shape (3, 3), got {c.shape}")
    if abs(np.linalg.det(c)) < 1e-9:
        raise ModelError("the cell is singular (zero volume); give a full 3-D periodic cell or none")
    if cutoff is None:
        raise ModelError(
            "an all-pairs list (cutoff None) is only defined in free space; "
            "give a finite cutoff for periodic systems (e.g. a 12 Å long-range cutoff, --lr-cutoff 12)"
        )
    need = 2.0 * float(cutoff)
    heights = cell_heights(c)
    if need > 0 and heights.min() < need:
        raise ModelError(
            f"box heights {np.round(heights, 4).tolist()} Å are smaller than 2 × {name} = {need:g} Å; "
            "the minimum-image convention needs a larger box, or a smaller cutoff (SO3LR: --lr-cutoff "
            "on the command line, lr_cutoff= in Python)"
        )
    return c


def separate_fragments(positions, fragment_ids, separation: float = 1000.0) -> np.ndarray:
    """Positions (Å) with fragment k translated along x so that every pair of atoms in different
    fragments is at least ``separation`` Å apart (fragment 0 stays in place).

    This is the reference geometry of binding energies as the SO3LR paper computes them:
    E_bind = E(complex) − E(separated complex), both at the complex's total charge."""
    x = np.array(positions, dtype=float)
    ids = np.asarray(fragment_ids)
    prev_max = None
    for k in range(int(ids.max()) + 1):
        sel = ids == k
        if not np.any(sel):
            continue
        if prev_max is not None:
            x[sel, 0] += prev_max + separation - x[sel, 0].min()
        prev_max = x[sel, 0].max()
    return x
