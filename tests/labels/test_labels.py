"""Reference-data generation: GFN2-xTB labeller, job layer (journal, resume, workers), sampling,
fragments, bad input, CLI. DFT acceptance tests are in test_labels_dft.py."""

import concurrent.futures as cf
import json
import sys

import numpy as np
import pytest

pytest.importorskip("tblite")

from biomlff import units  # noqa: E402
from biomlff.errors import ConfigError, MissingDependencyError  # noqa: E402
from biomlff.labels import (  # noqa: E402
    ElectronCountError,
    Frame,
    SCFConvergenceError,
    UnsupportedElementError,
    check_electrons,
    extract_fragment,
    fragments_to_dataset,
    journal_path,
    label_dataset,
    labeller_calculator,
    langevin_sample,
    make_labeller,
    run_labelling,
)


@pytest.fixture(scope="module")
def ala3(shared):
    from ase.io import read

    return read(shared / "datasets/md22/md22_Ac-Ala3-NHMe_5frames.xyz", index=0)


@pytest.fixture(scope="module")
def unlabelled(shared):
    return shared / "datasets/md22/md22_Ac-Ala3-NHMe_100frames_unlabelled.extxyz"


def water(shift=0.0):
    return np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]]) + shift


# ----------------------------------------------------------------------------- electrons
def test_check_electrons():
    z = np.array([8, 1, 1])
    assert check_electrons(z, 0, 1) == 10
    assert check_electrons(z, 1, 2) == 9
    for q, m in [(0, 2), (1, 1), (0, 0), (-11, 1), (0, 12)]:
        with pytest.raises(ElectronCountError):
            check_electrons(z, q, m)


# ----------------------------------------------------------------------------- xTB
def test_xtb_forces_match_finite_differences(ala3):
    """Analytic GFN2-xTB forces vs central differences of the xTB energy (tight SCF)."""
    lab = make_labeller("xtb", accuracy=0.01)
    z, r0 = ala3.numbers, ala3.positions.copy()
    res = lab.label(z, r0)
    assert res.forces.shape == (42, 3) and res.dipole.shape == (3,) and res.charges.shape == (42,)
    assert abs(res.charges.sum()) < 1e-6  # Mulliken charges sum to the total charge
    h = 1e-3
    rng = np.random.default_rng(0)
    atoms = rng.choice(42, size=6, replace=False)
    fd = []
    for a in atoms:
        for c in range(3):
            rp, rm = r0.copy(), r0.copy()
            rp[a, c] += h
            rm[a, c] -= h
            fd.append(-(lab.label(z, rp).energy - lab.label(z, rm).energy) / (2 * h))
    fd = np.array(fd).reshape(-1, 3)
    err = np.abs(fd - res.forces[atoms]).max()
    assert err < 2e-3, err  # eV/Å; forces are O(1) eV/Å
    # energy in eV: GFN2-xTB total energy of this peptide is about -65 Hartree
    assert -70 * units.Hartree < res.energy < -60 * units.Hartree


def test_xtb_charged_open_shell_and_dipole_units():
    z, r = water()
    lab = make_labeller("xtb")
    cation = lab.label(z, r, charge=1, multiplicity=2)
    assert abs(cation.charges.sum() - 1.0) < 1e-6
    neutral = lab.label(z, r)
    # water dipole along +z (H side positive), GFN2-xTB ≈ 2 D
    d = neutral.dipole / units.Debye
    assert abs(d[0]) < 1e-6 and abs(d[1]) < 1e-6 and 1.5 < d[2] < 2.8


def test_langevin_calculator_consistency(ala3):
    """Recorded labels belong to the recorded positions (checked by relabelling)."""
    lab = make_labeller("xtb")
    ds = langevin_sample(
        ala3, labeller_calculator(lab), None, steps=6, stride=3, temperature_K=300, progress=False
    )
    assert len(ds) == 3 and list(ds.frame_data["md_step"]) == [0, 3, 6]
    f = ds.frame(2)
    ref = make_labeller("xtb").label(f["atomic_numbers"], f["positions"])
    assert abs(ref.energy - f["energy"]) < 1e-6
    np.testing.assert_allclose(ref.forces, f["forces"], atol=2e-4)  # SCF noise (warm vs cold start)
    assert not np.allclose(ds.frame(0)["positions"], f["positions"])


