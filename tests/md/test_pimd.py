"""Ring-polymer MD (biomlff.md.pimd) against analytic and independent references.

* normal-mode transform: orthogonality, and the spring energy computed bead by bead equals the sum
  of normal-mode oscillator energies with ω_k = 2 ω_P sin(πk/P);
* free ring-polymer step: equals the matrix exponential (scipy.linalg.expm) of the Cartesian
  free ring-polymer equations of motion;
* harmonic oscillator at βħω = 8: ⟨K_cv⟩, ⟨K_prim⟩, ⟨V⟩ follow the exact finite-P result
  (derived in the test from the normal modes of the discretised path integral), approach
  (ħω/4) coth(βħω/2), within 2 % at P = 32;
* P = 1 is the classical BAOAB Langevin integrator of biomlff.md (same trajectory);
* restarts are bitwise (float64, CPU); CLI conventions as md nvt.
"""

import h5py
import numpy as np
import pytest
import scipy.linalg

from biomlff import units
from biomlff.errors import BiomlffError, ConfigError
from biomlff.md.integrators import Ensemble
from biomlff.md.pimd import (
    PIMD,
    PIMDSimulation,
    free_ring_polymer_frequencies,
    free_ring_polymer_step,
    harmonic_kinetic_energy_finite_p,
    hbar_ev_time,
    normal_mode_matrix,
    spring_energy,
)
from biomlff.md.simulation import MDSettings, Simulation
from biomlff.md.structure import System
from biomlff.md.testing import fcc_lattice, harmonic_tether, lennard_jones, lj_cluster


def quiet(**kw):
    base = dict(
        steps=0,
        log_every=0,
        traj_every=0,
        checkpoint_every=0,
        precision="float64",
        echo=False,
        progress=False,
    )
    base.update(kw)
    return MDSettings(**base)


@pytest.fixture(autouse=True)
def _x64():
    import jax

    with jax.enable_x64(True):
        yield


# --------------------------------------------------------------------------- normal modes
@pytest.mark.parametrize("P", [1, 2, 3, 4, 5, 8, 16, 32])
def test_normal_mode_transform_is_orthogonal_and_diagonalises_the_springs(P):
    C = normal_mode_matrix(P)
    np.testing.assert_allclose(C.T @ C, np.eye(P), atol=1e-13)
    np.testing.assert_allclose(C @ C.T, np.eye(P), atol=1e-13)
    np.testing.assert_allclose(C[:, 0], 1 / np.sqrt(P), atol=1e-15)  # centroid mode
    rng = np.random.default_rng(P)
    n = 5
    q = rng.normal(size=(P, n, 3))
    m = rng.uniform(1, 16, size=n)
    wp = 0.7
    # bead by bead, written out independently of the library: Σ_j ½ m ω_P² |q_j − q_{j+1}|²
    e_beads = sum(0.5 * wp**2 * np.sum(m[:, None] * (q[j] - q[(j + 1) % P]) ** 2) for j in range(P))
    assert float(spring_energy(q, m, wp)) == pytest.approx(e_beads, rel=1e-12)
    qt = np.einsum("jk,jnd->knd", C, q)
    wk = free_ring_polymer_frequencies(P, wp)
    e_modes = sum(0.5 * wk[k] ** 2 * np.sum(m[:, None] * qt[k] ** 2) for k in range(P))
    assert e_modes == pytest.approx(e_beads, rel=1e-12, abs=1e-12)
    # the cyclic spring matrix has eigenvalues ω_k² (independent check of the frequencies)
    L = 2 * np.eye(P) - np.roll(np.eye(P), 1, 0) - np.roll(np.eye(P), -1, 0) if P > 2 else None
    if L is not None:
        np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(wp**2 * L)), np.sort(wk**2), atol=1e-12)


