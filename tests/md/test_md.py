"""MD engine tests with cheap analytic potentials (Lennard-Jones argon, harmonic tethers).

References are independent of the code under test: analytic values (kT, F·Δx, the known minimum),
host-side pair lists (biomlff.neighbors) with autodiff forces, and conservation laws.
"""

import numpy as np
import pytest

from biomlff import units
from biomlff.errors import BiomlffError, ConfigError, ModelError
from biomlff.md.integrators import Ensemble
from biomlff.md.simulation import MDSettings, Simulation
from biomlff.md.steering import Steering
from biomlff.md.structure import System
from biomlff.md.testing import fcc_lattice, lennard_jones, lj_cluster

AR_MASS = 39.948


def argon_box(n_cells=3, a=5.40):
    pos, cell = fcc_lattice(n_cells, a)
    z = np.full(len(pos), 18)
    return System(z, pos, np.full(len(pos), AR_MASS), cell, name="argon")


def quiet(**kw):
    base = dict(
        log_every=0, traj_every=0, checkpoint_every=0, precision="float64", echo=False, progress=False
    )
    base.update(kw)
    return MDSettings(**base)


def run_series(sim, total, every):
    rows = []
    while sim.step < total:
        sim.advance(every)
        rows.append(sim.observables())
    return rows


def test_nve_energy_drift_lj():
    sysm = argon_box()
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    sim = Simulation(pot, sysm, Ensemble(kind="nve", dt_fs=4.0, temperature_K=80.0), quiet(seed=1))
    e0 = sim.observables()["e_tot"]
    rows = run_series(sim, 2500, 50)  # 10 ps
    etot = np.array([r["e_tot"] for r in rows])
    n = sysm.n_atoms
    # bound: |E(t) − E(0)| < 2e-5 eV/atom over 10 ps at dt = 4 fs (float64)
    assert np.max(np.abs(etot - e0)) / n < 2e-5
    # and something actually moved: kinetic energy exchanged with potential energy
    assert np.std([r["e_pot"] for r in rows]) > 1e-3


@pytest.mark.parametrize("kind", ["nvt", "langevin"])
def test_nvt_mean_temperature_within_3_percent(kind):
    sysm = argon_box()
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(kind=kind, dt_fs=5.0, temperature_K=70.0, tau_t_fs=250.0, friction_per_fs=0.005)
    sim = Simulation(pot, sysm, ens, quiet(seed=3))
    run_series(sim, 1000, 1000)  # 5 ps equilibration
    rows = run_series(sim, 9000, 10)  # 40 ps of samples
    t = np.array([r["temperature"] for r in rows])
    assert abs(t.mean() / 70.0 - 1) < 0.03
    # canonical fluctuations: σ_T/T ≈ sqrt(2/dof) (loose: 50 % tolerance)
    dof = 3 * sysm.n_atoms - 3
    assert 0.5 < t.std() / 70.0 / np.sqrt(2 / dof) < 1.5
    cons = np.array([r["conserved"] for r in rows])
    assert np.max(np.abs(cons - cons[0])) / sysm.n_atoms < 2e-4  # extended energy is conserved


@pytest.mark.parametrize("length,steps,order,tau", [(1, 1, 1, 100.0), (3, 2, 3, 40.0), (5, 1, 7, 400.0)])
def test_nose_hoover_chain_settings_are_honoured(length, steps, order, tau):
    sysm = argon_box(2, 5.4)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=5.0)
    ens = Ensemble(
        kind="nvt",
        dt_fs=4.0,
        temperature_K=120.0,
        tau_t_fs=tau,
        chain_length=length,
        chain_steps=steps,
        sy_order=order,
    )
    sim = Simulation(pot, sysm, ens, quiet(seed=0))
    assert sim.state["xi"].shape == (length,)
    c0 = sim.observables()["conserved"]
    rows = run_series(sim, 1000, 100)
    # the NHC extended Hamiltonian is conserved for every chain setting (also a chain of length 1)
    assert max(abs(r["conserved"] - c0) for r in rows) / sysm.n_atoms < 5e-5
    assert abs(float(sim.state["vxi"][0])) > 0  # the thermostat acted