@pytest.mark.slow
def test_xtb_langevin_ala3_sgdml_dataset(ala3, tmp_path):
    """≥500-frame GFN2-xTB Langevin trajectory of Ac-Ala3-NHMe written as an sGDML dataset."""
    from biomlff.data import read_dataset

    out = tmp_path / "ala3_xtb.npz"
    lab = make_labeller("xtb")
    ds = langevin_sample(
        ala3,
        labeller_calculator(lab),
        out,
        steps=500,
        stride=1,
        temperature_K=300,
        timestep_fs=0.5,
        seed=1,
        calc_name=lab.theory,
        progress=False,
    )
    assert len(ds) == 501
    raw = np.load(out)
    for key in ("R", "z", "E", "F", "e_unit", "r_unit", "md5", "name", "theory", "type"):
        assert key in raw.files, key
    assert raw["R"].shape == (501, 42, 3) and raw["F"].shape == (501, 42, 3) and raw["E"].shape == (501, 1)
    assert str(raw["e_unit"]) == "kcal/mol" and str(raw["r_unit"]) == "Ang"
    back = read_dataset(out)
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-12)
    np.testing.assert_allclose(back.stacked("forces"), ds.stacked("forces"), rtol=1e-10, atol=1e-12)
    # the trajectory moves and stays physical: temperature from the velocity-free check of the
    # potential-energy fluctuation is not available, so check geometry and energy spread instead
    e = ds.energy
    assert np.all(np.isfinite(e)) and 0.05 < e.std() < 5.0  # eV
    r = ds.stacked("positions")
    assert np.abs(r[-1] - r[0]).max() > 0.1
    d = np.linalg.norm(r[:, :, None] - r[:, None], axis=-1) + np.eye(42) * 10
    assert d.min() > 0.7  # no collapsed atoms
    # labels belong to their positions: relabel a late frame independently
    k = 437
    ref = make_labeller("xtb").label(raw["z"], raw["R"][k])
    np.testing.assert_allclose(ref.forces / units.kcal_mol, raw["F"][k], atol=1e-3)


def test_sampling_resumes(ala3, tmp_path):
    out = tmp_path / "s.xyz"
    lab = make_labeller("xtb")
    part = langevin_sample(
        ala3, labeller_calculator(lab), out, steps=8, stride=2, max_steps=4, progress=False
    )
    assert len(part) == 3 and not out.exists()
    full = langevin_sample(ala3, labeller_calculator(lab), out, steps=8, stride=2, progress=False)
    assert list(full.frame_data["md_step"]) == [0, 2, 4, 6, 8] and out.exists()
    np.testing.assert_array_equal(full.frame(1)["positions"], part.frame(1)["positions"])
    # a different temperature is refused instead of mixing runs
    with pytest.raises(ConfigError, match="temperature"):
        langevin_sample(
            ala3, labeller_calculator(lab), out, steps=8, stride=2, temperature_K=500, progress=False
        )


# ----------------------------------------------------------------------------- job layer
def _frames(n=6):
    z, r = water()
    rng = np.random.default_rng(3)
    return [Frame(i, z, r + 0.03 * rng.standard_normal(r.shape)) for i in range(n)]


