"""Batched SO3LR evaluation of structures of mixed sizes: atom-count buckets share compiled programs,
and padding changes nothing (checked against the ASE calculator, which evaluates each structure
unpadded through its own compiled path)."""

import ase.io
import numpy as np
import pytest

from biomlff.calculators import SO3LRCalculator
from biomlff.so3lr import SO3LRConfig
from biomlff.so3lr import evaluate as ev


@pytest.fixture(scope="module")
def fragments(shared):
    """Four fragments of dha with 6, 11 (atom bucket 16) and 20, 27 atoms (bucket 32), charges 0/±1."""
    atoms = ase.io.read(shared / "so3lr" / "reference" / "dha.xyz")
    atoms.positions -= atoms.positions.mean(axis=0)
    out = []
    for n, q in ((6, 0.0), (20, 1.0), (11, 0.0), (27, -1.0)):
        a = atoms[:n]
        a.set_cell(None)
        a.pbc = False
        # cut fragments are often radicals: the multiplicity the electron count allows (2S + 1)
        a.info = {"charge": q, "multiplicity": 1 + int(a.numbers.sum() - q) % 2}
        out.append(a)
    return out


def test_mixed_sizes_share_programs_and_match_unpadded(params, fragments):
    systems = [
        ev.System(
            atomic_numbers=a.numbers,
            positions=a.positions,
            charge=a.info["charge"],
            multiplicity=a.info["multiplicity"],
        )
        for a in fragments
    ]
    config = SO3LRConfig(lr_cutoff=None, dispersion_damping=None, precision="float64")
    before = ev.TRACES[0]
    out = ev.evaluate_systems(systems, config, params, batch_size=4)
    # two atom buckets (16 and 32) → two programs for four different sizes
    assert ev.TRACES[0] - before == 2
    again = ev.evaluate_systems(systems[::-1], config, params, batch_size=4)
    assert ev.TRACES[0] - before == 2  # cached
    calc = SO3LRCalculator(lr_cutoff=None, precision="float64", params=params)
    for a, o, o2 in zip(fragments, out, again[::-1], strict=True):
        a = a.copy()
        a.calc = calc
        n = len(a)
        assert o["forces"].shape == (n, 3) and o["charges"].shape == (n,) and o["energies"].shape == (n,)
        # float64 up to the float32 parameter-only operations of the reference (charge embedding),
        # whose vectorised and scalar code may differ in the last float32 bit
        assert abs(o["energy"] - a.get_potential_energy()) < 1e-8
        assert np.abs(o["forces"] - a.get_forces()).max() < 1e-7
        assert np.abs(o["charges"] - a.get_charges()).max() < 1e-8
        assert np.abs(o["dipole"] - calc.results["dipole"]).max() < 1e-8
        assert abs(o["charges"].sum() - a.info["charge"]) < 1e-10
        assert abs(o["energies"].sum() - o["energy"]) < 1e-9
        assert o2["energy"] == pytest.approx(o["energy"], abs=1e-10)


def test_bad_batch_size_and_mixed_periodicity(params, fragments):
    from biomlff.errors import ConfigError

    config = SO3LRConfig(lr_cutoff=12.0, precision="float32")
    a = fragments[0]
    free = ev.System(atomic_numbers=a.numbers, positions=a.positions)
    boxed = ev.System(atomic_numbers=a.numbers, positions=a.positions, cell=np.eye(3) * 30.0)
    with pytest.raises(ConfigError, match="batch size"):
        ev.evaluate_systems([free], config, params, batch_size=0)
    with pytest.raises(ConfigError, match="periodic and free-space"):
        ev.evaluate_systems([free, boxed], config, params)


def test_predict_dataset_rejects_bad_settings(params, fragments):
    from biomlff.data import Dataset
    from biomlff.errors import ConfigError
    from biomlff.so3lr.predict import predict_dataset

    a = fragments[0]
    ds = Dataset.from_arrays([a.numbers], [a.positions], multiplicity=np.array([0]), validate=False)
    with pytest.raises(ConfigError, match="multiplicity"):
        predict_dataset(ds, params=params)
    ok = Dataset.from_arrays([a.numbers], [a.positions], validate=False)
    with pytest.raises(ConfigError, match="dispersion_damping"):
        predict_dataset(ok, params=params, lr_cutoff=6.0, dispersion_damping=6.0)
    with pytest.raises(ConfigError, match="precision"):
        predict_dataset(ok, params=params, precision="float16")