def test_npt_volume_stable_and_pressure_on_target():
    sysm = argon_box(3, 5.40)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    p_target = 100.0 * units.bar
    ens = Ensemble(
        kind="npt", dt_fs=5.0, temperature_K=70.0, pressure_eV_A3=p_target, tau_t_fs=250.0, tau_p_fs=1500.0
    )
    sim = Simulation(pot, sysm, ens, quiet(seed=2))
    c0 = sim.observables()["conserved"]
    run_series(sim, 2000, 2000)  # 10 ps equilibration
    rows = run_series(sim, 10000, 10)  # 40 ps
    v = np.array([r["volume"] for r in rows])
    half = len(v) // 2
    # ⟨V⟩ stable: the means of the two halves agree within 1 %, and V fluctuates (barostat active)
    assert abs(v[:half].mean() / v[half:].mean() - 1) < 0.01
    assert v.std() > 1.0
    # the MTK extended energy is conserved
    cons = np.array([r["conserved"] for r in rows])
    assert np.max(np.abs(cons - c0)) / sysm.n_atoms < 3e-4
    # time-averaged virial pressure is the target (within its statistical error, generously)
    p = np.array([r["pressure"] for r in rows])
    err = p.std() / np.sqrt(len(p) / 20)
    assert abs(p.mean() - p_target) < 4 * err + 50 * units.bar
    assert sim.reallocations >= 0


def test_steered_work_equals_force_times_displacement():
    pos = lj_cluster(13, jitter=0.05)
    z = np.full(13, 18)
    sysm = System(z, pos, np.full(13, AR_MASS))
    pot = lennard_jones(z, cutoff=None)
    # atoms 0 (centre) and the farthest one pushed apart by 0.02 eV/Å, plus a constant force on atom 5
    far = int(np.argmax(np.linalg.norm(pos - pos[0], axis=1)))
    f_pull = 0.02
    f_const = np.array([0.01, -0.005, 0.0])
    steer = Steering(pulls=((0, far, f_pull),), constant_forces=((5, tuple(f_const)),))
    sim = Simulation(pot, sysm, Ensemble(kind="nve", dt_fs=2.0, temperature_K=10.0), quiet(), steer)
    r0 = sim.positions()
    first = sim.observables()
    c0 = first["conserved"]
    sim.advance(2000)
    r1 = sim.positions()
    d0, d1 = np.linalg.norm(r0[far] - r0[0]), np.linalg.norm(r1[far] - r1[0])
    expected = f_pull * (d1 - d0) + f_const @ (r1[5] - r0[5])
    obs = sim.observables()
    assert abs(d1 - d0) > 0.1  # it was pulled
    assert obs["work"] == pytest.approx(expected, rel=2e-3, abs=1e-6)
    # the external potential is part of the conserved energy
    assert abs(obs["conserved"] - c0) < 1e-4
    assert obs["e_ext"] - first["e_ext"] == pytest.approx(-expected, rel=2e-3, abs=1e-6)


@pytest.mark.parametrize("kind,fmt", [("langevin", "h5"), ("npt", "xyz")])
def test_restart_is_bitwise_identical(tmp_path, kind, fmt):
    """float64 on CPU: stop at a checkpoint, resume, and get exactly the uninterrupted run (all state
    variables incl. thermostat/barostat chains and the Langevin RNG) and the same trajectory."""
    from biomlff.md.trajectory import open_trajectory

    sysm = argon_box(3, 5.4)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(kind=kind, dt_fs=5.0, temperature_K=80.0, tau_t_fs=200.0, tau_p_fs=1000.0)
    kw = dict(
        log_every=20, traj_every=20, checkpoint_every=60, precision="float64", echo=False, seed=5, skin=0.3
    )
    full = Simulation(pot, sysm, ens, MDSettings(steps=150, output=str(tmp_path / f"full.{fmt}"), **kw))
    full.run()
    part = Simulation(pot, sysm, ens, MDSettings(steps=60, output=str(tmp_path / f"part.{fmt}"), **kw))
    part.run()
    # as if the run had been killed later: a frame written after the checkpoint
    w = open_trajectory(tmp_path / f"part.{fmt}", sysm.atomic_numbers, True, append=True)
    w.write(80, 400.0, part.positions() + 1.0, part.velocities(), part.cell(), {"e_pot": 0.0})
    w.close()
    res = Simulation.resume(
        tmp_path / "part.chk.npz", pot, ens, MDSettings(steps=150, output=str(tmp_path / f"part.{fmt}"), **kw)
    )
    assert res.step == 60
    res.run()
    for k in full.state:
        assert np.array_equal(np.asarray(full.state[k]), np.asarray(res.state[k])), k
    # trajectory: truncated back to step 60 (the frame at 80 is dropped) and appended, identical to
    # the uninterrupted trajectory
    a, b = _read_traj(tmp_path / f"full.{fmt}"), _read_traj(tmp_path / f"part.{fmt}")
    assert a[0] == b[0] == list(range(0, 151, 20))
    assert np.array_equal(a[1], b[1])


