"""Which atoms form which molecule, frame by frame (for intermolecular RDFs), or from a topology.

Connectivity per frame: heavy atoms are bonded when d < scale·(r_i + r_j) (ASE covalent radii,
default scale 1.3, i.e. 30 % tolerance for bonds stretched in hot MD); each hydrogen is bonded to its
single nearest atom within the same tolerance (hydrogen has one bond), so a stretched O–H of hot
water stays in its molecule and a proton shared by two oxygens never fuses two molecules into one.
Group 1 and 2 metals (Li⁺, Na⁺, K⁺, Mg²⁺, Ca²⁺, ...) are ions: they bond to nothing (otherwise a
cation would merge its hydration shell into one "molecule"). Molecules are the connected components
of the bond graph, labelled in order of their lowest atom index, so labels of two frames are equal
exactly when the molecules are. When the assignment changes between frames (proton transfer, a bond
breaking), an :class:`~biomlff.analysis.safety.AnalysisWarning` names the first change.

Why partly hand-written: the pair search is MDAnalysis' ``self_capped_distance`` (grid search,
triclinic boxes; ~40× faster than ASE's neighbour list at 5,000 atoms), but no library offers the
nearest-partner rule for hydrogen; ASE's ``natural_cutoffs`` and MDAnalysis' ``guess_bonds`` apply
one distance rule to every pair, which either drops stretched O–H bonds or, with a looser
tolerance, joins molecules through shared protons.

Units: positions Å, cells (T, 3, 3) or (3, 3) Å with lattice vectors as rows (ASE); ``None`` = free
space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, MissingDependencyError
from .safety import warn

H = 1
#: alkali and alkaline-earth metals: treated as ions (no covalent bonds)
IONS = frozenset({3, 4, 11, 12, 19, 20, 37, 38, 55, 56, 87, 88})
#: default tolerance on the sum of covalent radii
BOND_SCALE = 1.3


def mdanalysis_frames(positions, cells):
    """Positions (T, N, 3) Å and cells (T, 3, 3) Å (or None) re-expressed for MDAnalysis: boxes as
    (a, b, c, α, β, γ) in its canonical orientation, positions through fractional coordinates so
    that any ASE cell orientation works. Returns (positions (T, N, 3), dimensions (T, 6) or None)."""
    x = np.asarray(positions, dtype=float)
    if cells is None:
        return x, None
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    c = np.asarray(cells, dtype=float)
    dims = np.array([cell_to_cellpar(ci) for ci in c])
    canon = np.array([cellpar_to_cell(d) for d in dims])
    frac = np.einsum("tni,tij->tnj", x, np.linalg.inv(c))
    return np.einsum("tni,tij->tnj", frac, canon), dims


def _self_capped_distance():
    try:
        from MDAnalysis.lib.distances import self_capped_distance
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "molecule assignment needs MDAnalysis: pip install 'biomlff[analysis]'"
        ) from exc
    return self_capped_distance


def frame_bonds(numbers, positions, dimensions=None, scale: float = BOND_SCALE) -> np.ndarray:
    """Bonds (B, 2) of one frame by the rules of this module (heavy atoms: d < scale·(r_i + r_j);
    each H to its nearest atom within that tolerance; group 1/2 metals unbonded). positions (N, 3) Å
    in MDAnalysis' box orientation, ``dimensions`` (6,) its box (Å, degrees) or None for free space
    (:func:`mdanalysis_frames` converts ASE cells)."""
    from ase.data import covalent_radii

    z = np.asarray(numbers, dtype=int)
    x = np.ascontiguousarray(positions, dtype=np.float32)
    bonding = ~np.isin(z, list(IONS))
    r = np.where(bonding, covalent_radii[z], 0.0)
    if z.size < 2 or not bonding.any():
        return np.zeros((0, 2), dtype=int)
    box = None if dimensions is None else np.asarray(dimensions, dtype=np.float32)
    pairs, d = _self_capped_distance()(x, float(2.0 * scale * r.max()), box=box)
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    ok = (d < scale * (r[i] + r[j])) & bonding[i] & bonding[j]
    i, j, d = i[ok], j[ok], np.asarray(d)[ok]
    hi, hj = z[i] == H, z[j] == H
    heavy = np.stack([i[~hi & ~hj], j[~hi & ~hj]], axis=1)
    # every hydrogen end of a pair, with its partner: keep the nearest partner of each hydrogen
    h = np.concatenate([i[hi], j[hj]])
    partner = np.concatenate([j[hi], i[hj]])
    dist = np.concatenate([d[hi], d[hj]])
    order = np.lexsort((dist, h))
    h, partner = h[order], partner[order]
    first = np.ones(h.size, bool)
    first[1:] = h[1:] != h[:-1]
    return np.concatenate([heavy, np.stack([h[first], partner[first]], axis=1)]).astype(int)


def molecule_labels(n_atoms: int, bonds) -> np.ndarray:
    """(N,) molecule label of every atom: connected components of the bond graph, numbered 0, 1, ...
    in order of each molecule's lowest atom index (equal labels ⇔ equal molecules across frames)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = np.asarray(bonds, dtype=int).reshape(-1, 2)
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n_atoms, n_atoms))
    n, labels = connected_components(g, directed=False)
    lowest = np.full(n, n_atoms)
    np.minimum.at(lowest, labels, np.arange(n_atoms))
    rank = np.empty(n, dtype=int)
    rank[np.argsort(lowest)] = np.arange(n)
    return rank[labels]


