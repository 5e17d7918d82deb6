"""Ensembles as pure init/step pairs in a registry, the shared MD run loop, and model outputs computed
inside the compiled block (``MDSettings.log_outputs``).

References: a plain velocity-Verlet loop written here (same arithmetic as the step it checks), the
analytic dipole Σ q_i r_i of the written positions, and exact-restart equality.
"""

import numpy as np
import pytest

from biomlff import units
from biomlff.errors import ConfigError
from biomlff.md import ensembles
from biomlff.md.integrators import Ensemble
from biomlff.md.simulation import MDSettings, Simulation
from biomlff.md.structure import System
from biomlff.md.testing import lennard_jones, lj_cluster
from biomlff.potential import Potential

AR_MASS = 39.948


def cluster(n=13):
    pos = lj_cluster(n, seed=2)
    return System(np.full(n, 18), pos, np.full(n, AR_MASS), None, name="ar13")


def quiet(**kw):
    base = dict(
        log_every=0, traj_every=0, checkpoint_every=0, precision="float64", echo=False, progress=False
    )
    base.update(kw)
    return MDSettings(**base)


def test_builtin_ensembles_are_registered():
    assert {"nve", "nvt", "langevin", "npt"} <= set(ensembles.REGISTRY)
    assert ensembles.get("npt").variable_cell and not ensembles.get("nve").variable_cell
    with pytest.raises(ConfigError, match="unknown ensemble"):
        ensembles.get("nph")


def test_nve_via_registry_equals_direct_steps_and_plain_verlet_bitwise():
    """The Simulation loop (registry → nve.step) gives bit for bit the trajectory of direct calls of
    the moved step function and of a plain velocity-Verlet loop with the same arithmetic."""
    import jax
    import jax.numpy as jnp

    from biomlff.md.ensembles import nve
    from biomlff.md.ensembles.base import finish_step, remove_com_momentum

    sysm = cluster()
    pot = lennard_jones(sysm.atomic_numbers, cutoff=None)
    ens = Ensemble(kind="nve", dt_fs=2.0, temperature_K=40.0)
    sim = Simulation(pot, sysm, ens, quiet(seed=4))
    with jax.enable_x64(True):
        st0, ls0 = dict(sim.state), sim.lists
        evaluate = sim._bound_evaluate()
        ctx = sim.integrator.ctx
        n_steps = 6
        sim.advance(n_steps)

        @jax.jit
        def direct(st, ls):
            st, ls = nve.step(st, ls, evaluate, ctx)
            return finish_step(st, ctx), ls

        m = jnp.asarray(sysm.masses, jnp.float64)
        dt = 2.0 * units.ase_time_per_fs

        @jax.jit
        def plain(R, P, F, ls):
            h = 0.5 * dt
            P = P + h * F
            R = R + dt * P / m[:, None]
            ls, f = evaluate(R, None, ls)
            P = remove_com_momentum(P + h * f.forces, m)
            return R, P, f.forces, ls

        st, ls = st0, ls0
        R, P, F, ls_p = st0["R"], st0["P"], st0["F"], ls0
        for _ in range(n_steps):
            st, ls = direct(st, ls)
            R, P, F, ls_p = plain(R, P, F, ls_p)
    for k in sim.state:
        assert np.array_equal(np.asarray(sim.state[k]), np.asarray(st[k])), k
    assert int(sim.state["step"]) == n_steps
    assert np.array_equal(np.asarray(sim.state["R"]), np.asarray(R))
    assert np.array_equal(np.asarray(sim.state["P"]), np.asarray(P))


def _rescale_init(key, positions, momenta, cell, lists, evaluate, ctx):
    from biomlff.md.ensembles.base import initial_state

    return initial_state(key, positions, momenta, cell, lists, evaluate)


def _rescale_step(state, lists, evaluate, ctx):
    """Velocity Verlet, then momenta rescaled so that the kinetic temperature is exactly T."""
    import jax.numpy as jnp

    from biomlff.md.ensembles.base import kinetic2, velocity_verlet

    st, lists = velocity_verlet(state, lists, evaluate, ctx)
    k2 = kinetic2(st["P"], ctx.m(st["P"].dtype))
    return dict(st, P=st["P"] * jnp.sqrt(ctx.dof * ctx.kT / k2)), lists


@pytest.fixture
def rescale_ensemble():
    ensembles.register("rescale", _rescale_init, _rescale_step)
    yield "rescale"
    del ensembles.REGISTRY["rescale"]


def test_registered_ensemble_runs_through_shared_loop(tmp_path, rescale_ensemble):
    """An ensemble registered from outside runs with log, trajectory, checkpoints and an exact resume."""
    sysm = cluster()
    pot = lennard_jones(sysm.atomic_numbers, cutoff=None)
    ens = Ensemble(kind=rescale_ensemble, dt_fs=2.0, temperature_K=50.0)
    kw = dict(log_every=5, traj_every=5, checkpoint_every=10, precision="float64", echo=False, seed=1)
    full = Simulation(pot, sysm, ens, MDSettings(steps=20, output=str(tmp_path / "full.h5"), **kw))
    rows = full.run()
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]
    assert all(abs(r["temperature"] - 50.0) < 1e-8 for r in rows[1:])
    part = Simulation(pot, sysm, ens, MDSettings(steps=10, output=str(tmp_path / "part.h5"), **kw))
    part.run()
    res = Simulation.resume(
        tmp_path / "part.chk.npz", pot, ens, MDSettings(steps=20, output=str(tmp_path / "part.h5"), **kw)
    )
    assert res.step == 10 and not res.messages
    res.run()
    for k in full.state:
        assert np.array_equal(np.asarray(full.state[k]), np.asarray(res.state[k])), k
    from biomlff.analysis import read_trajectory

    a, b = read_trajectory(tmp_path / "full.h5"), read_trajectory(tmp_path / "part.h5")
    assert a.n_frames == b.n_frames == 5 and np.array_equal(a.positions, b.positions)