def _read_traj(path):
    path = str(path)
    if path.endswith(".h5"):
        import h5py

        with h5py.File(path, "r") as f:
            return list(f["particles/all/position/step"][()]), f["particles/all/position/value"][()]
    from ase.io import read

    frames = read(path, index=":")
    return [a.info["step"] for a in frames], np.array([a.positions for a in frames])


def test_overflow_reallocates_and_matches_ample_capacity():
    # a compressed, ordered box: the pair count at the start is the minimum the lists are sized for
    # (capacity_multiplier = 1, no skin), thermal disorder then overflows them
    sysm = argon_box(3, 5.0)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=5.5)
    ens = Ensemble(kind="nvt", dt_fs=4.0, temperature_K=150.0, tau_t_fs=100.0)
    tight = Simulation(pot, sysm, ens, quiet(capacity_multiplier=1.0, skin=0.0, seed=7))
    ample = Simulation(pot, sysm, ens, quiet(capacity_multiplier=3.0, skin=0.0, seed=7))
    pos_t, pos_a = [], []
    for _ in range(10):
        tight.advance(30)
        ample.advance(30)
        pos_t.append(tight.positions())
        pos_a.append(ample.positions())
    assert tight.reallocations >= 1
    assert ample.reallocations == 0
    assert tight.step == ample.step == 300
    np.testing.assert_allclose(np.array(pos_t), np.array(pos_a), rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", ["argon", "argon_cell_list", "water"])
def test_pair_lists_match_host_lists_and_cell_size_pitfall(case, shared):
    import jax
    import jax.numpy as jnp
    from jax_md import partition, space

    from biomlff.md.neighborlist import PairLists
    from biomlff.md.structure import read_structure
    from biomlff.neighbors import pair_indices
    from biomlff.potential import NeighborSpec

    rng = np.random.default_rng(0)
    if case == "water":  # JAX-MD's Sparse format gets this one wrong (see neighborlist.py)
        sysm = read_structure(shared / "so3lr" / "reference" / "water_64.xyz")
        pos, cut = sysm.positions, 4.5
    else:
        sysm = argon_box(3 if case == "argon" else 5, 5.4)  # 27 Å box: cell list in use
        pos, cut = sysm.positions + 0.3 * rng.standard_normal(sysm.positions.shape), 6.0
    with jax.enable_x64(True):
        # raw JAX-MD: fractional-coordinate lists keep an array in the static cell_size field
        box = jnp.asarray(sysm.cell.T)
        disp, _ = space.periodic_general(box, fractional_coordinates=True)
        raw = partition.neighbor_list(
            disp, box, cut, fractional_coordinates=True, format=partition.Sparse
        ).allocate(jnp.asarray(pos @ np.linalg.inv(sysm.cell)) % 1.0)
        assert isinstance(raw.cell_size, jax.Array)
        if case == "water":  # and its Sparse format is wrong here: the reason we use Dense
            idx = np.asarray(raw.idx)
            ok = idx[0] < sysm.n_atoms
            i, j = pair_indices(pos, cut, cell=sysm.cell)
            assert set(zip(idx[1][ok].tolist(), idx[0][ok].tolist(), strict=True)) != set(
                zip(i.tolist(), j.tolist(), strict=True)
            )
        for half in (False, True):
            pl = PairLists(
                {"x": NeighborSpec(cut, half)},
                sysm.n_atoms,
                cell=sysm.cell,
                skin=0.5,
            )
            st = pl.allocate(jnp.asarray(pos), jnp.asarray(sysm.cell))
            nl = st["lists"]["x"]
            assert isinstance(nl.cell_size, float)  # our workaround
            assert (nl.cell_list_fn is not None) == (case == "argon_cell_list")
            hash(jax.tree_util.tree_structure(st))

            # through a jitted loop and back into jit: same structure, no retracing error
            def loop(s, r, pl=pl):
                return jax.lax.fori_loop(0, 3, lambda i, c: pl.update(c, r, jnp.asarray(sysm.cell)), s)

            st2 = jax.jit(loop)(st, jnp.asarray(pos) + 0.4)
            assert jax.tree_util.tree_structure(st2) == jax.tree_util.tree_structure(st)
            # the looped list is accepted by JAX-MD's own jitted NVT initialisers (the pitfall's trigger)
            from jax_md import simulate

            def e_fn(r, neighbor=None):
                return jnp.sum(r**2)

            for sim_fn in (simulate.nvt_nose_hoover, simulate.nvt_langevin):
                init, _ = sim_fn(e_fn, lambda r, dr, **kw: r + dr, 1e-3, 0.1)
                init(jax.random.PRNGKey(0), jnp.asarray(pos), neighbor=st2["lists"]["x"])
            p = pl.pairs(st2, jnp.asarray(pos) + 0.4, jnp.asarray(sysm.cell))["x"]
            m = np.asarray(p.mask)
            got = sorted(zip(np.asarray(p.i)[m], np.asarray(p.j)[m], strict=True))
            i, j = pair_indices(pos + 0.4, cut, cell=sysm.cell, half=half)
            assert got == sorted(zip(i.tolist(), j.tolist(), strict=True))


def test_box_smaller_than_twice_cutoff_is_refused():
    sysm = argon_box(2, 5.0)  # 10 Å box
    with pytest.raises(ModelError, match="2 × cutoff"):
        Simulation(lennard_jones(sysm.atomic_numbers, cutoff=6.0), sysm, Ensemble(kind="nvt"), quiet())


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"dt_fs": -1.0}, "timestep"),
        ({"temperature_K": -5.0}, "temperature"),
        ({"kind": "nph"}, "unknown ensemble"),
        ({"sy_order": 4}, "Suzuki"),
    ],
)
def test_bad_ensemble_settings(kw, match):
    with pytest.raises(ConfigError, match=match):
        Ensemble(**kw).validate()


