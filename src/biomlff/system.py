"""The one structure type of biomlff: one configuration of atoms, as every pillar passes it around.

:class:`System` holds what a structure file, a dataset frame or a user gives: atomic numbers,
positions (Å), and optionally masses (amu; the elements' standard masses by default), the cell (3, 3)
Å rows (None = free space), velocities (Å/fs), total charge (e), multiplicity (2S + 1), fragments
(per-atom ids (N,), per-fragment charges (F,) in e) and a name. MD runs it, SO3LR's batched
evaluation and binding energies evaluate lists of it, the calculators and the front door read it
from ASE ``Atoms``.

What a *model* is bound to is :class:`biomlff.potential.ChemicalSystem`: the same structure without
positions, masses and velocities (a model's inputs must not depend on the configuration);
:meth:`System.chemical` gives it. Before issue 26, MD (``md.structure.System``) and SO3LR's batched
evaluation (``so3lr.evaluate.System``, with ``species``/``spin``/``frag_ids`` fields) had types of
their own; both names now refer to this class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .potential import ChemicalSystem

__all__ = ["System"]


@dataclass
class System:
    """One structure: atomic_numbers (N,), positions (N, 3) Å, masses (N,) amu (None: the standard
    atomic masses), cell (3, 3) Å rows or None (free space), velocities (N, 3) Å/fs or None, charge
    (e) and multiplicity (2S + 1) or None when not given (models then take 0 and 1), fragments
    ``(ids (N,), charges (F,) e)`` or None, and a name for messages."""

    atomic_numbers: np.ndarray
    positions: np.ndarray
    masses: np.ndarray | None = None
    cell: np.ndarray | None = None
    velocities: np.ndarray | None = None
    charge: float | None = None
    multiplicity: float | None = None
    name: str = "system"
    fragments: tuple | None = None

    def __post_init__(self):
        if self.masses is None:
            from ase.data import atomic_masses

            self.masses = np.asarray(atomic_masses[np.asarray(self.atomic_numbers, int)], float)

    @property
    def n_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    @property
    def total_charge(self) -> float:
        """Total charge in e (0 when not given)."""
        return 0.0 if self.charge is None else float(self.charge)

    @property
    def spin(self) -> float:
        """2S = multiplicity − 1 (0 when not given): SO3LR's spin input."""
        return 0.0 if self.multiplicity is None else float(self.multiplicity) - 1.0

    def chemical(self) -> ChemicalSystem:
        """What a model is bound to: elements, charge, multiplicity, fragments and cell (no
        positions)."""
        mult = 1 if self.multiplicity is None else self.multiplicity
        return ChemicalSystem(self.atomic_numbers, self.total_charge, mult, self.fragments, self.cell)

    @classmethod
    def from_atoms(cls, atoms, name: str = "system", force_free_space: bool = False) -> System:
        """From ASE ``Atoms``: the cell when ``pbc`` is set in all three directions
        (:func:`biomlff.geometry.cell_from_pbc`; mixed pbc is an error), velocities when the
        momenta are non-zero, ``info["charge"]`` (or ``total_charge``) and ``info["multiplicity"]``."""
        from ase.units import fs as ase_fs

        from .geometry import cell_from_pbc

        c = None if force_free_space else cell_from_pbc(atoms.cell.array, atoms.pbc, name=name)
        vel = None
        if atoms.has("momenta"):
            v = atoms.get_velocities() * ase_fs  # ASE velocity units → Å/fs
            vel = v if np.any(v != 0) else None
        info = atoms.info
        charge = info.get("charge", info.get("total_charge"))
        mult = info.get("multiplicity")
        return cls(
            atomic_numbers=np.asarray(atoms.numbers, np.int32),
            positions=np.asarray(atoms.positions, float),
            masses=np.asarray(atoms.get_masses(), float),
            cell=c,
            velocities=vel,
            charge=None if charge is None else float(charge),
            multiplicity=None if mult is None else int(mult),
            name=name,
        )

    def to_atoms(self):
        """ASE ``Atoms`` (elements, positions, cell and pbc)."""
        from ase import Atoms

        return Atoms(
            numbers=self.atomic_numbers,
            positions=self.positions,
            cell=self.cell if self.cell is not None else None,
            pbc=self.cell is not None,
        )
