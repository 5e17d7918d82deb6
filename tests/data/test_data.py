"""Data layer: Dataset API, readers/writers and round trips on the shared MD17/rMD17/MD22 files,
QCell-schema HDF5, splits and atomic writes."""

import hashlib

import ase.units
import h5py
import numpy as np
import pytest

from biomlff import units
from biomlff.data import Dataset, make_split, read_dataset, split_from_indices, write_dataset
from biomlff.data.qcell import iter_qcell, read_qcell, read_qcell_metadata, structure_names
from biomlff.data.splits import Split
from biomlff.errors import DataError

KCAL = ase.units.kcal / ase.units.mol  # eV per kcal/mol, independent of biomlff.units


@pytest.fixture(scope="module")
def paths(shared):
    d = shared / "datasets"
    return {
        "rmd17": d / "rmd17" / "rmd17_ethanol_train_01.npz",
        "md17": d / "md17_ethanol_2000_sgdml_layout.npz",
        "md22": d / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz",
        "md22u": d / "md22" / "md22_Ac-Ala3-NHMe_100frames_unlabelled.extxyz",
    }


def rich_dataset(n_frames=4, seed=0):
    """Ragged frames (3, 5, 4, 6 atoms...) with every core label, some periodic."""
    rng = np.random.default_rng(seed)
    zs, pos, forces, hir, pq = [], [], [], [], []
    for i in range(n_frames):
        n = 3 + (2 * i) % 5 + (i % 2)
        zs.append(rng.choice([1, 6, 7, 8, 16], size=n))
        grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
        pos.append(grid * 1.5 + rng.normal(scale=0.05, size=(n, 3)))
        forces.append(rng.normal(size=(n, 3)))
        hir.append(rng.uniform(0.5, 1.0, n))
        pq.append(rng.normal(scale=0.3, size=n))
    cell = np.zeros((n_frames, 3, 3))
    pbc = np.zeros((n_frames, 3), bool)
    cell[1] = np.diag([8.0, 9.0, 10.0])
    pbc[1] = True
    return Dataset.from_arrays(
        zs,
        pos,
        energy=rng.normal(size=n_frames) * 10 - 100,
        forces=forces,
        charge=np.arange(n_frames) % 3 - 1,
        multiplicity=np.array([1, 2, 1, 3, 1, 2] * 4)[:n_frames],
        dipole=rng.normal(size=(n_frames, 3)),
        hirshfeld_ratios=hir,
        partial_charges=pq,
        cell=cell,
        pbc=pbc,
        name="rich",
        theory="synthetic",
    )


# ------------------------------------------------------------------------------ Dataset API
def test_from_arrays_layouts_and_access():
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(3, 4, 3)) * 2
    pos[:, :, 0] += np.arange(4) * 3.0  # keep atoms apart
    ds = Dataset.from_arrays(
        ["C", "H", "H", "O"],
        pos,
        energy=[[1.0], [2.0], [3.0]],
        forces=np.ones((3, 4, 3)),
        charge=0,
        multiplicity=1,
    )
    assert len(ds) == 3 and ds.is_fixed_composition
    assert ds.atomic_numbers.tolist() == [6, 1, 1, 8] * 3
    np.testing.assert_array_equal(ds.n_atoms, [4, 4, 4])
    np.testing.assert_array_equal(ds.stacked("positions"), pos)
    np.testing.assert_array_equal(ds.energy, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ds.charge, [0, 0, 0])
    f = ds.frame(1)
    np.testing.assert_array_equal(f["positions"], pos[1])
    assert f["energy"] == 2.0 and f["forces"].shape == (4, 3)
    sub = ds.subset([2, 0])
    np.testing.assert_array_equal(sub.stacked("positions"), pos[[2, 0]])
    np.testing.assert_array_equal(sub.energy, [3.0, 1.0])
    atoms = ds.to_atoms(2)
    assert atoms.calc is None  # labels are plain info/arrays, never a calculator
    assert atoms.info["energy"] == 3.0 and atoms.get_chemical_symbols() == ["C", "H", "H", "O"]