@pytest.mark.parametrize("P", [1, 2, 5, 8])
def test_free_ring_polymer_step_equals_matrix_exponential(P):
    """Exact propagation: compare with expm of d/dt (q, p) = (p/m, −m ω_P² L q) in bead space."""
    rng = np.random.default_rng(10 + P)
    m, wp, t = 2.0, 0.9, 1.7  # long step: no integrator could be exact by accident
    if P == 1:
        L = np.zeros((1, 1))
    elif P == 2:
        L = np.array([[2.0, -2.0], [-2.0, 2.0]])  # two springs between the same two beads
    else:
        L = 2 * np.eye(P) - np.roll(np.eye(P), 1, 0) - np.roll(np.eye(P), -1, 0)
    A = np.block([[np.zeros((P, P)), np.eye(P) / m], [-m * wp**2 * L, np.zeros((P, P))]])
    U = scipy.linalg.expm(A * t)
    q = rng.normal(size=(P, 1, 3))
    p = rng.normal(size=(P, 1, 3))
    ref = np.einsum("ab,bnd->and", U, np.concatenate([q, p]))
    C = normal_mode_matrix(P)
    qt, pt = free_ring_polymer_step(
        np.einsum("jk,jnd->knd", C, q),
        np.einsum("jk,jnd->knd", C, p),
        np.array([m]),
        free_ring_polymer_frequencies(P, wp),
        t,
    )
    q1 = np.einsum("jk,knd->jnd", C, np.asarray(qt))
    p1 = np.einsum("jk,knd->jnd", C, np.asarray(pt))
    np.testing.assert_allclose(q1, ref[:P], atol=1e-12)
    np.testing.assert_allclose(p1, ref[P:], atol=1e-12)


def test_finite_p_harmonic_formula_limits():
    """The exact finite-P result used below: P = 1 is classical, P → ∞ the quantum limit, and
    it equals the closed form of the discretised harmonic path integral."""
    bhw = 8.0
    assert harmonic_kinetic_energy_finite_p(bhw, 1) == pytest.approx(0.5)
    q = bhw / 4 / np.tanh(bhw / 2)
    assert harmonic_kinetic_energy_finite_p(bhw, 4096) == pytest.approx(q, rel=1e-5)
    for P in (2, 3, 8, 32):
        # independent closed form: Z_P = Π_k (β_P ħ Ω_k)^-1 with Ω_k² = ω² + ω_k²; the energy
        # ⟨E⟩ = 2⟨K⟩ = −∂ ln Z/∂β, differentiated numerically in β (units ħω = 1)
        def lnz(beta, P=P):
            wk = 2 * P / beta * np.sin(np.pi * np.arange(P) / P)
            return -np.sum(np.log(beta / P * np.sqrt(1 + wk**2)))

        h = 1e-5
        e = -(lnz(bhw + h) - lnz(bhw - h)) / (2 * h)  # in units of ħω
        assert harmonic_kinetic_energy_finite_p(bhw, P) == pytest.approx(e * bhw / 2, rel=1e-7)


# --------------------------------------------------------------------------- harmonic statistics
def _oscillators(n=100, T=300.0, bhw=8.0, mass=1.0):
    kT = units.kB * T
    omega = bhw * kT / hbar_ev_time()
    z = np.ones(n, int)
    pos = np.zeros((n, 3))
    pot = harmonic_tether(z, pos, k=mass * omega**2)
    return pot, System(z, pos, np.full(n, mass), None, name="oscillators"), kT


def _block_sem(x, nb=10):
    m = np.array([b.mean() for b in np.array_split(np.asarray(x), nb)])
    return m.std(ddof=1) / np.sqrt(nb)


