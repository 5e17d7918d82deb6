"""Ewald and smooth particle-mesh Ewald (PME) lattice sums of (Gaussian-damped) Coulomb interactions.

The interaction summed over the infinite periodic lattice is

    E = ½ Σ_{i,j} Σ'_n q_i q_j V(|r_j − r_i + n|),   V(r) = erf(r/σ)/r  (σ = 0: V = 1/r),

(the prime drops i = j at n = 0), i.e. point charges for σ = 0 and SO3LR's erf(r/σ)/r-damped
Coulomb (σ = 4 Å) otherwise. It is split with a smearing length s (Å) into

    V(r) = [erf(r/σ) − erf(r/(√2 s))]/r  +  erf(r/(√2 s))/r
         =  g(r) (short-ranged, real space)  +  φ_s(r) (smooth, reciprocal space),

g(r) = [erfc(r/(√2 s)) − erfc(r/σ)]/r. φ_s has the Fourier transform 4π/k² · exp(−s²k²/2), so

    E = ½ Σ_{pairs, images} q_i q_j g(r)                                   (real space)
      + (1/2V) Σ_{k≠0} 4π/k² exp(−s²k²/2) |S(k)|²,  S(k) = Σ_j q_j e^{ik·r_j}   (reciprocal space)
      − ½ Σ_i q_i² √(2/π)/s                                               (self term, φ_s(0))
      − π Q² (s² − σ²/2)/V                                                 (background, Q = Σ q_i).

The k = 0 term is dropped ("tin-foil" boundary); for a non-neutral box (Q ≠ 0) this is the energy
with a uniform neutralising background, and the last term (−Q²/(2V) ∫ g d³r) makes E independent
of s. For σ > 0 the choice s = σ/√2 makes g ≡ 0: the whole sum is then in reciprocal space. This is
the natural choice for SO3LR (σ = 4 Å): real-space terms are only worth computing when the
real-space cutoff is long enough to allow s > σ/√2 (see :func:`tune`).

Reciprocal space is summed either exactly over a box of integer wave vectors (``"ewald"``; cost
O(N·K), the method for small boxes) or by smooth PME (``"pme"``, Essmann et al., J. Chem. Phys. 103,
8577 (1995)): cardinal B-spline charge assignment of even order p on a K1×K2×K3 mesh, FFT
convolution with the influence function 4π/k² exp(−s²k²/2)·|b(m)|²/V and B-spline interpolation
back to the atoms (cost O(N p³ + K log K)).

Units: positions and cells in Å (lattice vectors as rows, any triclinic cell for the functions of
this module), charges in e, energies in e²/Å (multiply by k_e = 14.3996 eV·Å/e², ``units.k_e``, for
eV), potentials in e/Å. All array functions are pure JAX and differentiable in positions, charges
and cell (forces and stress by autodiff); the integer wave-vector set and mesh shape are static.

Why written here rather than taken from a library: the one JAX Ewald/PME package on the registry,
jax-pme 0.1.0, is an alpha release that announces breaking changes without notice; its public API
builds its own neighbour list from an ``ase.Atoms`` (vesin) with the plain erfc real-space kernel,
whereas SO3LR needs the kernel g above on its own JAX-MD pair list, so only its internal
("not yet ready for public consumption") reciprocal-space functions would fit; and it has no
accuracy-tuning helper. The lattice sums are short and standard, so they are written and tested
here against analytic (Madelung constant) and direct-sum references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ConfigError
from .geometry import cell_heights

METHODS = ("ewald", "pme")
#: PME B-spline orders supported (even orders: the Euler exponential-spline factor |b(m)|² has no
#: zeros for even p)
PME_ORDERS = (4, 6, 8, 10)
#: default requested relative force accuracy of the lattice sum
DEFAULT_ACCURACY = 1e-4
#: with σ > 0, the smearing is raised above σ/√2 (adding real-space terms) only by at least this factor
MIN_SMEARING_GAIN = 1.05
#: default PME B-spline order
DEFAULT_ORDER = 6
#: empirical PME error constants C_p: RMS relative force error ≈ C_p (h/s)^(p−1) for mesh spacing h,
#: smearing s and B-spline order p, measured on 60 random neutral charges (σ = 4 Å, s = σ/√2, h/s in
#: 0.17–0.66) against converged Ewald: the largest measured C_p over that range times a safety factor
#: 2 (measured maxima 0.020, 0.0037, 0.0022, 0.00095 for p = 4, 6, 8, 10; the error falls slightly
#: faster than (h/s)^(p−1) on fine meshes, so the estimate is conservative there).
#: tests/so3lr/test_ewald.py::test_pme_meets_requested_accuracy checks tuned meshes against Ewald.
PME_ERROR_CONSTANTS = {4: 0.04, 6: 0.0075, 8: 0.0045, 10: 0.002}


@dataclass(frozen=True)
class EwaldSettings:
    """Static parameters of a lattice sum (hashable; equal settings share compiled code).

    method: "ewald" or "pme"; smearing: s in Å; sigma: damping width σ (Å) of the summed kernel
    erf(r/σ)/r (0 = point charges); r_cut: real-space cutoff in Å (None: no real-space part, only
    valid when s = σ/√2); nmax: largest |n_a| of the integer wave vectors per cell axis (Ewald);
    mesh: PME mesh (K1, K2, K3); order: PME B-spline order; accuracy: the requested relative force
    accuracy the parameters were tuned for (informative)."""

    method: str
    smearing: float
    sigma: float = 0.0
    r_cut: float | None = None
    nmax: tuple[int, int, int] = (0, 0, 0)
    mesh: tuple[int, int, int] = (0, 0, 0)
    order: int = DEFAULT_ORDER
    accuracy: float = DEFAULT_ACCURACY

    @property
    def real_space(self) -> bool:
        """Whether the real-space kernel g is non-zero (False for s = σ/√2 with σ > 0)."""
        return not (self.sigma > 0 and abs(self.smearing - self.sigma / math.sqrt(2.0)) <= 1e-12 * self.sigma)

    def validate(self) -> EwaldSettings:
        if self.method not in METHODS:
            raise ConfigError(f"lattice-sum method must be one of {METHODS}, got {self.method!r}")
        if not self.smearing > 0:
            raise ConfigError(f"smearing must be positive (Å), got {self.smearing}")
        if self.sigma < 0:
            raise ConfigError(f"sigma must be ≥ 0 (Å), got {self.sigma}")
        if self.real_space and self.r_cut is None:
            raise ConfigError(
                "a real-space cutoff is needed unless smearing = sigma/√2 (real-space kernel zero)"
            )
        if self.method == "ewald" and min(self.nmax) < 0:
            raise ConfigError(f"nmax must be ≥ 0, got {self.nmax}")
        if self.method == "pme":
            if self.order not in PME_ORDERS:
                raise ConfigError(f"PME spline order must be one of {PME_ORDERS}, got {self.order}")
            if min(self.mesh) < self.order:
                raise ConfigError(
                    f"PME mesh {self.mesh} must have at least order={self.order} points per axis"
                )
        return self


# ------------------------------------------------------------------------------------ kernels
def real_space_kernel(r, smearing: float, sigma: float = 0.0):
    """Short-range kernel g(r) = [erfc(r/(√2 s)) − erfc(r/σ)]/r in 1/Å (σ = 0: erfc(r/(√2 s))/r);
    r in Å, r > 0."""
    import jax.scipy.special as jss

    g = jss.erfc(r / (math.sqrt(2.0) * smearing))
    if sigma > 0:
        g = g - jss.erfc(r / sigma)
    return g / r


def self_potential(charges, smearing: float):
    """Per-atom self-term potential −q_i √(2/π)/s (e/Å): removes each smeared charge's interaction
    with itself from the reciprocal sum."""
    return -charges * math.sqrt(2.0 / math.pi) / smearing


def background_potential(charges, cell, smearing: float, sigma: float = 0.0):
    """Per-atom potential (e/Å) of the neutralising-background term −π Q² (s² − σ²/2)/V (zero for a
    neutral box): φ_i = −2π Q (s² − σ²/2)/V, so that ½ Σ q_i φ_i is the term itself."""
    import jax.numpy as jnp

    volume = jnp.abs(jnp.linalg.det(cell))
    q_tot = jnp.sum(charges)
    return jnp.full_like(charges, 1.0) * (-2.0 * math.pi * q_tot * (smearing**2 - 0.5 * sigma**2) / volume)


def _recip_vectors(cell):
    """Reciprocal vectors 2π·inv(cell)ᵀ (rows, 1/Å): k = n @ this for integer n."""
    import jax.numpy as jnp

    return 2.0 * math.pi * jnp.linalg.inv(cell).T


def _influence(k2, smearing: float):
    """4π/k² exp(−s²k²/2) (Å²) with the k = 0 entry set to 0 (tin-foil / neutralising background)."""
    import jax.numpy as jnp

    zero = k2 == 0
    safe = jnp.where(zero, 1.0, k2)
    return jnp.where(zero, 0.0, 4.0 * math.pi / safe * jnp.exp(-0.5 * smearing**2 * safe))


# ------------------------------------------------------------------------------- plain Ewald
@lru_cache(maxsize=64)
def half_space_vectors(nmax: tuple[int, int, int]) -> np.ndarray:
    """Integer wave vectors n ≠ 0 with |n_a| ≤ nmax_a, one of each ±n pair (int array (M, 3))."""
    axes = [np.arange(-m, m + 1) for m in nmax]
    n = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    keep = (
        (n[:, 0] > 0) | ((n[:, 0] == 0) & (n[:, 1] > 0)) | ((n[:, 0] == 0) & (n[:, 1] == 0) & (n[:, 2] > 0))
    )
    return n[keep]


def ewald_reciprocal_potential(positions, charges, cell, smearing: float, nmax: tuple[int, int, int]):
    """Reciprocal-space potential φ_i = (2/V) Σ_{half k} 4π/k² e^{−s²k²/2} Re[S(k) e^{−ik·r_i}] (e/Å)
    by a direct sum over the integer wave vectors |n_a| ≤ nmax_a (positions Å, charges e, cell Å);
    the reciprocal energy is ½ Σ q_i φ_i."""
    import jax.numpy as jnp

    n = jnp.asarray(half_space_vectors(tuple(int(m) for m in nmax)), positions.dtype)
    k = n @ _recip_vectors(cell)  # (M, 3)
    g = _influence(jnp.sum(k * k, axis=-1), smearing)
    phase = positions @ k.T  # (N, M)
    c, s = jnp.cos(phase), jnp.sin(phase)
    sc, ss = charges @ c, charges @ s  # Re and Im of S(k)
    volume = jnp.abs(jnp.linalg.det(cell))
    return (2.0 / volume) * (c @ (g * sc) + s @ (g * ss))


# ------------------------------------------------------------------------------------- PME
def bspline_weights(t, order: int):
    """Cardinal B-spline values M_p(t + j), j = 0..p−1, for t in [0, 1) (shape t.shape + (p,)).

    M_2(x) = 1 − |x − 1| on [0, 2]; M_p(x) = [x M_{p−1}(x) + (p − x) M_{p−1}(x − 1)]/(p − 1)."""
    import jax.numpy as jnp

    w = [t, 1.0 - t]
    for k in range(3, order + 1):
        new = []
        for j in range(k):
            a = (t + j) * w[j] if j <= k - 2 else 0.0
            b = (k - t - j) * w[j - 1] if j >= 1 else 0.0
            new.append((a + b) / (k - 1))
        w = new
    return jnp.stack(w, axis=-1)


@lru_cache(maxsize=64)
def _bspline_moduli(mesh: tuple[int, int, int], order: int) -> tuple[np.ndarray, ...]:
    """|b_a(m)|² per axis on the FFT frequencies (rfft on the last axis):
    |b(m)|² = 1/|Σ_{k=0}^{p−2} M_p(k+1) e^{2πimk/K}|² (Essmann et al. 1995, eq. 4.4)."""
    mp = np.zeros(order + 1)
    mp[1] = 1.0  # M_2 at integers: M_2(1) = 1
    for k in range(3, order + 1):  # M_k(x) at integer x from M_{k−1}
        prev = mp.copy()
        for x in range(k + 1):
            a = x * prev[x] if x <= order else 0.0
            b = (k - x) * prev[x - 1] if x >= 1 else 0.0
            mp[x] = (a + b) / (k - 1)
    out = []
    for axis, kk in enumerate(mesh):
        m = np.arange(kk // 2 + 1) if axis == 2 else np.fft.fftfreq(kk, 1.0 / kk)
        den = sum(mp[k + 1] * np.exp(2j * np.pi * m * k / kk) for k in range(order - 1))
        out.append(1.0 / np.abs(den) ** 2)
    return tuple(out)


def pme_reciprocal_potential(
    positions, charges, cell, smearing: float, mesh: tuple[int, int, int], order: int = DEFAULT_ORDER
):
    """Reciprocal-space potential φ_i (e/Å) by smooth PME: B-spline order ``order`` (even) on a mesh
    (K1, K2, K3); positions Å, charges e, cell Å (rows). The reciprocal energy is ½ Σ q_i φ_i."""
    import jax.numpy as jnp

    mesh = tuple(int(m) for m in mesh)
    kdims = jnp.asarray(mesh, positions.dtype)
    inv = jnp.linalg.inv(cell)
    u = (positions @ inv) * kdims  # scaled fractional coordinates (N, 3)
    u0 = jnp.floor(u)
    w = bspline_weights(u - u0, order)  # (N, 3, p): weight of grid point u0 − j
    j = jnp.arange(order)
    idx = (u0.astype(jnp.int32)[:, :, None] - j[None, None, :]) % jnp.asarray(mesh, jnp.int32)[None, :, None]
    k1, k2, k3 = mesh
    flat = (idx[:, 0, :, None, None] * k2 + idx[:, 1, None, :, None]) * k3 + idx[:, 2, None, None, :]
    ww = w[:, 0, :, None, None] * w[:, 1, None, :, None] * w[:, 2, None, None, :]  # (N, p, p, p)
    flat = flat.reshape(-1)
    ww = ww.reshape(positions.shape[0], -1)
    grid = jnp.zeros(k1 * k2 * k3, positions.dtype).at[flat].add((charges[:, None] * ww).reshape(-1))
    grid = grid.reshape(mesh)

    b1, b2, b3 = (jnp.asarray(b, positions.dtype) for b in _bspline_moduli(mesh, order))
    m1 = jnp.asarray(np.fft.fftfreq(k1, 1.0 / k1), positions.dtype)
    m2 = jnp.asarray(np.fft.fftfreq(k2, 1.0 / k2), positions.dtype)
    m3 = jnp.asarray(np.arange(k3 // 2 + 1), positions.dtype)
    rec = _recip_vectors(cell)
    kvec = (
        m1[:, None, None, None] * rec[0] + m2[None, :, None, None] * rec[1] + m3[None, None, :, None] * rec[2]
    )
    volume = jnp.abs(jnp.linalg.det(cell))
    theta = _influence(jnp.sum(kvec * kvec, axis=-1), smearing) * (
        b1[:, None, None] * b2[None, :, None] * b3[None, None, :]
    )
    conv = jnp.fft.irfftn(theta * jnp.fft.rfftn(grid), s=mesh) * (k1 * k2 * k3 / volume)
    return jnp.sum(ww * conv.reshape(-1)[flat].reshape(ww.shape), axis=-1)


# ------------------------------------------------------------------------------- full sums
def reciprocal_potential(positions, charges, cell, settings: EwaldSettings):
    """Smooth part of the lattice potential per atom (e/Å): reciprocal sum + self term + background
    (everything except the real-space kernel g); its energy is ½ Σ q_i φ_i (e²/Å)."""
    if settings.method == "ewald":
        phi = ewald_reciprocal_potential(positions, charges, cell, settings.smearing, settings.nmax)
    elif settings.method == "pme":
        phi = pme_reciprocal_potential(
            positions, charges, cell, settings.smearing, settings.mesh, settings.order
        )
    else:
        raise ConfigError(f"lattice-sum method must be one of {METHODS}, got {settings.method!r}")
    return (
        phi
        + self_potential(charges, settings.smearing)
        + background_potential(charges, cell, settings.smearing, settings.sigma)
    )


def image_shifts(cell, r_cut: float, positions=None) -> np.ndarray:
    """Integer lattice translations n (int array (M, 3)) that can bring a pair of atoms within r_cut
    (Å): |r| ≥ |s_a| d_a for r = Σ s_a a_a (d_a: spacing of the lattice planes), so all n with
    |n_a| ≤ r_cut/d_a + Δs_a, Δs_a the atoms' extent in fractional coordinate a — from ``positions``
    (Å) when given, else 1 (atoms inside the cell). numpy, from a concrete cell."""
    cell = np.asarray(cell, float)
    d = cell_heights(cell)  # distance between lattice planes
    if positions is None:
        frac_extent = np.ones(3)
    else:
        s = np.asarray(positions, float) @ np.linalg.inv(cell)
        frac_extent = s.max(axis=0) - s.min(axis=0)
    nmax = np.ceil(r_cut / d + frac_extent).astype(int)
    axes = [np.arange(-m, m + 1) for m in nmax]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def real_space_energy(positions, charges, cell, shifts, smearing: float, sigma: float, r_cut: float):
    """Real-space energy ½ Σ_{i,j,n}' q_i q_j g(|r_j − r_i + n·cell|) (e²/Å) over the explicit image
    translations ``shifts`` (from :func:`image_shifts`), plainly truncated at r_cut (Å). For small boxes
    and reference sums: O(N² M) memory."""
    import jax.numpy as jnp

    t = jnp.asarray(shifts, positions.dtype) @ cell  # (M, 3)
    d = positions[None, :, None, :] - positions[:, None, None, :] + t[None, None, :, :]  # (N, N, M, 3)
    n = positions.shape[0]
    zero_shift = jnp.asarray(np.all(np.asarray(shifts) == 0, axis=1))
    self_pair = jnp.eye(n, dtype=bool)[:, :, None] & zero_shift[None, None, :]
    r2 = jnp.sum(d * d, axis=-1)
    keep = (~self_pair) & (r2 < r_cut**2)
    r = jnp.sqrt(jnp.where(keep, r2, 1.0))
    g = jnp.where(keep, real_space_kernel(r, smearing, sigma), 0.0)
    return 0.5 * jnp.einsum("i,j,ijm->", charges, charges, g)


def lattice_energy(positions, charges, cell, settings: EwaldSettings, shifts=None):
    """Total lattice energy (e²/Å) of the kernel erf(r/σ)/r (σ = settings.sigma; 0 = point charges):
    reciprocal sum + self + background, plus the real-space sum over explicit images when the
    real-space kernel is non-zero (``shifts`` default: :func:`image_shifts` of the concrete cell;
    pass them explicitly when differentiating with respect to the cell)."""
    import jax
    import jax.numpy as jnp

    e = 0.5 * jnp.sum(charges * reciprocal_potential(positions, charges, cell, settings))
    if settings.real_space:
        if shifts is None:
            try:  # a tight image set from concrete positions; a looser bound when traced
                shifts = image_shifts(np.asarray(cell), settings.r_cut, np.asarray(positions))
            except jax.errors.TracerArrayConversionError:
                shifts = image_shifts(np.asarray(cell), settings.r_cut)
        e = e + real_space_energy(
            positions, charges, cell, shifts, settings.smearing, settings.sigma, settings.r_cut
        )
    return e


# ------------------------------------------------------------------------------------ tuning
def _real_space_force_tail(r_cut: float, smearing: float, sigma: float) -> float:
    """r_c²·|g′(r_c)|: the real-space force kernel at the cutoff relative to the bare Coulomb force
    1/r_c². For erfc(r/a)/r, r²|d/dr| = erfc(x) + (2x/√π) e^{−x²}, x = r/a."""

    def tail(a):
        x = r_cut / a
        return math.erfc(x) + 2.0 * x / math.sqrt(math.pi) * math.exp(-x * x)

    t = tail(math.sqrt(2.0) * smearing)
    if sigma > 0:
        t -= tail(sigma)
    return abs(t)


def tune(
    cell,
    *,
    sigma: float = 0.0,
    r_cut: float | None = None,
    accuracy: float = DEFAULT_ACCURACY,
    method: str = "ewald",
    order: int = DEFAULT_ORDER,
    smearing: float | None = None,
) -> EwaldSettings:
    """Lattice-sum parameters for a requested relative force accuracy ε (cell Å, σ Å, r_cut Å).

    Formulas (each truncation error kept ≤ ε relative to the interaction it truncates):

    * smearing s: with σ > 0, the largest s ≥ σ/√2 whose real-space force tail at the cutoff,
      r_c²|g′(r_c)| = |T(r_c/(√2 s)) − T(r_c/σ)| with T(x) = erfc(x) + (2x/√π) e^{−x²}, is ≤ ε,
      if it exceeds 1.05 σ/√2; otherwise (and when r_cut is None) s = σ/√2, where g ≡ 0 and there
      is no real-space part at all; for point charges (σ = 0) the s with
      T(r_c/(√2 s)) = ε. A given ``smearing`` overrides this.
    * Ewald wave vectors: the reciprocal weights fall as exp(−s²k²/2), so k_max = √(2 ln(1/ε))/s and
      nmax_a = ceil(k_max |a_a|/(2π)) (a box in n that contains the sphere |k| ≤ k_max for any cell).
    * PME mesh: RMS relative force error ≈ C_p (h/s)^(p−1) for spacing h and B-spline order p (C_p
      in ``PME_ERROR_CONSTANTS``, measured), so h = s (ε/C_p)^{1/(p−1)}, K_a = ceil(|a_a|/h) rounded
      up to a 2·3·5-smooth FFT size, and at least p.
    """
    if method not in METHODS:
        raise ConfigError(f"lattice-sum method must be one of {METHODS}, got {method!r}")
    if not (0 < accuracy < 1):
        raise ConfigError(f"accuracy must be in (0, 1), got {accuracy}")
    cell = np.asarray(cell, float)
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-12:
        raise ConfigError(f"a periodic (3, 3) cell with non-zero volume is needed, got {cell.tolist()}")
    sigma = float(sigma)
    if smearing is None:
        if sigma > 0:
            s0 = sigma / math.sqrt(2.0)
            smearing = s0
            if r_cut is not None:
                lo, hi = s0, float(r_cut)  # the tail grows with s: bisect for the largest admissible s
                for _ in range(60):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if _real_space_force_tail(r_cut, mid, sigma) <= accuracy else (lo, mid)
                # a real-space part pays only when it lets s grow noticeably (k-space cost ∝ s⁻³)
                smearing = lo if lo >= MIN_SMEARING_GAIN * s0 else s0
        else:
            if r_cut is None:
                raise ConfigError("point charges (sigma = 0) need a real-space cutoff r_cut")
            lo, hi = 1e-3 * r_cut, float(r_cut)
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if _real_space_force_tail(r_cut, mid, 0.0) <= accuracy else (lo, mid)
            smearing = lo
    smearing = float(smearing)
    lengths = np.linalg.norm(cell, axis=1)
    kmax = math.sqrt(2.0 * math.log(1.0 / accuracy)) / smearing
    nmax = tuple(int(v) for v in np.ceil(kmax * lengths / (2.0 * math.pi)))
    mesh = (0, 0, 0)
    if method == "pme":
        if order not in PME_ORDERS:
            raise ConfigError(f"PME spline order must be one of {PME_ORDERS}, got {order}")
        h = smearing * (accuracy / PME_ERROR_CONSTANTS[order]) ** (1.0 / (order - 1))
        mesh = tuple(max(order, _fft_size(int(math.ceil(length / h)))) for length in lengths)
    return EwaldSettings(
        method=method,
        smearing=smearing,
        sigma=sigma,
        r_cut=None if r_cut is None else float(r_cut),
        nmax=nmax,
        mesh=mesh,
        order=int(order),
        accuracy=float(accuracy),
    ).validate()


def _fft_size(n: int) -> int:
    """Smallest 2·3·5-smooth integer ≥ n (fast FFT sizes)."""
    m = max(1, n)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1
