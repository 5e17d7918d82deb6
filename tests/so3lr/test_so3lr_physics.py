"""SO3LR physics checks independent of the reference files: forces = −∇E and stress = strain
derivative by finite differences (float64), invariances, pair-list skin independence, charge
conservation (total and per fragment), charged molecules, binding energies."""

import ase.io
import jax
import numpy as np
import pytest

from biomlff.errors import ConfigError, ModelError
from biomlff.neighbors import build_pairs
from biomlff.potential import strained_energy, stress
from biomlff.so3lr import so3lr_potential
from biomlff.so3lr.binding import binding_energy, separate
from biomlff.so3lr.evaluate import evaluate


@pytest.fixture(scope="module")
def dha(shared):
    atoms = ase.io.read(shared / "so3lr" / "reference" / "dha.xyz")
    atoms.set_cell(None)
    atoms.pbc = False
    return atoms


@jax.jit
def _ef(efn, x, pairs, cell):
    """energy and forces of a Partial energy function passed as an argument: one compilation per
    shape and settings, shared by potentials of different species/charges."""
    e, g = jax.value_and_grad(efn)(x, pairs, cell)
    return e, -g


def pairs_for(pot, positions, cell=None, skin=0.0, capacity=None):
    return {
        k: build_pairs(
            positions,
            None if s.cutoff is None else s.cutoff + skin,
            cell,
            s.half,
            capacity=None if capacity is None else capacity[k],
        )
        for k, s in pot.neighbors.items()
    }


def deprotonated(acid):
    """Carboxylate anion: the acid without its carboxylic H (charge −1)."""
    z, x = acid.numbers, acid.positions
    o = np.nonzero(z == 8)[0]
    h = np.nonzero(z == 1)[0]
    d = np.linalg.norm(x[h][:, None] - x[o][None], axis=-1)
    acid_h = h[np.argmin(d.min(axis=1))]
    assert d.min() < 1.1
    keep = np.arange(len(z)) != acid_h
    return z[keep], x[keep]


def _fd_forces(efn, x, coords, h=1e-4):
    out = []
    for a, k in coords:
        xp, xm = x.copy(), x.copy()
        xp[a, k] += h
        xm[a, k] -= h
        out.append(-(float(efn(xp)) - float(efn(xm))) / (2 * h))
    return np.array(out)


def test_forces_are_minus_gradient_and_skin_independent(dha, params):
    """Charged molecule (anion, charge embedding active); neutral forces are checked against the
    reference outputs."""
    z, x = deprotonated(dha)
    with jax.enable_x64(True):
        pot = so3lr_potential(z, charge=-1, precision="float64", params=params)
        exact = pairs_for(pot, x)
        skin = pairs_for(pot, x, skin=1.0)
        e0, _ = _ef(pot.energy_fn, x, exact, None)
        e1, f1 = _ef(pot.energy_fn, x, skin, None)
        assert abs(float(e0) - float(e1)) < 1e-10  # pairs beyond the cutoffs contribute nothing
        efn = lambda y: _ef(pot.energy_fn, y, skin, None)[0]
        coords = [(0, 0), (3, 1), (17, 2), (30, 0), (len(z) - 1, 1), (len(z) - 5, 2)]
        fd = _fd_forces(efn, x, coords)
    f1 = np.asarray(f1)
    assert np.abs(fd - np.array([f1[a, k] for a, k in coords])).max() < 2e-6
    assert np.all(np.isfinite(f1))
    assert np.abs(f1.sum(axis=0)).max() < 1e-8  # no net force in free space


