"""The generic PotentialCalculator on an analytic Lennard-Jones potential: forces and stress
against finite differences, capacity growth, no recompilation when only positions change."""

import numpy as np
import pytest
from ase import Atoms

from biomlff.calculators import PotentialCalculator
from biomlff.errors import ModelError
from biomlff.potential import NeighborSpec, Potential

EPS, SIG, RC = 0.01, 2.5, 5.0


def lj_potential(z, half=True):
    import jax.numpy as jnp

    def energy_fn(positions, pairs, cell):
        p = pairs["lj"]
        d = positions[p.j] - positions[p.i]
        if cell is not None:
            box = jnp.diag(cell)
            d = d - box * jnp.round(d / box)
        r2 = jnp.where(p.mask, jnp.sum(d * d, axis=-1), 1.0)
        s6 = (SIG * SIG / r2) ** 3
        e = 4 * EPS * (s6 * s6 - s6) - 4 * EPS * ((SIG / RC) ** 12 - (SIG / RC) ** 6)
        e = jnp.where(p.mask & (r2 < RC * RC), e, 0.0)
        return jnp.sum(e) * (1.0 if half else 0.5)

    def outputs_fn(positions, pairs, cell):
        return {"n_pairs": jnp.sum(pairs["lj"].mask)}

    return Potential(energy_fn, {"lj": NeighborSpec(RC, half=half)}, np.asarray(z), outputs_fn=outputs_fn)


def lattice(n=3, a=3.9, pbc=True, seed=0):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    pos = g + rng.normal(scale=0.15, size=g.shape)
    return Atoms("Ar" * len(pos), positions=pos, cell=np.eye(3) * n * a, pbc=pbc)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_forces_stress_finite_differences(precision):
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers), precision=precision)
    atoms.calc = calc
    f = atoms.get_forces()
    s = atoms.get_stress()
    h = 1e-4
    tol = 1e-6 if precision == "float64" else 2e-3
    for a, k in [(0, 0), (5, 1), (13, 2)]:
        p = atoms.copy()
        p.calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
        p.positions[a, k] += h
        ep = p.get_potential_energy()
        p.positions[a, k] -= 2 * h
        em = p.get_potential_energy()
        assert abs(-(ep - em) / (2 * h) - f[a, k]) < tol
    # stress: σ_xx = (1/V) dE/dε_xx with positions and cell scaled
    ref = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    vol = atoms.get_volume()
    es = []
    for sgn in (1, -1):
        p = atoms.copy()
        p.set_cell(atoms.cell.array @ np.diag([1 + sgn * h, 1, 1]), scale_atoms=True)
        p.calc = ref
        es.append(p.get_potential_energy())
    assert abs((es[0] - es[1]) / (2 * h) / vol - s[0]) < max(tol, 1e-3 * abs(s[0]))
    assert np.any(np.abs(f) > 1e-3)


def test_no_recompile_and_capacity_growth():
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    atoms.calc = calc
    atoms.get_forces()
    n0 = calc.n_traces
    cap0 = dict(calc.capacities)
    for k in range(3):
        atoms.positions += np.random.default_rng(k).normal(scale=0.02, size=atoms.positions.shape)
        atoms.get_forces()
    assert calc.n_traces == n0 and calc.capacities == cap0
    # compress strongly: many more pairs → capacity grows, result still equals a fresh calculator
    atoms.set_cell(atoms.cell.array * 0.87, scale_atoms=True)
    e = atoms.get_potential_energy()
    assert calc.capacities["lj"] > cap0["lj"]
    fresh = atoms.copy()
    fresh.calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    assert abs(fresh.get_potential_energy() - e) < 1e-10
    # extra outputs land in results; the padded list holds exactly the pairs within the cutoff
    calc.implemented_properties = [*PotentialCalculator.implemented_properties, "n_pairs"]
    from biomlff.neighbors import pair_indices

    i, _ = pair_indices(atoms.positions, RC, cell=atoms.cell.array, half=True)
    assert int(calc.get_property("n_pairs", atoms)) == len(i)


def test_full_list_equals_half_list_and_free_space():
    atoms = lattice(pbc=False)
    e = []
    for half in (True, False):
        atoms.calc = PotentialCalculator(lj_potential(atoms.numbers, half=half), precision="float64")
        e.append(atoms.get_potential_energy())
    assert abs(e[0] - e[1]) < 1e-10
    with pytest.raises(Exception, match="stress"):
        atoms.get_stress()


def test_errors():
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers[:-1]))
    atoms.calc = calc
    with pytest.raises(ModelError, match="atomic numbers"):
        atoms.get_potential_energy()
    atoms.calc = PotentialCalculator(lj_potential(atoms.numbers))
    atoms.pbc = [True, True, False]
    with pytest.raises(ModelError, match="mixed periodic"):
        atoms.get_potential_energy()
    small = lattice(n=2)
    small.calc = PotentialCalculator(lj_potential(small.numbers))
    with pytest.raises(ModelError, match="2 × cutoff"):
        small.get_potential_energy()
