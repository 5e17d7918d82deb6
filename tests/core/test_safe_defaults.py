"""Safe by default (issue 25): what a new user meets first is never wrong or lossy.

Each test reproduces one defect of the issue with a cheap model (the Lennard-Jones test potential) or
stops before any model is compiled: existing outputs are not overwritten, unphysical dynamics stops
before it is written, impossible charge/multiplicity and hydrogen-free structures are refused, assumed
units are said, and the smaller command-line fixes (negative scientific notation, triclinic cells,
CRYST1 hints, --n-train) hold. Every bad input gives one ``biomlff: error:`` line, exit 2, and leaves
existing files byte for byte as they were.
"""

import numpy as np
import pytest

from biomlff.cli.main import main
from biomlff.md.testing import fcc_lattice


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _write(tmp_path, name, numbers, positions, **info):
    from ase import Atoms
    from ase.io import write

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.info.update(info)
    path = tmp_path / name
    write(path, atoms, format="extxyz")
    return path


ETHANOL = (
    [6, 6, 8, 1, 1, 1, 1, 1, 1],
    [
        [0.0, 0.0, 0.0],
        [1.52, 0.0, 0.0],
        [2.0, 1.35, 0.0],
        [-0.37, 1.03, 0.0],
        [-0.37, -0.51, 0.89],
        [-0.37, -0.51, -0.89],
        [1.89, -0.51, 0.89],
        [1.89, -0.51, -0.89],
        [2.96, 1.3, 0.0],
    ],
)

LJ = ["--model", "lj", "--lr-cutoff", "6", "--precision", "float64"]


# --- defect 2: no silent overwrite -------------------------------------------------------------
def test_md_refuses_to_overwrite_existing_outputs(tmp_path, argon_file, capsys):
    out = tmp_path / "run.h5md"
    base = ["md", "nvt", argon_file, *LJ, "--steps", "4", "--log-every", "2", "--traj-every", "2"]
    rc, _, se = run_cli(base + ["--output", out], capsys)
    assert rc == 0, se
    good = {p: p.read_bytes() for p in (out, tmp_path / "run.log", tmp_path / "run.chk.npz")}
    # a second run (here one that would also blow up) must not touch the good files
    rc, so, se = run_cli(base + ["--output", out, "--dt", "200"], capsys)
    assert rc == 2 and se.startswith("biomlff: error:") and "--force" in se
    assert len(se.strip().splitlines()) == 1
    assert all(p.read_bytes() == b for p, b in good.items())
    # the same for an existing log or checkpoint alone, and for md pimd (refused before any model)
    (tmp_path / "other.log").write_text("keep")
    rc, _, se = run_cli(base + ["--output", tmp_path / "other.h5md"], capsys)
    assert rc == 2 and "other.log" in se and (tmp_path / "other.log").read_text() == "keep"
    rc, _, se = run_cli(["md", "pimd", argon_file, *LJ, "--beads", "2", "--output", out], capsys)
    assert rc == 2 and "--force" in se and out.read_bytes() == good[out]
    # --force overwrites
    rc, _, se = run_cli(base + ["--output", out, "--force", "--steps", "2"], capsys)
    assert rc == 0, se and out.read_bytes() != good[out]


