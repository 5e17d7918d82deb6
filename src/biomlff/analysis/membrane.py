"""Lipid-bilayer observables: area per lipid, density profiles along the normal, bilayer
thickness (P–P distance) and C–H order parameters S_CH.

The bilayer normal is the z axis (third Cartesian axis) and the membrane plane is spanned by the
first two cell vectors, as in usual membrane MD set-ups. Positions Å, cells (T, 3, 3) Å.

Why hand-written: MDAnalysis' lipid tools (and packages built on it, e.g. lipyphilic) need residue
and atom names; these work on elements and connectivity, and the formulas are a few lines each.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .structure import _cells, _frames, minimum_image


def area_per_lipid(cell, n_lipids_per_leaflet: int) -> np.ndarray:
    """Area per lipid (Å²) per frame: |a × b| of the cell(s) (T, 3, 3) Å divided by the number of
    lipids in one leaflet."""
    if cell is None:
        raise DataError("area per lipid needs a periodic cell; the trajectory has none")
    if n_lipids_per_leaflet <= 0:
        raise ConfigError(f"lipids per leaflet must be positive, got {n_lipids_per_leaflet}")
    c = np.asarray(cell, dtype=float)
    if c.ndim == 2:
        c = c[None]
    return np.linalg.norm(np.cross(c[:, 0], c[:, 1]), axis=-1) / n_lipids_per_leaflet


def centered_z(positions, cell, center_idx) -> np.ndarray:
    """z coordinates (T, N) Å relative to the bilayer centre, wrapped into [−Lz/2, Lz/2).

    The centre of each frame is the circular (periodic) mean of z over the atoms ``center_idx``
    (e.g. all lipid atoms or the P atoms), so a bilayer split across the box edge is handled."""
    x = _frames(positions)
    if cell is None:
        raise DataError("density profiles need a periodic cell; the trajectory has none")
    c = _cells(cell, x.shape[0])
    lz = c[:, 2, 2]
    if np.any(np.abs(c[:, 2, :2]) > 1e-6):
        raise DataError("density profiles need the third cell vector along z (bilayer normal)")
    ci = np.asarray(center_idx, dtype=int)
    if ci.size == 0:
        raise DataError("bilayer centre: the selection matches no atoms")
    ang = 2 * np.pi * x[:, ci, 2] / lz[:, None]
    center = np.arctan2(np.sin(ang).mean(axis=1), np.cos(ang).mean(axis=1)) * lz / (2 * np.pi)
    z = x[:, :, 2] - center[:, None]
    return z - lz[:, None] * np.round(z / lz[:, None])


def bilayer_center_atoms(numbers, head_idx) -> np.ndarray:
    """Atom indices whose periodic mean height is the bilayer centre: all carbons (the lipid tails
    dominate and water has none), or the head-group atoms ``head_idx`` when there is no carbon."""
    tails = np.nonzero(np.asarray(numbers) == 6)[0]
    return tails if tails.size else np.asarray(head_idx, dtype=np.int64)


def density_profile(positions, cell, idx, center_idx, weights=None, n_bins: int = 100):
    """Number (or weighted, e.g. electron) density of atoms ``idx`` along z relative to the bilayer
    centre: returns (z bin centres (B,) Å, density (B,) in 1/Å³ or weight/Å³). ``weights`` per
    atom (e.g. atomic numbers for an electron-density profile, e/Å³)."""
    x = _frames(positions)
    c = _cells(cell, x.shape[0]) if cell is not None else None
    z = centered_z(x, c, center_idx)
    idx = np.asarray(idx, dtype=int)
    if idx.size == 0:
        raise DataError("density profile: the selection matches no atoms")
    w = np.ones(x.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    lz = c[:, 2, 2].mean()
    edges = np.linspace(-lz / 2, lz / 2, n_bins + 1)
    hist = np.zeros(n_bins)
    for t in range(x.shape[0]):
        hist += np.histogram(z[t, idx], bins=edges, weights=w[idx])[0]
    area = np.linalg.norm(np.cross(c[:, 0], c[:, 1]), axis=-1).mean()
    dens = hist / (x.shape[0] * area * np.diff(edges))
    return 0.5 * (edges[1:] + edges[:-1]), dens


@dataclass
class Thickness:
    """Bilayer thickness: per-frame P–P distance between leaflet mean heights (Å) and the distance
    between the two peaks of the P density profile (Å)."""

    per_frame: np.ndarray
    from_profile: float
    z: np.ndarray
    profile: np.ndarray


def bilayer_thickness(positions, cell, p_idx, center_idx=None, n_bins: int = 100) -> Thickness:
    """Thickness D_PP (Å) from the head-group atoms ``p_idx`` (e.g. all P): per frame the distance
    between the mean z of the upper and the lower leaflet (atoms above/below the centre), and from
    the profile the distance between its maxima on both sides of the centre. ``center_idx``: atoms
    whose periodic mean height is the bilayer centre — the acyl-chain carbons are a good choice
    (default: the head-group atoms, which is ambiguous when the water layer and the bilayer have
    similar thickness)."""
    p_idx = np.asarray(p_idx, dtype=int)
    if p_idx.size < 2:
        raise DataError(f"bilayer thickness needs head-group atoms in both leaflets, got {p_idx.size}")
    center_idx = p_idx if center_idx is None else center_idx
    z = centered_z(positions, cell, center_idx)[:, p_idx]
    upper = np.where(z > 0, z, np.nan)
    lower = np.where(z < 0, z, np.nan)
    if np.any(np.all(np.isnan(upper), axis=1)) or np.any(np.all(np.isnan(lower), axis=1)):
        raise DataError("bilayer thickness: a frame has head-group atoms on one side only (not a bilayer?)")
    per_frame = np.nanmean(upper, axis=1) - np.nanmean(lower, axis=1)
    zc, prof = density_profile(positions, cell, p_idx, center_idx, n_bins=n_bins)
    up = zc > 0
    z_up = zc[up][np.argmax(prof[up])]
    z_lo = zc[~up][np.argmax(prof[~up])]
    return Thickness(per_frame=per_frame, from_profile=float(z_up - z_lo), z=zc, profile=prof)


def order_parameters(positions, carbons, hydrogens, cell=None, normal=(0.0, 0.0, 1.0)) -> np.ndarray:
    """C–H order parameter S_CH = ⟨(3 cos²θ − 1)/2⟩ per carbon (θ: angle between the C–H bond
    and the bilayer ``normal``), averaged over frames and the carbon's hydrogens.

    carbons: (K,) carbon indices; hydrogens: list of K lists of H indices. Carbons without H give
    NaN. An all-trans chain along the normal has S_CH = −0.5; isotropic bonds give 0. (−S_CH is
    what NMR reports.)"""
    x = _frames(positions)
    nrm = np.asarray(normal, dtype=float)
    nrm = nrm / np.linalg.norm(nrm)
    out = np.full(len(carbons), np.nan)
    for k, (ci, hs) in enumerate(zip(carbons, hydrogens, strict=True)):
        if len(hs) == 0:
            continue
        v = x[:, list(hs)] - x[:, [ci]]
        if cell is not None:
            v = minimum_image(v, _cells(cell, x.shape[0]))
        cos = (v @ nrm) / np.linalg.norm(v, axis=-1)
        out[k] = np.mean(1.5 * cos**2 - 0.5)
    return out


def chain_order_parameters(positions, chains, cell=None, normal=(0.0, 0.0, 1.0)) -> dict[int, np.ndarray]:
    """S_CH per carbon position for acyl chains (from :func:`~biomlff.analysis.topology.find_acyl_chains`),
    averaged over all chains of the same length: {n_carbons: (n_carbons,) array, index 0 = C1 (NaN)}."""
    if not chains:
        raise DataError("no acyl chains found (ester-linked hydrocarbon chains) for order parameters")
    groups: dict[int, list] = {}
    for ch in chains:
        groups.setdefault(len(ch.carbons), []).append(ch)
    result = {}
    for length, chs in sorted(groups.items()):
        vals = np.array([order_parameters(positions, ch.carbons, ch.hydrogens, cell, normal) for ch in chs])
        with warnings.catch_warnings():  # carbons without H (C1) are NaN in every chain
            warnings.simplefilter("ignore", RuntimeWarning)
            result[length] = np.nanmean(vals, axis=0)
    return result