@pytest.mark.parametrize("P", [1, 4, 8, 32])
def test_harmonic_oscillator_kinetic_energy_matches_finite_p_and_quantum_limit(P):
    """300 independent 1-D oscillators (100 atoms × 3) at βħω = 8, PILE-L, dt = ω⁻¹/13."""
    pot, sysm, kT = _oscillators()
    T = 300.0
    pimd = PIMD(beads=P, temperature_K=T, dt_fs=0.25, tau_centroid_fs=20.0, remove_com=False)
    sim = PIMDSimulation(pot, sysm, pimd, quiet(seed=P))
    sim.advance(400)
    rows = []
    for _ in range(300):
        sim.advance(5)
        rows.append(sim.observables())
    dof = 3 * sysm.n_atoms
    kcv = np.array([r["k_cv"] for r in rows]) / (dof * kT)
    kpr = np.array([r["k_prim"] for r in rows]) / (dof * kT)
    v = np.array([r["e_pot"] for r in rows]) / (dof * kT)
    exact = harmonic_kinetic_energy_finite_p(8.0, P)
    # the three estimators have the same exact mean for the harmonic oscillator; the tolerance is
    # 1 % (measured deviations ≤ 0.5 %, block errors ≈ 0.1–0.3 %, time-step bias ≈ 0.2 %)
    for name, x in (("K_cv", kcv), ("V", v), ("K_prim", kpr)):
        err = _block_sem(x)
        assert abs(x.mean() - exact) < max(0.01 * exact, 4 * err), (name, P, x.mean(), exact, err)
    temp = np.array([r["temperature"] for r in rows]) / T
    assert abs(temp.mean() - 1) < max(0.02, 4 * _block_sem(temp))
    if P == 1:
        np.testing.assert_allclose(kcv, 0.5, rtol=1e-12)  # classical: (3N/2) kT exactly
    if P == 32:
        quantum = 8.0 / 4 / np.tanh(8.0 / 2)  # (ħω/4) coth(βħω/2) in units of kT
        assert abs(kcv.mean() / quantum - 1) < 0.02
        assert abs(exact / quantum - 1) < 0.01  # P = 32 is close to converged at βħω = 8


def test_estimator_p_dependence_is_monotonic_towards_quantum_limit():
    """The analytic finite-P curve rises monotonically from 1/2 (classical) to the quantum value."""
    vals = [harmonic_kinetic_energy_finite_p(8.0, P) for P in (1, 2, 4, 8, 16, 32, 64)]
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False))
    assert vals[0] == 0.5 and vals[-1] < 2 / np.tanh(4)


# --------------------------------------------------------------------------- P = 1 ≡ classical
def test_single_bead_is_classical_langevin():
    """P = 1: same initial velocities and seed → the trajectory of biomlff's BAOAB Langevin MD."""
    n = 13
    z = np.full(n, 18)
    rng = np.random.default_rng(0)
    sysm = System(z, lj_cluster(n), np.full(n, 39.948), None, velocities=rng.normal(size=(n, 3)) * 3e-3)
    pot = lennard_jones(z, cutoff=8.0)
    classical = Simulation(
        pot,
        sysm,
        Ensemble(kind="langevin", dt_fs=5.0, temperature_K=30.0, friction_per_fs=0.01),
        quiet(seed=3),
    )
    ring = PIMDSimulation(
        pot, sysm, PIMD(beads=1, temperature_K=30.0, dt_fs=5.0, tau_centroid_fs=100.0), quiet(seed=3)
    )
    for _ in range(3):  # single steps: operation for operation the same arithmetic → bitwise
        classical.advance(1)
        ring.advance(1)
        assert np.array_equal(classical.positions(), ring.bead_positions()[0])
        assert np.array_equal(np.asarray(classical.state["P"]), np.asarray(ring.state["P"][0]))
    classical.advance(297)
    ring.advance(297)
    # 300 steps of a chaotic cluster: equal to round-off (the two compiled loops may fuse
    # floating-point operations differently; any real difference would grow to ~Å)
    assert np.max(np.abs(classical.positions() - ring.bead_positions()[0])) < 1e-10
    a, b = classical.observables(), ring.observables()
    assert b["e_pot"] == pytest.approx(a["e_pot"], abs=1e-10)
    assert b["temperature"] == pytest.approx(a["temperature"], rel=1e-9)
    assert b["k_cv"] == pytest.approx(1.5 * n * units.kB * 30.0, rel=1e-12)
    assert int(classical.lists["rebuilds"]) == int(ring.lists["rebuilds"][0]) > 0


