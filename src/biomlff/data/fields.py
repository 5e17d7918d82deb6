"""The known dataset fields, their trailing shapes and unit kinds (shared by
:mod:`biomlff.data.dataset`, :mod:`biomlff.data.validate` and the readers/writers)."""

from __future__ import annotations

#: known per-frame fields: name -> trailing shape (None = any)
FRAME_FIELDS: dict[str, tuple[int, ...]] = {
    "energy": (),
    "charge": (),
    "multiplicity": (),
    "dipole": (3,),
    "cell": (3, 3),
    "pbc": (3,),
    "formation_energy": (),
    "quadrupole": (3, 3),
    "homo_energy": (),
    "lumo_energy": (),
}
#: known per-atom fields: name -> trailing shape
ATOM_FIELDS: dict[str, tuple[int, ...]] = {
    "forces": (3,),
    "hirshfeld_ratios": (),
    "partial_charges": (),
    "c6_ratios": (),
    "a0_ratios": (),
}
#: unit kind of known fields (used by writers that store non-eV units and by ``data info``)
FIELD_KIND: dict[str, str] = {
    "energy": "energy",
    "formation_energy": "energy",
    "homo_energy": "energy",
    "lumo_energy": "energy",
    "forces": "force",
    "dipole": "dipole",
    "charge": "charge",
    "partial_charges": "charge",
}

MAX_Z = 118
