"""Input checks shared by every command that evaluates a model on a structure (md, opt, pimd, ipi,
eval, the calculators, labels): one rule each, so that a structure refused by one is refused by all.

* :func:`check_structure` — shapes, finite positions, real elements, overlapping atoms.
* :func:`check_electrons` — total charge and spin multiplicity against the electron count.
* :func:`missing_hydrogens` — a heavy-atom-only structure (e.g. a PDB entry before protonation).

Below every pillar: imports only NumPy, SciPy / ASE lazily, and :mod:`biomlff.errors`.
Units: positions Å, charge e.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError

#: atoms closer than this (Å) are "overlapping or duplicated" everywhere (datasets use the same)
MIN_DISTANCE = 0.1
#: the largest atomic number that is an element
MAX_Z = 118


class ElectronCountError(ConfigError):
    """Total charge and spin multiplicity do not fit the number of electrons."""


def check_electrons(atomic_numbers, charge, multiplicity, core_electrons: int = 0) -> int:
    """Number of electrons for total ``charge`` (e); :class:`ElectronCountError` if the charge is
    not an integer or ``multiplicity`` (2S+1) cannot be realised (wrong parity, more unpaired
    electrons than electrons, multiplicity < 1). ``core_electrons``: electrons left to effective
    core potentials (labellers)."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    if not float(charge).is_integer():
        raise ElectronCountError(f"total charge must be an integer number of e, got {charge}")
    if not float(multiplicity).is_integer() or multiplicity < 1:
        raise ElectronCountError(f"multiplicity must be an integer >= 1, got {multiplicity}")
    charge, multiplicity = int(charge), int(multiplicity)
    n_el = int(z.sum()) - charge - int(core_electrons)
    unpaired = multiplicity - 1
    if n_el < 0:
        raise ElectronCountError(f"charge {charge} leaves a negative number of electrons ({n_el})")
    if unpaired > n_el or (n_el - unpaired) % 2:
        raise ElectronCountError(
            f"charge {charge} and multiplicity {multiplicity} are inconsistent with {n_el} electrons "
            f"(an {'even' if n_el % 2 == 0 else 'odd'} electron count needs an "
            f"{'odd' if n_el % 2 == 0 else 'even'} multiplicity); set --charge / --multiplicity "
            "(or charge= / multiplicity= in the file's header)"
        )
    return n_el


def check_structure(atomic_numbers, positions, cell=None, name: str = "structure", min_distance=MIN_DISTANCE):
    """DataError naming ``name`` and the atoms if the structure cannot be evaluated: shapes that do not
    match, atomic numbers outside 1..118, non-finite positions (Å) or cell, or two atoms closer than
    ``min_distance`` Å (minimum image when ``cell`` (3, 3) Å is given; 0 skips the check)."""
    z = np.asarray(atomic_numbers)
    r = np.asarray(positions, dtype=float)
    if z.ndim != 1 or r.shape != (len(z), 3):
        raise DataError(f"{name}: positions have shape {r.shape}, expected ({len(z)}, 3) for {len(z)} atoms")
    if len(z) == 0:
        raise DataError(f"{name}: the structure has no atoms")
    bad = np.nonzero((z < 1) | (z > MAX_Z))[0]
    if bad.size:
        raise DataError(f"{name}: atom {int(bad[0])} has atomic number {int(z[bad[0]])}, not an element")
    nonfinite = np.nonzero(~np.isfinite(r).all(axis=1))[0]
    if nonfinite.size:
        raise DataError(
            f"{name}: atom {int(nonfinite[0])} has non-finite coordinates {r[nonfinite[0]].tolist()} "
            f"({nonfinite.size} atoms in all)"
        )
    if cell is not None and not np.isfinite(np.asarray(cell, float)).all():
        raise DataError(f"{name}: the cell contains NaN or inf")
    if min_distance > 0 and len(z) > 1:
        i, j, d = _close_pairs(r, cell, float(min_distance))
        if d.size:
            k = int(np.argmin(d))
            raise DataError(
                f"{name}: atoms {int(i[k])} and {int(j[k])} are {d[k]:.4g} Å apart (closer than "
                f"{min_distance} Å: overlapping or duplicated atoms)"
            )