# --------------------------------------------------------------------------- dynamics checks
def test_rpmd_without_friction_conserves_ring_polymer_energy_to_second_order():
    """TRPMD with λ = 0 is plain RPMD: H_P is conserved up to the O(dt²) fluctuation of a
    symplectic second-order integrator (halving dt divides it by ≈ 4), and the beads delocalise."""
    pot, sysm, kT = _oscillators(n=20)
    dev = {}
    for dt in (0.2, 0.1):
        pimd = PIMD(
            beads=8, temperature_K=300.0, dt_fs=dt, thermostat="trpmd", pile_lambda=0.0, remove_com=False
        )
        sim = PIMDSimulation(pot, sysm, pimd, quiet(seed=1))
        c0 = sim.observables()["conserved"]
        d = []
        for _ in range(20):
            sim.advance(int(round(2.0 / dt)))  # 40 fs in total
            d.append(sim.observables()["conserved"] - c0)
        dev[dt] = np.max(np.abs(d))
        assert float(sim.state["heat"]) == 0.0
        assert sim.observables()["bead_rg"] > 1e-3
    assert dev[0.2] < 1e-3 * abs(c0)
    assert 3.0 < dev[0.2] / dev[0.1] < 5.0


@pytest.mark.slow
def test_periodic_restart_is_bitwise_and_trajectories(tmp_path):
    """Periodic LJ argon with per-bead cell lists: checkpoint at step 20, run on to 30 (frames
    written), resume from the step-20 checkpoint, compare every state array and the centroid and
    bead trajectories with an uninterrupted run."""
    import shutil

    pos, cell = fcc_lattice(2, 5.40)
    z = np.full(len(pos), 18)
    sysm = System(z, pos, np.full(len(pos), 39.948), cell, name="argon")
    pot = lennard_jones(z, cutoff=5.0)
    pimd = PIMD(beads=3, temperature_K=40.0, dt_fs=4.0, tau_centroid_fs=200.0)

    def settings(name, **kw):
        return quiet(
            steps=40, log_every=10, traj_every=10, checkpoint_every=20, output=str(tmp_path / name), **kw
        )

    a = PIMDSimulation(pot, sysm, pimd, settings("a.h5"))
    a.run()
    b = PIMDSimulation(pot, sysm, pimd, settings("b.h5"))
    b.run(20)
    shutil.copy(tmp_path / "b.chk.npz", tmp_path / "b20.chk.npz")
    b.run(30)  # frames at step 30 are dropped again on resume from step 20
    c = PIMDSimulation.resume(tmp_path / "b20.chk.npz", pot, pimd, settings("b.h5"))
    assert c.step == 20
    c.run()
    for k in a.state:
        assert np.array_equal(np.asarray(a.state[k]), np.asarray(c.state[k])), k
    for suffix in (".h5", ".beads.h5"):
        with h5py.File(tmp_path / f"a{suffix}") as fa, h5py.File(tmp_path / f"b{suffix}") as fb:
            for key in (
                "particles/all/position/value",
                "particles/all/position/step",
                "observables/e_pot/value",
            ):
                assert np.array_equal(fa[key][()], fb[key][()]), (suffix, key)
    with h5py.File(tmp_path / "a.beads.h5") as f:
        assert f["particles/all/position/value"].shape == (15, len(pos), 3)  # 5 stored steps × 3 beads
        assert f["observables/bead/value"][()].tolist() == [0, 1, 2] * 5
        beads = f["particles/all/position/value"][-3:]
    with h5py.File(tmp_path / "a.h5") as f:
        np.testing.assert_allclose(f["particles/all/position/value"][-1], beads.mean(axis=0), atol=1e-12)
        assert f["observables/k_cv_atoms/value"].shape == (5, len(pos))
        np.testing.assert_allclose(
            f["observables/k_cv_atoms/value"][-1].sum(), f["observables/k_cv/value"][-1], rtol=1e-10
        )


