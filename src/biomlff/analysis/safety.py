"""Warnings for analyses the data cannot support: diffusion fitted in the ballistic regime, spectra
whose Nyquist frequency lies below the vibrations of the elements present, time-axis plots of a
single frame, molecules that change between frames.

Each check is a small pure function that returns a message (or None) and a ``warn_*`` wrapper that
issues it as an :class:`AnalysisWarning` (the ``biomlff analyze`` commands print these as
``biomlff: warning: ...`` lines on stderr). Units: times fs, wavenumbers cm⁻¹.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import units
from ..errors import BiomlffWarning


class AnalysisWarning(BiomlffWarning):
    """The result was computed but the data cannot fully support it (the message says why and what
    to change)."""


def warn(message: str | None, stacklevel: int = 3) -> None:
    """Issue ``message`` as an :class:`AnalysisWarning` (nothing for None)."""
    if message:
        warnings.warn(message, AnalysisWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------- diffusion

#: local MSD exponent α (MSD ∝ t^α) above which a fit window counts as ballistic (α = 2 for free
#: flight, 1 for diffusion); 1.5 lies halfway on the log scale of t
BALLISTIC_EXPONENT = 1.5


def msd_exponent(times_fs, msd_a2) -> float:
    """Local exponent α of MSD ∝ t^α: slope of log MSD against log t (least squares over the
    points with t > 0 and MSD > 0; NaN with fewer than two). times fs, MSD Å²."""
    t = np.asarray(times_fs, dtype=float)
    y = np.asarray(msd_a2, dtype=float)
    ok = (t > 0) & (y > 0)
    if np.count_nonzero(ok) < 2:
        return float("nan")
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0])


def ballistic_message(exponent: float, t_start: float, t_end: float) -> str | None:
    """The warning for a diffusion fit over [t_start, t_end] fs whose MSD grows as t^exponent, or
    None when the window is diffusive enough (exponent ≤ :data:`BALLISTIC_EXPONENT`)."""
    if not np.isfinite(exponent) or exponent <= BALLISTIC_EXPONENT:
        return None
    return (
        f"diffusion fit over {t_start:g}–{t_end:g} fs: MSD ∝ t^{exponent:.2f} there (ballistic motion "
        "gives t², diffusion t¹), so the atoms have not yet left the ballistic regime and D is not a "
        "diffusion coefficient; fit later lags (--fit START END) of a longer trajectory"
    )


# --------------------------------------------------------------------------- spectra

#: X–H stretch bands (upper edge, cm⁻¹) of the partner element X: where an element and H are both
#: present, frames must be stored often enough to resolve these (the highest fundamentals of
#: (bio)molecules; typical IR tables, e.g. free O–H ≈ 3650–3700, N–H ≈ 3300–3500, C–H ≈ 2850–3100,
#: S–H ≈ 2550–2600 cm⁻¹)
XH_STRETCH_CM1 = {
    "O": 3700.0,
    "N": 3500.0,
    "C": 3100.0,
    "S": 2600.0,
    "P": 2450.0,
    "Si": 2250.0,
    "B": 2600.0,
    "F": 4140.0,
    "Cl": 2990.0,
    "Br": 2650.0,
}


def nyquist_wavenumber(dt_fs: float) -> float:
    """Nyquist limit 1/(2·Δt·c) in cm⁻¹ for frames stored every ``dt_fs`` fs."""
    return 0.5 / float(dt_fs) * units.invcm_per_invfs


def highest_band(numbers, selected=None) -> tuple[float, str] | None:
    """(wavenumber cm⁻¹, name) of the highest X–H stretch expected for the elements present, or
    None (no hydrogen, or no partner element in :data:`XH_STRETCH_CM1`). ``numbers`` (N,) atomic
    numbers of the whole system; ``selected`` (M,) those of the atoms analysed (default all): a band
    counts when H or X is among them (both atoms of the bond move)."""
    from ase.data import chemical_symbols

    present = {chemical_symbols[int(z)] for z in np.asarray(numbers).reshape(-1)}
    chosen = present if selected is None else {chemical_symbols[int(z)] for z in np.asarray(selected)}
    if "H" not in present:
        return None
    bands = [
        (w, f"{x}–H stretch")
        for x, w in XH_STRETCH_CM1.items()
        if x in present and ("H" in chosen or x in chosen)
    ]
    return max(bands) if bands else None


def nyquist_message(dt_fs: float, numbers, selected=None) -> str | None:
    """The warning for a spectrum from frames ``dt_fs`` fs apart whose Nyquist limit lies below the
    highest X–H stretch of the elements present (the band then aliases to a wrong wavenumber), or
    None."""
    band = highest_band(numbers, selected)
    if band is None:
        return None
    nyq = nyquist_wavenumber(dt_fs)
    if nyq >= band[0]:
        return None
    dt_max = 0.5 / band[0] * units.invcm_per_invfs
    return (
        f"spectrum: frames {dt_fs:g} fs apart resolve wavenumbers only up to the Nyquist limit "
        f"1/(2·Δt) = {nyq:.0f} cm⁻¹, below the {band[1]} (up to ~{band[0]:.0f} cm⁻¹) of the elements "
        f"present: that band folds back (aliases) to a wrong wavenumber; store frames at least every "
        f"{dt_max:.2f} fs"
    )


# --------------------------------------------------------------------------- time series


def single_frame_message(n_frames: int, what: str) -> str | None:
    """The warning for a time-axis plot of ``what`` from ``n_frames`` frames (one frame: a single
    point, no time evolution), or None."""
    if n_frames > 1:
        return None
    return (
        f"{what}: the trajectory has {n_frames} frame, so the time axis holds a single point; "
        "give a trajectory with more frames (or check --frames)"
    )
