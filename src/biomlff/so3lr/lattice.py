"""SO3LR electrostatics summed over the periodic lattice (``electrostatics="ewald"`` or ``"pme"``).

SO3LR's electrostatic energy is ½ Σ k_e q_i q_j erf(r_ij/σ)/r_ij (σ = 4 Å, partial charges q in e).
The default ``"cutoff"`` truncates it at the lr cutoff with SO3LR's shifted form (spec §1.8,
:func:`biomlff.so3lr.physics.coulomb_kernel`); ``"ewald"`` and ``"pme"`` sum the same damped
interaction over all periodic images with :mod:`biomlff.ewald`:

* real space, on the existing long-range pair list: k_e q_i q_j g(r), g(r) = [erf(r/σ) −
  erf(r/(√2 s))]/r, plainly truncated at the lr cutoff (no shift or switch: the smearing s is tuned so
  that g's force at the cutoff is below the requested accuracy, so the truncation is within the error
  budget and a shift would only bias the sum). With the default tuning and lr cutoffs up to about
  12 Å, s = σ/√2 and g ≡ 0: SO3LR's σ = 4 Å damping makes the interaction smooth enough to go
  entirely to reciprocal space (about 60–1,000 wave vectors for 12–25 Å boxes).
* reciprocal space (Ewald sum or smooth PME), self term and, for a charged box, the neutralising
  background; per-atom energies ½ k_e q_i φ_i.

Units: Å, e, eV.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import ewald, units
from ..errors import ConfigError, ModelError

#: electrostatics modes of :class:`biomlff.so3lr.SO3LRConfig`
ELECTROSTATICS = ("cutoff", "ewald", "pme")


def lattice_settings(
    electrostatics: str,
    cell,
    lr_cutoff: float | None,
    sigma: float,
    accuracy: float = ewald.DEFAULT_ACCURACY,
    order: int = ewald.DEFAULT_ORDER,
) -> ewald.EwaldSettings | None:
    """Tuned lattice-sum settings for ``electrostatics`` ("ewald" | "pme"; None for "cutoff") in the
    periodic ``cell`` (3, 3) Å, with the lr cutoff (Å) as the real-space cutoff, damping width σ (Å),
    requested relative force accuracy and PME spline order (:func:`biomlff.ewald.tune`)."""
    if electrostatics not in ELECTROSTATICS:
        raise ConfigError(f"electrostatics must be one of {ELECTROSTATICS}, got {electrostatics!r}")
    if electrostatics == "cutoff":
        return None
    if cell is None:
        raise ConfigError(
            f"electrostatics={electrostatics!r} sums over periodic images and needs a periodic cell; "
            "use electrostatics='cutoff' (with lr_cutoff=None for all pairs) in free space"
        )
    if lr_cutoff is None:
        raise ConfigError(f"electrostatics={electrostatics!r} needs a finite lr cutoff (periodic system)")
    return ewald.tune(
        np.asarray(cell, float),
        sigma=sigma,
        r_cut=lr_cutoff,
        accuracy=accuracy,
        method=electrostatics,
        order=order,
    )


def warn_if_charged(electrostatics: str, charge: float) -> None:
    """Warn that a charged periodic box is summed with a uniform neutralising background."""
    if electrostatics != "cutoff" and abs(float(charge)) > 1e-8:
        warnings.warn(
            f"total charge {float(charge):+g} e in a periodic box with electrostatics={electrostatics!r}: "
            "the lattice sum includes a uniform neutralising background (its energy depends on the box "
            "volume; compare charged systems only at equal volume)",
            stacklevel=3,
        )


def _check(settings) -> None:
    if settings is None:
        raise ModelError(
            "SO3LRConfig.electrostatics is 'ewald'/'pme' but its lattice-sum settings are missing: "
            "build the potential with so3lr_potential(..., electrostatics=..., cell=cell) or set "
            "SO3LRConfig.ewald = biomlff.so3lr.lattice.lattice_settings(...)"
        )


def real_space_pair_energy(r, q_i, q_j, settings: ewald.EwaldSettings):
    """Real-space energy (eV) of each unordered LR pair, k_e q_i q_j g(r) for r < lr cutoff (r in Å)."""
    import jax.numpy as jnp

    _check(settings)
    if not settings.real_space:
        return jnp.zeros_like(r)
    g = ewald.real_space_kernel(r, settings.smearing, settings.sigma)
    return jnp.where(r < settings.r_cut, units.k_e * q_i * q_j * g, 0.0)


def reciprocal_atom_energies(positions, q, cell, settings: ewald.EwaldSettings):
    """Per-atom reciprocal + self + background energies ½ k_e q_i φ_i (eV); positions Å, q e, cell Å."""
    _check(settings)
    if cell is None:
        raise ModelError(f"electrostatics={settings.method!r} needs a periodic cell (got cell=None)")
    return 0.5 * units.k_e * q * ewald.reciprocal_potential(positions, q, cell, settings)


def describe(settings: ewald.EwaldSettings | None) -> str:
    """One line naming the lattice-sum parameters (for logs and docs)."""
    if settings is None:
        return "cutoff"
    part = (
        f"nmax {settings.nmax}"
        if settings.method == "ewald"
        else f"mesh {settings.mesh}, B-spline order {settings.order}"
    )
    real = f"real space to {settings.r_cut} Å" if settings.real_space else "no real-space part (s = σ/√2)"
    s0 = settings.sigma / math.sqrt(2.0)
    return (
        f"{settings.method}: smearing s = {settings.smearing:.4f} Å (σ/√2 = {s0:.4f}), "
        f"{part}, {real}, accuracy {settings.accuracy:g}"
    )
