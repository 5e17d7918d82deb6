"""Peptide observables: backbone dihedrals φ/ψ, Ramachandran free-energy maps, secondary structure.

φ/ψ atoms come from connectivity (:mod:`biomlff.analysis.topology`), so extxyz/H5MD trajectories
without residue names work. Secondary structure uses MDTraj's DSSP on a topology built from the
same connectivity (or on the PDB topology when one is given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import ConfigError, DataError
from .structure import _frames, dihedrals
from .topology import Backbone, backbone_from_positions, mdtraj_backbone_trajectory


@dataclass
class PhiPsi:
    """φ and ψ (degrees, −180…180) per frame: arrays (T, R) for the residues ``residues``."""

    phi: np.ndarray
    psi: np.ndarray
    residues: list[int]
    quads_phi: np.ndarray
    quads_psi: np.ndarray


def phi_psi(positions, numbers, backbone: Backbone | None = None, cell=None) -> PhiPsi:
    """Backbone dihedrals φ = C(i−1)–N–CA–C and ψ = N–CA–C–N(i+1) (degrees) per frame, for every
    residue that has both (residues found from the bonds of frame 0 unless ``backbone`` is given).
    DataError if the structure has no such residue."""
    x = _frames(positions)
    if backbone is None:
        backbone = backbone_from_positions(
            numbers, x[0], None if cell is None else np.asarray(cell)[0] if np.ndim(cell) == 3 else cell
        )
    qphi, qpsi, res = backbone.phi_psi_quads()
    if not res:
        raise DataError(
            "no residue with both φ and ψ found from connectivity (is this a peptide with "
            "amide bonds on both sides of an α carbon?)"
        )
    return PhiPsi(
        phi=dihedrals(x, qphi, cell),
        psi=dihedrals(x, qpsi, cell),
        residues=res,
        quads_phi=qphi,
        quads_psi=qpsi,
    )


@dataclass
class FreeEnergyMap:
    """F(φ, ψ) in kcal/mol on a grid (bins × bins), minimum 0, NaN where no sample fell.
    ``edges`` (bins+1,) in degrees; ``probability`` the normalised histogram."""

    free_energy: np.ndarray
    probability: np.ndarray
    edges: np.ndarray
    temperature: float


def ramachandran_free_energy(
    phi, psi, temperature: float = 300.0, bins: int = 72, weights=None
) -> FreeEnergyMap:
    """Boltzmann inversion F = −k_B T ln P(φ, ψ) (kcal/mol, shifted so min F = 0) of φ/ψ samples
    (degrees, any shape; all residues pooled). T in K; ``bins`` per axis over −180…180°."""
    phi = np.asarray(phi, dtype=float).reshape(-1)
    psi = np.asarray(psi, dtype=float).reshape(-1)
    if phi.size != psi.size:
        raise DataError(f"φ and ψ have different sizes ({phi.size}, {psi.size})")
    if phi.size == 0:
        raise DataError("no φ/ψ samples")
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature} K")
    edges = np.linspace(-180.0, 180.0, bins + 1)
    w = None if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    hist, _, _ = np.histogram2d(phi, psi, bins=[edges, edges], weights=w)
    p = hist / hist.sum()
    kt = units.kB * temperature / units.kcal_mol  # kcal/mol
    with np.errstate(divide="ignore"):
        f = -kt * np.log(p)
    f[~np.isfinite(f)] = np.nan
    f -= np.nanmin(f)
    return FreeEnergyMap(free_energy=f, probability=p, edges=edges, temperature=temperature)


#: DSSP codes of MDTraj's simplified alphabet: H helix (α, 3₁₀, π), E strand, C coil
SS_CODES = ("H", "E", "C")


def secondary_structure(
    positions, numbers=None, backbone: Backbone | None = None, topology=None, simplified: bool = True
) -> tuple[np.ndarray, list[int]]:
    """DSSP secondary structure per frame and residue via MDTraj: (T, R) array of codes
    ('H', 'E', 'C' when ``simplified``; the 8-letter alphabet otherwise) and residue numbers.

    With ``topology`` (a PDB or other file MDTraj reads, same atom order) its residues are used;
    otherwise the backbone is found from connectivity (positions Å)."""
    try:
        import mdtraj as md
    except ImportError as exc:  # pragma: no cover
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            "secondary structure needs MDTraj: pip install 'biomlff[analysis]'"
        ) from exc
    x = _frames(positions)
    if topology is not None:
        top = md.load_topology(str(topology))
        if top.n_atoms != x.shape[1]:
            raise DataError(f"topology {topology} has {top.n_atoms} atoms, trajectory {x.shape[1]}")
        traj = md.Trajectory((x / 10.0).astype(np.float32), top)
        ss = md.compute_dssp(traj, simplified=simplified)
        keep = [k for k in range(ss.shape[1]) if ss[0, k] != "NA"]
        return ss[:, keep], keep
    if backbone is None:
        if numbers is None:
            raise ConfigError("secondary_structure needs atomic numbers or a topology")
        backbone = backbone_from_positions(numbers, x[0])
    traj, residues = mdtraj_backbone_trajectory(x, backbone)
    ss = md.compute_dssp(traj, simplified=simplified)
    return ss, list(range(len(residues)))


def ss_fractions(ss) -> dict[str, np.ndarray]:
    """Fraction of residues per frame in helix (H, G, I), strand (E, B) and coil (rest)."""
    ss = np.asarray(ss)
    helix = np.isin(ss, ["H", "G", "I"]).mean(axis=1)
    strand = np.isin(ss, ["E", "B"]).mean(axis=1)
    return {"helix": helix, "strand": strand, "coil": 1.0 - helix - strand}