def test_ragged_storage_is_concatenated():
    ds = rich_dataset(5)
    n = ds.n_atoms
    assert len(set(n.tolist())) > 1 and not ds.is_fixed_composition
    assert ds.positions.shape == (n.sum(), 3) and ds.forces.shape == (n.sum(), 3)
    np.testing.assert_array_equal(ds.offsets, np.concatenate([[0], np.cumsum(n)]))
    sub = ds.subset([4, 1, 3])
    for k, i in enumerate([4, 1, 3]):
        a, b = sub.frame(k), ds.frame(i)
        for key in b:
            np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(DataError, match="cannot stack"):
        ds.stacked("forces")


def test_content_hash_tracks_data_not_format(tmp_path):
    ds = rich_dataset()
    h = ds.content_hash()
    write_dataset(ds, tmp_path / "a.h5")
    assert read_dataset(tmp_path / "a.h5").content_hash() == h
    ds2 = rich_dataset()
    ds2.atom_data["forces"][0, 0] += 1e-9
    assert ds2.content_hash() != h


# ------------------------------------------------------------------------------ rMD17
def test_rmd17_explicit_label_choice_and_units(paths):
    raw = np.load(paths["rmd17"])
    new = read_dataset(paths["rmd17"], energy_key="energies")
    old = read_dataset(paths["rmd17"], energy_key="old_energies")
    np.testing.assert_array_equal(new.energy, raw["energies"] * KCAL)
    np.testing.assert_array_equal(new.stacked("forces"), raw["forces"] * KCAL)
    np.testing.assert_array_equal(old.energy, raw["old_energies"] * KCAL)
    np.testing.assert_array_equal(old.stacked("forces"), raw["old_forces"] * KCAL)
    np.testing.assert_array_equal(new.stacked("positions"), raw["coords"])
    np.testing.assert_array_equal(new.frame_data["md17_index"], raw["old_indices"])
    assert not np.allclose(new.energy, old.energy)  # different labels, never mixed
    assert new.metadata["source_units"]["energy"] == "kcal/mol"
    with pytest.raises(DataError, match="choose one"):
        read_dataset(paths["rmd17"])
    with pytest.raises(DataError, match="mix"):
        read_dataset(paths["rmd17"], energy_key="energies", forces_key="old_forces")


def test_rmd17_to_sgdml_and_extxyz_and_back(paths, tmp_path):
    ds = read_dataset(paths["rmd17"], energy_key="energies")
    write_dataset(ds, tmp_path / "e.npz", energy_unit="kcal/mol")
    raw = np.load(paths["rmd17"])
    out = np.load(tmp_path / "e.npz")
    assert str(out["e_unit"]) == "kcal/mol" and str(out["r_unit"]) == "Ang"
    np.testing.assert_allclose(out["E"][:, 0], raw["energies"], rtol=1e-15)
    np.testing.assert_allclose(out["F"], raw["forces"], rtol=1e-14, atol=1e-12)
    back = read_dataset(tmp_path / "e.npz")
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-15)
    write_dataset(ds.subset(range(20)), tmp_path / "e.xyz")
    x = read_dataset(tmp_path / "e.xyz")
    assert x.metadata["source_units"]["energy"].startswith("eV")
    np.testing.assert_allclose(x.energy, ds.energy[:20], rtol=1e-15)  # energies written with repr
    np.testing.assert_allclose(x.stacked("forces"), ds.stacked("forces")[:20], atol=1e-8)


