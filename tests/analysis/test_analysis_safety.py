"""Analyses that stay right, or say so, on data that strains them (issue 25, defects 8 and 10):
intermolecular RDFs of hot water with stretched O–H bonds and proton hops, diffusion fitted in the
ballistic regime, spectra below their Nyquist limit, time series of one frame, and stored
observables asked for by their common names. Arrays are built with NumPy/ASE (no MD, no JAX)."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_builders import read_csv  # noqa: E402

from biomlff.analysis import (  # noqa: E402
    AnalysisWarning,
    Trajectory,
    assign_molecules,
    diffusion_coefficient,
    msd,
    power_spectrum,
    rdf,
    write_h5md,
)
from biomlff.cli.main import main  # noqa: E402


def run_cli(*args):
    return main(["analyze", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def water64(shared):
    """The hot 64-water box of the SO3LR references (5 O–H bonds longer than 1.12 Å)."""
    import ase.io

    return ase.io.read(shared / "so3lr" / "reference" / "water_64.xyz")


def hop_trajectory(atoms):
    """Three frames of ``atoms``: as read, the most loosely bound proton moved to 0.98 Å from the
    other oxygen it is closest to (a proton hop), and moved back. Returns (numbers, positions
    (3, N, 3), cell, hydrogen, donor O, acceptor O)."""
    z = atoms.numbers
    d = atoms.get_all_distances(mic=True, vector=True)
    o = np.nonzero(z == 8)[0]
    h_all = np.nonzero(z == 1)[0]
    r = np.linalg.norm(d[np.ix_(h_all, o)], axis=-1)
    second = np.sort(r, axis=1)[:, 1]
    k = int(np.argmin(second))  # the H with the nearest second oxygen
    h = int(h_all[k])
    donor, acceptor = (int(o[m]) for m in np.argsort(r[k])[:2])
    x0 = atoms.positions
    x1 = x0.copy()
    to_acc = d[h, acceptor]  # vector H -> acceptor O (minimum image)
    x1[h] = x0[h] + to_acc - 0.98 * to_acc / np.linalg.norm(to_acc)
    return z, np.stack([x0, x1, x0]), atoms.cell.array, h, donor, acceptor


# --------------------------------------------------------------------------- molecules and RDF


def test_intermolecular_rdf_of_hot_water_has_no_bond_peak(water64, shared, tmp_path, capsys):
    """The docs' command on water_64: the old frame-0, 1.116 Å bond rule made 5 stretched O–H
    bonds intermolecular (a false peak at 0.9–1.2 Å); the total O–H RDF keeps its bond peak."""
    path = shared / "so3lr" / "reference" / "water_64.xyz"
    assert run_cli("rdf", path, "--pairs", "O-O,O-H", "--intermolecular", "-o", tmp_path / "inter") == 0
    inter = read_csv(tmp_path / "inter.csv")
    assert np.all(inter["g_O-H"][inter["r_A"] < 1.3] == 0.0)
    assert "64 molecules" in capsys.readouterr().out
    assert inter["g_O-H"][(inter["r_A"] > 1.5) & (inter["r_A"] < 2.2)].max() > 0.5  # H-bond shell
    assert run_cli("rdf", path, "--pairs", "O-H", "-o", tmp_path / "total") == 0
    total = read_csv(tmp_path / "total.csv")
    k = int(np.argmax(total["g_O-H"]))
    assert 0.9 < total["r_A"][k] < 1.05  # the covalent O–H bond peak
    # every molecule is one O with two H, although 5 bonds exceed 1.116 Å
    found = assign_molecules(water64.numbers, water64.positions, water64.cell.array, check=False)
    assert found.ids.shape == (1, 192) and np.all(np.bincount(found.ids[0]) == 3)
    assert np.all(found.ids[0] == np.arange(192) // 3)


def test_proton_hop_reassigns_molecules_and_warns(water64):
    z, x, cell, h, donor, acceptor = hop_trajectory(water64)
    with pytest.warns(AnalysisWarning, match=rf"first at frame 1: H{h}–O{donor} broken.*H{h}–O{acceptor}"):
        found = assign_molecules(z, x, cell)
    assert found.changes.tolist() == [1, 2]
    ids = found.ids
    assert ids[0, h] == ids[0, donor] and ids[1, h] == ids[1, acceptor] and ids[2, h] == ids[2, donor]
    # intermolecular O–H pairs per frame: the hopped proton never counts at 0.98 Å
    o, hs = np.nonzero(z == 8)[0], np.nonzero(z == 1)[0]
    res = rdf(x, cell, o, hs, r_max=6.0, n_bins=60, molecules=ids)
    assert np.all(res.g[res.r < 1.3] == 0.0)
    stale = rdf(x, cell, o, hs, r_max=6.0, n_bins=60, molecules=ids[0])  # frame-0 molecules
    assert stale.g[res.r < 1.3].sum() > 0  # ... would count the hopped bond as intermolecular


def test_no_molecule_warning_when_nothing_changes(water64):
    x = water64.positions + np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]])[:, None]  # 2 frames, shifted
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)
        found = assign_molecules(water64.numbers, x, water64.cell.array)
    assert found.changes.size == 0 and found.blocks() == [(0, 2)]


def test_cli_warns_on_stderr_when_a_proton_hops(water64, tmp_path, capsys):
    z, x, cell, h, _, _ = hop_trajectory(water64)
    path = tmp_path / "hop.h5"
    write_h5md(path, Trajectory(x, z, times=[0.0, 1.0, 2.0], cell=cell))
    assert run_cli("rdf", path, "--pairs", "O-H", "--intermolecular", "-o", tmp_path / "r") == 0
    err = capsys.readouterr().err
    assert "biomlff: warning: the molecules change between frames" in err and f"H{h}" in err
    table = read_csv(tmp_path / "r.csv")
    assert np.all(table["g_O-H"][table["r_A"] < 1.3] == 0.0)


def test_molecules_from_a_pdb_topology(water64, tmp_path, capsys):
    """--molecules topology: residues of a PDB (no bonds) are the molecules, whatever the frame."""
    import ase.io

    a = water64.copy()
    a.set_array("residuenumbers", np.arange(len(a)) // 3 + 1)
    ase.io.write(tmp_path / "w.pdb", a)
    args = ["--pairs", "O-H", "--intermolecular", "--molecules", "topology", "-o", tmp_path / "t"]
    assert run_cli("rdf", tmp_path / "w.pdb", *args) == 0
    assert "64 molecules from residues" in capsys.readouterr().out
    table = read_csv(tmp_path / "t.csv")
    assert np.all(table["g_O-H"][table["r_A"] < 1.3] == 0.0)
    ase.io.write(tmp_path / "w.extxyz", a)  # no topology: refused with a clear message
    args = ["--intermolecular", "--molecules", "topology", "-o", tmp_path / "t2"]
    assert run_cli("rdf", tmp_path / "w.extxyz", *args) == 2
    assert "needs --topology" in capsys.readouterr().err


# --------------------------------------------------------------------------- diffusion


def test_ballistic_diffusion_fit_warns_and_diffusive_does_not():
    rng = np.random.default_rng(0)
    t = np.arange(200) * 1.0  # fs
    v = rng.normal(scale=0.01, size=(1, 300, 3))  # Å/fs, free flight: MSD = <v²> t²
    flight = v * t[:, None, None]
    with pytest.warns(AnalysisWarning, match=r"MSD ∝ t\^2\.00.*ballistic"):
        fit = diffusion_coefficient(t, msd(flight))
    assert fit.exponent == pytest.approx(2.0, abs=0.01)
    walk = np.cumsum(rng.normal(scale=0.1, size=(200, 300, 3)), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)
        fit = diffusion_coefficient(t, msd(walk))
    assert fit.exponent == pytest.approx(1.0, abs=0.15)


def test_cli_msd_of_free_flight_warns(tmp_path, capsys):
    rng = np.random.default_rng(1)
    t = np.arange(60) * 2.0
    x = rng.uniform(0, 5, (1, 20, 3)) + rng.normal(scale=0.01, size=(1, 20, 3)) * t[:, None, None]
    write_h5md(tmp_path / "gas.h5", Trajectory(x, [18] * 20, times=t))
    assert run_cli("msd", tmp_path / "gas.h5", "-o", tmp_path / "m") == 0
    captured = capsys.readouterr()
    assert "MSD ∝ t^2.00" in captured.out
    assert "biomlff: warning: diffusion fit over" in captured.err and "ballistic" in captured.err


# --------------------------------------------------------------------------- spectra


#: (atomic numbers, Δt fs, analysed atoms, band named in the warning or None for no warning)
NYQUIST_CASES = [
    ([8, 1, 1] * 4, 5.0, None, "O–H stretch"),  # Nyquist 3336 cm⁻¹ < ~3700
    ([8, 1, 1] * 4, 5.0, [0, 3, 6, 9], "O–H stretch"),  # oxygens only: they move in the stretch too
    ([6, 1, 1, 1, 1] * 3, 6.0, None, "C–H stretch"),  # 2780 < ~3100
    ([8, 1, 1] * 4, 1.0, None, None),  # 16,678 cm⁻¹: resolved
    ([8, 1, 1] * 4, 4.0, None, None),  # 4170 cm⁻¹ > 3700
    ([18] * 12, 10.0, None, None),  # argon: no bonds to alias
    ([6, 8] * 6, 10.0, None, None),  # no hydrogen: no X–H band
]


def test_spectrum_warns_only_when_the_nyquist_limit_cuts_a_band():
    v = np.random.default_rng(2).normal(size=(64, 12, 3))
    for numbers, dt_fs, idx, band in NYQUIST_CASES:
        vel = v[:, : len(numbers)]
        if band:
            with pytest.warns(AnalysisWarning, match=rf"Nyquist limit .* below the {band}"):
                power_spectrum(vel, dt_fs, numbers=numbers, idx=idx)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", AnalysisWarning)
                power_spectrum(vel, dt_fs, numbers=numbers, idx=idx)


# --------------------------------------------------------------------------- time series


def test_series_of_one_frame_warns_and_of_two_does_not(tmp_path, capsys):
    x = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.1]]])
    write_h5md(tmp_path / "two.h5", Trajectory(x, [8, 1], times=[0.0, 1.0]))
    one = ["--distance", "0,1", "--frames", ":1"]
    assert run_cli("series", tmp_path / "two.h5", *one, "-o", tmp_path / "a") == 0
    assert "biomlff: warning: series: the trajectory has 1 frame" in capsys.readouterr().err
    assert run_cli("series", tmp_path / "two.h5", "--distance", "0,1", "-o", tmp_path / "b") == 0
    assert "warning" not in capsys.readouterr().err
    assert run_cli("rg", tmp_path / "two.h5", "--frames", "1:", "-o", tmp_path / "c") == 0
    assert "biomlff: warning: radius of gyration: the trajectory has 1 frame" in capsys.readouterr().err


@pytest.fixture
def md_observables_file(tmp_path):
    """An H5MD file with the observables biomlff md stores (e_pot, e_kin, e_tot eV, temperature K)."""
    rng = np.random.default_rng(3)
    obs = {
        "e_pot": -10.0 + rng.normal(size=4),
        "e_kin": 1.0 + rng.normal(size=4) ** 2,
        "temperature": 300.0 + rng.normal(size=4),
    }
    obs["e_tot"] = obs["e_pot"] + obs["e_kin"]
    path = tmp_path / "md.h5"
    x = rng.normal(size=(4, 3, 3))
    write_h5md(path, Trajectory(x, [8, 1, 1], times=np.arange(4) * 10.0, info={"observables": obs}))
    return path, obs


@pytest.mark.parametrize(
    ("asked", "stored", "label"),
    [
        ("potential_energy", "e_pot", "potential energy (eV)"),
        ("e_pot", "e_pot", "potential energy (eV)"),
        ("E_pot", "e_pot", "potential energy (eV)"),
        ("kinetic_energy", "e_kin", "kinetic energy (eV)"),
        ("total_energy", "e_tot", "total energy (eV)"),
        ("T_K", "temperature", "temperature (K)"),
    ],
)
def test_series_observable_aliases_with_units(md_observables_file, tmp_path, asked, stored, label):
    import matplotlib

    path, obs = md_observables_file
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep the labels as text in the SVG
        assert run_cli("series", path, "--observable", asked, "--format", "svg", "-o", tmp_path / "s") == 0
    unit = label.split("(")[1].rstrip(")")
    col = read_csv(tmp_path / "s.csv")[f"{stored}_{unit}"]
    assert np.allclose(col, obs[stored])
    svg = (tmp_path / "s.svg").read_text()
    assert label in svg and "time (ps)" in svg


def test_series_mixed_units_get_one_labelled_panel_each(md_observables_file, tmp_path):
    import matplotlib

    path, _ = md_observables_file
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        args = ["--observable", "potential_energy", "--observable", "temperature", "--distance", "0,1"]
        assert run_cli("series", path, *args, "--format", "svg", "-o", tmp_path / "s") == 0
    svg = (tmp_path / "s.svg").read_text()
    assert "potential energy (eV)" in svg and "temperature (K)" in svg and "distance (Å)" in svg


def test_series_unknown_observable_lists_names_and_aliases(md_observables_file, tmp_path, capsys):
    path, _ = md_observables_file
    assert run_cli("series", path, "--observable", "pressure", "-o", tmp_path / "s") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biomlff: error:") and len(err.splitlines()) == 1
    assert "no per-frame observable 'pressure'" in err
    assert "e_pot (potential energy, eV; also potential_energy, energy)" in err
    assert "temperature (temperature, K; also T_K" in err
    assert not list(tmp_path.glob("s*"))