def test_pimd_errors(tmp_path):
    pot, sysm, _ = _oscillators(n=2)
    for bad in (dict(beads=0), dict(temperature_K=0.0), dict(thermostat="nhc"), dict(dt_fs=-1.0)):
        with pytest.raises(ConfigError):
            PIMD(**bad).validate()
    sim = PIMDSimulation(
        pot, sysm, PIMD(beads=2), quiet(output=str(tmp_path / "x.h5"), steps=2, checkpoint_every=2)
    )
    sim.run()
    with pytest.raises(ConfigError, match="beads"):
        PIMDSimulation.resume(tmp_path / "x.chk.npz", pot, PIMD(beads=4), quiet())
    # a classical checkpoint is refused with a clear message
    classical = Simulation(
        pot,
        sysm,
        Ensemble(kind="langevin"),
        quiet(output=str(tmp_path / "c.h5"), steps=2, checkpoint_every=2),
    )
    classical.run()
    with pytest.raises(BiomlffError, match="classical MD checkpoint"):
        PIMDSimulation.resume(tmp_path / "c.chk.npz", pot, PIMD(beads=2), quiet())


# --------------------------------------------------------------------------- command line
def test_cli_md_pimd_and_restart(tmp_path):
    from ase import Atoms
    from ase.io import write

    from biomlff.cli.main import main

    n = 13
    write(tmp_path / "ar13.xyz", Atoms(numbers=[18] * n, positions=lj_cluster(n)))
    out = tmp_path / "ar.h5"
    base = [
        "md",
        "pimd",
        str(tmp_path / "ar13.xyz"),
        "--model",
        "lj",
        "--beads",
        "4",
        "--temperature",
        "20",
        "--dt",
        "4",
        "--precision",
        "float64",
        "--log-every",
        "10",
        "--traj-every",
        "10",
        "--output",
        str(out),
    ]
    assert main(base + ["--steps", "20", "--checkpoint-every", "10"]) == 0
    log = (tmp_path / "ar.log").read_text().splitlines()
    assert log[0].split()[:5] == ["step", "time_ps", "E_pot", "K_cv", "K_prim"]
    assert (tmp_path / "ar.beads.h5").exists() and (tmp_path / "ar.chk.npz").exists()
    assert main(base + ["--steps", "40", "--restart-from", str(tmp_path / "ar.chk.npz")]) == 0
    with h5py.File(out) as f:
        assert f["particles/all/position/step"][()].tolist() == [0, 10, 20, 30, 40]
    with h5py.File(tmp_path / "ar.beads.h5") as f:
        assert f["particles/all/position/value"].shape[0] == 5 * 4
    # bad input: clear error, exit code 2, nothing written
    assert main(base[:5] + ["--beads", "0", "--output", str(tmp_path / "bad.h5")]) == 2
    assert main(base + ["--pull", "0,1,10"]) == 2
    assert main(base + ["--thermostat", "langevin"]) == 2
    assert not (tmp_path / "bad.h5").exists()


def test_sgdml_model_batched_bead_forces(shared):
    """An sGDML model (ethanol, 20 training points) runs in PIMD; the batched (vmap) bead forces
    equal the model's own single-structure forces at every bead."""
    from ase.data import atomic_masses

    from biomlff.gdml import TrainConfig, load_frames, train
    from biomlff.potential import energy_and_forces

    frames = load_frames(
        shared / "datasets" / "rmd17" / "rmd17_ethanol_train_01.npz",
        energy_key="energies",
        forces_key="forces",
    )
    model, _ = train(
        frames, TrainConfig(n_train=20, sigmas=[10.0], solver="closed", idx_train=np.arange(0, 200, 10))
    )
    pot = model.potential()
    z = np.asarray(frames.z)
    sysm = System(z, np.asarray(frames.R[0], float), atomic_masses[z], None, name="ethanol")
    sim = PIMDSimulation(pot, sysm, PIMD(beads=4, temperature_K=300.0, dt_fs=0.25), quiet(seed=2))
    sim.advance(20)
    obs = sim.observables()
    assert all(np.isfinite(list(obs.values()))) and obs["bead_rg"] > 0
    ef = energy_and_forces(pot)
    for j in range(4):
        e, f = ef(sim.state["R"][j], {}, None)
        assert float(sim.state["V"][j]) == pytest.approx(float(e), abs=1e-9)
        np.testing.assert_allclose(np.asarray(sim.state["F"][j]), np.asarray(f), atol=1e-9)
