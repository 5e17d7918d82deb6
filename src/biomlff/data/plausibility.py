"""Warnings for labels whose units were assumed or whose size is implausible for the unit they are
read in: an MD22 extended XYZ (kcal/mol) read as eV gives an RMS force of ~30 "eV/Å", and every
error computed from it is off by 23×. Reading goes on (the user may know better); the warning names
the file, what was assumed and the flag that sets it.

Units: energies eV, forces eV/Å (the dataset's internal units).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import BiomlffWarning

#: an RMS force component above this (eV/Å) is not a molecular-dynamics or QM sampling set in eV
MAX_PLAUSIBLE_RMS_FORCE = 10.0


def label_warnings(ds, source: str = "<dataset>") -> list[str]:
    """The warnings for ``ds`` (read from ``source``): an energy unit that was assumed, and an RMS
    force component > :data:`MAX_PLAUSIBLE_RMS_FORCE` eV/Å."""
    out = []
    su = (ds.metadata or {}).get("source_units") or {}
    e_unit = str(su.get("energy", ""))
    if "assumed" in e_unit:
        out.append(
            f"{source}: energies and forces read as eV and eV/Å (assumed: the file names no unit); "
            "pass --energy-unit (e.g. kcal/mol for MD17/MD22 files) if they are in another unit"
        )
    forces = getattr(ds, "forces", None)
    if forces is not None and np.size(forces):
        f = np.asarray(forces, float)
        rms = float(np.sqrt(np.nanmean(f * f)))
        if rms > MAX_PLAUSIBLE_RMS_FORCE:
            out.append(
                f"{source}: RMS force component {rms:.3g} eV/Å is implausibly large for molecular "
                f"data (> {MAX_PLAUSIBLE_RMS_FORCE:g} eV/Å); are the labels in kcal/mol or Hartree? "
                "Set --energy-unit / --force-unit"
            )
    return out


def warn_labels(ds, source: str = "<dataset>") -> None:
    """Issue :func:`label_warnings` as :class:`~biomlff.errors.BiomlffWarning` (the command line
    prints each as one ``biomlff: warning:`` line)."""
    for msg in label_warnings(ds, source):
        warnings.warn(msg, BiomlffWarning, stacklevel=3)
