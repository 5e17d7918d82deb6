"""Trajectory readers (H5MD in biomlff's MD layout, extxyz) and `biomlff analyze` end to end."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_builders import read_csv, water_trajectory  # noqa: E402

from biomlff.analysis import Trajectory, read_trajectory, select_atoms, write_h5md  # noqa: E402
from biomlff.cli.main import main  # noqa: E402
from biomlff.errors import DataError  # noqa: E402


def write_md_layout_h5md(path, pos, vel_a_fs, cell, numbers, dt_fs, energies):
    """An H5MD file exactly as biomlff.md writes it: time in ps, velocities in Angstrom ps-1."""
    import h5py

    t = np.arange(len(pos)) * dt_fs / 1000.0
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = np.array([1, 1])
        g = f.create_group("particles/all")
        g.create_dataset("species", data=np.asarray(numbers, dtype=np.int32))
        for name, val, unit in (
            ("position", pos, "Angstrom"),
            ("velocity", vel_a_fs * 1000.0, "Angstrom ps-1"),
        ):
            e = g.create_group(name)
            e.create_dataset("value", data=val).attrs["unit"] = unit
            e.create_dataset("step", data=np.arange(len(pos)) * 10)
            e.create_dataset("time", data=t).attrs["unit"] = "ps"
        box = g.create_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"periodic"] * 3, dtype="S8")
        e = box.create_group("edges")
        e.create_dataset("value", data=np.broadcast_to(cell, (len(pos), 3, 3))).attrs["unit"] = "Angstrom"
        o = f.create_group("observables/potential_energy")
        o.create_dataset("value", data=energies)


def test_read_h5md_md_layout_units(tmp_path):
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 10, (5, 4, 3))
    vel = rng.normal(scale=0.01, size=(5, 4, 3))
    write_md_layout_h5md(tmp_path / "t.h5", pos, vel, np.eye(3) * 10, [8, 1, 1, 6], 2.0, np.arange(5.0))
    tr = read_trajectory(tmp_path / "t.h5")
    assert np.allclose(tr.positions, pos) and np.allclose(tr.velocities, vel)
    assert np.allclose(tr.times, np.arange(5) * 2.0) and tr.timestep() == pytest.approx(2.0)
    assert np.allclose(tr.cell, np.eye(3) * 10) and tr.numbers.tolist() == [8, 1, 1, 6]
    assert np.allclose(tr.info["observables"]["potential_energy"], np.arange(5.0))
    sub = read_trajectory(tmp_path / "t.h5", index="1::2")
    assert sub.n_frames == 2 and np.allclose(sub.positions, pos[1::2])


def test_h5md_round_trip_and_extxyz_momenta(tmp_path):
    import ase.io
    from ase import Atoms

    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 8, (3, 3, 3))
    vel = rng.normal(scale=0.01, size=(3, 3, 3))
    tr = Trajectory(pos, [8, 1, 1], times=[0.0, 0.5, 1.0], cell=np.eye(3) * 8, velocities=vel)
    write_h5md(tmp_path / "r.h5md", tr)
    back = read_trajectory(tmp_path / "r.h5md")
    assert np.allclose(back.positions, pos) and np.allclose(back.velocities, vel)
    assert np.allclose(back.times, tr.times)
    # extxyz with ASE momenta: velocities come back in Å/fs
    from ase import units as u

    frames = []
    for k in range(3):
        a = Atoms("OH2", positions=pos[k], cell=np.eye(3) * 8, pbc=True)
        a.set_velocities(vel[k] / u.fs)  # Å/fs -> ASE units
        a.info["time"] = 0.5 * k
        frames.append(a)
    ase.io.write(tmp_path / "m.extxyz", frames)
    tx = read_trajectory(tmp_path / "m.extxyz")
    assert np.allclose(tx.velocities, vel, atol=1e-10) and tx.timestep() == pytest.approx(0.5)
    with pytest.raises(FileNotFoundError):
        read_trajectory(tmp_path / "missing.h5")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5"):
        read_trajectory(tmp_path / "bad.h5")


def test_selection_grammar():
    z = np.array([8, 1, 1, 8, 1, 1, 6])
    assert select_atoms(z, "O").tolist() == [0, 3]
    assert select_atoms(z, "O,C").tolist() == [0, 3, 6]
    assert select_atoms(z, "not H").tolist() == [0, 3, 6]
    assert select_atoms(z, "0-2,not 1").tolist() == [0, 2]
    assert select_atoms(z, "heavy").tolist() == [0, 3, 6]
    with pytest.raises(DataError, match="matches no atoms"):
        select_atoms(z, "N")
    with pytest.raises(DataError, match="backbone"):
        select_atoms(z, "backbone")


@pytest.fixture(scope="module")
def water(tmp_path_factory, shared):
    path = tmp_path_factory.mktemp("water") / "water.extxyz"
    water_trajectory(path, shared, n_steps=300, every=2, dt_fs=0.5)
    return path


def run_cli(*args):
    return main(["analyze", *[str(a) for a in args]])


def test_water_trajectory_rdf_msd_spectrum_end_to_end(water, tmp_path, capsys):
    assert run_cli("rdf", water, "--pairs", "O-O,O-H", "--intermolecular", "-o", tmp_path / "rdf") == 0
    data = read_csv(tmp_path / "rdf.csv")
    k = np.argmax(data["g_O-O"])
    assert 2.6 < data["r_A"][k] < 3.0  # first O–O shell of liquid water
    assert abs(data["g_O-O"][data["r_A"] > 5.0].mean() - 1.0) < 0.25
    assert (tmp_path / "rdf.png").stat().st_size > 10_000
    assert run_cli("msd", water, "--select", "O", "--fit", "50", "150", "-o", tmp_path / "msd") == 0
    out = capsys.readouterr().out
    d = float(out.split("D = ")[1].split()[0])
    assert 0.1 < d < 100  # 10⁻⁹ m²/s: a liquid, not a solid or a gas (0.15 ps is mostly ballistic)
    assert (tmp_path / "msd.png").exists()
    assert run_cli("spectrum", water, "--mass-weighted", "-o", tmp_path / "spec") == 0
    spec = read_csv(tmp_path / "spec.csv")
    nu, inten = spec["wavenumber_cm-1"], spec["intensity_arb"]
    stretch = inten[(nu > 3000) & (nu < 4000)].max()
    gap = inten[(nu > 2200) & (nu < 2800)].max()
    assert stretch > 3 * gap  # O–H stretch band stands out
    assert (
        run_cli(
            "series", water, "--observable", "temperature", "--distance", "0,1", "-o", tmp_path / "series"
        )
        == 0
    )
    ser = read_csv(tmp_path / "series.csv")
    assert 0.9 < ser["d_0_1_A"].mean() < 1.1  # an O–H bond across the periodic boundary


def test_cli_bad_input_clear_errors(water, tmp_path, capsys, shared):
    md22 = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_100frames_unlabelled.extxyz"
    assert run_cli("rdf", md22, "-o", tmp_path / "x") == 2
    assert "needs a cell" in capsys.readouterr().err
    assert run_cli("spectrum", md22, "-o", tmp_path / "x") == 2
    assert "needs velocities" in capsys.readouterr().err
    assert run_cli("msd", water, "--frames", ":6", "-o", tmp_path / "x") == 2
    assert "too short" in capsys.readouterr().err
    assert run_cli("rg", water, "--select", "S", "-o", tmp_path / "x") == 2
    assert "matches no atoms" in capsys.readouterr().err
    assert run_cli("rdf", water, "--rmax", "9", "-o", tmp_path / "x") == 2
    assert "half the smallest cell width" in capsys.readouterr().err
    assert not list(tmp_path.glob("x*"))


def test_peptide_trajectory_ramachandran_and_dssp(tmp_path, shared, capsys):
    md22 = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_100frames_unlabelled.extxyz"
    assert run_cli("rama", md22, "--temperature", "500", "-o", tmp_path / "rama") == 0
    out = capsys.readouterr().out
    assert "3 residue(s)" in out
    table = read_csv(tmp_path / "rama.csv")
    assert table["phi_deg"].size == 98 * 3 and np.all(np.abs(table["phi_deg"]) <= 180)
    fe = read_csv(tmp_path / "rama_free_energy.csv")
    assert np.nanmin(fe["F_kcal_mol"]) == 0.0
    assert (tmp_path / "rama.png").stat().st_size > 10_000
    helix = shared / "so3lr" / "reference" / "ala15_folded.xyz"
    assert run_cli("dssp", helix, "-o", tmp_path / "ss") == 0
    ss = (tmp_path / "ss_dssp.txt").read_text().strip()
    assert ss.count("H") >= 10, ss
    assert run_cli("rmsd", md22, "--select", "heavy", "-o", tmp_path / "rmsd") == 0
    r = read_csv(tmp_path / "rmsd.csv")
    assert r["rmsd_A"][0] < 1e-6 and 0 < r["rmsd_A"].max() < 3.0
    assert (tmp_path / "rmsd_lag.png").exists()


def test_lipids_cli_on_ideal_bilayer(tmp_path, capsys):
    import ase.io
    from analysis_builders import synthetic_bilayer
    from ase import Atoms

    numbers, x, cell, p_idx, d_pp = synthetic_bilayer(shift_z=20.0)
    ase.io.write(tmp_path / "bilayer.extxyz", Atoms(numbers=numbers, positions=x, cell=cell, pbc=True))
    assert run_cli("lipids", tmp_path / "bilayer.extxyz", "-o", tmp_path / "lip") == 0
    out = capsys.readouterr().out
    assert "area per lipid 64.00 Å² (4 per leaflet)" in out and f"D_PP {d_pp:.2f} Å" in out
    scd = read_csv(tmp_path / "lip_scd.csv")
    assert np.allclose(scd["S_CH_16C"][1:15], -0.5, atol=1e-3)


@pytest.mark.parametrize("suffix", [".h5", ".extxyz"])
def test_reads_biomlff_md_trajectory_writer(tmp_path, suffix):
    """Integration with the MD pillar's writers (H5MD: time ps, velocities Angstrom ps-1;
    extxyz: velocities Å/fs, time_ps). Skipped until biomlff.md.trajectory exists."""
    mdtraj_mod = pytest.importorskip("biomlff.md.trajectory")
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, 9, (4, 3, 3))
    vel = rng.normal(scale=0.01, size=(4, 3, 3))
    cell = np.eye(3) * 9.0
    w = mdtraj_mod.open_trajectory(tmp_path / f"t{suffix}", [8, 1, 1], periodic=True)
    for k in range(4):
        w.write(10 * k, 5.0 * k, pos[k], vel[k], cell, {"potential_energy": -float(k), "temperature": 300.0})
    w.close()
    tr = read_trajectory(tmp_path / f"t{suffix}")
    assert np.allclose(tr.positions, pos) and np.allclose(tr.velocities, vel)
    assert np.allclose(tr.times, [0.0, 5.0, 10.0, 15.0]) and np.allclose(tr.cell, cell)
    assert np.allclose(tr.info["observables"]["potential_energy"], [0.0, -1.0, -2.0, -3.0])


def test_read_xtc_with_pdb_topology_via_mdanalysis(tmp_path):
    import ase.io
    import MDAnalysis as mda
    from ase import Atoms

    rng = np.random.default_rng(4)
    pos = rng.uniform(1, 9, (3, 6, 3))
    atoms = Atoms("OH2OH2", positions=pos[0], cell=np.eye(3) * 10.0, pbc=True)
    ase.io.write(tmp_path / "top.pdb", atoms)
    u = mda.Universe(str(tmp_path / "top.pdb"))
    with mda.Writer(str(tmp_path / "t.xtc"), n_atoms=6) as w:
        for k in range(3):
            u.atoms.positions = pos[k]
            u.trajectory.ts.time = 0.002 * k  # ps
            u.dimensions = [10.0, 10.0, 10.0, 90.0, 90.0, 90.0]
            w.write(u.atoms)
    tr = read_trajectory(tmp_path / "t.xtc", topology=tmp_path / "top.pdb")
    assert tr.numbers.tolist() == [8, 1, 1, 8, 1, 1]
    assert np.allclose(tr.positions, pos, atol=0.01)  # XTC stores 0.001 nm
    assert np.allclose(tr.cell[0], np.eye(3) * 10.0, atol=1e-3)
    assert tr.topology is not None
    assert np.allclose(tr.times, [0.0, 2.0, 4.0], atol=1e-3)  # ps in the file, fs here


def test_cli_gas_phase_options_on_md22(tmp_path, shared, capsys):
    md22 = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_100frames_unlabelled.extxyz"
    assert run_cli("rdf", md22, "--gas", "--pairs", "C-H,O-O", "--rmax", "8", "-o", tmp_path / "gas") == 0
    h = read_csv(tmp_path / "gas.csv")
    width = h["r_A"][1] - h["r_A"][0]
    # C–H pairs: the covalent C–H bonds form a peak at ≈ 1.09 Å
    k = np.argmax(h["P_per_A_C-H"])
    assert abs(h["r_A"][k] - 1.09) < 2 * width
    assert 0 < np.sum(h["P_per_A_O-O"]) * width <= 1.0 + 1e-9
    # finite-difference spectrum (no velocities in the file; --timestep gives the frame spacing)
    assert run_cli("spectrum", md22, "--from-positions", "--timestep", "1.0", "-o", tmp_path / "fd") == 0
    assert run_cli("msd", md22, "--per-element", "--timestep", "1.0", "-o", tmp_path / "pe") == 0
    out = capsys.readouterr().out
    assert "H: D =" in out and "C: D =" in out
    assert run_cli("rama", md22, "--residues", "1", "-o", tmp_path / "r1") == 0
    assert read_csv(tmp_path / "r1.csv")["residue"].tolist() == [1.0] * 98
    assert run_cli("rama", md22, "--residues", "7", "-o", tmp_path / "r7") == 2
    assert "have no φ/ψ" in capsys.readouterr().err