def _close_pairs(r, cell, cutoff):
    """(i, j, d) of the atom pairs closer than ``cutoff`` Å (i < j; minimum image under ``cell``):
    the host pair lists of :func:`biomlff.neighbors.pair_indices` and the one minimum image."""
    from .geometry import minimum_image_np
    from .neighbors import pair_indices

    c = None if cell is None else np.asarray(cell, float)
    i, j = pair_indices(r, cutoff, cell=c, half=True)
    d = np.linalg.norm(minimum_image_np(r[j] - r[i], c), axis=1)
    return i, j, d


def _neighbors(r, cell, cutoff, radii):
    """(i, j, d) of pairs (i < j) within ``cutoff`` + radii_i + radii_j Å: the host pair lists
    (:func:`_close_pairs`; ASE's binned list allocated ~13 GB for a 56-atom molecule in a 1000 Å box)."""
    radii = np.asarray(radii, float)
    cut = radii + cutoff / 2 if cutoff else radii
    i, j, d = _close_pairs(np.asarray(r, float), cell, float(2 * cut.max()) if cut.size else 0.0)
    keep = d < cut[i] + cut[j]
    return i[keep], j[keep], d[keep]


def bonded_neighbors(atomic_numbers, positions, cell=None, scale: float = 1.2) -> np.ndarray:
    """Number of covalently bonded neighbours of each atom: pairs closer than ``scale`` × the sum of
    covalent radii (ASE's table; minimum image under ``cell``, Å)."""
    from ase.data import covalent_radii

    z = np.asarray(atomic_numbers, int)
    radii = scale * covalent_radii[z]
    i, j, _ = _neighbors(np.asarray(positions, float), cell, 0.0, radii)
    return np.bincount(i, minlength=len(z)) + np.bincount(j, minlength=len(z))


def missing_hydrogens(atomic_numbers, positions, cell=None) -> str | None:
    """A one-line reason to believe hydrogens are missing, or None.

    Two signs, both cheap and free of false alarms on closed-shell organic molecules:
    an organic structure (≥ 2 carbon atoms) without any hydrogen, or carbon atoms with fewer than
    two bonded neighbours (a CH3 group without its H has one; a triple bond or cumulene, C–X < 1.25
    Å, is exempt). A heavy-atom-only protein (a PDB entry before protonation) shows both."""
    z = np.asarray(atomic_numbers, int)
    n_c = int(np.sum(z == 6))
    if n_c == 0:
        return None
    if not np.any(z == 1) and n_c >= 2:
        return f"the structure has {n_c} carbon atoms and no hydrogen"
    r = np.asarray(positions, float)
    nb = bonded_neighbors(z, r, cell)
    low = np.nonzero((z == 6) & (nb < 2))[0]
    if low.size:
        i, j, d = _close_pairs(r, cell, 1.25)
        short = set(i[d > 0].tolist()) | set(j[d > 0].tolist())
        low = np.array([a for a in low if a not in short], int)
    if low.size:
        return (
            f"{low.size} carbon atom{'s have' if low.size > 1 else ' has'} fewer than two bonded "
            f"neighbours (e.g. atom {int(low[0])})"
        )
    return None


def check_hydrogens(atomic_numbers, positions, cell=None, name: str = "structure", allow: bool = False):
    """ConfigError if :func:`missing_hydrogens` finds a reason (unless ``allow``, then the reason is
    returned so the caller can warn): MD of a heavy-atom-only protein heats to thousands of K."""
    why = missing_hydrogens(atomic_numbers, positions, cell)
    if why and not allow:
        raise ConfigError(
            f"{name}: hydrogens look missing ({why}); add them first (e.g. pdbfixer or "
            "openmm.app.Modeller.addHydrogens), or pass --allow-radicals if the structure is meant so"
        )
    return why