def test_resume_labels_only_missing_frames(tmp_path, unlabelled):
    out = tmp_path / "lab.npz"
    run1, written = label_dataset(unlabelled, out, "xtb", index="0:6", progress=False, max_frames=3)
    assert written is None and not out.exists() and len(run1.computed) == 3
    # simulate a kill during the write of the next line: a truncated record
    jp = journal_path(out)
    with open(jp, "a") as fh:
        fh.write('{"index": 3, "key": "abc", "ok": tr')
    run2, written = label_dataset(unlabelled, out, "xtb", index="0:6", progress=False)
    assert sorted(run2.computed) == [3, 4, 5]
    assert written == out and out.exists()
    run3, _ = label_dataset(unlabelled, out, "xtb", index="0:6", progress=False)
    assert run3.computed == []
    # same numbers as a run without interruption
    straight, _ = label_dataset(unlabelled, tmp_path / "straight.npz", "xtb", index="0:6", progress=False)
    for i in range(6):
        assert abs(straight.results[i].energy - run2.results[i].energy) < 1e-6
    from biomlff.data import read_dataset

    ds = read_dataset(out)
    assert len(ds) == 6 and ds.stacked("forces").shape == (6, 42, 3)
    # other settings on the same output are refused
    with pytest.raises(ConfigError, match="settings"):
        label_dataset(unlabelled, out, "xtb", {"accuracy": 0.5}, index="0:6", progress=False)


def test_parallel_workers_and_executor_seam():
    frames = _frames(4)
    serial = run_labelling(frames, "xtb", progress=False)
    par = run_labelling(frames, "xtb", workers=2, progress=False)
    with cf.ThreadPoolExecutor(1) as ex:  # any concurrent.futures executor (Dask: client.get_executor())
        seam = run_labelling(frames, "xtb", executor=ex, progress=False)
    for i in range(4):
        assert abs(par.results[i].energy - serial.results[i].energy) < 1e-6
        np.testing.assert_allclose(seam.results[i].forces, serial.results[i].forces, atol=1e-4)  # SCF noise


def test_bad_frames_are_reported_and_others_kept(tmp_path):
    z, r = water()
    frames = [
        Frame(0, z, r),
        Frame(1, z, r, charge=0, multiplicity=2),  # 10 electrons cannot be a doublet
        Frame(2, np.array([92, 1, 1]), r),  # uranium: no GFN2-xTB parameters
        Frame(3, z, r + 0.01),
    ]
    jp = tmp_path / "j.jsonl"
    run = run_labelling(frames, "xtb", journal=jp, progress=False)
    assert sorted(run.results) == [0, 3]
    assert "ElectronCountError" in run.errors[1] and "multiplicity" in run.errors[1]
    assert "UnsupportedElementError" in run.errors[2] and "92" in run.errors[2]
    lines = [json.loads(x) for x in jp.read_text().splitlines()]
    assert len(lines) == 5 and sum(1 for x in lines[1:] if x["ok"]) == 2
    # SCF failure is a per-frame error, the batch goes on
    run = run_labelling(frames[:1], "xtb", {"max_iter": 1}, progress=False)
    assert "SCFConvergenceError" in run.errors[0] and "not converged" in run.errors[0]
    with pytest.raises(SCFConvergenceError):
        make_labeller("xtb", max_iter=1).label(z, r)
    with pytest.raises(UnsupportedElementError):
        make_labeller("xtb").label(np.array([100]), np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="unknown labelling method"):
        make_labeller("ccsd")


def test_missing_dependency_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tblite.interface", None)  # import of tblite.interface fails
    with pytest.raises(MissingDependencyError, match=r"biomlff\[labels\].+pip install tblite"):
        make_labeller("xtb")
    with pytest.raises(MissingDependencyError):
        run_labelling(_frames(1), "xtb", progress=False)


def test_cli_dask_without_distributed(monkeypatch, tmp_path, unlabelled, capsys):
    from biomlff.cli.main import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    out = tmp_path / "d.h5"
    assert main(["label", "xtb", str(unlabelled), "--index", "0:2", "--dask", "local:2", "-o", str(out)]) == 2
    assert "pip install distributed" in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------------------- fragments
def _solvated_ala3(ala3):
    """Ac-Ala3-NHMe plus 4 first-shell waters (O 2.6-3.0 Å from the peptide, no water-water
    contacts) and one far water (> 8 Å)."""
    from ase import Atoms

    sys_ = ala3.copy()
    oz, orr = water()
    pep = ala3.positions
    rng = np.random.default_rng(7)
    placed = []
    while len(placed) < 4:
        p = pep[rng.integers(len(pep))] + rng.normal(size=3) * 2.0
        d = np.linalg.norm(pep - p, axis=1).min()
        if 2.6 < d < 3.0 and all(np.linalg.norm(p - q) > 4.0 for q in placed):
            placed.append(p)
    placed.append(pep.mean(axis=0) + np.array([0.0, 0.0, np.ptp(pep[:, 2]) / 2 + 9.0]))
    for p in placed:
        sys_ += Atoms(numbers=oz, positions=orr + p)
    return sys_


