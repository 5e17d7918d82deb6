"""Bonded topology from coordinates alone: covalent bonds, the peptide backbone (φ/ψ atoms) and
lipid acyl chains, found from connectivity and elements (no residue or atom names needed).

Why hand-written: MDTraj and MDAnalysis find φ/ψ and secondary structure from residue and atom
*names* of a PDB-like topology; MD trajectories of MLFFs (extxyz, H5MD) carry only elements.
Bonds come from ASE's neighbour list with covalent radii (periodic cells included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..geometry import minimum_image_np

H, C, N, O = 1, 6, 7, 8


def bonds_from_positions(numbers, positions, cell=None, scale: float = 1.15) -> np.ndarray:
    """Covalent bonds (B, 2) with i < j: d_ij < scale·(r_cov,i + r_cov,j) (ASE covalent radii, Å).

    positions (N, 3) Å; cell (3, 3) Å for periodic systems (minimum image) or None."""
    from ase import Atoms
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    numbers = np.asarray(numbers, dtype=int)
    pbc = cell is not None
    atoms = Atoms(
        numbers=numbers,
        positions=np.asarray(positions, dtype=float),
        cell=np.asarray(cell) if pbc else None,
        pbc=pbc,
    )
    cutoffs = scale * covalent_radii[numbers]
    i, j = neighbor_list("ij", atoms, cutoffs)
    keep = i < j
    pairs = np.unique(np.stack([i[keep], j[keep]], axis=1), axis=0)
    return pairs.astype(int).reshape(-1, 2)


def adjacency(n_atoms: int, bonds) -> list[list[int]]:
    """Neighbour lists from a bond list (B, 2)."""
    adj: list[list[int]] = [[] for _ in range(n_atoms)]
    for a, b in np.asarray(bonds, dtype=int).reshape(-1, 2):
        adj[a].append(int(b))
        adj[b].append(int(a))
    return adj


@dataclass
class Residue:
    """Backbone atoms of one amino-acid residue (0-based atom indices; -1 = absent)."""

    n: int
    ca: int
    c: int
    o: int = -1
    h: int = -1
    c_prev: int = -1  # carbonyl C bonded to N (previous residue or a cap)
    n_next: int = -1  # amide N bonded to C (next residue or a cap)
    proline: bool = False


@dataclass
class Backbone:
    """Peptide backbone found from connectivity: residues grouped into chains (N→C order)."""

    chains: list[list[Residue]] = field(default_factory=list)

    @property
    def residues(self) -> list[Residue]:
        return [r for ch in self.chains for r in ch]

    def phi_quads(self) -> tuple[np.ndarray, list[int]]:
        """(Q, 4) atom quadruples C(i−1)–N–CA–C for residues with a preceding carbonyl, and the
        residue numbers (0-based over all chains) they belong to."""
        return self._quads(lambda r: (r.c_prev, r.n, r.ca, r.c) if r.c_prev >= 0 else None)

    def psi_quads(self) -> tuple[np.ndarray, list[int]]:
        """(Q, 4) quadruples N–CA–C–N(i+1) for residues followed by an amide N."""
        return self._quads(lambda r: (r.n, r.ca, r.c, r.n_next) if r.n_next >= 0 else None)

    def _quads(self, quad_of) -> tuple[np.ndarray, list[int]]:
        """(Q, 4) quadruples ``quad_of(residue)`` of the residues that have one (not None), and
        their residue numbers."""
        found = [(k, q) for k, q in enumerate(map(quad_of, self.residues)) if q is not None]
        return np.array([q for _, q in found], dtype=int).reshape(-1, 4), [k for k, _ in found]

    def phi_psi_quads(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """φ and ψ quadruples of the residues that have both (the Ramachandran residues)."""
        phis, psis, res = [], [], []
        for k, r in enumerate(self.residues):
            if r.c_prev >= 0 and r.n_next >= 0:
                phis.append((r.c_prev, r.n, r.ca, r.c))
                psis.append((r.n, r.ca, r.c, r.n_next))
                res.append(k)
        return (np.array(phis, dtype=int).reshape(-1, 4), np.array(psis, dtype=int).reshape(-1, 4), res)

    def atom_indices(self) -> np.ndarray:
        """N, CA, C atoms of all residues (the 'backbone' selection)."""
        return np.array(sorted({a for r in self.residues for a in (r.n, r.ca, r.c)}), dtype=int)


def _terminal_oxygens(a: int, numbers, adj) -> list[int]:
    return [b for b in adj[a] if numbers[b] == O and len(adj[b]) == 1]


def find_backbone(numbers, bonds) -> Backbone:
    """Peptide backbone from the bond graph: residues N–CA–C(=O) linked by amide bonds.

    A carbonyl carbon is a C with three neighbours, one of them a terminal O. A residue is
    (N, CA, C) with N bonded to CA, CA a non-carbonyl carbon bonded to the carbonyl C. Residues
    whose C bonds the next residue's N form a chain. Caps (acetyl, N-methyl) supply the φ of the
    first and the ψ of the last residue. Works without hydrogens (X-ray structures)."""
    numbers = np.asarray(numbers, dtype=int)
    adj = adjacency(len(numbers), bonds)
    carbonyl = {
        a
        for a in range(len(numbers))
        if numbers[a] == C and len(adj[a]) == 3 and _terminal_oxygens(a, numbers, adj)
    }
    residues: list[Residue] = []
    for n_at in np.nonzero(numbers == N)[0]:
        n_at = int(n_at)
        for ca in adj[n_at]:
            if numbers[ca] != C or ca in carbonyl:
                continue
            cs = [c for c in adj[ca] if c in carbonyl]
            if len(cs) > 1:
                # without hydrogens a Thr/Ser C–OH looks like C=O: keep the carbonyl that is
                # an amide (bonded to N) or a carboxylate (two terminal O)
                cs = [
                    c
                    for c in cs
                    if any(numbers[b] == N for b in adj[c]) or len(_terminal_oxygens(c, numbers, adj)) == 2
                ]
            if len(cs) != 1:
                continue
            c_at = cs[0]
            o_at = _terminal_oxygens(c_at, numbers, adj)[0]
            prev = [c for c in adj[n_at] if c in carbonyl]
            nxt = [b for b in adj[c_at] if numbers[b] == N]
            hs = [b for b in adj[n_at] if numbers[b] == H]
            heavy = [b for b in adj[n_at] if numbers[b] != H]
            residues.append(
                Residue(
                    n=n_at,
                    ca=ca,
                    c=c_at,
                    o=o_at,
                    h=hs[0] if hs else -1,
                    c_prev=prev[0] if prev else -1,
                    n_next=nxt[0] if nxt else -1,
                    proline=(len(heavy) == 3 and not hs and bool(prev)),
                )
            )
    by_n = {r.n: r for r in residues}
    has_prev = {r.n_next for r in residues if r.n_next in by_n}
    seen: set[int] = set()

    def walk(cur) -> list:
        """The residues from ``cur`` along the peptide bonds, up to the end or a residue seen."""
        chain = []
        while cur is not None and cur.n not in seen:
            chain.append(cur)
            seen.add(cur.n)
            cur = by_n.get(cur.n_next)
        return chain

    chains = [walk(r) for r in residues if r.n not in has_prev]
    chains += [walk(r) for r in residues if r.n not in seen]  # cyclic peptides: no start residue
    return Backbone(chains=chains)


def backbone_from_positions(numbers, positions, cell=None) -> Backbone:
    """:func:`find_backbone` on bonds from one frame (positions Å)."""
    return find_backbone(numbers, bonds_from_positions(numbers, positions, cell))


def mdtraj_backbone_trajectory(positions, backbone: Backbone, cell=None):
    """An ``mdtraj.Trajectory`` of the backbone atoms (N, CA, C, O per residue, nm) with a
    topology built from connectivity, for MDTraj's DSSP (which needs residue/atom names).
    Returns (trajectory, residue list)."""
    import mdtraj as md

    residues = backbone.residues
    if not residues:
        raise DataError("no peptide backbone found (no N–CA–C(=O) residues in the bond graph)")
    top = md.Topology()
    atom_idx = []
    for chain in backbone.chains:
        ch = top.add_chain()
        for r in chain:
            res = top.add_residue("PRO" if r.proline else "UNK", ch)
            for name, a, el in (("N", r.n, "N"), ("CA", r.ca, "C"), ("C", r.c, "C"), ("O", r.o, "O")):
                if a < 0:
                    continue
                top.add_atom(name, md.element.get_by_symbol(el), res)
                atom_idx.append(a)
    x = np.asarray(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    xyz = x[:, atom_idx] / 10.0  # Å -> nm
    # DSSP works on whole molecules in free space: periodic images are not considered.
    return md.Trajectory(xyz.astype(np.float32), top), residues


@dataclass
class AcylChain:
    """A lipid acyl chain: carbons from the ester carbonyl C1 to the terminal methyl, and the
    hydrogens bonded to each carbon (0-based indices)."""

    carbons: list[int]
    hydrogens: list[list[int]]


def find_acyl_chains(numbers, bonds, min_length: int = 4) -> list[AcylChain]:
    """Acyl chains of ester lipids from the bond graph: start at each ester carbonyl carbon
    (C bonded to a terminal O and to an O with two neighbours) and walk the unbranched carbon
    chain to its end. Chains shorter than ``min_length`` carbons are ignored."""
    numbers = np.asarray(numbers, dtype=int)
    adj = adjacency(len(numbers), bonds)
    chains = []
    for a in np.nonzero(numbers == C)[0]:
        a = int(a)
        if len(adj[a]) != 3 or not _terminal_oxygens(a, numbers, adj):
            continue
        if not any(numbers[b] == O and len(adj[b]) == 2 for b in adj[a]):
            continue
        cs = [b for b in adj[a] if numbers[b] == C]
        if len(cs) != 1:
            continue
        carbons = [a]
        prev, cur = a, cs[0]
        while True:
            if any(numbers[b] not in (C, H) for b in adj[cur]):
                break
            carbons.append(cur)
            nxt = [b for b in adj[cur] if numbers[b] == C and b != prev]
            if len(nxt) != 1:
                break
            prev, cur = cur, nxt[0]
        if len(carbons) >= min_length:
            hyd = [[b for b in adj[c] if numbers[b] == H] for c in carbons]
            chains.append(AcylChain(carbons=carbons, hydrogens=hyd))
    return chains


def molecule_ids(n_atoms: int, bonds) -> np.ndarray:
    """(N,) molecule index of every atom: connected components of the bond graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = np.asarray(bonds, dtype=int).reshape(-1, 2)
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n_atoms, n_atoms))
    _, labels = connected_components(g, directed=False)
    return labels


def make_whole(positions, cell, bonds) -> np.ndarray:
    """Positions (T, N, 3) Å with every molecule made whole across periodic boundaries: walking
    the bond graph breadth-first from one atom per molecule, each atom is placed at the minimum
    image of its bond partner. ``cell`` (T, 3, 3) or (3, 3) Å; ``None`` returns a copy."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order

    x = np.array(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if cell is None:
        return x
    c = np.asarray(cell, dtype=float)
    if c.ndim == 2:
        c = np.broadcast_to(c, (x.shape[0], 3, 3))
    n = x.shape[1]
    b = np.asarray(bonds, dtype=int).reshape(-1, 2)
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n, n)).tocsr()
    done = np.zeros(n, bool)
    for root in range(n):
        if done[root]:
            continue
        order, pred = breadth_first_order(g, root, directed=False, return_predecessors=True)
        done[order] = True
        for a in order[1:]:
            p = pred[a]
            x[:, a] = x[:, p] + minimum_image_np(x[:, a] - x[:, p], c)
    return x