def _charged_cluster():
    sysm = cluster()
    lj = lennard_jones(sysm.atomic_numbers, cutoff=None)
    q = np.where(np.arange(sysm.n_atoms) % 2 == 0, 0.1, -0.1)
    q[-1] = -q[:-1].sum()

    def outputs_fn(positions, pairs, cell=None):
        import jax.numpy as jnp

        qq = jnp.asarray(q, positions.dtype)
        return {"charges": qq, "dipole": jnp.sum(qq[:, None] * positions, axis=0)}

    pot = Potential(
        energy_fn=lj.energy_fn,
        neighbors=lj.neighbors,
        atomic_numbers=lj.atomic_numbers,
        outputs_fn=outputs_fn,
    )
    return sysm, pot, q


def test_log_outputs_per_step_from_the_compiled_block(tmp_path):
    sysm, pot, q = _charged_cluster()
    ens = Ensemble(kind="langevin", dt_fs=2.0, temperature_K=40.0)
    s = quiet(steps=12, log_every=4, traj_every=1, output=str(tmp_path / "o.h5"), log_outputs=("dipole",))
    sim = Simulation(pot, sysm, ens, s)
    rows = sim.run()
    table = np.loadtxt(sim.outputs_path())
    assert table.shape == (13, 5)  # step, time_ps, dipole_x, dipole_y, dipole_z
    assert np.array_equal(table[:, 0], np.arange(13))
    assert np.allclose(table[:, 1], np.arange(13) * 2.0 / units.ps)
    from biomlff.analysis import read_trajectory

    tr = read_trajectory(tmp_path / "o.h5")
    ref = np.einsum("i,tij->tj", q, tr.positions)
    assert np.allclose(table[:, 2:], ref, rtol=0, atol=1e-8)
    assert np.std(ref[:, 0]) > 0  # the dipole changes from step to step
    # the log rows carry the outputs as columns
    assert [r["step"] for r in rows] == [0, 4, 8, 12]
    for r in rows:
        assert np.allclose([r["dipole_x"], r["dipole_y"], r["dipole_z"]], ref[r["step"]], atol=1e-8)
    header = (tmp_path / "o.log").read_text().splitlines()[0].split()
    assert header[-5:] == ["dipole_x", "dipole_y", "dipole_z", "ns_day", "realloc"]


def test_log_outputs_resume_truncates_the_table(tmp_path):
    sysm, pot, _ = _charged_cluster()
    ens = Ensemble(kind="langevin", dt_fs=2.0, temperature_K=40.0)
    kw = dict(log_every=3, checkpoint_every=6, precision="float64", echo=False, log_outputs=("dipole",))
    full = Simulation(pot, sysm, ens, MDSettings(steps=12, output=str(tmp_path / "f.xyz"), **kw))
    full.run()
    part = Simulation(pot, sysm, ens, MDSettings(steps=6, output=str(tmp_path / "p.xyz"), **kw))
    part.run()
    with open(tmp_path / "p.outputs.dat", "a") as fh:
        fh.write("7 0.014 9 9 9\n")  # as if killed after the checkpoint at 6
    res = Simulation.resume(
        tmp_path / "p.chk.npz", pot, ens, MDSettings(steps=12, output=str(tmp_path / "p.xyz"), **kw)
    )
    res.run()
    a = np.loadtxt(tmp_path / "f.outputs.dat")
    b = np.loadtxt(tmp_path / "p.outputs.dat")
    assert a.shape == (13, 5) and np.array_equal(a, b)


def test_default_log_columns_unchanged_without_log_outputs(tmp_path):
    sysm, pot, _ = _charged_cluster()
    sim = Simulation(
        pot,
        sysm,
        Ensemble(kind="nve", dt_fs=2.0, temperature_K=40.0),
        quiet(steps=4, log_every=2, output=str(tmp_path / "d.xyz")),
    )
    sim.run()
    header = (tmp_path / "d.log").read_text().splitlines()[0].split()
    assert header == ["step", "time_ps", "E_pot", "E_kin", "E_tot", "conserved", "T_K", "ns_day", "realloc"]
    assert sim.outputs_path() is None and not (tmp_path / "d.outputs.dat").exists()


def test_log_outputs_need_model_outputs():
    sysm = cluster()
    pot = lennard_jones(sysm.atomic_numbers, cutoff=None)
    with pytest.raises(ConfigError, match="model outputs"):
        Simulation(pot, sysm, Ensemble(kind="nve"), quiet(log_outputs=("dipole",)))


def test_log_outputs_refused_for_pimd():
    from biomlff.md.pimd import PIMD, PIMDSimulation

    sysm, pot, _ = _charged_cluster()
    with pytest.raises(ConfigError, match="not available"):
        PIMDSimulation(pot, sysm, PIMD(beads=2), quiet(log_outputs=("dipole",)))
