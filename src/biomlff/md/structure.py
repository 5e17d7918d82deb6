"""Input structures for MD: any ASE-readable file → positions, atomic numbers, masses, cell.

Cell handling: a file's cell is used when its ``pbc`` is set in all three directions and the cell
is non-zero; otherwise the structure is treated as gas phase (free space). A periodic flag with a
zero cell, partial periodicity, or an unreadable file raise :class:`~biomlff.errors.DataError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..geometry import minimum_image_np
from ..system import System  # the one structure type (core)


def read_structure(path, index: int | str = -1, free_space: bool = False) -> System:
    """Read one structure (last frame by default) from any ASE-readable file.

    free_space: ignore any cell in the file (e.g. the 999.9 Å dummy boxes of the SO3LR references).
    Raises DataError (naming the file) if it is missing, empty or unreadable."""
    from ase.io import read

    p = Path(path)
    if not p.exists():
        raise DataError(f"structure file {p} does not exist")
    if p.is_dir():
        raise DataError(f"structure path {p} is a directory, not a file")
    try:
        atoms = read(str(p), index=index)
    except Exception as exc:  # noqa: BLE001 - ASE raises many exception types for bad files
        raise DataError(f"cannot read structure {p}: {type(exc).__name__}: {exc}") from exc
    if isinstance(atoms, list):
        if not atoms:
            raise DataError(f"structure file {p} holds no frames")
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise DataError(f"structure file {p} holds no atoms")
    return System.from_atoms(atoms, name=p.name, force_free_space=free_space)


def shipped_structure(name: str = "ac_ala3_nhme") -> Path:
    """Path of a structure shipped with biomlff (``biomlff/resources/structures/<name>.xyz``)."""
    from importlib.resources import files

    p = Path(str(files("biomlff").joinpath("resources", "structures", f"{name}.xyz")))
    if not p.exists():
        raise DataError(f"no shipped structure named {name!r}")
    return p


def repartition_hydrogen_masses(system: System, h_mass: float = 3.024, bond_cutoff: float = 1.3) -> System:
    """Hydrogen mass repartitioning: every hydrogen gets ``h_mass`` (amu) and the mass it gains is
    taken from the heavy atom it is bonded to (nearest non-H atom within ``bond_cutoff`` Å, minimum
    image), so the total mass — and the mass of every X–H group — is unchanged. Allows ~2× larger
    timesteps for bonded-H vibrations. Returns a new System; raises DataError if an H has no
    bonded heavy atom or a heavy atom would drop below 1 amu."""
    import copy

    z = np.asarray(system.atomic_numbers)
    m = np.asarray(system.masses, float).copy()
    pos = np.asarray(system.positions, float)
    heavy = np.nonzero(z > 1)[0]
    if not np.any(z == 1):
        return copy.deepcopy(system)
    if heavy.size == 0:
        raise DataError(f"{system.name}: hydrogen mass repartitioning needs heavy atoms")
    for h in np.nonzero(z == 1)[0]:
        d = minimum_image_np(pos[heavy] - pos[h], system.cell)
        r = np.linalg.norm(d, axis=1)
        k = int(np.argmin(r))
        if r[k] > bond_cutoff:
            raise DataError(f"{system.name}: hydrogen {h} has no heavy atom within {bond_cutoff} Å")
        delta = h_mass - m[h]
        m[h] = h_mass
        m[heavy[k]] -= delta
    if np.any(m < 1.0):
        raise DataError(f"{system.name}: hydrogen mass repartitioning leaves a heavy atom below 1 amu")
    out = copy.deepcopy(system)
    out.masses = m
    return out