def test_default_trajectory_is_h5md(tmp_path, argon_file, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, se = run_cli(["md", "nve", argon_file, *LJ, "--steps", "2", "--log-every", "1"], capsys)
    assert rc == 0, se
    assert (tmp_path / "argon_nve.h5md").exists()


# --- defect 3: unphysical MD is caught before it is written -----------------------------------------
def test_guard_stops_exploding_md_before_writing(tmp_path, argon_file, capsys):
    out = tmp_path / "hot.xyz"
    args = ["md", "nve", argon_file, *LJ, "--steps", "200", "--traj-every", "1", "--log-every", "1"]
    rc, _, se = run_cli(args + ["--dt", "150", "--output", out], capsys)
    assert rc == 2, se
    assert "became unphysical at step" in se and "--dt" in se
    step = int(se.split("unphysical at step ")[1].split(":")[0])
    from ase.io import read

    frames = read(out, index=":")
    # every frame up to the last good step, none after the guard tripped; all of them sane
    assert [a.info["step"] for a in frames] == list(range(step))
    assert max(a.info["temperature"] for a in frames) < 10 * 300.0
    # the same run at a sane timestep is not stopped
    rc, _, se = run_cli(args + ["--dt", "5", "--steps", "20", "--output", tmp_path / "ok.xyz"], capsys)
    assert rc == 0, se


def test_guard_force_bound_and_disabling(tmp_path, argon_file, capsys):
    from ase.io import read

    from biomlff.md import MDSettings

    # a force bound below the starting forces of a strained lattice: refused before anything is written
    a = read(argon_file)
    a.positions[0] += [1.2, 0.0, 0.0]
    strained = tmp_path / "strained.xyz"
    a.write(strained, format="extxyz")
    out = tmp_path / "s.xyz"
    rc, _, se = run_cli(
        ["md", "nve", strained, *LJ, "--steps", "4", "--guard-max-force", "0.01", "--output", out], capsys
    )
    assert rc == 2 and "force reached" in se and not out.exists()
    rc, _, se = run_cli(
        ["md", "nve", strained, *LJ, "--steps", "4", "--guard-max-force", "0", "--output", out], capsys
    )
    assert rc == 0, se
    with pytest.raises(Exception, match="must be ≥ 0"):
        MDSettings(guard_max_force=-1).validate()


@pytest.mark.parametrize(
    "command", [["md", "nvt"], ["md", "pimd"], ["opt"]], ids=["md", "pimd", "opt"]
)
@pytest.mark.parametrize("case", ["nan", "overlap"])
def test_nan_and_overlapping_atoms_refused_everywhere(tmp_path, capsys, command, case):
    z, r = ETHANOL
    r = np.array(r)
    if case == "nan":
        r[3, 1] = np.nan
    else:
        r[4] = r[3] + [0.01, 0.0, 0.0]
    path = _write(tmp_path, "bad.xyz", z, r)
    out = tmp_path / "keep.xyz"
    out.write_text("precious")
    rc, _, se = run_cli([*command, path, "--output", out, "--force"], capsys)
    assert rc == 2 and len(se.strip().splitlines()) == 1
    assert ("non-finite coordinates" if case == "nan" else "overlapping") in se
    assert out.read_text() == "precious"


def test_calculator_refuses_nan_and_overlap():
    from ase import Atoms

    from biomlff.calculators import calculator
    from biomlff.errors import DataError

    z, r = ETHANOL
    atoms = Atoms(numbers=z, positions=r)
    atoms.calc = calculator("lj", lr_cutoff=6.0)
    atoms.positions[4] = atoms.positions[3] + [0.0, 0.01, 0.0]
    with pytest.raises(DataError, match="overlapping"):
        atoms.get_potential_energy()
    atoms.positions[4] = [np.nan, 0.0, 0.0]
    with pytest.raises(DataError, match="non-finite"):
        atoms.get_potential_energy()


# --- defect 4: one electron-count rule ------------------------------------------------------------
def test_impossible_charge_and_multiplicity_refused(tmp_path, capsys, monkeypatch):
    # refused before any weights are needed: an empty user cache
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path / "no-weights"))
    z, r = ETHANOL
    path = _write(tmp_path, "eth0.xyz", z, r)
    rc, _, se = run_cli(["md", "nvt", path, "--charge", "1", "--multiplicity", "1"], capsys)
    assert rc == 2 and "inconsistent with 25 electrons" in se
    rc, _, se = run_cli(["opt", path, "--multiplicity", "2"], capsys)
    assert rc == 2 and "inconsistent with 26 electrons" in se
    # the calculators and the labellers share the rule
    from ase import Atoms

    from biomlff.calculators import SO3LRCalculator
    from biomlff.checks import ElectronCountError
    from biomlff.labels import ElectronCountError as LabelElectronError
    from biomlff.labels import check_electrons

    atoms = Atoms(numbers=z, positions=r, info={"charge": 1})
    atoms.calc = SO3LRCalculator(lr_cutoff=None)
    with pytest.raises(ElectronCountError, match="25 electrons"):
        atoms.get_potential_energy()
    with pytest.raises(LabelElectronError, match="25 electrons"):
        check_electrons(z, 1, 1)
    assert issubclass(LabelElectronError, ElectronCountError)


