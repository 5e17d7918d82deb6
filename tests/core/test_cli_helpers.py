"""Library functions that the command line used to hold itself (issue #16): steering specs,
binding fragments, bilayer centre, spectrum peaks, observable units, the shared CLI helpers, and the
sGDML frames container's cell convention (rows, as everywhere in biomlff)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from biomlff import units
from biomlff.errors import ConfigError


# ------------------------------------------------------------------ steering (md)
def test_parse_steering_specs():
    from biomlff.md.steering import parse_steering

    pos = np.arange(12.0).reshape(4, 3)
    st = parse_steering(
        pulls=["0,3,10"],
        forces=["1,0.1,0,-0.2"],
        tethers=["2,0.5"],
        positions=pos,
        extra={"distance_restraints": [[0, 1, 1.5, 2.0]], "pulls": [[1, 2, 0.01]]},
    )
    # 10 pN in eV/Å: 1e-11 N · 1e-10 m/Å / 1.602176634e-19 J/eV
    assert st.pulls[0][:2] == (0, 3)
    assert st.pulls[0][2] == pytest.approx(10e-12 * 1e-10 / 1.602176634e-19, rel=1e-6)
    assert st.pulls[1] == (1, 2, 0.01)
    assert st.constant_forces == ((1, (0.1, 0.0, -0.2)),)
    assert st.tethers == ((2, (6.0, 7.0, 8.0), 0.5),)
    assert st.distance_restraints == ((0, 1, 1.5, 2.0),)
    assert not parse_steering(positions=pos).active


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"pulls": ["0,1"]}, "--pull A,B,F_pN needs 3"),
        ({"forces": ["0,1,2"]}, "--force ATOM,FX,FY,FZ needs 4"),
        ({"tethers": ["7,1.0"]}, "out of range for 4 atoms"),
        ({"tethers": ["-1,1.0"]}, "out of range for 4 atoms"),
    ],
)
def test_parse_steering_errors(kw, msg):
    from biomlff.md.steering import parse_steering

    with pytest.raises(ConfigError, match=msg):
        parse_steering(positions=np.zeros((4, 3)), **kw)


# ------------------------------------------------------------------ binding fragments (so3lr)
def test_parse_atom_ranges_and_frame_fragments():
    from biomlff.so3lr.binding import frame_fragments, parse_atom_ranges

    assert parse_atom_ranges("0-2, 5,7-7", 8) == [0, 1, 2, 5, 7]
    for bad, msg in (("0-x", "expected 0-based"), ("3-9", r"0\.\.7"), ("", r"0\.\.7")):
        with pytest.raises(ConfigError, match=msg):
            parse_atom_ranges(bad, 8)
    info = {"selection_a": [0, 1], "selection_b": [2, 3, 4], "charge_a": 1, "charge_b": -1}
    assert frame_fragments(info, 5) == ([[0, 1], [2, 3, 4]], [1.0, -1.0])
    assert frame_fragments(info, 5, ["0", "1-4"], [0.5, 0]) == ([[0], [1, 2, 3, 4]], [0.5, 0])
    assert frame_fragments({}, 5, ["0", "1", "2-4"]) == ([[0], [1], [2, 3, 4]], [0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="--fragment"):
        frame_fragments({}, 5)
    with pytest.raises(ConfigError, match="1 charges given for 2 fragments"):
        frame_fragments(info, 5, charges=[0.0])


# ------------------------------------------------------------------ analysis
def test_bilayer_center_atoms():
    from biomlff.analysis.membrane import bilayer_center_atoms

    z = np.array([8, 1, 1, 6, 15, 6, 7])
    np.testing.assert_array_equal(bilayer_center_atoms(z, [4]), [3, 5])
    np.testing.assert_array_equal(bilayer_center_atoms(np.array([8, 1, 1, 15]), [3]), [3])


def test_spectrum_peaks_of_two_oscillators():
    from biomlff.analysis.dynamics import power_spectrum, spectrum_peaks

    dt = 1.0  # fs
    t = np.arange(4000) * dt
    nu = np.array([1000.0, 3000.0]) / units.invcm_per_invfs  # 1/fs
    v = np.zeros((t.size, 2, 3))
    v[:, 0, 0] = np.cos(2 * np.pi * nu[0] * t)
    v[:, 1, 1] = 0.7 * np.cos(2 * np.pi * nu[1] * t + 0.3)
    spec = power_spectrum(v, dt)
    peaks = spectrum_peaks(spec)
    assert peaks.shape == (2,)
    np.testing.assert_allclose(peaks, [1000.0, 3000.0], atol=2 * spec.bin_width)
    assert spectrum_peaks(spec, max_wavenumber=2000.0) == pytest.approx(peaks[:1])
    assert spectrum_peaks(spec, n_peaks=1) == pytest.approx(peaks[:1])  # the stronger one


def test_guess_observable_unit():
    assert units.guess_observable_unit("potential_energy") == "eV"
    assert units.guess_observable_unit("temperature") == "K"
    assert units.guess_observable_unit("pressure") == ""


# ------------------------------------------------------------------ cli/_common
def test_common_cli_helpers(capsys):
    from biomlff.cli._common import add_command, add_command_group, csv_ints, pick

    assert csv_ints("0, 5,7", "--fixed") == [0, 5, 7]
    assert csv_ints([1, 2], "--fixed") == [1, 2]
    assert csv_ints(None, "--fixed") is None
    with pytest.raises(ConfigError, match="--fixed must be comma-separated integers"):
        csv_ints("1,a", "--fixed")
    ns = argparse.Namespace(a=1, b=2, max_memory=3.0)
    assert pick(ns, "a", "b", max_memory_gb="max_memory") == {"a": 1, "b": 2, "max_memory_gb": 3.0}

    root = argparse.ArgumentParser(prog="x")
    sub = root.add_subparsers(dest="command")
    _, group = add_command_group(sub, "grp", "a group", "the group", "grp_command", status=3)
    leaf = add_command(group, "leaf", "a leaf", "line one\nline two", "epilog\n  indented")
    leaf.set_defaults(func=lambda args: 0)
    args = root.parse_args(["grp"])
    assert args.func(args) == 3
    assert "grp_command" not in capsys.readouterr().err
    assert "line one\nline two" in leaf.format_help()  # raw description kept
    assert root.parse_args(["grp", "leaf"]).func(None) == 0


# ------------------------------------------------------------------ sGDML frames: cell rows
def test_gdml_frames_store_cell_rows_and_descriptor_uses_them():
    from ase.geometry import find_mic

    from biomlff.data import Dataset
    from biomlff.gdml.data import from_dataset
    from biomlff.gdml.descriptor import descriptor, pair_list

    cell = np.array([[10.0, 0.0, 0.0], [1.5, 11.0, 0.0], [0.5, 1.0, 12.0]])  # rows = lattice vectors
    pos = np.array([[[0.3, 0.4, 0.2], [9.6, 0.5, 0.4], [1.0, 10.8, 11.7]]] * 2)
    pos[1] += 0.05
    ds = Dataset.from_arrays(
        np.array([8, 1, 1]), pos, forces=np.zeros_like(pos), cell=np.stack([cell, cell]), pbc=[True] * 3
    )
    frames = from_dataset(ds)
    np.testing.assert_array_equal(frames.cell, cell)
    np.testing.assert_array_equal(frames.sgdml_lattice(), cell.T)
    np.testing.assert_array_equal(frames.subset([1]).cell, cell)
    a, b = pair_list(3)
    x = descriptor(frames.R, a, b, frames.sgdml_lattice())
    for k in range(2):
        _, d = find_mic(frames.R[k, a] - frames.R[k, b], cell, pbc=True)
        np.testing.assert_allclose(1.0 / x[k], d, rtol=1e-12)