# ------------------------------------------------------------------------------ sGDML
def test_sgdml_units_required_and_converted(paths, tmp_path):
    raw = np.load(paths["md17"])
    assert "e_unit" not in raw.files  # this file does not say: the user must
    with pytest.raises(DataError, match="e_unit.*missing.*--energy-unit"):
        read_dataset(paths["md17"])
    ds = read_dataset(paths["md17"], energy_unit="kcal/mol")
    np.testing.assert_array_equal(ds.energy, raw["E"][:, 0] * KCAL)
    np.testing.assert_array_equal(ds.stacked("forces"), raw["F"] * KCAL)
    np.testing.assert_array_equal(ds.stacked("positions"), raw["R"])
    assert ds.atomic_numbers[:9].tolist() == raw["z"].tolist()
    # written in eV with unit strings; read back without any option
    write_dataset(ds, tmp_path / "ev.npz")
    out = np.load(tmp_path / "ev.npz")
    assert str(out["e_unit"]) == "eV" and out["E"].shape == (2000, 1)
    np.testing.assert_array_equal(out["E"][:, 0], ds.energy)
    back = read_dataset(tmp_path / "ev.npz")
    assert back.equals(ds)
    # a stated unit that contradicts the file is refused
    with pytest.raises(DataError, match="file says"):
        read_dataset(tmp_path / "ev.npz", energy_unit="kcal/mol")
    # Hartree/Bohr file: positions and forces converted with the file's units
    hb = {k: out[k] for k in out.files}
    hb.update(
        R=out["R"] / ase.units.Bohr,
        E=out["E"] / ase.units.Hartree,
        F=out["F"] / (ase.units.Hartree / ase.units.Bohr),
        e_unit=np.array("Hartree"),
        r_unit=np.array("bohr"),
    )
    np.savez(tmp_path / "hb.npz", **hb)
    hbd = read_dataset(tmp_path / "hb.npz")
    np.testing.assert_allclose(hbd.stacked("positions"), ds.stacked("positions"), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(hbd.stacked("forces"), ds.stacked("forces"), rtol=1e-13, atol=1e-12)


def test_sgdml_md5_and_lattice(tmp_path):
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, 6, size=(3, 5, 3))
    pos[:, :, 0] = np.arange(5) * 1.2
    cell = np.array([[6.0, 0, 0], [0.5, 7.0, 0], [0, 0, 8.0]])
    ds = Dataset.from_arrays(
        [8, 1, 1, 8, 1],
        pos,
        energy=rng.normal(size=3),
        forces=rng.normal(size=(3, 5, 3)),
        cell=cell,
        pbc=True,
    )
    write_dataset(ds, tmp_path / "p.npz")
    out = np.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(out["lattice"], cell.T)  # sGDML: lattice vectors are columns
    # sGDML fingerprint, recomputed here independently: md5 over the md5 digests of z, R, E, F
    digest = b"".join(hashlib.md5(out[k].tobytes()).digest() for k in ("z", "R", "E", "F"))
    assert str(out["md5"]) == hashlib.md5(digest).hexdigest()
    back = read_dataset(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.cell[0], cell)
    assert back.pbc.all() and back.equals(ds)


# ------------------------------------------------------------------------------ MD22 extxyz
def test_md22_xyz_energy_units_exact(paths):
    ds = read_dataset(paths["md22"], energy_key="Energy", energy_unit="kcal/mol")
    assert len(ds) == 5 and ds.n_atoms.tolist() == [42] * 5
    assert ds.energy[0] == -620726.002662 * units.kcal_mol
    assert ds.energy[0] == pytest.approx(-620726.002662 * KCAL, rel=0, abs=0)
    # first atom of frame 0: "H 2.04866 3.0397 -1.90538 1.07102 1.79039 -3.86023"
    assert ds.atomic_numbers[0] == 1
    np.testing.assert_array_equal(ds.positions[0], [2.04866, 3.0397, -1.90538])
    np.testing.assert_array_equal(ds.forces[0], np.array([1.07102, 1.79039, -3.86023]) * KCAL)
    # without the explicit key the energy label is simply absent (ASE's default key is 'energy')
    plain = read_dataset(paths["md22"], energy_unit="kcal/mol")
    assert plain.energy is None and plain.forces is not None
    with pytest.raises(DataError, match="key 'energy' not found.*Energy"):
        read_dataset(paths["md22"], energy_key="energy", energy_unit="kcal/mol")


def test_md22_convert_chain_round_trip(paths, tmp_path):
    ds = read_dataset(paths["md22"], energy_key="Energy", energy_unit="kcal/mol")
    write_dataset(ds, tmp_path / "a.npz", energy_unit="kcal/mol")
    a = read_dataset(tmp_path / "a.npz")
    assert np.load(tmp_path / "a.npz")["E"][0, 0] == pytest.approx(-620726.002662, rel=1e-15)
    write_dataset(a, tmp_path / "b.h5")
    b = read_dataset(tmp_path / "b.h5")
    write_dataset(b, tmp_path / "c.extxyz")
    c = read_dataset(tmp_path / "c.extxyz")
    for other in (a, b, c):
        np.testing.assert_allclose(other.energy, ds.energy, rtol=1e-15)
        np.testing.assert_allclose(other.forces, ds.forces, rtol=1e-12, atol=1e-8)
        np.testing.assert_allclose(other.positions, ds.positions, atol=1e-8)
    assert b.equals(a)  # HDF5 is lossless