def test_npt_without_cell_is_refused():
    pos = lj_cluster(13)
    z = np.full(13, 18)
    with pytest.raises(ConfigError, match="NPT needs a periodic cell"):
        Simulation(
            lennard_jones(z, cutoff=None), System(z, pos, np.full(13, AR_MASS)), Ensemble(kind="npt"), quiet()
        )


def test_resume_into_other_ensemble_keeps_positions_velocities(tmp_path, capsys):
    sysm = argon_box(2, 5.4)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=5.0)
    kw = dict(precision="float64", echo=False, log_every=10, traj_every=10, checkpoint_every=50)
    a = Simulation(
        pot,
        sysm,
        Ensemble(kind="nvt", dt_fs=4.0, temperature_K=100.0),
        MDSettings(steps=50, output=str(tmp_path / "a.xyz"), **kw),
    )
    a.run()
    b = Simulation.resume(
        tmp_path / "a.chk.npz",
        pot,
        Ensemble(kind="nve", dt_fs=4.0),
        MDSettings(steps=80, output=str(tmp_path / "a.xyz"), **kw),
    )
    assert any("keeping positions, velocities and cell" in m for m in b.messages)
    assert np.array_equal(b.positions(), a.positions())
    assert np.allclose(b.velocities(), a.velocities())
    b.run()
    assert "keeping positions" in capsys.readouterr().err
    assert b.step == 80


def test_restart_from_other_system_is_refused(tmp_path):
    sysm = argon_box(2, 5.4)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=5.0)
    Simulation(
        pot, sysm, Ensemble(kind="nvt"), quiet(steps=10, checkpoint_every=10, output=str(tmp_path / "a.xyz"))
    ).run()
    other = lennard_jones(np.full(13, 18), cutoff=None)
    with pytest.raises(ConfigError, match="different system"):
        Simulation.resume(tmp_path / "a.chk.npz", other, Ensemble(kind="nvt"), quiet())