@dataclass
class MoleculeAssignment:
    """Molecule labels per frame: ``ids`` (T, N); ``changes`` the frames whose assignment differs
    from the frame before; ``method`` how they were found (for messages)."""

    ids: np.ndarray
    changes: np.ndarray
    method: str

    def blocks(self) -> list[tuple[int, int]]:
        """(start, stop) frame ranges over which the assignment stays the same."""
        edges = [0, *self.changes.tolist(), self.ids.shape[0]]
        return list(zip(edges[:-1], edges[1:], strict=True))


def _describe_change(numbers, before, after) -> str:
    """Bonds broken and formed between two bond lists (B, 2), at most three of each, e.g.
    'H55–O54 broken, H55–O57 formed'."""
    from ase.data import chemical_symbols

    def keyset(b):
        return {(min(p), max(p)) for p in np.asarray(b, dtype=int).tolist()}

    def name(p):
        a, b = sorted(p, key=lambda k: (numbers[k] != H, k))  # hydrogen first, as in "H55–O54"
        return f"{chemical_symbols[numbers[a]]}{a}–{chemical_symbols[numbers[b]]}{b}"

    old, new = keyset(before), keyset(after)
    parts = []
    for what, s in (("broken", sorted(old - new)), ("formed", sorted(new - old))):
        if s:
            more = f" (+{len(s) - 3} more)" if len(s) > 3 else ""
            parts.append(f"{', '.join(name(p) for p in s[:3])}{more} {what}")
    return "; ".join(parts) or "molecules regrouped"


def assign_molecules(
    numbers, positions, cell=None, scale: float = BOND_SCALE, check: bool = True
) -> MoleculeAssignment:
    """Molecules of every frame from connectivity (see the module docstring).

    numbers (N,), positions (T, N, 3) or (N, 3) Å, cell (T, 3, 3) or (3, 3) Å or None, ``scale``
    the tolerance on the sum of covalent radii. With ``check``, an AnalysisWarning says when and how
    the assignment changes between frames."""
    x = np.asarray(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    z = np.asarray(numbers, dtype=int)
    if x.ndim != 3 or x.shape[1:] != (z.size, 3):
        raise DataError(f"positions {x.shape} do not match {z.size} atoms")
    if scale <= 0:
        raise DataError(f"bond tolerance scale must be positive, got {scale}")
    c = None
    if cell is not None:
        c = np.asarray(cell, dtype=float)
        c = np.broadcast_to(c, (x.shape[0], 3, 3)) if c.ndim == 2 else c
    xm, dims = mdanalysis_frames(x, c)
    ids = np.empty((x.shape[0], z.size), dtype=int)
    changes, first_change = [], None
    prev = None
    for t in range(x.shape[0]):
        bonds = frame_bonds(z, xm[t], None if dims is None else dims[t], scale)
        ids[t] = molecule_labels(z.size, bonds)
        if t and not np.array_equal(ids[t], ids[t - 1]):
            changes.append(t)
            if first_change is None:
                first_change = (t, _describe_change(z, prev, bonds))
        prev = bonds
    method = f"bonds per frame (covalent radii ×{scale:g}, each H to its nearest atom)"
    if check and first_change is not None:
        t, what = first_change
        warn(
            f"the molecules change between frames: in {len(changes)} of {x.shape[0] - 1} frame steps "
            f"(first at frame {t}: {what}); intermolecular pairs are assigned frame by frame",
        )
    return MoleculeAssignment(ids=ids, changes=np.asarray(changes, dtype=int), method=method)


def molecules_from_topology(path, n_atoms: int) -> tuple[np.ndarray, str]:
    """(N,) molecule ids from a topology file (PDB, PSF, GRO, ... read by MDAnalysis) and how they
    were found: its bonds' connected fragments when the file has bonds (PSF, PDB CONECT), else its
    residues (one water per residue)."""
    try:
        import MDAnalysis as mda
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "molecules from a topology need MDAnalysis: pip install 'biomlff[analysis]'"
        ) from exc
    try:
        u = mda.Universe(str(path))
    except Exception as exc:  # MDAnalysis raises many types for unreadable files
        raise DataError(f"{path}: cannot read the topology ({type(exc).__name__}: {exc})") from exc
    if len(u.atoms) != n_atoms:
        raise DataError(f"{path}: the topology has {len(u.atoms)} atoms, the trajectory {n_atoms}")
    if hasattr(u, "bonds") and len(u.bonds):
        return np.asarray(u.atoms.fragindices, dtype=int), f"bonded fragments of {path}"
    return np.asarray(u.atoms.resindices, dtype=int), f"residues of {path} (it has no bonds)"