def test_unlabelled_extxyz_keeps_extras(paths):
    ds = read_dataset(paths["md22u"])
    assert len(ds) == 98 and ds.energy is None and ds.forces is None
    assert ds.atom_data["displacements"].shape == (98 * 42, 3)
    np.testing.assert_array_equal(ds.frame_data["timestep"], 2.0)


def test_extxyz_ignores_other_results_and_reads_charge(tmp_path):
    text = (
        "2\nProperties=species:S:1:pos:R:3:forces:R:3:REF_forces:R:3 energy=-5.0 REF_energy=-7.5 "
        'charge=1 multiplicity=2 pbc="F F F"\n'
        "O 0 0 0 1 1 1 2 2 2\nH 0 0 0.97 -1 -1 -1 -2 -2 -2\n"
    )
    (tmp_path / "r.xyz").write_text(text)
    ds = read_dataset(tmp_path / "r.xyz", energy_key="REF_energy", forces_key="REF_forces")
    assert ds.energy.tolist() == [-7.5]
    np.testing.assert_array_equal(ds.forces, [[2, 2, 2], [-2, -2, -2]])
    assert ds.charge.tolist() == [1] and ds.multiplicity.tolist() == [2]


def test_extxyz_rich_round_trip(tmp_path):
    ds = rich_dataset()
    write_dataset(ds, tmp_path / "r.xyz")
    back = read_dataset(tmp_path / "r.xyz")
    assert sorted(back.fields) == sorted(ds.fields)
    assert back.equals(ds, atol=1e-8)
    assert back.pbc[1].all() and not back.pbc[0].any()


# ------------------------------------------------------------------------------ QCell HDF5
QCELL_FRAME = (
    "total_energy",
    "formation_energy",
    "homo_energy",
    "lumo_energy",
    "charge",
    "mbd_energy",
    "xc_energy",
)
QCELL_ATOM = ("hirshfeld_ratios", "c6_ratios", "a0_ratios")


def write_qcell_by_hand(path, n_atoms=(3, 7, 5, 12)):
    """A file in the documented QCell layout, written with h5py only (independent of biomlff)."""
    rng = np.random.default_rng(7)
    ref = []
    with h5py.File(path, "w") as f:
        m = f.create_group("metadata")
        fae = np.full(119, np.nan)
        fae[[1, 6, 7, 8]] = [-13.6, -1029.0, -1484.0, -2041.0]
        m.create_dataset("free_atom_energy", data=fae)
        settings = "xc pbe0\nmany_body_dispersion_nl"
        m.create_dataset("fhi_aims_settings", data=settings, dtype=h5py.string_dtype())
        for i, n in enumerate(n_atoms):
            rec = {
                "atomic_numbers": rng.choice([1, 6, 7, 8], n),
                "positions": np.arange(n)[:, None] * np.array([1.1, 0.3, 0.2]) + rng.normal(0, 0.01, (n, 3)),
                "total_forces": rng.normal(size=(n, 3)),
                "mbd_forces": rng.normal(size=(n, 3)) * 0.01,
                "dipole": rng.normal(size=3),
                "quadrupole": rng.normal(size=(3, 3)),
                **{k: rng.normal() for k in QCELL_FRAME},
                **{k: rng.uniform(0.5, 1, n) for k in QCELL_ATOM},
            }
            rec["charge"] = float(i % 2)
            g = f.create_group(f"struct{i:03d}")
            for k, v in rec.items():
                g.create_dataset(k, data=v)
            g.create_dataset("source", data=f"fragment-{i}", dtype=h5py.string_dtype())
            rec["source"] = f"fragment-{i}"
            ref.append(rec)
    return ref


def test_qcell_read_schema(tmp_path):
    ref = write_qcell_by_hand(tmp_path / "q.h5")
    ds = read_dataset(tmp_path / "q.h5")
    assert len(ds) == 4 and ds.n_atoms.tolist() == [3, 7, 5, 12]
    for i, rec in enumerate(ref):
        f = ds.frame(i)
        np.testing.assert_array_equal(f["atomic_numbers"], rec["atomic_numbers"])
        np.testing.assert_array_equal(f["positions"], rec["positions"])
        assert f["energy"] == rec["total_energy"]  # eV, no conversion
        np.testing.assert_array_equal(f["forces"], rec["total_forces"])
        np.testing.assert_array_equal(f["mbd_forces"], rec["mbd_forces"])  # per-atom component
        np.testing.assert_array_equal(f["quadrupole"], rec["quadrupole"])
        for k in QCELL_FRAME[1:]:
            assert f[k] == rec[k], k
        for k in QCELL_ATOM:
            np.testing.assert_array_equal(f[k], rec[k])
        assert f["source"] == rec["source"]
    assert ds.metadata["fhi_aims_settings"].startswith("xc pbe0")
    assert ds.metadata["free_atom_energy"][6] == -1029.0


