"""biomlff eval / bind end to end (in-process), and their errors."""

import ase.io
import numpy as np
import pytest
from ase.collections import s22

from biomlff.calculators import SO3LRCalculator
from biomlff.cli.main import main
from biomlff.data import example_path, read_dataset
from biomlff.so3lr.binding import binding_energy
from biomlff.so3lr.weights import read_params_pickle, save_canonical


@pytest.fixture(scope="module")
def cache(shared, tmp_path_factory):
    """A user cache holding the weights (imported from params.pkl)."""
    root = tmp_path_factory.mktemp("cache")
    save_canonical(read_params_pickle(shared / "so3lr" / "params.pkl"), root / "so3lr", source="test")
    return root


def test_eval_writes_predictions_and_metrics(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOMLFF_CACHE", str(cache))
    out = tmp_path / "pred.extxyz"
    rc = main(
        [
            "eval",
            "--model",
            "so3lr",
            "--data",
            str(example_path()),
            "--index",
            ":5",
            "--batch-size",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "forces" in text and "MAE" in text and "mean offset removed" in text
    pred = read_dataset(out)
    data = read_dataset(example_path(), index=":5")
    assert len(pred) == 5
    # predictions equal a direct calculator evaluation (lr cutoff 'auto' = none in gas phase)
    atoms = data.to_atoms(4)
    atoms.info = {}
    atoms.calc = SO3LRCalculator(lr_cutoff=None)
    assert abs(pred.energy[4] - atoms.get_potential_energy()) < 1e-4
    assert np.abs(pred.frame(4)["forces"] - atoms.get_forces()).max() < 1e-4
    # force MAE printed equals the one computed here
    mae = np.mean([np.abs(pred.frame(i)["forces"] - data.frame(i)["forces"]).mean() for i in range(5)])
    assert f"{mae:.6f}" in text


def test_bind_matches_api_and_writes_csv(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOMLFF_CACHE", str(cache))
    dimer = s22["Water_dimer"]
    path = tmp_path / "dimer.xyz"
    ase.io.write(path, dimer)
    csv = tmp_path / "bind.csv"
    rc = main(["bind", str(path), "--fragment", "0-2", "--fragment", "3-5", "--out", str(csv)])
    assert rc == 0
    ref = binding_energy(dimer.numbers, dimer.positions, [0, 0, 0, 1, 1, 1])
    row = csv.read_text().splitlines()[1].split(",")
    assert abs(float(row[1]) - ref["binding_energy"]) < 1e-9
    assert -0.35 < ref["binding_energy"] < -0.12
    # errors: no fragments given; weights missing
    assert main(["bind", str(path)]) == 2
    assert "--fragment" in capsys.readouterr().err
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path / "empty"))
    assert main(["eval", "--data", str(example_path())]) == 2
    assert "biomlff weights fetch" in capsys.readouterr().err
