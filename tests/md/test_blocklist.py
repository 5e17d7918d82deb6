"""The blocked cell-list pair builder (biomlff.md.blocklist) against brute-force minimum-image pair
sets, its overflow flags, and MD runs with it (restart, re-allocation, agreement with JAX-MD lists)."""

import numpy as np
import pytest

from biomlff.geometry import minimum_image_np
from biomlff.md import blocklist
from biomlff.md.integrators import Ensemble
from biomlff.md.simulation import MDSettings, Simulation
from biomlff.md.structure import System
from biomlff.md.testing import fcc_lattice, lennard_jones


def brute_force(x, cell, r):
    d = x[None, :, :] - x[:, None, :]
    d = minimum_image_np(d, cell) if cell is not None else d
    a, b = np.nonzero(np.triu(np.sum(d * d, axis=-1) < r * r, 1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


def built_pairs(state):
    i, j, valid = blocklist.pairs(state)
    v = np.asarray(valid)
    return set(zip(np.asarray(i)[v].tolist(), np.asarray(j)[v].tolist(), strict=True))


CASES = {
    # name: (n atoms, cell or None, r_list, expected cells per axis)
    "cubic_4_cells": (800, np.eye(3) * 26.0, 6.2, (4, 4, 4)),
    "small_one_cell": (150, np.eye(3) * 11.0, 5.0, (1, 1, 1)),
    "triclinic": (900, np.array([[21.0, 0, 0], [4.0, 20.0, 0], [2.0, 3.0, 19.0]]), 5.5, (3, 3, 3)),
    "mixed_axes": (400, np.diag([19.0, 12.0, 12.0]), 5.8, (3, 1, 1)),
    "free_space": (700, None, 5.0, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_blocked_list_equals_brute_force(case):
    import jax

    n, cell, r, cells = CASES[case]
    rng = np.random.default_rng(1)
    if cell is None:
        x = rng.normal(size=(n, 3)) * 7.0
    else:
        x = rng.uniform(-0.5, 1.5, size=(n, 3)) @ cell  # unwrapped positions
    with jax.enable_x64(True):
        st = blocklist.allocate(x, cell, r)
        assert not bool(st["overflow"])
        if cells is not None:
            assert tuple(np.asarray(st["n"])) == cells
        got = built_pairs(st)
    ref = brute_force(x, cell, r)
    assert got == ref
    assert int(st["count"]) == len(ref)
    assert st["i"].shape[0] >= len(ref)
    # free space: atoms far outside the allocation grid are clamped into edge cells, still exact
    if cell is None:
        y = x.copy()
        y[:5] += 40.0
        y[5:10] -= 35.0
        with jax.enable_x64(True):
            st2 = blocklist.build(blocklist.allocate(x, None, r, 3.0), y, None, r)
            assert built_pairs(st2) == brute_force(y, None, r)


def test_overflow_flags():
    import jax.numpy as jnp

    rng = np.random.default_rng(2)
    cell = np.eye(3) * 26.0
    x = rng.uniform(0, 26.0, size=(800, 3))
    st = blocklist.allocate(x, cell, 6.2, capacity_multiplier=1.0)
    caps = blocklist.capacities(st)
    assert not bool(st["overflow"])
    # more pairs than the buffer: compress the box contents (same cell)
    dense = 13.0 + 0.8 * (x - 13.0)
    out = blocklist.build(st, jnp.asarray(dense), jnp.asarray(cell), 6.2)
    assert bool(out["overflow"]) and int(out["count"]) > caps[0]
    # too many atoms in one cell: move 100 atoms into one cell, pair capacity ample
    big = blocklist.allocate(x, cell, 6.2, capacities=(10 * caps[0], *caps[1:]))
    y = x.copy()
    y[:100] = 1.0 + rng.uniform(0, 1.0, size=(100, 3))
    out = blocklist.build(big, jnp.asarray(y), jnp.asarray(cell), 6.2)
    assert bool(out["overflow"]) and int(out["max_cell"]) > caps[1]
    # a variable cell shrunk below 4 × r_list (4 cells per axis at allocation)
    out = blocklist.build(big, jnp.asarray(x * 0.9), jnp.asarray(cell * 0.9), 6.2)
    assert bool(out["overflow"])
    # the unchanged system does not overflow
    assert not bool(blocklist.build(big, jnp.asarray(x), jnp.asarray(cell), 6.2)["overflow"])


def argon(n_cells, a=5.4):
    pos, cell = fcc_lattice(n_cells, a)
    return System(np.full(len(pos), 18), pos, np.full(len(pos), 39.948), cell, name="argon")


def settings(**kw):
    base = dict(
        log_every=0, traj_every=0, checkpoint_every=0, precision="float64", echo=False, progress=False
    )
    return MDSettings(**(base | kw))


def test_md_with_blocked_lists_equals_jax_md_lists():
    """500-atom argon box (27 Å, 4 cells per axis), NVT: the same trajectory with both builders."""
    sysm = argon(5)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(kind="nvt", dt_fs=5.0, temperature_K=90.0, tau_t_fs=200.0)
    a = Simulation(pot, sysm, ens, settings(seed=3, pair_lists="blocked", skin=0.4))
    b = Simulation(pot, sysm, ens, settings(seed=3, pair_lists="jax_md", skin=0.4))
    assert a.pairlists.builder == "blocked" and b.pairlists.builder == "jax_md"
    a.advance(60)
    b.advance(60)
    assert int(a.lists["rebuilds"]) >= 1
    np.testing.assert_allclose(a.positions(), b.positions(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.observables()["e_pot"], b.observables()["e_pot"], rtol=1e-10)


def test_blocked_overflow_reallocates_and_matches_ample_capacity():
    # 20 Å box, 6.0 Å (3 cells per axis), just inside the third fcc shell (6.12 Å): the lattice's pair
    # count is the minimum, thermal motion brings third-shell pairs in and overflows the pair buffer
    sysm = argon(4, 5.0)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(kind="nvt", dt_fs=4.0, temperature_K=150.0, tau_t_fs=100.0)
    tight = Simulation(
        pot, sysm, ens, settings(capacity_multiplier=1.0, skin=0.0, seed=7, pair_lists="blocked")
    )
    ample = Simulation(
        pot, sysm, ens, settings(capacity_multiplier=3.0, skin=0.0, seed=7, pair_lists="blocked")
    )
    for _ in range(6):
        tight.advance(30)
        ample.advance(30)
    assert tight.reallocations >= 1
    assert ample.reallocations == 0
    np.testing.assert_allclose(tight.positions(), ample.positions(), rtol=0, atol=1e-9)


@pytest.mark.slow
def test_blocked_npt_restart_is_bitwise_identical(tmp_path):
    sysm = argon(5)
    pot = lennard_jones(sysm.atomic_numbers, cutoff=6.0)
    ens = Ensemble(kind="npt", dt_fs=5.0, temperature_K=80.0, tau_t_fs=200.0, tau_p_fs=1000.0)
    kw = dict(
        log_every=20,
        traj_every=0,
        checkpoint_every=40,
        precision="float64",
        echo=False,
        seed=5,
        skin=0.3,
        pair_lists="blocked",
        progress=False,
    )
    full = Simulation(pot, sysm, ens, MDSettings(steps=100, output=str(tmp_path / "full.xyz"), **kw))
    full.run()
    part = Simulation(pot, sysm, ens, MDSettings(steps=40, output=str(tmp_path / "part.xyz"), **kw))
    part.run()
    res = Simulation.resume(
        tmp_path / "part.chk.npz", pot, ens, MDSettings(steps=100, output=str(tmp_path / "part.xyz"), **kw)
    )
    assert res.pairlists.builder == "blocked"
    res.run()
    for k in full.state:
        assert np.array_equal(np.asarray(full.state[k]), np.asarray(res.state[k])), k
