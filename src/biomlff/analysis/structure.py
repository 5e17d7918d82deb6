"""Structural observables on NumPy arrays: RDF, RMSD (Kabsch), RMSD(t, t+Δt), radius of gyration,
distance / angle / dihedral series.

Conventions: positions (T, N, 3) or (N, 3) in Å; cells (T, 3, 3) or (3, 3) in Å with lattice
vectors as rows (ASE); ``None`` cell = free space; angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from ..geometry import cell_heights, minimum_image_np


def _frames(positions) -> np.ndarray:
    x = np.asarray(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise DataError(f"positions must have shape (T, N, 3) or (N, 3), got {x.shape}")
    return x


def select_atoms(what: str, idx, frames, *per_atom):
    """(frames[:, idx], *(a[idx] for a in per_atom)) for an atom selection ``idx`` (None: all atoms,
    everything returned unchanged); per-atom arrays (N, ...) may be None (kept). DataError naming
    ``what`` (e.g. "RMSD") for an empty selection."""
    if idx is None:
        return (frames, *per_atom)
    idx = np.asarray(idx, dtype=int)
    if idx.size == 0:
        raise DataError(f"{what}: the selection matches no atoms")
    return (frames[:, idx], *(None if a is None else np.asarray(a, dtype=float)[idx] for a in per_atom))


def _cells(cell, n_frames: int) -> np.ndarray | None:
    if cell is None:
        return None
    c = np.asarray(cell, dtype=float)
    if c.shape == (3,):
        c = np.diag(c)
    if c.shape == (3, 3):
        c = np.broadcast_to(c, (n_frames, 3, 3))
    if c.shape != (n_frames, 3, 3):
        raise DataError(f"cell must be (3, 3) or ({n_frames}, 3, 3), got {c.shape}")
    return c


#: distances (Å) between opposite faces of the cell(s) (..., 3, 3) → (..., 3)
perpendicular_widths = cell_heights


def minimum_image(vectors, cell) -> np.ndarray:
    """Minimum-image copies of difference vectors (T, ..., 3) Å under cells (T, 3, 3) Å
    (:func:`biomlff.geometry.minimum_image_np`; exact for vectors shorter than half the smallest
    cell height)."""
    return minimum_image_np(vectors, cell)


# --------------------------------------------------------------------------- RDF


@dataclass
class RDFResult:
    """g(r) on bin centres ``r`` (Å); ``n_r`` = running coordination number; ``pair`` label."""

    r: np.ndarray
    g: np.ndarray
    n_r: np.ndarray | None
    pair: str
    periodic: bool


def rdf(
    positions, cell, idx_a, idx_b, r_max: float = 6.0, n_bins: int = 120, r_min: float = 0.0, molecules=None
) -> RDFResult:
    """Radial distribution function g(r) between atom groups A and B under periodic boundaries.

    positions (T, N, 3) Å, cell (3, 3) or (T, 3, 3) Å (required), idx_a / idx_b atom indices,
    r_max Å (must not exceed half the smallest perpendicular cell width). Distances between an
    atom and itself are excluded when the groups overlap. Uses MDAnalysis' ``InterRDF`` (grid
    neighbour search, triclinic boxes) on an in-memory Universe; normalised with the mean volume.
    Returns r (Å), g(r) and the running coordination number n(r) = ρ_B ∫ 4πr²g dr.
    ``molecules``: molecule ids (N,), or (T, N) per frame (:func:`biomlff.analysis.molecules.
    assign_molecules`): count only pairs in different molecules (intermolecular RDF), normalised by
    the density of B atoms outside the A atom's own molecule (averaged over frames) so g → 1.
    """
    x = _frames(positions)
    if cell is None:
        raise DataError(
            "a periodic RDF needs a cell; this trajectory has none (use gas_histogram for free space)"
        )
    c = _cells(cell, x.shape[0])
    ia = np.asarray(idx_a, dtype=int)
    ib = np.asarray(idx_b, dtype=int)
    if ia.size == 0 or ib.size == 0:
        raise DataError("RDF: an atom group is empty")
    if r_max <= r_min or n_bins < 1:
        raise ConfigError(f"RDF: need r_max > r_min and n_bins ≥ 1 (got {r_min}, {r_max}, {n_bins})")
    half = 0.5 * perpendicular_widths(c).min()
    if r_max > half + 1e-9:
        raise ConfigError(
            f"RDF: r_max = {r_max} Å exceeds half the smallest cell width ({half:.3f} Å); "
            "the minimum-image convention would undercount pairs"
        )
    from .molecules import mdanalysis_frames

    xc, dims = mdanalysis_frames(x, c)
    # Two groups as separate atom blocks: A's atoms first, then B's, so exclusion of self pairs is
    # a block exclusion in InterRDF only when the groups are identical.
    same = ia.size == ib.size and np.array_equal(np.sort(ia), np.sort(ib))
    if not same and np.intersect1d(ia, ib).size:
        raise ConfigError(
            "RDF: overlapping but different groups A and B are not supported; "
            "use identical or disjoint groups"
        )
    order = ia if same else np.concatenate([ia, ib])
    coords = xc[:, order]
    vol = float(np.mean(np.abs(np.linalg.det(c))))
    if molecules is None:
        calc = _inter_rdf(coords, dims, ia.size, same, None, r_min, r_max, n_bins)
        g = np.asarray(calc.results.rdf, dtype=float)
        rho_b = ((ib.size - 1) if same else ib.size) / vol
    else:
        # one InterRDF run per stretch of frames with the same molecules (residues in MDAnalysis)
        mol = _molecule_frames(molecules, x.shape[:2])
        counts, n_pairs = np.zeros(n_bins), 0
        for start, stop in _runs(mol):
            calc = _inter_rdf(
                coords[start:stop], dims[start:stop], ia.size, same, mol[start, order], r_min, r_max, n_bins
            )
            counts += np.asarray(calc.results.count, dtype=float)
            n_pairs += (stop - start) * _intermolecular_pairs(mol[start], ia, ib)
        if n_pairs == 0:
            raise DataError("RDF: all A–B pairs lie within one molecule; nothing intermolecular to count")
        # InterRDF's own normalisation (pairs over the mean volume), with the pairs that can be
        # counted: those in different molecules, summed over frames
        g = counts * vol / (_shells(calc) * n_pairs)
        rho_b = n_pairs / x.shape[0] / ia.size / vol
    r = np.asarray(calc.results.bins, dtype=float)
    n_r = np.cumsum(g * _shells(calc)) * rho_b
    return RDFResult(r=r, g=g, n_r=n_r, pair="", periodic=True)


def _inter_rdf(coords, dims, n_a: int, same: bool, mol, r_min, r_max, n_bins):
    """MDAnalysis ``InterRDF`` run on an in-memory Universe of ``coords`` (T, n, 3) (A's atoms first,
    then B's unless ``same``); ``mol`` (n,) molecule ids become residues excluded from counting."""
    import MDAnalysis as mda
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    n = coords.shape[1]
    if mol is not None:
        _, resindex = np.unique(mol, return_inverse=True)
        u = mda.Universe.empty(n, n_residues=int(resindex.max()) + 1, atom_resindex=resindex, trajectory=True)
    else:
        u = mda.Universe.empty(n, trajectory=True)
    u.load_new(coords.astype(np.float32), format=MemoryReader, dimensions=dims.astype(np.float32))
    ga = u.atoms[:n_a]
    gb = u.atoms[:n_a] if same else u.atoms[n_a:]
    if mol is not None:
        calc = InterRDF(ga, gb, nbins=n_bins, range=(r_min, r_max), exclude_same="residue")
    else:
        calc = InterRDF(ga, gb, nbins=n_bins, range=(r_min, r_max), exclusion_block=(1, 1) if same else None)
    return calc.run()


def _shells(calc) -> np.ndarray:
    """Volumes (Å³) of the spherical shells of InterRDF's bins."""
    edges = np.asarray(calc.results.edges, dtype=float)
    return 4.0 / 3.0 * np.pi * np.diff(edges**3)


def _molecule_frames(molecules, shape) -> np.ndarray:
    """Molecule ids (N,) or (T, N) as (T, N) for ``shape`` = (T, N); DataError otherwise."""
    mol = np.asarray(molecules)
    if mol.shape == (shape[1],):
        mol = np.broadcast_to(mol, shape)
    if mol.shape != tuple(shape):
        raise DataError(f"molecule ids must have shape ({shape[1]},) or {tuple(shape)}, got {mol.shape}")
    return mol


def _runs(rows) -> list[tuple[int, int]]:
    """(start, stop) ranges of consecutive equal rows of ``rows`` (T, N)."""
    change = [t for t in range(1, rows.shape[0]) if not np.array_equal(rows[t], rows[t - 1])]
    edges = [0, *change, rows.shape[0]]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _intermolecular_pairs(mol, ia, ib) -> int:
    """Number of ordered pairs (a ∈ A, b ∈ B) with a and b in different molecules (self pairs are in
    the same molecule): nA·nB − Σ_m nA_m·nB_m."""
    _, inv = np.unique(mol, return_inverse=True)
    na = np.bincount(inv[ia], minlength=inv.max() + 1)
    nb = np.bincount(inv[ib], minlength=inv.max() + 1)
    return int(ia.size * ib.size - np.dot(na, nb))


def gas_histogram(
    positions, idx_a, idx_b, r_max: float = 10.0, n_bins: int = 200, r_min: float = 0.0, molecules=None
) -> RDFResult:
    """Distance distribution for free-space (gas-phase) structures: P(r) in 1/Å.

    P(r) is the probability density of the A–B pair distance (each unordered pair once,
    self pairs excluded), averaged over frames: ∫ P(r) dr over [r_min, r_max] is the fraction of
    pairs in range. There is no bulk density to normalise by, hence no g(r). ``molecules`` (N,) or
    (T, N) molecule ids: only pairs in different molecules, P normalised over those pairs.
    """
    x = _frames(positions)
    ia = np.asarray(idx_a, dtype=int)
    ib = np.asarray(idx_b, dtype=int)
    if ia.size == 0 or ib.size == 0:
        raise DataError("distance histogram: an atom group is empty")
    same = ia.size == ib.size and np.array_equal(np.sort(ia), np.sort(ib))
    if same:
        ii, jj = np.triu_indices(ia.size, k=1)
        pa, pb = ia[ii], ia[jj]
    else:
        pa = np.repeat(ia, ib.size)
        pb = np.tile(ib, ia.size)
        keep = pa != pb
        pa, pb = pa[keep], pb[keep]
    if pa.size == 0:
        raise DataError("distance histogram: no atom pairs (a group with a single atom paired with itself)")
    mol = None if molecules is None else _molecule_frames(molecules, x.shape[:2])
    edges = np.linspace(r_min, r_max, n_bins + 1)
    counts = np.zeros(n_bins)
    n_pairs = 0
    for t, xt in enumerate(x):
        keep = slice(None) if mol is None else mol[t, pa] != mol[t, pb]
        d = np.linalg.norm(xt[pb[keep]] - xt[pa[keep]], axis=-1)
        counts += np.histogram(d, bins=edges)[0]
        n_pairs += d.size
    if n_pairs == 0:
        raise DataError("distance histogram: all A–B pairs lie within one molecule")
    width = np.diff(edges)
    p = counts / (n_pairs * width)
    return RDFResult(r=0.5 * (edges[1:] + edges[:-1]), g=p, n_r=None, pair="", periodic=False)


# --------------------------------------------------------------------------- RMSD


def kabsch(mobile, reference, weights=None):
    """Optimal superposition of ``mobile`` (T, n, 3) onto ``reference`` (n, 3), both Å.

    Returns (rotations (T, 3, 3), mobile centroids (T, 3), reference centroid (3,)) such that
    ``(mobile - c_m) @ R.T + c_ref`` is the best fit (weighted least squares; proper rotations).
    Batched SVD in float64 (MDTraj's QCP RMSD runs in float32: ~1e-3 Å noise for identical frames).
    """
    p = _frames(mobile)
    q = np.asarray(reference, dtype=float)
    if q.shape != p.shape[1:]:
        raise DataError(f"reference shape {q.shape} does not match mobile frames {p.shape[1:]}")
    w = np.ones(q.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    cp = np.einsum("n,tni->ti", w, p)
    cq = w @ q
    pc = p - cp[:, None]
    qc = q - cq
    h = np.einsum("tni,n,nj->tij", pc, w, qc)  # covariance, (T, 3, 3)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("tij,tjk->tik", u, vt)))
    d[d == 0] = 1.0
    dm = np.zeros((p.shape[0], 3, 3))
    dm[:, 0, 0] = 1.0
    dm[:, 1, 1] = 1.0
    dm[:, 2, 2] = d
    r = np.einsum("tji,tjk,tlk->til", vt, dm, u)  # R = V D Uᵀ
    return r, cp, cq


def superpose(mobile, reference, weights=None) -> np.ndarray:
    """``mobile`` (T, n, 3) rotated and translated onto ``reference`` (n, 3) (Kabsch), Å."""
    r, cp, cq = kabsch(mobile, reference, weights)
    p = _frames(mobile)
    return np.einsum("tni,tji->tnj", p - cp[:, None], r) + cq


def rmsd(positions, reference, idx=None, weights=None, fit: bool = True) -> np.ndarray:
    """RMSD (Å) of every frame of ``positions`` (T, N, 3) to ``reference`` (N, 3) after optimal
    superposition (Kabsch) of the atoms ``idx`` (all if None); optional per-atom weights (e.g.
    masses) for the fit and the average. ``fit=False`` gives the plain RMSD without superposition."""
    x = _frames(positions)
    ref = np.asarray(reference, dtype=float)
    x, ref, weights = select_atoms("RMSD", idx, x, ref, weights)
    w = np.ones(ref.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    moved = superpose(x, ref, w) if fit else x
    d2 = np.sum((moved - ref) ** 2, axis=-1)
    return np.sqrt(d2 @ w / w.sum())


def rmsd_lag(
    positions, lags, idx=None, weights=None, max_origins: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """RMSD(t, t+Δt) averaged over time origins t, for each lag Δt in frames (after Kabsch).

    Returns (mean (L,) Å, standard deviation over origins (L,) Å). Up to ``max_origins`` evenly
    spaced origins are used per lag. DataError if a lag is not shorter than the trajectory."""
    x, weights = select_atoms("RMSD", idx, _frames(positions), weights)
    t = x.shape[0]
    lags = np.atleast_1d(np.asarray(lags, dtype=int))
    if np.any(lags < 1) or np.any(lags >= t):
        raise DataError(
            f"RMSD(t, t+Δt): lags must lie in 1…{t - 1} frames for a {t}-frame trajectory, got {lags}"
        )
    w = np.ones(x.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    mean = np.zeros(lags.size)
    std = np.zeros(lags.size)
    for k, lag in enumerate(lags):
        origins = np.unique(np.linspace(0, t - lag - 1, min(max_origins, t - lag)).astype(int))
        vals = np.array([rmsd(x[o + lag], x[o], weights=w)[0] for o in origins])
        mean[k] = vals.mean()
        std[k] = vals.std()
    return mean, std


# --------------------------------------------------------------------------- Rg, geometry series


def radius_of_gyration(positions, masses=None, idx=None) -> np.ndarray:
    """Radius of gyration (Å) per frame: sqrt(Σ m |r − r_com|² / Σ m) (molecules must be whole)."""
    x = _frames(positions)
    m = np.ones(x.shape[1]) if masses is None else np.asarray(masses, dtype=float)
    x, m = select_atoms("radius of gyration", idx, x, m)
    com = np.einsum("n,tni->ti", m, x) / m.sum()
    d2 = np.sum((x - com[:, None]) ** 2, axis=-1)
    return np.sqrt(d2 @ m / m.sum())


def _bond_vectors(x, a, b, cell):
    v = x[:, b] - x[:, a]
    if cell is not None:
        v = minimum_image(v, _cells(cell, x.shape[0]))
    return v


def _check_idx(n, *idx):
    for i in idx:
        if i < 0 or i >= n:
            raise DataError(f"atom index {i} outside 0…{n - 1}")


def distance_series(positions, i: int, j: int, cell=None) -> np.ndarray:
    """|r_j − r_i| (Å) per frame (minimum image if ``cell`` is given)."""
    x = _frames(positions)
    _check_idx(x.shape[1], i, j)
    return np.linalg.norm(_bond_vectors(x, i, j, cell), axis=-1)


def angle_series(positions, i: int, j: int, k: int, cell=None) -> np.ndarray:
    """Angle i–j–k (degrees, 0…180) per frame, vertex j (minimum image if ``cell`` is given)."""
    x = _frames(positions)
    _check_idx(x.shape[1], i, j, k)
    a = _bond_vectors(x, j, i, cell)
    b = _bond_vectors(x, j, k, cell)
    cos = np.einsum("ti,ti->t", a, b) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def dihedral_from_vectors(b0, b1, b2) -> np.ndarray:
    """IUPAC dihedral (degrees, −180…180) from bond vectors b0 = r1−r0, b1 = r2−r1, b2 = r3−r2."""
    n1 = np.cross(b0, b1)
    n2 = np.cross(b1, b2)
    x = np.sum(n1 * n2, axis=-1)
    y = np.sum(np.cross(n1, n2) * b1, axis=-1) / np.linalg.norm(b1, axis=-1)
    return np.degrees(np.arctan2(y, x))


def dihedral_series(positions, i: int, j: int, k: int, l: int, cell=None) -> np.ndarray:
    """Dihedral i–j–k–l (degrees, −180…180, IUPAC sign: cis = 0, clockwise positive) per frame."""
    x = _frames(positions)
    _check_idx(x.shape[1], i, j, k, l)
    return dihedral_from_vectors(
        _bond_vectors(x, i, j, cell), _bond_vectors(x, j, k, cell), _bond_vectors(x, k, l, cell)
    )


def dihedrals(positions, quads, cell=None) -> np.ndarray:
    """Dihedrals (degrees) for many quadruples (Q, 4) over frames → (T, Q)."""
    x = _frames(positions)
    q = np.asarray(quads, dtype=int).reshape(-1, 4)
    if q.size == 0:
        return np.zeros((x.shape[0], 0))
    _check_idx(x.shape[1], int(q.min()), int(q.max()))
    b0 = _bond_vectors(x, q[:, 0], q[:, 1], cell)
    b1 = _bond_vectors(x, q[:, 1], q[:, 2], cell)
    b2 = _bond_vectors(x, q[:, 2], q[:, 3], cell)
    return dihedral_from_vectors(b0, b1, b2)


def relative_rotation(positions, idx_a, idx_b) -> np.ndarray:
    """Rotation angle (degrees, 0…180) of fragment B relative to fragment A since frame 0, per frame
    (e.g. two nested nanotubes). Each frame is first superposed on frame 0 using A (Kabsch), then
    the best rotation of B onto its frame-0 pose gives θ = arccos((tr R − 1)/2). Molecules must be
    whole; overall rotation and translation of the complex drop out."""
    x = _frames(positions)
    ia = np.asarray(idx_a, dtype=int)
    ib = np.asarray(idx_b, dtype=int)
    if ia.size < 3 or ib.size < 3:
        raise DataError("relative rotation needs at least 3 atoms in each fragment")
    r_a, c_a, c_ref = kabsch(x[:, ia], x[0, ia])
    b = np.einsum("tni,tji->tnj", x[:, ib] - c_a[:, None], r_a) + c_ref
    r_b, _, _ = kabsch(b, b[0])
    from scipy.spatial.transform import Rotation

    return np.degrees(Rotation.from_matrix(r_b).magnitude())  # accurate near 0, unlike arccos
