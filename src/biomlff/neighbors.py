"""Host-side (NumPy) pair lists for evaluating a :class:`~biomlff.potential.Potential` outside MD.

Pairs come from :class:`scipy.spatial.cKDTree` (periodic orthorhombic boxes through its
``boxsize`` option; triclinic cells through ASE's ``primitive_neighbor_list``, which handles any
cell) and are padded to a small set of capacity "buckets" so that structures of
different sizes share compiled programs: the padded capacity only changes when a structure needs
more room, and it never truncates (the list always holds every pair within the cutoff).
Inside compiled MD steps, JAX-MD's ``partition.neighbor_list`` is used instead (see ``biomlff.md``).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ModelError
from .geometry import check_cell
from .potential import Pairs


def bucket(n: int, minimum: int = 64) -> int:
    """Smallest capacity ≥ n from the geometric sequence minimum·√2^k, rounded up to 32."""
    n = max(int(n), 1)
    if n <= minimum:
        return minimum
    k = math.ceil(2 * math.log2(n / minimum))
    cap = int(math.ceil(minimum * 2 ** (k / 2) / 32.0) * 32)
    while cap < n:  # guard against floating rounding
        k += 1
        cap = int(math.ceil(minimum * 2 ** (k / 2) / 32.0) * 32)
    return cap


def is_orthorhombic(cell) -> bool:
    """True for a (3, 3) cell (Å, rows) whose off-diagonal entries are zero (to rounding)."""
    c = np.asarray(cell, dtype=float)
    return bool(np.all(np.abs(c - np.diag(np.diag(c))) <= 1e-8 * max(1.0, np.abs(c).max())))


def orthorhombic_box(cell) -> np.ndarray | None:
    """Box edge lengths (3,) in Å of an orthorhombic cell, or None for no cell.

    Raises ModelError for a non-orthorhombic cell."""
    if cell is None:
        return None
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise ModelError(f"cell must have shape (3, 3), got {cell.shape}")
    off = cell - np.diag(np.diag(cell))
    if np.any(np.abs(off) > 1e-8 * max(1.0, np.abs(cell).max())):
        raise ModelError("only orthorhombic cells are supported (off-diagonal cell entries are non-zero)")
    box = np.diag(cell).copy()
    if np.any(box <= 0):
        raise ModelError(f"cell edges must be positive, got {box}")
    return box


def pair_indices(positions, cutoff: float | None, cell=None, half: bool = False):
    """All pairs (i, j), i ≠ j, with |r_j − r_i| < cutoff (Å), minimum image if ``cell`` is given.

    ``cutoff=None`` returns all pairs (free space only). ``half`` returns each pair once (i < j).
    Returns two int64 arrays sorted by (i, j)."""
    pos = np.asarray(positions, dtype=float)
    n = len(pos)
    check_cell(cell, cutoff)  # one rule with the MD lists and SO3LR: cell heights ≥ 2 × cutoff
    if cutoff is None:
        i, j = np.triu_indices(n, k=1) if half else np.nonzero(~np.eye(n, dtype=bool))
        return i.astype(np.int64), j.astype(np.int64)
    if cell is not None and not is_orthorhombic(cell):
        ij = _triclinic_pairs(pos, cutoff, np.asarray(cell, dtype=float))
    else:
        from scipy.spatial import cKDTree

        box = orthorhombic_box(cell)
        tree = cKDTree(np.mod(pos, box), boxsize=box) if box is not None else cKDTree(pos)
        ij = tree.query_pairs(cutoff, output_type="ndarray")  # i < j
    if ij.size == 0:
        ij = np.zeros((0, 2), dtype=np.int64)
    if not half:
        ij = np.concatenate([ij, ij[:, ::-1]], axis=0)
    # sort by (i, j) through one int64 key i·N + j: the same order as np.lexsort on the two columns,
    # which had been most of the host list time (water 1536 at 12 Å, 557k pairs: this whole function
    # takes 56 ms, np.lexsort alone took 99; benchmarks/so3lr_profile.py)
    key = ij[:, 0].astype(np.int64) * n + ij[:, 1]
    key.sort()
    i, j = np.divmod(key, n)
    return i, j


def _triclinic_pairs(pos, cutoff: float, cell) -> np.ndarray:
    """(P, 2) pairs i < j closer than ``cutoff`` Å under the minimum image of a triclinic ``cell``.

    cKDTree's periodic boxes are orthorhombic only; ASE's cell-list search handles any cell. With
    every cell height ≥ 2 × cutoff (checked by the caller) a pair has at most one image within the
    cutoff, so the list has no duplicates."""
    from ase.neighborlist import primitive_neighbor_list

    i, j = primitive_neighbor_list("ij", (True, True, True), cell, pos, float(cutoff), self_interaction=False)
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)


def padded_pairs(i, j, capacity: int | None = None) -> Pairs:
    """Pad index arrays to ``capacity`` (default: :func:`bucket` of the pair count) as NumPy Pairs."""
    count = len(i)
    cap = bucket(count) if capacity is None else int(capacity)
    if cap < count:
        raise ModelError(f"pair capacity {cap} is smaller than the {count} pairs needed")
    pi = np.zeros(cap, dtype=np.int32)
    pj = np.zeros(cap, dtype=np.int32)
    mask = np.zeros(cap, dtype=bool)
    pi[:count] = i
    pj[:count] = j
    mask[:count] = True
    return Pairs(pi, pj, mask)


def build_pairs(
    positions, cutoff: float | None, cell=None, half: bool = False, capacity: int | None = None
) -> Pairs:
    """Padded pair list for one structure (positions Å, cutoff Å, cell rows Å or None)."""
    i, j = pair_indices(positions, cutoff, cell=cell, half=half)
    return padded_pairs(i, j, capacity)
