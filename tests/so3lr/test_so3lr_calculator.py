"""SO3LRCalculator: results, no recompilation when atoms move, charge from atoms.info, bad input."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from biomlff.calculators import SO3LRCalculator
from biomlff.errors import ModelError


def test_results_and_no_recompilation(params):
    atoms = molecule("CH3CH2OH")
    calc = SO3LRCalculator(lr_cutoff=None, params=params)
    atoms.calc = calc
    f = atoms.get_forces()
    e = atoms.get_potential_energy()
    q = atoms.get_charges()
    mu = atoms.get_dipole_moment()
    r = calc.results
    assert np.isfinite(e) and f.shape == (9, 3) and abs(q.sum()) < 1e-5
    assert np.allclose(mu, (q[:, None] * atoms.positions).sum(0), atol=1e-5)
    assert abs(r["energies"].sum() - e) < 1e-4 and abs(sum(r["energy_terms"].values()) - e) < 1e-4
    assert r["hirshfeld_ratios"].shape == (9,) and np.all(r["hirshfeld_ratios"] > 0)
    n = calc.n_traces
    rng = np.random.default_rng(1)
    for _ in range(3):
        atoms.positions += rng.normal(scale=0.01, size=(9, 3))
        atoms.get_forces()
        atoms.get_charges()
    assert calc.n_traces == n
    # a new total charge rebuilds the model and changes the result
    atoms.info["charge"] = 1
    atoms.info["multiplicity"] = 2  # 25 electrons: a doublet (a singlet cation is refused)
    e1 = atoms.get_potential_energy()
    assert abs(atoms.get_charges().sum() - 1) < 1e-5 and abs(e1 - atoms.calc.results["energy"]) < 1e-9
    atoms.info["charge"] = 0
    atoms.info["multiplicity"] = 1
    assert abs(atoms.get_potential_energy() - e1) > 1e-3
    assert not jax.config.jax_enable_x64


def test_bad_input(params):
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.4, 0, 0]])
    atoms.calc = SO3LRCalculator(params=params)
    with pytest.raises(ModelError, match=r"Na \(Z=11\)"):
        atoms.get_potential_energy()
    water = molecule("H2O")
    water.set_cell([20.0, 20.0, 20.0])
    water.pbc = True
    water.calc = SO3LRCalculator(params=params)
    with pytest.raises(ModelError, match="2 × lr cutoff"):
        water.get_potential_energy()
    water.calc = SO3LRCalculator(lr_cutoff=None, params=params)
    with pytest.raises(ModelError, match="free space"):
        water.get_potential_energy()
    # triclinic cells are supported (tests/core/test_safe_defaults.py); one whose height along a is
    # 21.2 Å < 2 × 12 Å is refused by the same rule as any other cell, naming --lr-cutoff
    water.set_cell([[30.0, 0, 0], [20.0, 20.0, 0], [0, 0, 30.0]])
    water.calc = SO3LRCalculator(params=params)
    with pytest.raises(ModelError, match="--lr-cutoff"):
        water.get_potential_energy()
