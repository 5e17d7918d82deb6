"""Dynamical observables: MSD/diffusion of random walks, unwrapping, VACF spectra of oscillators."""

import numpy as np
import pytest

from biomlff import units
from biomlff.analysis import (
    Trajectory,
    diffusion_coefficient,
    msd,
    power_spectrum,
    unwrap,
    vacf,
    velocities_from_positions,
)
from biomlff.errors import ConfigError, DataError


def random_walk(n_atoms, n_frames, dt_fs, d_a2_fs, box, seed=0):
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=np.sqrt(2 * d_a2_fs * dt_fs), size=(n_frames - 1, n_atoms, 3))
    start = rng.uniform(0, box, (1, n_atoms, 3))
    x = np.concatenate([start, start + np.cumsum(steps, axis=0)])
    return x, np.mod(x, box)


def test_random_walk_msd_gives_input_diffusion_coefficient_after_unwrapping():
    d_in = 2.3e-9 / units.m2_s_per_A2_fs  # water-like 2.3e-9 m²/s in Å²/fs
    dt, box = 10.0, 12.0
    true, wrapped = random_walk(1000, 1000, dt, d_in, box)
    assert np.abs(np.diff(wrapped, axis=0)).max() > box / 2  # the walk really crosses the box
    cell = np.eye(3) * box
    x = unwrap(wrapped, cell)
    assert np.allclose(x - x[0], true - true[0], atol=1e-9)
    lag = np.arange(1000) * dt
    m = msd(x)
    fit = diffusion_coefficient(lag, m)
    assert abs(fit.D / d_in - 1.0) < 0.05, fit
    assert abs(fit.D_m2_s / 2.3e-9 - 1.0) < 0.05
    # the MSD of the wrapped coordinates is wrong (box jumps): unwrapping matters
    wrong = diffusion_coefficient(lag, msd(wrapped))
    assert abs(wrong.D / d_in - 1.0) > 0.5
    # one dimension alone: MSD = 2 D t
    fit_x = diffusion_coefficient(lag, msd(x, dims=(0,)), dimensions=1)
    assert abs(fit_x.D / d_in - 1.0) < 0.08


def test_unwrap_triclinic_cell():
    from ase.geometry import cellpar_to_cell

    rng = np.random.default_rng(8)
    cell = cellpar_to_cell([10.0, 11.0, 12.0, 80.0, 95.0, 105.0])
    steps = rng.normal(scale=0.4, size=(300, 20, 3))
    true = np.cumsum(steps, axis=0)
    frac = true @ np.linalg.inv(cell)
    wrapped = np.mod(frac, 1.0) @ cell
    x = unwrap(wrapped, cell)
    assert np.allclose(x - x[0], true - true[0], atol=1e-9)


def test_fft_msd_matches_mdanalysis_einstein_msd():
    import MDAnalysis as mda
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.coordinates.memory import MemoryReader

    x, _ = random_walk(30, 120, 1.0, 0.01, 50.0, seed=3)
    u = mda.Universe.empty(30, trajectory=True)
    u.load_new(x.astype(np.float32), format=MemoryReader)
    peer = EinsteinMSD(u, select="all", msd_type="xyz", fft=False).run()
    ours = msd(x)
    assert np.allclose(ours, peer.results.timeseries, rtol=1e-4, atol=1e-5)


def test_diffusion_fit_errors():
    t = np.arange(10) * 1.0
    with pytest.raises(DataError, match="too short"):
        diffusion_coefficient(t, 6 * t, fit_range=(5.0, 7.0))
    with pytest.raises(ConfigError):
        diffusion_coefficient(t, 6 * t, fit_range=(7.0, 5.0))
    fit = diffusion_coefficient(t, 6 * 0.3 * t + 1.0, fit_range=(0.0, 9.0))
    assert np.isclose(fit.D, 0.3) and np.isclose(fit.intercept, 1.0)
    with pytest.raises(DataError, match="at least 2 frames"):
        msd(np.zeros((1, 3, 3)))


def oscillator_velocities(wavenumbers, masses_amp, n_frames, dt, seed=0):
    """Analytic harmonic-oscillator velocities v = −A ω sin(ωt + φ) (Å/fs) for each atom/dim."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    v = np.zeros((n_frames, len(wavenumbers), 3))
    for i, nu in enumerate(wavenumbers):
        omega = 2 * np.pi * nu / units.invcm_per_invfs  # rad/fs
        for k in range(3):
            v[:, i, k] = -masses_amp[i] * omega * np.sin(omega * t + rng.uniform(0, 2 * np.pi))
    return v


@pytest.mark.parametrize("window", ["hann", "blackman", "none"])
def test_harmonic_oscillator_spectrum_peaks_at_its_frequency(window):
    nu0 = 1634.0  # cm⁻¹ (water bend)
    dt = 0.5
    v = oscillator_velocities([nu0] * 4, [0.02] * 4, 4000, dt)
    spec = power_spectrum(v, dt, window=window)
    peak = spec.wavenumber[np.argmax(spec.intensity)]
    assert abs(peak - nu0) <= spec.bin_width, (peak, spec.bin_width)
    assert spec.wavenumber[-1] == pytest.approx(units.invcm_per_invfs / (2 * dt))  # Nyquist
    assert spec.bin_width < 20.0


def test_spectrum_mass_weighting_and_finite_difference_velocities():
    dt = 1.0
    nus = [3000.0, 1000.0]
    amps = [0.01, 0.03]  # equal velocity amplitudes: A·ω equal
    v = oscillator_velocities(nus, amps, 6000, dt, seed=1)
    masses = np.array([1.0, 12.0])
    s0 = power_spectrum(v, dt)
    s1 = power_spectrum(v, dt, masses=masses)

    def height(s, nu):
        k = np.argmin(np.abs(s.wavenumber - nu))
        return s.intensity[k - 3 : k + 4].max()

    r0 = height(s0, 1000.0) / height(s0, 3000.0)
    r1 = height(s1, 1000.0) / height(s1, 3000.0)
    assert abs(r0 - 1.0) < 0.1
    assert abs(r1 / r0 - 12.0) < 1.2
    # positions of the same oscillators → central-difference velocities → same peak positions
    t = np.arange(6000) * dt
    x = np.cumsum(v, axis=0) * dt
    vf = velocities_from_positions(x, dt)
    s2 = power_spectrum(vf, dt)
    for nu in nus:
        k = np.argmin(np.abs(s2.wavenumber - nu))
        assert s2.intensity[k - 2 : k + 3].max() > 0.3
    assert t.size == vf.shape[0]


def test_vacf_normalised_and_bad_input():
    v = oscillator_velocities([2000.0], [0.01], 200, 0.5)
    c = vacf(v)
    assert np.isclose(c[0], 1.0) and c.min() < -0.8
    with pytest.raises(DataError, match="at least 8 frames"):
        power_spectrum(v[:5], 0.5)
    with pytest.raises(ConfigError, match="unknown window"):
        power_spectrum(v, 0.5, window="nonsense")
    traj = Trajectory(np.zeros((10, 2, 3)), [1, 1], times=np.arange(10.0))
    with pytest.raises(DataError, match="needs velocities"):
        traj.require_velocities("a power spectrum")
    with pytest.raises(DataError, match="no time information"):
        Trajectory(np.zeros((10, 2, 3)), [1, 1]).timestep()
