"""``biomlff data info | convert | split`` through the command-line entry point."""

import json
import re

import ase.units
import numpy as np
import pytest

from biomlff.cli.main import main
from biomlff.data import read_dataset
from biomlff.data.splits import Split

KCAL = ase.units.kcal / ase.units.mol


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _stat(text, label):
    m = re.search(re.escape(label) + r".*?mean (\S+), std (\S+), min (\S+), max (\S+)", text)
    return [float(x.rstrip(",")) for x in m.groups()]


def test_info_example_units(capsys):
    from biomlff.data import example_path

    raw = np.load(example_path())
    rc, out, _ = run(capsys, "data", "info", "--example", "--units", "kcal/mol")
    assert rc == 0
    assert "frames:        50" in out and "9..9 per frame" in out
    assert "H (300), C (100), O (50)" in out
    mean, std, lo, hi = _stat(out, "energy [kcal/mol]")
    e = raw["E"][:, 0]
    assert mean == pytest.approx(e.mean(), abs=1e-6) and std == pytest.approx(e.std(), abs=1e-6)
    assert (lo, hi) == (pytest.approx(e.min(), abs=1e-6), pytest.approx(e.max(), abs=1e-6))
    rc, out_ev, _ = run(capsys, "data", "info", "--example")
    mean_ev = _stat(out_ev, "energy [eV]")[0]
    assert mean_ev == pytest.approx(e.mean() * KCAL, abs=1e-6)
    rms = float(re.search(r"component RMS (\S+),", out_ev).group(1))
    assert rms == pytest.approx(np.sqrt(np.mean((raw["F"] * KCAL) ** 2)), abs=1e-6)


def test_info_rmd17_and_errors(shared, tmp_path, capsys):
    p = shared / "datasets" / "rmd17" / "rmd17_ethanol_train_01.npz"
    rc, out, _ = run(capsys, "data", "info", str(p), "--energy-key", "old_energies")
    assert rc == 0 and "frames:        1000" in out and "original MD17" in out
    rc, out, _ = run(capsys, "data", "info", str(p), "--units", "kcal/mol")  # both label sets shown
    raw = np.load(p)
    assert _stat(out, "energy [kcal/mol]")[0] == pytest.approx(raw["energies"].mean(), abs=1e-6)
    old_block = out.split("original MD17 labels", 1)[1]
    assert _stat(old_block, "energy [kcal/mol]")[0] == pytest.approx(raw["old_energies"].mean(), abs=1e-6)
    assert "--energy-key energies|old_energies" in out
    rc, _, err = run(capsys, "data", "convert", str(p), str(tmp_path / "x.xyz"))
    assert rc == 2 and err.startswith("biomlff: error:") and "--energy-key" in err
    assert err.count("\n") == 1  # one line, no traceback
    rc, _, err = run(capsys, "data", "info", "--example", "--units", "parsecs")
    assert rc == 2 and "unknown energy unit" in err
    rc, _, err = run(capsys, "data", "info")
    assert rc == 2 and "--example" in err


def test_convert_and_info_hdf5(shared, tmp_path, capsys):
    src = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz"
    out = tmp_path / "md22.h5"
    rc, text, _ = run(
        capsys, "data", "convert", str(src), str(out), "--energy-key", "Energy", "--energy-unit", "kcal/mol"
    )
    assert rc == 0 and "wrote 5 frames" in text
    assert read_dataset(out).energy[0] == -620726.002662 * KCAL
    rc, text, _ = run(capsys, "data", "info", str(out), "--units", "kcal/mol")  # streamed
    assert rc == 0 and "min -620726.002662" in text and "42..42 per frame" in text
    rc, _, err = run(capsys, "data", "convert", str(src), str(out), "--energy-key", "Energy")
    assert rc == 2 and "--force" in err
    rc, _, _ = run(
        capsys, "data", "convert", str(out), str(tmp_path / "md22.npz"), "--out-energy-unit", "kcal/mol"
    )
    assert rc == 0
    assert np.load(tmp_path / "md22.npz")["E"][0, 0] == pytest.approx(-620726.002662, rel=1e-15)


def test_split_random_and_explicit(tmp_path, capsys):
    from biomlff.data import example_path

    rc, text, _ = run(
        capsys,
        "data",
        "split",
        str(example_path()),
        "--n-train",
        "20",
        "--n-valid",
        "10",
        "--seed",
        "5",
        "-o",
        str(tmp_path / "s.json"),
        "--write-parts",
        str(tmp_path / "p.xyz"),
    )
    assert rc == 0
    rec = json.loads((tmp_path / "s.json").read_text())
    assert (len(rec["train"]), len(rec["valid"]), len(rec["test"])) == (20, 10, 20)
    sp = Split.load(tmp_path / "s.json")
    ds = read_dataset(example_path())
    sp.check(ds)
    part = read_dataset(tmp_path / "p_valid.xyz")
    np.testing.assert_allclose(part.energy, ds.energy[sp.valid], rtol=1e-15)
    rc, _, _ = run(
        capsys,
        "data",
        "split",
        str(example_path()),
        "--train",
        "0:10",
        "--valid",
        "10,11",
        "--test",
        "40:50",
        "-o",
        str(tmp_path / "e.json"),
    )
    assert rc == 0 and Split.load(tmp_path / "e.json").valid.tolist() == [10, 11]
    rc, _, err = run(
        capsys,
        "data",
        "split",
        str(example_path()),
        "--train",
        "0:10",
        "--test",
        "5:15",
        "-o",
        str(tmp_path / "bad.json"),
    )
    assert rc == 2 and "share" in err and not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("cmd", ["convert", "split"])
def test_help_teaches(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "kcal/mol" in text and "--energy-key" in text


def test_info_hdf5_streams_and_checks(tmp_path, capsys, monkeypatch):
    import h5py

    import biomlff.data
    import biomlff.data.qcell

    with h5py.File(tmp_path / "q.h5", "w") as f:
        for i, n in enumerate([2, 3, 4]):
            g = f.create_group(f"s{i}")
            g["atomic_numbers"] = np.ones(n, dtype=int)
            g["positions"] = np.arange(3 * n, dtype=float).reshape(n, 3)
            g["total_energy"] = -1.0 * n
            g["total_forces"] = np.zeros((n, 3))

    def refuse(*a, **k):
        raise AssertionError("info on HDF5 must stream, not load the whole file")

    monkeypatch.setattr(biomlff.data, "read_dataset", refuse)
    monkeypatch.setattr(biomlff.data.qcell, "read_qcell", refuse)
    rc, out, err = run(capsys, "data", "info", str(tmp_path / "q.h5"))
    assert rc == 0, err
    assert "frames:        3" in out and "2..4 per frame" in out and "min -4.000000, max -2.000000" in out
    with h5py.File(tmp_path / "q.h5", "a") as f:
        f["s2/total_forces"][1, 2] = np.nan
    rc, _, err = run(capsys, "data", "info", str(tmp_path / "q.h5"))
    assert rc == 2 and "q.h5: frame 2, atom 1, field 'forces': contains NaN" in err
