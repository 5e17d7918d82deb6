"""SO3LR against the published reference outputs (../shared/so3lr/reference).

float64 against the JAX-MD float64 outputs (*_jaxmd.npz), float32 against the ASE float32 outputs
(*_ase.npz), and the dha energy decomposition of the issue. Settings: lr cutoff 12 Å, dispersion
damping 2 Å, charge 0, singlet.
"""

import ase.io
import jax
import numpy as np
import pytest

from biomlff.calculators import SO3LRCalculator

MOLECULES = ["atat", "dha", "bb"]


def _ref(shared, name):
    return np.load(shared / "so3lr" / "reference" / name)


def _molecule(shared, name):
    atoms = ase.io.read(shared / "so3lr" / "reference" / f"{name}.xyz")
    atoms.set_cell(None)
    atoms.pbc = False
    atoms.info = {}
    return atoms


def _water(shared):
    atoms = ase.io.read(shared / "so3lr" / "reference" / "water_64.xyz")
    atoms.wrap()
    atoms = atoms * (2, 2, 2)
    atoms.info = {}
    return atoms


def _check(atoms, params, ref, precision, e_tol, f_tol):
    atoms.calc = SO3LRCalculator(lr_cutoff=12.0, dispersion_damping=2.0, precision=precision, params=params)
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    de = abs(e - float(ref["energy"]))
    df = np.abs(f - ref["forces"]).max()
    assert de <= e_tol(float(ref["energy"])), (e, float(ref["energy"]), de)
    assert df <= f_tol, df
    return de, df


@pytest.mark.parametrize("name", MOLECULES)
def test_float64_molecules_match_jaxmd(shared, params, name):
    ref = _ref(shared, f"{name}_jaxmd.npz")
    _check(_molecule(shared, name), params, ref, "float64", lambda e: 1e-5 + 1e-7 * abs(e), 1e-5)
    assert not jax.config.jax_enable_x64  # float64 did not flip the global flag


def test_float64_atat_in_large_periodic_box(shared, params):
    """As the upstream JAX-MD test: the molecule centred in a 999.999 Å periodic box."""
    atoms = _molecule(shared, "atat")
    atoms.set_cell(np.eye(3) * 999.999)
    atoms.center()
    atoms.pbc = True
    ref = _ref(shared, "atat_jaxmd.npz")
    _check(atoms, params, ref, "float64", lambda e: 1e-5 + 1e-7 * abs(e), 1e-5)


@pytest.mark.parametrize("name", MOLECULES)
def test_float32_molecules_match_ase(shared, params, name):
    ref = _ref(shared, f"{name}_ase.npz")
    _check(_molecule(shared, name), params, ref, "float32", lambda e: 2e-4 + 2e-7 * abs(e), 5e-4)


def test_float32_water_matches_ase(shared, params):
    ref = _ref(shared, "water_ase.npz")
    _check(_water(shared), params, ref, "float32", lambda e: 2e-4 + 2e-7 * abs(e), 5e-4)


@pytest.mark.slow
def test_float64_water_matches_jaxmd(shared, params):
    ref = _ref(shared, "water_jaxmd.npz")
    _check(_water(shared), params, ref, "float64", lambda e: 1e-5 + 1e-7 * abs(e), 1e-5)


@pytest.mark.parametrize(
    "lr_cutoff, electrostatics", [(12.0, -1.729302), (None, -2.477564)], ids=["12A", "no-cutoff"]
)
def test_dha_energy_decomposition(shared, params, lr_cutoff, electrostatics):
    atoms = _molecule(shared, "dha")
    atoms.calc = SO3LRCalculator(lr_cutoff=lr_cutoff, precision="float64", params=params)
    terms = atoms.calc.get_property("energy_terms", atoms)
    expected = {
        "so3krates": -97.286181,
        "zbl": 4.951443,
        "electrostatics": electrostatics,
        "dispersion": -0.835473,
    }
    for key, val in expected.items():
        assert abs(terms[key] - val) < 1e-5, (key, terms[key], val)
    energies = atoms.calc.get_property("energies", atoms)
    assert abs(energies.sum() - sum(terms.values())) < 1e-9
    if lr_cutoff == 12.0:  # the terms add up to the reference total
        ref = float(_ref(shared, "dha_jaxmd.npz")["energy"])
        assert abs(sum(terms.values()) - ref) < 1e-5
