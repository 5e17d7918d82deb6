"""Permutational symmetries of sGDML (spec §2): spectral signatures, assignment, spanning-tree
synchronisation and group closure (with the salvage step), plus the descriptor index maps q_π.

The assignment problems use :func:`scipy.optimize.linear_sum_assignment` and the synchronisation
:func:`scipy.sparse.csgraph.minimum_spanning_tree`; only the glue is written here.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ModelError
from .descriptor import pair_index_matrix

log = logging.getLogger(__name__)

#: a permutation set this large is considered a failed closure (as in sgdml 1.0.3)
MAX_GROUP = 100


def identity(n_atoms: int) -> np.ndarray:
    """The trivial group {identity} as a (1, N) array (GDML, no symmetries)."""
    return np.arange(n_atoms, dtype=np.int64)[None, :]


def _signatures(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance matrices (M, N, N) in Å and per-atom spectral signatures |V| (M, N, N)."""
    diff = positions[:, :, None, :] - positions[:, None, :, :]
    dmat = np.sqrt(np.sum(diff * diff, axis=-1))
    # distance matrices are symmetric: eigh is the stable choice (sorted ascending -> reverse)
    _, vecs = np.linalg.eigh(dmat)
    return dmat, np.abs(vecs[:, :, ::-1])


def match_pairs(positions: np.ndarray, z: np.ndarray, progress: bool = False):
    """All-pairs matching of geometries (spec §2.3).

    Returns (cost (M, M) with +inf diagonal, perms dict {(i, j): permutation}) where a stored
    permutation p relabels geometry j onto i: A_j[p][:, p] ≈ A_i.
    """
    from scipy.optimize import linear_sum_assignment

    m, n = positions.shape[:2]
    dmat, sig = _signatures(positions)
    penalty_mask = (z[:, None] != z[None, :]).astype(float)
    cost = np.full((m, m), np.inf)
    perms: dict[tuple[int, int], np.ndarray] = {}
    it = range(m)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="symmetry search", unit="geom", leave=False)
    for i in it:
        if i == m - 1:
            break
        js = np.arange(i + 1, m)
        nj = len(js)
        # all cost matrices of row i at once, c[j, a, b] = −sig_i[a]·sig_j[b], as one GEMM
        # (an einsum here took a third of the aspirin M = 1000 search); the Hungarian solves stay
        # a loop (scipy, 1 per pair)
        c = -(sig[js].reshape(nj * n, n) @ sig[i].T).reshape(nj, n, n).transpose(0, 2, 1)
        c = c + np.max(np.abs(c), axis=(1, 2))[:, None, None] * penalty_mask
        p_all = np.empty((nj, n), dtype=np.int64)
        for k in range(nj):
            p_all[k] = linear_sum_assignment(c[k])[1]
        dj = dmat[js]
        before = np.linalg.norm((dmat[i][None] - dj).reshape(nj, -1), axis=1)
        permuted = dj[np.arange(nj)[:, None, None], p_all[:, :, None], p_all[:, None, :]]
        after = np.linalg.norm((dmat[i][None] - permuted).reshape(nj, -1), axis=1)
        better = (after < before) & ~np.isclose(after, before)
        score = np.where(better, after, before)
        cost[i, js] = score
        cost[js, i] = score
        for k in np.nonzero(better)[0]:
            perms[(i, int(js[k]))] = p_all[k]
    return cost, perms


def close_group(perms: np.ndarray, max_size: int = MAX_GROUP) -> np.ndarray | None:
    """Close a set of permutations under composition; None if it reaches ``max_size`` elements."""
    group = {tuple(int(v) for v in p) for p in perms}
    n = len(perms[0])
    group.add(tuple(range(n)))
    while True:
        arr = np.array(sorted(group))
        new = set()
        for p in arr:
            for q in arr:
                comp = tuple(int(v) for v in p[q])
                if comp not in group:
                    new.add(comp)
        if not new:
            return np.array(sorted(group), dtype=np.int64)
        group |= new
        if len(group) >= max_size:
            return None


def _cycles(p: np.ndarray) -> list[set[int]]:
    seen, out = set(), []
    for s in range(len(p)):
        if s in seen:
            continue
        cyc, k = set(), s
        while k not in cyc:
            cyc.add(k)
            k = int(p[k])
        seen |= cyc
        if len(cyc) > 1:
            out.append(cyc)
    return out


def salvage_subgroup(perms: np.ndarray) -> np.ndarray | None:
    """Failure recovery: drop permutations with a cycle that overlaps a longer cycle of another
    permutation, then close again (spec §2.5)."""
    cycles = [_cycles(p) for p in perms]
    keep = []
    for i in range(len(perms)):
        bad = False
        for ci in cycles[i]:
            for j in range(len(perms)):
                if j == i:
                    continue
                if any(len(cj) > len(ci) and (ci & cj) for cj in cycles[j]):
                    bad = True
                    break
            if bad:
                break
        if not bad:
            keep.append(perms[i])
    if not keep:
        return identity(perms.shape[1])
    return close_group(np.array(keep))