# --- defect 5: hydrogens missing ----------------------------------------------------------------
def test_missing_hydrogens_detected(shared):
    from ase.io import read

    from biomlff.checks import missing_hydrogens
    from biomlff.md.structure import read_structure, shipped_structure

    crn = read(shared / "structures" / "1crn.pdb")
    assert "no hydrogen" in missing_hydrogens(crn.numbers, crn.positions)
    # a protein with its methyl hydrogens stripped (H present elsewhere) is caught by valence
    pep = read_structure(shipped_structure("ac_ala3_nhme"))
    z, r = pep.atomic_numbers, pep.positions
    from biomlff.checks import bonded_neighbors

    nb = bonded_neighbors(z, r)
    methyl_c = [i for i in range(len(z)) if z[i] == 6 and nb[i] == 4 and sum(
        1 for j in range(len(z)) if z[j] == 1 and np.linalg.norm(r[j] - r[i]) < 1.2) == 3][0]
    hs = [j for j in range(len(z)) if z[j] == 1 and np.linalg.norm(r[j] - r[methyl_c]) < 1.2]
    keep = np.setdiff1d(np.arange(len(z)), hs)
    assert "fewer than two bonded" in missing_hydrogens(z[keep], r[keep])
    # no false alarms: the peptide, water (periodic), ethanol, CO2, argon
    water = read(shared / "so3lr" / "reference" / "water_64.xyz")
    assert missing_hydrogens(z, r) is None
    assert missing_hydrogens(water.numbers, water.positions, np.array(water.cell)) is None
    assert missing_hydrogens(*ETHANOL) is None
    assert missing_hydrogens([6, 8, 8], [[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]]) is None
    assert missing_hydrogens([18, 18], [[0, 0, 0], [3.8, 0, 0]]) is None