def test_fragment_capping_and_whole_molecules(ala3):
    from biomlff.labels.fragments import bond_graph, molecules

    full = _solvated_ala3(ala3)
    bi, bj = bond_graph(full)
    mol = molecules(len(full), bi, bj)
    o_first = full.positions[len(ala3)]  # oxygen of the first first-shell water
    center = [int(np.argmin(np.linalg.norm(ala3.positions - o_first, axis=1)))]
    frag = extract_fragment(full, center, 3.1, source="test")
    src = frag.source_indices
    kept = src[src >= 0]
    n_caps = int((src < 0).sum())
    assert n_caps == len(frag.cut_bonds) > 0
    assert len(kept) < len(ala3)  # the peptide was cut
    # kept atoms sit where they were
    np.testing.assert_array_equal(frag.atoms.positions[: len(kept)], full.positions[kept])
    # every bond of a kept atom either stays or is capped
    keep_set = set(kept.tolist())
    cut_set = set(frag.cut_bonds)
    for a, b in zip(bi, bj, strict=True):
        if a in keep_set and b not in keep_set:
            assert (a, b) in cut_set
    # caps: hydrogens on the bond direction at the standard X-H length
    for k, (a, b) in enumerate(frag.cut_bonds):
        cap = frag.atoms.positions[len(kept) + k]
        v = cap - full.positions[a]
        u = full.positions[b] - full.positions[a]
        assert frag.atoms.numbers[len(kept) + k] == 1
        assert np.isclose(np.linalg.norm(v), {6: 1.09, 7: 1.01, 8: 0.96}[int(full.numbers[a])])
        assert np.isclose(np.dot(v, u) / np.linalg.norm(v) / np.linalg.norm(u), 1.0)
        assert full.numbers[a] != 1 and full.numbers[b] != 1  # never cut X-H bonds
    # waters are whole or absent
    for m in np.unique(mol[len(ala3) :]):
        members = set(np.flatnonzero(mol == m).tolist())
        assert members <= keep_set or not (members & keep_set)
    assert {len(ala3), len(ala3) + 1, len(ala3) + 2} <= keep_set  # the water next to the centre, whole
    assert not (set(range(len(full) - 3, len(full))) & keep_set)  # the far water is not included
    # closed shell and labellable
    assert (frag.atoms.numbers.sum() - frag.charge) % 2 == 0 and "warning" not in frag.info
    res = make_labeller("xtb").label(frag.atoms.numbers, frag.atoms.positions, frag.charge)
    assert np.isfinite(res.energy)
    ds = fragments_to_dataset([frag])
    assert ds.atom_data["source_index"].tolist() == src.tolist()
    assert "cut_bonds" in ds.metadata["provenance"][0]