def test_qcell_write_read_identical_and_layout(tmp_path):
    write_qcell_by_hand(tmp_path / "q.h5")
    ds = read_dataset(tmp_path / "q.h5")
    write_dataset(ds, tmp_path / "w.h5")
    back = read_dataset(tmp_path / "w.h5")
    assert back.equals(ds) and back.content_hash() == ds.content_hash()
    np.testing.assert_array_equal(back.metadata["free_atom_energy"], ds.metadata["free_atom_energy"])
    assert back.metadata["fhi_aims_settings"] == ds.metadata["fhi_aims_settings"]
    with h5py.File(tmp_path / "w.h5") as f:  # the documented layout
        names = [k for k in f if k != "metadata"]
        assert names == ["00000000", "00000001", "00000002", "00000003"]
        g = f["00000001"]
        assert g["total_energy"].shape == () and g["total_forces"].shape == (7, 3)
        assert {"hirshfeld_ratios", "c6_ratios", "a0_ratios", "dipole", "quadrupole", "source"} <= set(g)
    # rich ragged dataset with cell/pbc/multiplicity/partial charges also round-trips exactly
    rich = rich_dataset(6)
    write_dataset(rich, tmp_path / "rich.h5")
    assert read_dataset(tmp_path / "rich.h5").equals(rich)


def test_qcell_streaming_and_selection(tmp_path):
    write_qcell_by_hand(tmp_path / "q.h5")
    it = iter_qcell(tmp_path / "q.h5")
    first = next(it)  # a generator: one structure at a time
    assert first["_name"] == "struct000" and first["positions"].shape == (3, 3)
    assert structure_names(tmp_path / "q.h5") == ["struct000", "struct001", "struct002", "struct003"]
    part = read_qcell(tmp_path / "q.h5", index=[3, 1])
    full = read_dataset(tmp_path / "q.h5")
    assert part.n_atoms.tolist() == [12, 7]
    np.testing.assert_array_equal(part.energy, full.energy[[3, 1]])
    assert read_qcell_metadata(tmp_path / "q.h5")["free_atom_energy"].shape == (119,)


# ------------------------------------------------------------------------------ splits
def test_random_split_seeded_disjoint_and_recorded(tmp_path):
    ds = rich_dataset(6).subset([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])  # 10 frames
    s1 = make_split(ds, 5, 2, seed=3)
    s2 = make_split(ds, 5, 2, seed=3)
    s3 = make_split(ds, 5, 2, seed=4)
    np.testing.assert_array_equal(s1.train, s2.train)
    assert not np.array_equal(s1.train, s3.train) or not np.array_equal(s1.valid, s3.valid)
    allidx = np.concatenate([s1.train, s1.valid, s1.test])
    assert sorted(allidx.tolist()) == list(range(10))  # disjoint and complete
    s1.save(tmp_path / "s.json")
    loaded = Split.load(tmp_path / "s.json")
    np.testing.assert_array_equal(loaded.test, s1.test)
    assert loaded.source_hash == ds.content_hash()
    parts = loaded.apply(ds)
    np.testing.assert_array_equal(parts["valid"].energy, ds.energy[s1.valid])
    with pytest.raises(DataError, match="content hash"):
        loaded.apply(rich_dataset(10, seed=1))
    frac = make_split(ds, 0.5, 0.2, 0.3, seed=0)
    assert (frac.train.size, frac.valid.size, frac.test.size) == (5, 2, 3)


def test_explicit_split_checks():
    ds = rich_dataset(6)
    s = split_from_indices(ds, [0, 1, 2], [3], [4, 5])
    assert s.method == "indices" and s.test.tolist() == [4, 5]
    with pytest.raises(DataError, match="train and test share"):
        split_from_indices(ds, [0, 1], [2], [1])
    with pytest.raises(DataError, match="out of range"):
        split_from_indices(ds, [0, 6])
    with pytest.raises(DataError, match="duplicates"):
        split_from_indices(ds, [0, 0])
    with pytest.raises(DataError, match="exceed"):
        make_split(ds, 5, 2)


