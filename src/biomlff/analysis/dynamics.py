"""Dynamical observables: unwrapping of periodic jumps, mean-squared displacement and the Einstein
diffusion coefficient, velocity autocorrelation and its power spectrum (cm⁻¹).

Why hand-written: MDAnalysis' ``EinsteinMSD`` needs a Universe with unwrapped coordinates and the
``tidynamics`` package for its FFT path, and neither MDAnalysis nor MDTraj compute VACF power
spectra. The FFT correlation algorithms below are the standard Wiener–Khinchin ones, vectorised
over atoms; the MSD is cross-checked against MDAnalysis' direct (non-FFT) ``EinsteinMSD`` in the tests.
Units: positions Å, velocities Å/fs, times fs, D in Å²/fs (also m²/s), frequencies cm⁻¹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import ConfigError, DataError
from ..geometry import minimum_image_np
from .safety import ballistic_message, msd_exponent, nyquist_message, warn
from .structure import _frames, select_atoms


def unwrap(positions, cell) -> np.ndarray:
    """Remove periodic jumps: positions (T, N, 3) Å wrapped into cells (T, 3, 3) Å → continuous
    trajectories. Each frame-to-frame displacement is replaced by its minimum image (in the
    fractional coordinates of the later frame), so atoms must move less than half a box width
    between stored frames. ``cell=None`` returns the positions unchanged."""
    x = _frames(positions)
    if cell is None:
        return x.copy()
    c = np.asarray(cell, dtype=float)
    if c.ndim == 2:
        c = np.broadcast_to(c, (x.shape[0], 3, 3))
    d = minimum_image_np(np.diff(x, axis=0), c[1:])
    out = np.empty_like(x)
    out[0] = x[0]
    out[1:] = x[0] + np.cumsum(d, axis=0)
    return out


def _autocorr_fft(a: np.ndarray) -> np.ndarray:
    """Unnormalised autocorrelation Σ_k a(k) a(k+m) along axis 0 for m = 0…T−1 (zero-padded FFT)."""
    t = a.shape[0]
    nfft = 1 << int(np.ceil(np.log2(2 * t)))
    f = np.fft.rfft(a, n=nfft, axis=0)
    return np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:t]


def msd(positions, idx=None, dims=(0, 1, 2)) -> np.ndarray:
    """Mean-squared displacement MSD(m) (Å²) for lags m = 0…T−1 frames, averaged over all time
    origins and the atoms ``idx`` (all if None), using components ``dims``. Positions (T, N, 3)
    must be unwrapped (see :func:`unwrap`). FFT algorithm: MSD(m) = S1(m) − 2 S2(m)."""
    (x,) = select_atoms("MSD", idx, _frames(positions))
    x = x[:, :, list(dims)]
    t = x.shape[0]
    if t < 2:
        raise DataError(f"MSD needs at least 2 frames, got {t}")
    x = x - x.mean(axis=0)  # translation-invariant; improves FFT round-off
    n = x.shape[1]
    # S1 needs only the atom sum of |r|²; S2 is an autocorrelation summed over atoms in blocks
    d = np.append(np.sum(x**2, axis=(1, 2)), 0.0)  # (T + 1,)
    q = 2.0 * d.sum()
    s1 = np.empty(t)
    for m in range(t):
        q = q - d[m - 1] - d[t - m]
        s1[m] = q / (t - m)
    s2 = _blocked_autocorr_sum(x) / (t - np.arange(t))
    return (s1 - 2.0 * s2) / n


def _blocked_autocorr_sum(a: np.ndarray, weights=None, max_bytes: float = 2e8) -> np.ndarray:
    """Σ_atoms w_i Σ_dims autocorrelation of a (T, N, D), FFT over blocks of atoms (bounded memory)."""
    t, n = a.shape[0], a.shape[1]
    nfft = 1 << int(np.ceil(np.log2(2 * t)))
    block = max(1, int(max_bytes // (nfft * a.shape[2] * 16)))
    out = np.zeros(t)
    for start in range(0, n, block):
        c = _autocorr_fft(a[:, start : start + block]).sum(axis=2)  # (T, B)
        out += c.sum(axis=1) if weights is None else c @ weights[start : start + block]
    return out


@dataclass
class DiffusionFit:
    """Einstein fit MSD(t) = 2·d·D·t + b over [t_start, t_end] fs.

    D in Å²/fs (``D_m2_s`` in m²/s), standard error of D from the fit, intercept Å²; ``exponent``
    the local α of MSD ∝ t^α over the window (1 for diffusion, 2 for ballistic flight)."""

    D: float
    D_err: float
    intercept: float
    t_start: float
    t_end: float
    n_points: int
    dimensions: int
    exponent: float = float("nan")

    @property
    def D_m2_s(self) -> float:
        return self.D * units.m2_s_per_A2_fs

    @property
    def D_err_m2_s(self) -> float:
        return self.D_err * units.m2_s_per_A2_fs


def diffusion_coefficient(
    times_fs, msd_a2, fit_range=None, dimensions: int = 3, min_points: int = 5
) -> DiffusionFit:
    """Einstein diffusion coefficient from a linear fit of MSD (Å²) against lag time (fs).

    fit_range: (t_start, t_end) in fs; default (10 %, 50 %) of the longest lag (the ballistic
    start and the noisy long-lag tail are left out). DataError when fewer than ``min_points``
    lags fall in the range (trajectory too short for the requested fit). An AnalysisWarning when
    MSD grows faster than t^1.5 in the window (still ballistic: D would be meaningless)."""
    t = np.asarray(times_fs, dtype=float)
    y = np.asarray(msd_a2, dtype=float)
    if t.shape != y.shape:
        raise DataError(f"times {t.shape} and MSD {y.shape} differ in shape")
    t_max = float(t[-1]) if t.size else 0.0
    if fit_range is None:
        fit_range = (0.1 * t_max, 0.5 * t_max)
    t0, t1 = float(fit_range[0]), float(fit_range[1])
    if t1 <= t0:
        raise ConfigError(f"fit range must have t_end > t_start, got {fit_range} fs")
    sel = (t >= t0) & (t <= t1)
    if sel.sum() < min_points:
        raise DataError(
            f"trajectory too short for the diffusion fit: {int(sel.sum())} lag(s) in [{t0:g}, {t1:g}] fs "
            f"(need ≥ {min_points}; longest lag {t_max:g} fs)"
        )
    from scipy.stats import linregress

    fit = linregress(t[sel], y[sel])
    k = 2.0 * dimensions
    alpha = msd_exponent(t[sel], y[sel])
    warn(ballistic_message(alpha, t0, t1))
    return DiffusionFit(
        D=fit.slope / k,
        D_err=fit.stderr / k,
        intercept=fit.intercept,
        t_start=t0,
        t_end=t1,
        n_points=int(sel.sum()),
        dimensions=dimensions,
        exponent=alpha,
    )


def velocities_from_positions(positions, dt_fs: float, cell=None) -> np.ndarray:
    """Velocities (Å/fs) by central differences of (unwrapped) positions; one-sided at the ends."""
    x = unwrap(positions, cell)
    if x.shape[0] < 3:
        raise DataError(f"finite-difference velocities need at least 3 frames, got {x.shape[0]}")
    return np.gradient(x, dt_fs, axis=0)


def vacf(velocities, masses=None, idx=None, normalize: bool = True) -> np.ndarray:
    """Velocity autocorrelation C(m) for lags m = 0…T−1 frames, averaged over origins:
    Σ_i w_i ⟨v_i(0)·v_i(m)⟩ / Σ_i w_i with w = masses (mass weighting) or 1.
    ``normalize`` divides by C(0); otherwise units are Å²/fs² (or amu·Å²/fs²/amu)."""
    v = _frames(velocities)
    w = np.ones(v.shape[1]) if masses is None else np.asarray(masses, dtype=float)
    v, w = select_atoms("VACF", idx, v, w)
    t = v.shape[0]
    c = _blocked_autocorr_sum(v, weights=w) / w.sum() / (t - np.arange(t))
    if normalize:
        if c[0] <= 0:
            raise DataError("VACF: all velocities are zero")
        c = c / c[0]
    return c


@dataclass
class Spectrum:
    """Power spectrum of the VACF: wavenumbers (cm⁻¹), intensity (arbitrary units, max 1),
    the windowed VACF and its lag times (fs)."""

    wavenumber: np.ndarray
    intensity: np.ndarray
    lag_fs: np.ndarray
    vacf: np.ndarray

    @property
    def bin_width(self) -> float:
        return float(self.wavenumber[1] - self.wavenumber[0])


def power_spectrum(
    velocities,
    dt_fs: float,
    masses=None,
    idx=None,
    window: str = "hann",
    max_lag_fs: float | None = None,
    pad: int = 4,
    numbers=None,
) -> Spectrum:
    """Vibrational density of states from the VACF (Wiener–Khinchin): I(ν̃) = FT[C(τ)·w(τ)].

    velocities (T, N, 3) Å/fs, time between frames ``dt_fs`` fs, optional mass weighting,
    ``window`` any scipy.signal window name applied as a half window over lags ('none' for a
    boxcar), ``max_lag_fs`` the correlation length (default half the trajectory), ``pad`` zero
    padding factor. Wavenumbers in cm⁻¹ up to the Nyquist limit 1/(2·dt·c). ``numbers`` (N,)
    atomic numbers: an AnalysisWarning when that limit lies below the X–H stretches of the elements
    present (those bands would alias to wrong wavenumbers)."""
    v = _frames(velocities)
    if dt_fs <= 0:
        raise ConfigError(f"timestep must be positive, got {dt_fs} fs")
    if numbers is not None:
        z = np.asarray(numbers, dtype=int)
        warn(nyquist_message(dt_fs, z, z if idx is None else z[np.asarray(idx, dtype=int)]))
    t = v.shape[0]
    if t < 8:
        raise DataError(f"a spectrum needs at least 8 frames with velocities, got {t}")
    c = vacf(v, masses=masses, idx=idx, normalize=True)
    n_lag = t // 2 if max_lag_fs is None else int(round(max_lag_fs / dt_fs)) + 1
    if n_lag < 4 or n_lag > t:
        raise DataError(f"max_lag_fs = {max_lag_fs} fs gives {n_lag} lags for {t} frames of {dt_fs} fs")
    c = c[:n_lag]
    if window in (None, "none", "boxcar"):
        w = np.ones(n_lag)
    else:
        from scipy.signal import get_window

        try:
            w = get_window(window, 2 * n_lag - 1, fftbins=False)[n_lag - 1 :]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"unknown window {window!r} ({exc})") from exc
    cw = c * w
    nfft = 1 << int(np.ceil(np.log2(max(2 * n_lag, 1) * max(int(pad), 1))))
    f = np.fft.rfft(cw, n=nfft)
    spec = 2.0 * f.real - cw[0]  # FT of the even extension C(−τ) = C(τ)
    nu = np.fft.rfftfreq(nfft, d=dt_fs) * units.invcm_per_invfs
    spec = np.clip(spec, 0.0, None)
    if spec.max() > 0:
        spec = spec / spec.max()
    return Spectrum(wavenumber=nu, intensity=spec, lag_fs=np.arange(n_lag) * dt_fs, vacf=cw)


def spectrum_peaks(
    spectrum: Spectrum, max_wavenumber: float | None = None, n_peaks: int = 5, prominence: float = 0.05
) -> np.ndarray:
    """Wavenumbers (cm⁻¹, ascending) of the ``n_peaks`` most intense peaks of ``spectrum`` below
    ``max_wavenumber`` cm⁻¹ (all if None) whose prominence is at least ``prominence`` (intensity
    units, maximum 1); :func:`scipy.signal.find_peaks` finds them."""
    from scipy.signal import find_peaks

    inten = spectrum.intensity
    if max_wavenumber is not None:
        inten = inten[spectrum.wavenumber <= max_wavenumber]
    peaks, _ = find_peaks(inten, prominence=prominence)
    strongest = sorted(peaks, key=lambda k: -inten[k])[:n_peaks]
    return spectrum.wavenumber[np.sort(np.asarray(strongest, dtype=np.int64))]