def find_perms(
    positions: np.ndarray, z: np.ndarray, max_geometries: int = 1000, seed: int = 0, progress: bool = False
) -> np.ndarray:
    """Find the permutation group realised by sampled geometries (spec §2).

    positions: (M, N, 3) Å; z: (N,). Uses at most ``max_geometries`` geometries (random subset drawn
    with ``seed``). Returns a (P, N) integer array of atom permutations (identity first), closed
    under composition. Raises ModelError if neither closure nor salvage gives a group.
    """
    positions = np.asarray(positions, dtype=float)
    z = np.asarray(z)
    m = positions.shape[0]
    if m > max_geometries:
        rng = np.random.default_rng(seed)
        sel = np.sort(rng.choice(m, max_geometries, replace=False))
        positions = positions[sel]
        m = max_geometries
    if m < 2:
        return identity(len(z))
    cost, pair_perms = match_pairs(positions, z, progress=progress)
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    finite = np.where(np.isfinite(cost), cost, 0.0)
    tree = minimum_spanning_tree(csr_matrix(finite)).tocoo()
    found = [np.arange(len(z))]
    for i, j in zip(tree.row, tree.col, strict=True):
        key = (min(i, j), max(i, j))
        if key in pair_perms:
            found.append(pair_perms[key])
    found = np.unique(np.array(found), axis=0)
    group = close_group(found)
    if group is None:
        log.warning("permutation closure exceeded %d elements; salvaging a subgroup", MAX_GROUP)
        group = salvage_subgroup(found)
    if group is None:
        raise ModelError(
            "the symmetry search found no closed permutation group; train without "
            "symmetries (--no-sym) or supply permutations"
        )
    return sort_group(group)


def sort_group(group: np.ndarray) -> np.ndarray:
    """Unique permutations with the identity first (then lexicographic)."""
    group = np.unique(np.asarray(group, dtype=np.int64), axis=0)
    ident = np.arange(group.shape[1])
    is_id = np.all(group == ident, axis=1)
    return (
        np.concatenate([group[is_id], group[~is_id]], axis=0)
        if is_id.any()
        else np.concatenate([ident[None], group], axis=0)
    )


def check_group(perms: np.ndarray, z: np.ndarray | None = None) -> None:
    """Raise ModelError unless ``perms`` (P, N) are permutations that form a closed group (and
    preserve the atomic numbers z if given)."""
    perms = np.asarray(perms)
    n = perms.shape[1]
    for p in perms:
        if sorted(p.tolist()) != list(range(n)):
            raise ModelError(f"not a permutation of 0..{n - 1}: {p.tolist()}")
        if z is not None and np.any(np.asarray(z)[p] != np.asarray(z)):
            raise ModelError(f"permutation {p.tolist()} maps atoms onto different elements")
    as_set = {tuple(p) for p in perms.tolist()}
    for p in perms:
        for q in perms:
            if tuple(p[q].tolist()) not in as_set:
                raise ModelError("the permutations are not closed under composition")


def descriptor_perms(perms: np.ndarray, a: np.ndarray, b: np.ndarray, n_atoms: int) -> np.ndarray:
    """Descriptor index maps q (P, D): q[p, k] = index of the pair {π_p(a_k), π_p(b_k)}, so that
    x[q[p]] is the descriptor of the relabelled geometry r'_i = r_{π_p(i)}."""

    idx = pair_index_matrix(n_atoms, a, b)
    q = idx[perms[:, a], perms[:, b]]
    if np.any(q < 0):
        raise ModelError("the pair list is not closed under the permutation group")
    return q


def tril_perms_lin(q: np.ndarray) -> np.ndarray:
    """sgdml's flat index vector: element [k·P + p] = q[p, k] + p·D (spec §2.6)."""
    p_count, d = q.shape
    return (q + (np.arange(p_count) * d)[:, None]).T.reshape(-1)


# ------------------------------------------------------------------------------ orbits
def pair_orbits(perms: np.ndarray, a: np.ndarray, b: np.ndarray, n_atoms: int) -> list[np.ndarray]:
    """Orbits of the pair list (a, b) under the atom permutations ``perms`` (P, N): lists of indices
    into the pair list, each sorted, ordered by their smallest member. The list must be closed under
    the group (see :func:`check_orbit_closed`)."""
    q = descriptor_perms(np.asarray(perms), a, b, n_atoms)  # (P, D)
    d = q.shape[1]
    label = -np.ones(d, dtype=np.int64)
    out: list[np.ndarray] = []
    for k in range(d):
        if label[k] >= 0:
            continue
        members = np.unique(q[:, k])  # a group: the orbit of k is {q_π[k]}
        label[members] = len(out)
        out.append(members)
    return out


def check_orbit_closed(perms: np.ndarray, a, b, n_atoms: int) -> None:
    """Raise ModelError unless the pair list (a, b) is a union of orbits of the group ``perms``,
    naming the first broken orbit (its atom pairs that are kept and those that are missing)."""

    perms = np.asarray(perms)
    if len(perms) <= 1:
        return
    a = np.asarray(a)
    b = np.asarray(b)
    idx = pair_index_matrix(n_atoms, a, b)
    mapped = idx[perms[:, a], perms[:, b]]  # (P, D)
    if not np.any(mapped < 0):
        return
    k = int(np.nonzero(np.any(mapped < 0, axis=0))[0][0])
    orbit = sorted({(int(max(p[a[k]], p[b[k]])), int(min(p[a[k]], p[b[k]]))) for p in perms})
    kept = [pr for pr in orbit if idx[pr] >= 0]
    missing = [pr for pr in orbit if idx[pr] < 0]
    raise ModelError(
        f"the pair list is not a union of symmetry orbits: the orbit of atom pair {orbit[0]} under the "
        f"{len(perms)} permutations is {orbit}; kept {kept}, missing {missing}. Keep or remove whole "
        "orbits (select_features(..., orbits=...)), or reduce without symmetries (perms = identity)"
    )
