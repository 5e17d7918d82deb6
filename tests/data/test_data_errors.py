"""Bad input: each case gives a DataError whose message names the file, the frame and the field."""

import h5py
import numpy as np
import pytest

from biomlff.data import Dataset, read_dataset, write_dataset
from biomlff.errors import DataError


def water_npz(path, n_frames=3, **override):
    """A valid sGDML dataset of water frames; ``override`` replaces or removes (None) keys."""
    R = np.tile(np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]]), (n_frames, 1, 1))
    R = R + np.arange(n_frames)[:, None, None] * 0.01
    d = {
        "R": R,
        "z": np.array([8, 1, 1]),
        "E": np.zeros((n_frames, 1)),
        "F": np.zeros((n_frames, 3, 3)),
        "e_unit": np.array("kcal/mol"),
        "r_unit": np.array("Ang"),
        "name": np.array("water"),
    }
    for k, v in override.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    np.savez(path, **d)
    return path


def xyz_text(frames):
    out = []
    for i, atoms in enumerate(frames):
        out.append(f"{len(atoms)}\nProperties=species:S:1:pos:R:3:forces:R:3 energy={-1.0 - i}\n")
        for s, (x, y, z) in atoms:
            out.append(f"{s} {x} {y} {z} 0.1 0.2 0.3\n")
    return "".join(out)


WATER = [("O", (0, 0, 0)), ("H", (0, 0.757, 0.586)), ("H", (0, -0.757, 0.586))]


def test_missing_key(tmp_path):
    p = water_npz(tmp_path / "w.npz", R=None)
    with pytest.raises(DataError, match=r"w\.npz: .*field 'R': missing"):
        read_dataset(p, fmt="sgdml")


def test_unknown_npz_layout(tmp_path):
    np.savez(tmp_path / "odd.npz", positions=np.zeros((1, 2, 3)))
    with pytest.raises(DataError, match=r"odd\.npz: .*neither the sGDML layout"):
        read_dataset(tmp_path / "odd.npz")


def test_inconsistent_shapes(tmp_path):
    p = water_npz(tmp_path / "w.npz", F=np.zeros((3, 4, 3)))
    with pytest.raises(DataError, match=r"w\.npz: field 'F': shape \(3, 4, 3\), expected \(3, 3, 3\)"):
        read_dataset(p)


def test_nan_forces_name_frame_and_atom(tmp_path):
    F = np.zeros((3, 3, 3))
    F[2, 1, 0] = np.nan
    p = water_npz(tmp_path / "w.npz", F=F)
    with pytest.raises(DataError, match=r"w\.npz: frame 2, atom 1, field 'forces': contains NaN"):
        read_dataset(p)


def test_inf_energy(tmp_path):
    E = np.zeros((3, 1))
    E[1] = np.inf
    p = water_npz(tmp_path / "w.npz", E=E)
    with pytest.raises(DataError, match=r"w\.npz: frame 1, field 'energy': contains inf"):
        read_dataset(p)


def test_atoms_too_close(tmp_path):
    R = np.tile(np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]]), (3, 1, 1))
    R[1, 2] = R[1, 0] + [0.05, 0, 0]
    p = water_npz(tmp_path / "w.npz", R=R)
    msg = r"w\.npz: frame 1, field 'positions': atoms 0 and 2 are 0\.05 Å apart"
    with pytest.raises(DataError, match=msg):
        read_dataset(p)
    assert len(read_dataset(p, min_distance=0.0)) == 3  # the check can be switched off


def test_atoms_too_close_ragged_and_periodic():
    # ragged frames take the per-frame path; the periodic one must use the minimum image
    pos = [np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.array([[0.0, 0, 0], [1.5, 0, 0], [9.95, 0, 0]])]
    with pytest.raises(DataError, match=r"frame 1, field 'positions': atoms"):
        Dataset.from_arrays(
            [[1, 1], [8, 1, 1]], pos, cell=np.diag([10.0, 10, 10]), pbc=[[False] * 3, [True] * 3]
        )
    Dataset.from_arrays([[1, 1], [8, 1, 1]], pos, cell=np.diag([10.0, 10, 10]), pbc=False)