def test_hydrogen_free_protein_refused_unless_allowed(shared, so3lr_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIOMLFF_CACHE", str(so3lr_cache))
    pdb = shared / "structures" / "1crn.pdb"
    out = tmp_path / "crn.h5md"
    rc, _, se = run_cli(["md", "nvt", pdb, "--free-space", "--output", out], capsys)
    assert rc == 2 and "hydrogens look missing" in se and "--allow-radicals" in se
    # allowed: a warning line, then the next check (here: the odd electron count of the bare protein)
    rc, _, se = run_cli(["md", "nvt", pdb, "--free-space", "--allow-radicals", "--output", out], capsys)
    assert rc == 2 and "biomlff: warning:" in se and "odd electron count" in se
    # without --free-space the crystal cell is too small: the error names CRYST1 and --free-space
    rc, _, se = run_cli(
        ["md", "nvt", pdb, "--allow-radicals", "--multiplicity", "2", "--output", out], capsys
    )
    assert rc == 2 and "--lr-cutoff" in se and "CRYST1" in se and "--free-space" in se
    assert not out.exists()


# --- defect 6: units and velocities are said ------------------------------------------------------
def test_assumed_energy_unit_is_a_warning(shared, capsys):
    import warnings

    from biomlff.data import read_dataset
    from biomlff.errors import BiomlffWarning

    md22 = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz"
    with pytest.warns(BiomlffWarning) as rec:
        read_dataset(md22)
    msgs = [str(w.message) for w in rec]
    assert any("assumed" in m for m in msgs) and any("implausibly large" in m for m in msgs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BiomlffWarning)
        ds = read_dataset(md22, energy_unit="kcal/mol")
    assert np.sqrt(np.mean(ds.forces**2)) < 10
    rc, so, se = run_cli(["data", "info", md22], capsys)
    assert rc == 0 and se.count("biomlff: warning:") == 2 and "--energy-unit" in se


def test_file_velocities_are_announced_and_can_be_replaced(tmp_path, capsys):
    from ase import Atoms
    from ase.io import write

    pos, cell = fcc_lattice(3, 5.4)
    a = Atoms(numbers=[18] * len(pos), positions=pos, cell=cell, pbc=True)
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    MaxwellBoltzmannDistribution(a, temperature_K=1000, rng=np.random.default_rng(0))
    path = tmp_path / "hot.xyz"
    write(path, a, format="extxyz")
    t_file = a.get_temperature()
    base = ["md", "nvt", path, *LJ, "--steps", "0"]
    rc, _, se = run_cli(base + ["--output", tmp_path / "a.xyz"], capsys)
    assert rc == 0 and f"T = {t_file:.1f} K" in se and "--velocities maxwell" in se
    rc, _, se = run_cli(base + ["--output", tmp_path / "b.xyz", "--velocities", "maxwell"], capsys)
    assert rc == 0 and "starting velocities" not in se
    from ase.io import read

    assert read(tmp_path / "b.xyz").info["temperature"] == pytest.approx(300.0, rel=1e-6)
    cold = _write(tmp_path, "cold.xyz", [18, 18], [[0, 0, 0], [3.8, 0, 0]])
    argv = ["md", "nvt", cold, *LJ, "--velocities", "file", "--output", tmp_path / "c.xyz"]
    rc, _, se = run_cli(argv, capsys)
    assert rc == 2 and "holds no velocities" in se


# --- defect 10: smaller fixes -------------------------------------------------------------------
def test_negative_scientific_notation_parses():
    from biomlff.cli.main import build_parser

    a = build_parser().parse_args(["md", "npt", "x.xyz", "--pressure", "-1e9", "--temperature", "-2.5E+2"])
    assert a.pressure == -1e9 and a.temperature == -250.0


def test_train_takes_n_train_and_n_valid():
    from biomlff.cli.main import build_parser

    a = build_parser().parse_args(["train", "docs/train_example.yaml", "--n-train", "40", "--n-valid", "5"])
    assert (a.n_train, a.n_valid) == (40, 5)


def test_triclinic_host_pairs_match_brute_force():
    from biomlff.geometry import minimum_image_np
    from biomlff.neighbors import pair_indices

    rng = np.random.default_rng(3)
    cell = np.array([[12.0, 0.0, 0.0], [3.5, 11.0, 0.0], [-2.0, 2.5, 12.5]])
    pos = rng.uniform(0, 1, (120, 3)) @ cell + rng.normal(0, 4, (120, 3))  # also outside the cell
    i, j = pair_indices(pos, 4.0, cell=cell, half=True)
    iu, ju = np.triu_indices(len(pos), 1)
    d = np.linalg.norm(minimum_image_np(pos[ju] - pos[iu], cell), axis=1)
    want = set(zip(iu[d < 4.0].tolist(), ju[d < 4.0].tolist(), strict=True))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want and len(i) == len(want)
    full_i, full_j = pair_indices(pos, 4.0, cell=cell, half=False)
    assert len(full_i) == 2 * len(want)


@pytest.mark.slow
def test_so3lr_triclinic_cell_equals_orthorhombic_and_energy_terms(shared):
    """A triclinic choice of the same lattice (b' = b + a) gives the same SO3LR energy, forces and
    stress as the orthorhombic one (float64, exact filters, to 1e-10), through the calculator the
    docs show; ``get_property("energy_terms")`` (the documented access) adds up to the energy."""
    from ase.io import read

    from biomlff.calculators import SO3LRCalculator

    a = read(shared / "so3lr" / "reference" / "water_64.xyz")
    a.pbc = True
    a = a.repeat((2, 1, 1))
    b = a.copy()
    c = np.array(a.cell)
    b.set_cell([c[0], c[1] + c[0], c[2]], scale_atoms=False)
    b.wrap()
    assert abs(b.cell.array[1, 0]) > 1
    res = []
    for at in (a, b):
        at.calc = SO3LRCalculator(lr_cutoff=5.0, precision="float64", filters="exact")
        res.append((at.get_potential_energy(), at.get_forces(), at.get_stress()))
    assert res[0][0] == pytest.approx(res[1][0], abs=1e-9)
    assert np.abs(res[0][1] - res[1][1]).max() < 1e-10
    assert np.abs(res[0][2] - res[1][2]).max() < 1e-12
    terms = b.calc.get_property("energy_terms", b)
    assert set(terms) == {"so3krates", "zbl", "electrostatics", "dispersion"}
    assert sum(terms.values()) == pytest.approx(res[1][0], abs=1e-8)


def test_written_extxyz_names_its_unit(shared, tmp_path):
    """biomlff's own extxyz records the energy unit, so reading it back assumes nothing."""
    import warnings

    from biomlff.data import read_dataset, write_dataset
    from biomlff.errors import BiomlffWarning

    md22 = shared / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz"
    ds = read_dataset(md22, energy_unit="kcal/mol", energy_key="Energy")
    write_dataset(ds, tmp_path / "k.xyz", energy_unit="kcal/mol")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BiomlffWarning)
        back = read_dataset(tmp_path / "k.xyz")
    assert back.metadata["source_units"]["energy"] == "kcal/mol"
    assert np.allclose(back.energy, ds.energy) and np.allclose(back.forces, ds.forces)


def test_relax_method_flag_reaches_the_minimiser_options():
    from biomlff.cli.main import build_parser
    from biomlff.cli.md import resolve_options

    a = build_parser().parse_args(["md", "nvt", "x.xyz", "--relax", "--relax-method", "fire"])
    assert resolve_options(a)["method"] == "fire"