# ------------------------------------------------------------------------------ atomic writes
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    ds = rich_dataset()
    target = tmp_path / "out.h5"
    target.write_text("previous content")
    import biomlff.data.qcell as q

    calls = {"n": 0}
    real = q._write_value

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(q, "_write_value", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(ds, target)
    assert target.read_text() == "previous content"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary left behind

    def broken_savez(file, **arrays):
        with open(file, "wb") as fh:
            fh.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", broken_savez)
    fixed = ds.subset([0])
    with pytest.raises(KeyboardInterrupt):
        write_dataset(fixed, tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_example_dataset_is_shipped():
    from biomlff.data import example_path

    p = example_path()
    assert p.is_file()
    ds = read_dataset(p)
    assert len(ds) == 50 and ds.metadata["source_units"]["energy"] == "kcal/mol"
    assert ds.name == "ethanol"


def test_index_selection_every_format(paths, tmp_path):
    full = read_dataset(paths["md22"], energy_key="Energy", energy_unit="kcal/mol")
    write_dataset(full, tmp_path / "m.h5")
    write_dataset(full, tmp_path / "m.npz")
    for p, kw in (
        (paths["md22"], {"energy_key": "Energy", "energy_unit": "kcal/mol"}),
        (tmp_path / "m.h5", {}),
        (tmp_path / "m.npz", {}),
    ):
        cases = ((2, [2]), ("1:4", [1, 2, 3]), ([4, 0], [4, 0]), (slice(None, None, 2), [0, 2, 4]))
        for index, want in cases:
            sub = read_dataset(p, index=index, **kw)
            np.testing.assert_allclose(sub.energy, full.energy[want], rtol=1e-15, err_msg=f"{p} {index}")


def test_extxyz_kcal_mol_converts_every_energy_and_force_field(tmp_path):
    write_qcell_by_hand(tmp_path / "q.h5")
    ds = read_dataset(tmp_path / "q.h5")
    dropped = write_dataset(ds, tmp_path / "q.xyz", energy_unit="kcal/mol")
    assert dropped == []
    import ase.io

    a = ase.io.read(tmp_path / "q.xyz", index=1)
    assert a.info["formation_energy"] == pytest.approx(ds.frame_data["formation_energy"][1] / KCAL, rel=1e-15)
    np.testing.assert_allclose(a.arrays["mbd_forces"], ds.frame(1)["mbd_forces"] / KCAL, atol=1e-8)
    back = read_dataset(tmp_path / "q.xyz", energy_unit="kcal/mol")
    for k in ("energy", "formation_energy", "homo_energy", "mbd_energy"):
        np.testing.assert_allclose(back.frame_data[k], ds.frame_data[k], rtol=1e-14, err_msg=k)
    np.testing.assert_allclose(back.atom_data["mbd_forces"], ds.atom_data["mbd_forces"], atol=1e-7)
    np.testing.assert_array_equal(back.frame_data["source"], ds.frame_data["source"])
    # the sGDML layout keeps only energies, forces and the cell, and says what it dropped
    md = read_dataset(tmp_path / "q.h5", index=[0])
    assert "hirshfeld_ratios" in write_dataset(md, tmp_path / "one.npz")


def test_single_frame_and_concatenate():
    one = Dataset.from_arrays(
        [8, 1],
        np.array([[0.0, 0, 0], [0.97, 0, 0]]),
        energy=-5.0,
        forces=np.ones((2, 3)),
        dipole=[0.1, 0.2, 0.3],
        charge=-1,
    )
    assert len(one) == 1 and one.energy.tolist() == [-5.0] and one.dipole.shape == (1, 3)
    both = Dataset.concatenate([one, one.subset([0])])
    assert len(both) == 2 and both.offsets.tolist() == [0, 2, 4]
    np.testing.assert_array_equal(both.charge, [-1, -1])
    with pytest.raises(DataError, match="fields"):
        Dataset.concatenate([one, Dataset.from_arrays([1, 1], np.array([[0.0, 0, 0], [0.74, 0, 0]]))])