def test_molecule_in_a_huge_periodic_box_reads_in_bounded_memory(shared):
    """The shipped SO3LR reference frames sit in a 999.9 Å periodic box: the overlap check used ASE's
    binned neighbour list, which asked for 13.4 GB for dha (56 atoms) and was killed; the host pair
    lists take milliseconds. The same check still finds close atoms across the boundary."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ds = read_dataset(shared / "so3lr" / "reference" / "dha.xyz")
    assert len(ds) == 1 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KB
    pos = np.array([[0.05, 5.0, 5.0], [999.87, 5.0, 5.0], [500.0, 5.0, 5.0]])
    with pytest.raises(DataError, match="atoms 0 and 1"):
        Dataset.from_arrays([1, 1, 8], pos, cell=np.eye(3) * 999.9, pbc=True)


def test_unknown_element_symbol_xyz(tmp_path):
    p = tmp_path / "bad.xyz"
    p.write_text(xyz_text([WATER, [("O", (0, 0, 0)), ("Xq", (0, 0.757, 0.586)), ("H", (0, -0.757, 0.586))]]))
    with pytest.raises(DataError, match=r"bad\.xyz: frame 1, field 'species': unknown element symbol 'Xq'"):
        read_dataset(p)


def test_unknown_element_symbol_arrays():
    with pytest.raises(DataError, match=r"atom 1, field 'atomic_numbers': unknown element symbol 'Qq'"):
        Dataset.from_arrays(["O", "Qq"], np.array([[0.0, 0, 0], [1.0, 0, 0]]))


def test_atomic_number_out_of_range(tmp_path):
    p = water_npz(tmp_path / "w.npz", z=np.array([8, 1, 130]))
    msg = r"w\.npz: frame 0, atom 2, field 'atomic_numbers': 130 is not an element"
    with pytest.raises(DataError, match=msg):
        read_dataset(p)


def test_corrupt_npz(tmp_path):
    p = water_npz(tmp_path / "w.npz")
    data = p.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.npz: cannot read as \.npz"):
        read_dataset(tmp_path / "cut.npz")
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match=r"noise\.npz: cannot read"):
        read_dataset(tmp_path / "noise.npz")


def test_corrupt_hdf5(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(300))
    with pytest.raises(DataError, match=r"x\.h5: cannot read as HDF5"):
        read_dataset(tmp_path / "x.h5")


def test_hdf5_structure_missing_field(tmp_path):
    with h5py.File(tmp_path / "q.h5", "w") as f:
        g = f.create_group("s0")
        g["atomic_numbers"] = [1, 1]
        g["positions"] = [[0.0, 0, 0], [0.74, 0, 0]]
        g = f.create_group("s1")
        g["atomic_numbers"] = [1, 1]
    with pytest.raises(DataError, match=r"q\.h5: frame 1 \('s1'\), field 'positions': missing"):
        read_dataset(tmp_path / "q.h5")


def test_hdf5_inconsistent_fields(tmp_path):
    with h5py.File(tmp_path / "q.h5", "w") as f:
        for i, extra in enumerate([True, False]):
            g = f.create_group(f"s{i}")
            g["atomic_numbers"] = [1, 1]
            g["positions"] = [[0.0, 0, 0], [0.74, 0, 0]]
            if extra:
                g["total_energy"] = -1.0
    with pytest.raises(DataError, match=r"q\.h5: frame 1 \('s1'\): fields \['energy'\] differ"):
        read_dataset(tmp_path / "q.h5")


def test_truncated_xyz(tmp_path):
    p = tmp_path / "t.xyz"
    p.write_text(xyz_text([WATER, WATER])[:-40])
    with pytest.raises(DataError, match=r"t\.xyz: frame 1: cannot parse"):
        read_dataset(p)


def test_missing_energy_unit(tmp_path):
    p = water_npz(tmp_path / "w.npz", e_unit=None)
    with pytest.raises(DataError, match=r"w\.npz: field 'e_unit': missing, so the energy unit is unknown"):
        read_dataset(p)
    assert read_dataset(p, energy_unit="kcal/mol").metadata["source_units"]["energy"] == "kcal/mol"


def test_unknown_unit(tmp_path):
    p = water_npz(tmp_path / "w.npz", e_unit=np.array("furlongs"))
    with pytest.raises(DataError, match="unknown energy unit 'furlongs'"):
        read_dataset(p)


def test_explicit_xyz_key_missing(tmp_path):
    p = tmp_path / "k.xyz"
    p.write_text(xyz_text([WATER]))
    with pytest.raises(DataError, match=r"k\.xyz: frame 0, field 'dipole': key 'dip' not found"):
        read_dataset(p, dipole_key="dip")


def test_label_missing_in_later_frame(tmp_path):
    p = tmp_path / "m.xyz"
    text = xyz_text([WATER, WATER]).split("\n")
    text[6] = text[6].replace("energy=-2.0", "")
    p.write_text("\n".join(text))
    with pytest.raises(DataError, match=r"m\.xyz: frame 1, field 'energy': key 'energy' missing"):
        read_dataset(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_dataset(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        read_dataset(tmp_path)


def test_write_ragged_to_sgdml_refused(tmp_path):
    ds = Dataset.from_arrays(
        [[1, 1], [8, 1, 1]],
        [np.array([[0.0, 0, 0], [0.74, 0, 0]]), np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0]])],
    )
    with pytest.raises(DataError, match="same atoms in every frame"):
        write_dataset(ds, tmp_path / "r.npz")
    assert not (tmp_path / "r.npz").exists()


def test_bad_multiplicity():
    with pytest.raises(DataError, match=r"frame 0, field 'multiplicity': 0"):
        Dataset.from_arrays([1, 1], np.array([[0.0, 0, 0], [0.74, 0, 0]]), multiplicity=0)