def test_stress_is_strain_derivative(shared, params):
    """192-atom water box (12.4 Å) with a 5.5 Å lr cutoff, float64."""
    atoms = ase.io.read(shared / "so3lr" / "reference" / "water_64.xyz")
    atoms.wrap()
    x, cell = atoms.positions, atoms.cell.array
    with jax.enable_x64(True):
        pot = so3lr_potential(
            atoms.numbers, lr_cutoff=5.5, dispersion_damping=2.0, precision="float64", params=params
        )
        pairs = pairs_for(pot, x, cell, skin=0.5)
        sigma = np.asarray(jax.jit(stress(pot))(x, pairs, cell))
        se = jax.jit(lambda eps: strained_energy(pot)(eps, x, pairs, cell))
        vol = abs(np.linalg.det(cell))
        h = 1e-5
        for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 1)]:
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = 0.5 if a != b else 1.0
            fd = (float(se(h * eps)) - float(se(-h * eps))) / (2 * h) / vol
            assert abs(fd - sigma[a, b]) < 1e-7 + 1e-5 * abs(sigma[a, b]), (a, b, fd, sigma[a, b])
    assert np.abs(sigma - sigma.T).max() < 1e-9
    assert np.abs(sigma).max() > 1e-4


def test_invariances(dha, params):
    rng = np.random.default_rng(7)
    x = dha.positions
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # proper rotation
    perm = rng.permutation(len(x))
    with jax.enable_x64(True):
        pot = so3lr_potential(dha.numbers, precision="float64", params=params)
        base = pairs_for(pot, x)
        cap = {k: v.capacity for k, v in base.items()}
        e0, f0 = _ef(pot.energy_fn, x, base, None)
        xr = x @ q.T + np.array([10.0, -5.0, 3.0])
        e1, f1 = _ef(pot.energy_fn, xr, pairs_for(pot, xr, capacity=cap), None)
        potp = so3lr_potential(dha.numbers[perm], precision="float64", params=params)
        e2, f2 = _ef(potp.energy_fn, x[perm], pairs_for(potp, x[perm], capacity=cap), None)
    assert abs(float(e1) - float(e0)) < 1e-9
    assert np.abs(np.asarray(f1) - np.asarray(f0) @ q.T).max() < 1e-8
    assert abs(float(e2) - float(e0)) < 1e-9
    assert np.abs(np.asarray(f2) - np.asarray(f0)[perm]).max() < 1e-8


def test_charges_and_charged_molecule(dha, params):
    z, x = deprotonated(dha)
    with jax.enable_x64(True):
        outs = {
            # the neutral deprotonated molecule is a radical: a doublet (a singlet is refused)
            q: evaluate(
                so3lr_potential(z, charge=q, multiplicity=2 + q, precision="float64", params=params), x
            )
            for q in (0, -1)
        }
    for q, out in outs.items():
        assert abs(out["charges"].sum() - q) < 1e-10
        assert np.all(np.isfinite(out["forces"])) and np.isfinite(out["energy"])
        assert np.all(out["hirshfeld_ratios"] > 0)
        assert np.allclose(out["dipole"], (out["charges"][:, None] * x).sum(0), atol=1e-10)
        assert abs(sum(out["energy_terms"].values()) - out["energy"]) < 1e-9
    # the total charge enters the model (embedding and charge redistribution)
    assert abs(outs[-1]["energy"] - outs[0]["energy"]) > 1e-2
    assert np.abs(outs[-1]["charges"] - outs[0]["charges"]).max() > 1e-2


def test_fragment_charge_conservation_and_binding(params):
    # S22 water dimer (CCSD(T)/CBS interaction energy −5.0 kcal/mol = −0.217 eV)
    from ase.collections import s22

    dimer = s22["Water_dimer"]
    xw = dimer.positions
    idx = np.array([0, 1, 2, 0, 1, 2])
    assert list(dimer.numbers) == [8, 1, 1, 8, 1, 1]
    water = dimer
    ids = np.repeat([0, 1], 3)
    res = binding_energy(water.numbers[idx], xw, ids, params=params)
    assert -0.35 < res["binding_energy"] < -0.12, res
    # a complex already 1000 Å apart is not bound
    far = binding_energy(water.numbers[idx], separate(xw, ids, 1000.0), ids, params=params)
    assert abs(far["binding_energy"]) < 1e-6

    # acetate anion next to a water molecule: charges conserved per fragment (−1 and 0)
    from ase.build import molecule

    acid = molecule("CH3COOH")
    z, x = deprotonated(acid)
    o = x[z == 8][0]
    zc = np.concatenate([z, dimer.numbers[:3]])
    xc = np.concatenate([x, xw[:3] - xw[0] + o + np.array([0.0, 0.0, 2.8])])
    fid = np.repeat([0, 1], [len(z), 3])
    res = binding_energy(zc, xc, fid, [-1.0, 0.0], params=params)
    assert (
        np.isfinite(res["binding_energy"]) and abs(sum(res["terms"].values()) - res["binding_energy"]) < 1e-8
    )
    with jax.enable_x64(True):
        pot = so3lr_potential(
            zc, charge=-1, fragments=(fid, [-1.0, 0.0]), lr_cutoff=1000.0, precision="float64", params=params
        )
        out = evaluate(pot, separate(xc, fid, 1000.0))
    assert abs(out["charges"][fid == 0].sum() + 1) < 1e-10
    assert abs(out["charges"][fid == 1].sum()) < 1e-10
    assert abs(out["energy"] - res["separated_energy"]) < 1e-9
    with pytest.raises(ConfigError, match="add up"):
        so3lr_potential(zc, charge=0, fragments=(fid, [-1.0, 0.0]), params=params)