# ----------------------------------------------------------------------------- CLI
def test_cli_label_sample_fragment(tmp_path, unlabelled, ala3, capsys):
    from ase.io import write

    from biomlff.cli.main import main
    from biomlff.data import read_dataset

    out = tmp_path / "l.h5"
    assert main(["label", "xtb", str(unlabelled), "--index", "0:2", "-o", str(out), "--no-progress"]) == 0
    ds = read_dataset(out)
    assert len(ds) == 2 and ds.dipole.shape == (2, 3) and ds.partial_charges.shape == (84,)
    # relabelling rMD17 needs no choice of its (discarded) label set
    rmd = unlabelled.parents[1] / "rmd17/rmd17_ethanol_train_01.npz"
    assert (
        main(["label", "xtb", str(rmd), "--index", "0:2", "-o", str(tmp_path / "e.npz"), "--no-progress"])
        == 0
    )
    e = np.load(tmp_path / "e.npz")
    assert e["E"].shape == (2, 1) and str(e["e_unit"]) == "kcal/mol"
    ref = make_labeller("xtb").label(e["z"], e["R"][1])
    assert abs(ref.energy / units.kcal_mol - e["E"][1, 0]) < 1e-4
    s = tmp_path / "s.npz"
    assert (
        main(
            [
                "sample",
                str(unlabelled),
                "--calc",
                "xtb",
                "--steps",
                "4",
                "--stride",
                "2",
                "-o",
                str(s),
                "--no-progress",
            ]
        )
        == 0
    )
    assert np.load(s)["R"].shape == (3, 42, 3)
    inp = tmp_path / "sys.xyz"
    write(inp, _solvated_ala3(ala3))
    f = tmp_path / "frag.h5"
    assert (
        main(["fragment", str(inp), "--center", "5", "--center", "20,21", "--radius", "3", "-o", str(f)]) == 0
    )
    assert len(read_dataset(f)) == 2
    # bad input: clear one-line error, exit code 2
    assert main(["label", "ccsd", str(unlabelled), "-o", str(tmp_path / "x.npz")]) == 2
    assert "unknown labelling method" in capsys.readouterr().err
    # every frame fails (42-atom closed shell as a doublet): per-frame errors, then a clear message
    assert (
        main(
            [
                "label",
                "xtb",
                str(unlabelled),
                "--index",
                "0:2",
                "--multiplicity",
                "2",
                "-o",
                str(tmp_path / "bad.h5"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no frame was labelled" in err and "multiplicity 2 are inconsistent" in err


def test_dask_executor_if_available(tmp_path):
    """The Dask seam with a real local cluster (skipped where distributed is not installed)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        frames = _frames(3)
        run = run_labelling(
            frames, "xtb", journal=tmp_path / "d.jsonl", executor=client.get_executor(), progress=False
        )
    ref = run_labelling(frames, "xtb", progress=False)
    for i in range(3):
        assert abs(run.results[i].energy - ref.results[i].energy) < 1e-6


def test_killed_cli_run_resumes(tmp_path, unlabelled):
    """SIGKILL a running `biomlff label` (no clean-up possible), rerun: only missing frames."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "k.npz"
    jp = journal_path(out)
    cmd = [sys.executable, "-m", "biomlff", "label", "xtb", str(unlabelled), "-o", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 120:
        if jp.exists() and len(jp.read_text().splitlines()) >= 4:  # header + 3 frames
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_before = set()
    for line in jp.read_text().splitlines()[1:]:
        try:
            done_before.add(json.loads(line)["index"])
        except json.JSONDecodeError:  # the line being written when the process died
            pass
    assert 3 <= len(done_before) < 98 and not out.exists()
    run, written = label_dataset(unlabelled, out, "xtb", progress=False)
    assert written == out and len(run.results) == 98
    assert set(run.computed) == set(range(98)) - done_before


def test_fragment_whole_residues_from_pdb(tmp_path, ala3):
    """Residue selection and whole-residue cuts with residue numbers read back from a PDB file."""
    from ase.io import read, write

    from biomlff.labels.fragments import residue_atoms

    full = _solvated_ala3(ala3)
    res = np.concatenate([np.where(np.arange(42) < 21, 1, 2), np.repeat(np.arange(10, 15), 3)])
    full.arrays["residuenumbers"] = res
    full.arrays["residuenames"] = np.array(["ALA"] * 42 + ["HOH"] * 15)
    pdb = tmp_path / "sys.pdb"
    write(pdb, full)
    back = read(pdb)
    assert back.arrays["residuenumbers"].tolist() == res.tolist()
    centre = residue_atoms(back, [10])  # the first water
    assert centre.tolist() == [42, 43, 44]
    frag = extract_fragment(back, centre, 3.0)
    kept = frag.source_indices[frag.source_indices >= 0]
    assert (kept < 42).any() and not (kept < 42).all()  # one peptide residue reached, whole
    for r in np.unique(res[kept]):
        assert set(np.flatnonzero(res == r)) <= set(kept.tolist())  # touched residues are whole
    with pytest.raises(ConfigError, match="residue 99 not found"):
        residue_atoms(back, [99])