def test_h5md_layout(tmp_path):
    import h5py

    sysm = argon_box(2, 5.4)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=5.0)
    sim = Simulation(
        pot,
        sysm,
        Ensemble(kind="nvt", dt_fs=2.0, temperature_K=50.0),
        MDSettings(
            steps=40,
            log_every=10,
            traj_every=10,
            checkpoint_every=0,
            echo=False,
            output=str(tmp_path / "t.h5"),
            write_forces=True,
        ),
    )
    sim.run()
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert tuple(f["h5md"].attrs["version"]) == (1, 1)
        assert f["h5md/creator"].attrs["name"] == "biomlff"
        pos = f["particles/all/position/value"]
        assert pos.shape == (5, 32, 3) and pos.attrs["unit"] == "Angstrom"
        assert list(f["particles/all/position/step"][()]) == [0, 10, 20, 30, 40]
        assert np.allclose(f["particles/all/position/time"][()], np.arange(5) * 0.02)
        assert f["particles/all/velocity/value"].attrs["unit"] == "Angstrom ps-1"
        assert f["particles/all/box/edges/value"].shape == (5, 3, 3)
        assert [b.decode() for b in f["particles/all/box"].attrs["boundary"]] == ["periodic"] * 3
        assert list(f["particles/all/species"][()]) == [18] * 32
        t = f["observables/temperature/value"][()]
        assert t.shape == (5,) and np.isclose(t[0], sim.history[0]["temperature"])
        assert f["particles/all/force/value"].shape == (5, 32, 3)
    # the log file has one row per log step and the documented columns
    log = (tmp_path / "t.log").read_text().splitlines()
    assert log[0].split()[:7] == ["step", "time_ps", "E_pot", "E_kin", "E_tot", "conserved", "T_K"]
    assert "P_bar" in log[0] and "ns_day" in log[0] and "realloc" in log[0]
    assert len(log) == 6


def test_maxwell_boltzmann_zero_momentum_and_temperature():
    import jax

    from biomlff.md.integrators import kinetic2, maxwell_boltzmann

    m = np.linspace(1.0, 30.0, 50)
    with jax.enable_x64(True):
        p = np.asarray(maxwell_boltzmann(jax.random.PRNGKey(0), m, units.kB * 300.0, dtype=np.float64))
        k2 = float(kinetic2(p, m))
    assert np.allclose(p.sum(0), 0.0, atol=1e-10)
    assert k2 / ((3 * 50 - 3) * units.kB) == pytest.approx(300.0, rel=1e-10)


def test_errors_are_biomlff_errors():
    assert issubclass(ConfigError, BiomlffError)


def test_hydrogen_mass_repartitioning(shared):
    from biomlff.md.structure import read_structure, repartition_hydrogen_masses, shipped_structure

    s = read_structure(shipped_structure())
    h = repartition_hydrogen_masses(s, h_mass=3.024)
    assert h.masses.sum() == pytest.approx(s.masses.sum(), rel=1e-12)
    assert np.allclose(h.masses[s.atomic_numbers == 1], 3.024)
    # every methyl carbon (3 H) lost 3 × (3.024 − 1.008) amu
    lost = s.masses - h.masses
    assert np.isclose(lost[s.atomic_numbers == 6].max(), 3 * (3.024 - 1.008))
    assert np.array_equal(h.positions, s.positions)


def test_semi_isotropic_npt_conserves_and_couples_xy():
    sysm = argon_box(3, 5.40)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(
        kind="npt",
        dt_fs=5.0,
        temperature_K=70.0,
        pressure_eV_A3=100.0 * units.bar,
        tau_t_fs=250.0,
        tau_p_fs=1500.0,
        coupling="semi-isotropic",
    )
    sim = Simulation(pot, sysm, ens, quiet(seed=2))
    c0 = sim.observables()["conserved"]
    rows = run_series(sim, 2000, 100)
    last = rows[-1]
    # the MTK extended energy is conserved; x and y stay equal, z moves on its own
    assert max(abs(r["conserved"] - c0) for r in rows) / sysm.n_atoms < 5e-5
    assert last["cell_x"] == pytest.approx(last["cell_y"], rel=1e-12)
    assert abs(last["cell_z"] / last["cell_x"] - 1) > 1e-3
    assert abs(last["volume"] / np.linalg.det(sysm.cell) - 1) > 1e-3
    with pytest.raises(ConfigError, match="coupling"):
        Ensemble(kind="npt", coupling="anisotropic").validate()