def test_bad_input(params):
    with pytest.raises(ModelError, match=r"Na \(Z=11\)"):
        so3lr_potential([1, 11, 6], params=params)
    with pytest.raises(ModelError, match="float64"):
        pot = so3lr_potential([1, 1], precision="float64", params=params)
        x = np.array([[0.0, 0, 0], [0.74, 0, 0]])
        pot.energy_fn(x, pairs_for(pot, x), None)
    with pytest.raises(ConfigError, match="precision"):
        so3lr_potential([1, 1], precision="float16", params=params)
    with pytest.raises(ConfigError, match="dispersion_damping"):
        so3lr_potential([1, 1], lr_cutoff=5.0, dispersion_damping=6.0, params=params)


def test_dispersion_is_stable_for_vanishing_hirshfeld_ratios():
    """A model trained without Hirshfeld labels can drive a ratio to ~1e-8: the C6 combination rule
    must keep a finite second derivative in float32 (force training differentiates the forces) and
    equal the literal rule 2 C6_i C6_j α_i α_j / (α_i² C6_j + α_j² C6_i)."""
    import jax.numpy as jnp

    from biomlff.so3lr.physics import (
        c6_per_alpha2_table,
        dispersion_pair_energy,
        dispersion_pair_energy_u,
        free_atom_table,
    )

    a0, c60 = free_atom_table()
    zi, zj = np.array([7, 7, 6, 1]), np.array([7, 1, 8, 1])

    def energy(h, r):
        hi, hj = h[:4], h[4:]
        ai, aj = a0[zi] * hi, a0[zj] * hj
        return jnp.sum(dispersion_pair_energy(r, ai, aj, c60[zi] * hi * hi, c60[zj] * hj * hj, None, None))

    h = np.array([6e-8, 3e-8, 0.9, 1.1, 2e-8, 0.7, 1.2, 1e-7], np.float32)
    r = np.array([2.9, 1.0, 1.4, 3.5], np.float32)
    hess = jax.jit(jax.hessian(energy, argnums=(0, 1)))(h, r)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(hess))

    with jax.enable_x64(True):
        h64, r64 = h.astype(np.float64) * 1e6, r.astype(np.float64)  # ordinary ratios
        hi, hj = h64[:4], h64[4:]
        ai, aj, ci, cj = a0[zi] * hi, a0[zj] * hj, c60[zi] * hi**2, c60[zj] * hj**2
        got = np.asarray(dispersion_pair_energy(r64, ai, aj, ci, cj, None, None))
        literal_c6 = 2 * ci * cj * ai * aj / (ai**2 * cj + aj**2 * ci)
        u_i, u_j = ci / ai**2, cj / aj**2
        np.testing.assert_allclose(2 * ai * aj * u_i * u_j / (u_i + u_j), literal_c6, rtol=1e-14)
        assert np.all(np.isfinite(got)) and np.all(got < 0)
        u0 = c6_per_alpha2_table()  # what the model uses: u = C6/α² from the free-atom table
        via_u = np.asarray(dispersion_pair_energy_u(r64, ai, aj, u0[zi], u0[zj], None, None))
        np.testing.assert_allclose(via_u, got, rtol=1e-13)
