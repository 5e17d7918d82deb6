"""Physical pair terms of SO3LR (spec §1.7–1.10): ZBL repulsion, damped electrostatics, dispersion.

All functions are pure JAX and act on per-pair arrays (one entry per pair of a padded pair list);
padding is handled by the caller (padded pairs get a harmless distance and are masked afterwards).
Units: distances Å, energies eV, charges e. Constants come from :mod:`biomlff.units` (ASE CODATA).
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

import numpy as np

from .. import units

#: SO3LR short-range cutoff (Å) of SO3krates and ZBL
SR_CUTOFF = 4.5
#: width σ (Å) of the erf-damped Coulomb kernel erf(r/σ)/r
ELECTROSTATIC_SIGMA = 4.0
#: dispersion damping-radius factor β
DISPERSION_BETA = 1.2
#: electrostatics: start of the energy-/force-shift blend as a fraction of the lr cutoff
ELEC_SWITCH_ON_FRACTION = 0.45
#: ZBL: the repulsion is switched off between 0 and this distance (Å)
ZBL_SWITCH_OFF = 1.5
#: QDO cubic fit σ_q(R) coefficients (R³, R², R, 1)
QDO_FIT = (-0.00078893, 0.04125273, 0.24428889, -0.00433008)


def switch(x, x_on: float, x_off: float):
    """C∞ switch s(x): 1 for x ≤ x_on, 0 for x ≥ x_off, s = g(1−t)/(g(1−t)+g(t)),
    t = (x − x_on)/(x_off − x_on), g(u) = exp(−1/u) (u > 0), 0 otherwise (spec §1.10)."""
    import jax.numpy as jnp

    t = (x - x_on) / (x_off - x_on)

    def g(u):
        pos = u > 0
        safe = jnp.where(pos, u, 1.0)  # keeps exp(-1/u) and its gradient finite where u ≤ 0
        return jnp.where(pos, jnp.exp(-1.0 / safe), 0.0)

    a = g(1.0 - t)
    b = g(t)
    return a / (a + b)


def physnet_cutoff(r, rc: float = SR_CUTOFF):
    """PhysNet polynomial cutoff φ(r) = 1 − 6u⁵ + 15u⁴ − 10u³ (u = r/rc) for r < rc, else 0."""
    import jax.numpy as jnp

    u = r / rc
    phi = 1.0 - 6.0 * u**5 + 15.0 * u**4 - 10.0 * u**3
    return jnp.where(r < rc, phi, 0.0)


# ------------------------------------------------------------------------------------------- ZBL
def zbl_constants(zbl_params):
    """Learned ZBL constants (softplus of the raw parameters; c renormalised to sum 1).

    Computed in the parameters' own dtype (float32 in the checkpoint), as the reference does: these
    operations involve parameters only, so they are not promoted to float64 in a float64 run."""
    import jax

    sp = {k: jax.nn.softplus(v[0]) for k, v in zbl_params.items()}
    c_sum = sp["c1"] + sp["c2"] + sp["c3"] + sp["c4"]
    a = [sp[f"a{k}"] for k in range(1, 5)]
    c = [sp[f"c{k}"] / c_sum for k in range(1, 5)]
    return a, c, sp["p"], sp["d"]


def zbl_pair_energy(r, z_i, z_j, zbl_params, dtype, sr_cutoff: float = SR_CUTOFF):
    """ZBL energy (eV) per directed SR pair (½ per direction, so each unordered pair counts once).

    r: distances (Å); z_i, z_j: atomic numbers (int) of the pair; zbl_params: raw parameters."""
    import jax.numpy as jnp

    a, c, p, d = zbl_constants(zbl_params)
    # Z^p is a parameter-only operation as well (float32 in the reference)
    zp_i = jnp.power(z_i.astype(p.dtype), p).astype(dtype)
    zp_j = jnp.power(z_j.astype(p.dtype), p).astype(dtype)
    a = [x.astype(dtype) for x in a]
    c = [x.astype(dtype) for x in c]
    d = d.astype(dtype)
    rzd = r * (zp_i + zp_j) * d
    screening = sum(ck * jnp.exp(-ak * rzd) for ak, ck in zip(a, c, strict=True))
    zz = (z_i * z_j).astype(dtype)
    coulomb = units.k_e * physnet_cutoff(r, sr_cutoff) * zz / r
    w = switch(r, 0.0, ZBL_SWITCH_OFF)
    return 0.5 * w * coulomb * screening


# ------------------------------------------------------------------------------ electrostatics
def _erf_kernel(r, sigma: float = ELECTROSTATIC_SIGMA):
    """V(r) = erf(r/σ)/r (1/Å)."""
    import jax.scipy.special as jss

    return jss.erf(r / sigma) / r


def _erf_kernel_derivative(r, sigma: float = ELECTROSTATIC_SIGMA):
    """V′(r) = [2r exp(−r²/σ²)/(√π σ) − erf(r/σ)]/r² (1/Å²)."""
    import jax.numpy as jnp
    import jax.scipy.special as jss

    return (2.0 * r * jnp.exp(-(r**2) / sigma**2) / (np.sqrt(np.pi) * sigma) - jss.erf(r / sigma)) / r**2


def coulomb_kernel(r, lr_cutoff: float | None, sigma: float = ELECTROSTATIC_SIGMA):
    """Damped Coulomb kernel (1/Å) of SO3LR (spec §1.8), width σ in Å (4 Å in SO3LR).

    ``lr_cutoff=None``: erf(r/σ)/r. Otherwise the energy-shifted form below 0.45·r_c blended
    (switch s(r; 0.45 r_c, r_c)) into the force-shifted form, and 0 for r ≥ r_c."""
    import jax.numpy as jnp

    v = _erf_kernel(r, sigma)
    if lr_cutoff is None:
        return v
    rc = float(lr_cutoff)
    v_c = float(_np_erf(rc / sigma) / rc)
    dv_c = float(
        (2.0 * rc * np.exp(-(rc**2) / sigma**2) / (np.sqrt(np.pi) * sigma) - _np_erf(rc / sigma)) / rc**2
    )
    f = switch(r, ELEC_SWITCH_ON_FRACTION * rc, rc)
    shifted = v - v_c
    blended = f * shifted + (1.0 - f) * (shifted - dv_c * (r - rc))
    return jnp.where(r < rc, blended, 0.0)


def _np_erf(x: float) -> float:
    import math

    return math.erf(x)


def electrostatic_pair_energy(r, q_i, q_j, lr_cutoff: float | None, sigma: float = ELECTROSTATIC_SIGMA):
    """Electrostatic energy (eV) of each unordered LR pair: k_e q_i q_j · kernel(r) (r in Å, q in e)."""
    return units.k_e * q_i * q_j * coulomb_kernel(r, lr_cutoff, sigma)


# -------------------------------------------------------------------------------- dispersion
@functools.cache
def free_atom_table() -> tuple[np.ndarray, np.ndarray]:
    """TS free-atom reference (float64 arrays indexed by Z, Z = 0 unused): α0 in bohr³ and C6 in
    Hartree·bohr⁶, from the package data file ``resources/so3lr/ts_free_atom_reference.csv``."""
    text = resources.files("biomlff").joinpath("resources/so3lr/ts_free_atom_reference.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    zmax = max(int(r["Z"]) for r in rows)
    alpha = np.full(zmax + 1, np.nan)
    c6 = np.full(zmax + 1, np.nan)
    for r in rows:
        alpha[int(r["Z"])] = float(r["alpha0_bohr3"])
        c6[int(r["Z"])] = float(r["C6_hartree_bohr6"])
    return alpha, c6


def dispersion_pair_energy(
    r,
    alpha_i,
    alpha_j,
    c6_i,
    c6_j,
    lr_cutoff: float | None,
    damping: float | None,
    beta: float = DISPERSION_BETA,
):
    """Dispersion energy (eV) of each unordered LR pair (spec §1.9).

    alpha_*: Hirshfeld-scaled polarisabilities (bohr³), c6_*: scaled C6 (Hartree·bohr⁶); rational
    damping with QDO-derived C8/C10; switched off over (r_c − damping, r_c) with a cutoff. The same
    as :func:`dispersion_pair_energy_u` with u = C6/α²."""
    # two divisions by α (not one by α²): the second derivative then holds α⁻³, not (α²)⁻³, which
    # overflows float32 for α < 1e-6 bohr³
    return dispersion_pair_energy_u(
        r, alpha_i, alpha_j, c6_i / alpha_i / alpha_i, c6_j / alpha_j / alpha_j, lr_cutoff, damping, beta
    )


def c6_per_alpha2_table() -> np.ndarray:
    """u0[Z] = C6_0/α0² (Hartree, float64, indexed by Z): independent of the Hirshfeld ratio h,
    since α = h α0 and C6 = h² C6_0 (TS scaling), so u = C6/α² = u0 for every atom."""
    alpha0, c60 = free_atom_table()
    return c60 / alpha0**2


def dispersion_pair_energy_u(
    r,
    alpha_i,
    alpha_j,
    u_i,
    u_j,
    lr_cutoff: float | None,
    damping: float | None,
    beta: float = DISPERSION_BETA,
):
    """Dispersion energy (eV) of each unordered LR pair from α (bohr³) and u = C6/α² (Hartree) of
    both atoms (:func:`c6_per_alpha2_table`); otherwise as :func:`dispersion_pair_energy`.

    The combination rule C6_ij = 2 C6_i C6_j α_i α_j / (α_i² C6_j + α_j² C6_i) is evaluated as
    2 α_i α_j u_i u_j / (u_i + u_j): the same value, but the literal form's denominator ∝ h_i² h_j²
    underflows in float32 when a Hirshfeld ratio goes to ~1e-7 (a model trained without Hirshfeld
    labels can drive it there), and its second derivative, which force training needs, becomes
    0·inf = NaN. With u from the table the ratio enters only through α."""
    import jax.numpy as jnp

    alpha_ij = 0.5 * (alpha_i + alpha_j)
    c6 = 2.0 * alpha_i * alpha_j * (u_i * u_j / (u_i + u_j))
    a17 = jnp.power(alpha_ij, 1.0 / 7.0)
    big_r = units.alpha_fs ** (-4.0 / 21.0) * a17
    c3, c2, c1, c0 = QDO_FIT
    sigma_q = c3 * big_r**3 + c2 * big_r**2 + c1 * big_r + c0
    gamma = 1.0 / (2.0 * sigma_q**2)
    c8 = 5.0 * c6 / gamma
    c10 = 245.0 * c6 / (8.0 * gamma**2)
    rho = beta * 2.0 * 2.54 * a17
    ra = r / units.Bohr
    e = -c6 / (ra**6 + rho**6) - c8 / (ra**8 + rho**8) - c10 / (ra**10 + rho**10)
    e = units.Hartree * e
    if lr_cutoff is not None:
        e = e * switch(r, lr_cutoff - damping, lr_cutoff)
    return e
