"""Regenerate the figures of docs/analysis.md (one per observable) with `biomlff analyze`.

    OMP_NUM_THREADS=1 .venv/bin/python docs/figures/make_figures.py [--work DIR] [--stage NAME]

Trajectories (kept in --work, default /tmp/biomlff_figures):
* water: 64 flexible SPC/Fw waters (tests/analysis/analysis_builders.py) in a 12.4 Å box, Langevin 300 K,
  0.5 fs steps, after 0.5 ps of equilibration — a cheap test potential, not SO3LR;
* peptide: Ac-Ala3-NHMe (MD22 geometry) with SO3LR in free space, Langevin 500 K, 0.5 fs;
* helix: Ala15 (shared SO3LR reference geometry) with SO3LR, Langevin 300 K;
* bilayer: an ideal synthetic bilayer with thermal noise (tests/analysis/analysis_builders.py);
* binding: SO3LR water-dimer interaction energy along the O–O distance.
SO3LR runs use ASE's Langevin with a small calculator around the biomlff Potential (the biomlff MD
engine can write the same trajectories).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIG = ROOT / "docs" / "figures"
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))


def analyze(*args):
    cmd = [sys.executable, "-m", "biomlff", "analyze", *[str(a) for a in args]]
    print("$ biomlff analyze " + " ".join(str(a) for a in args), flush=True)
    subprocess.run(cmd, check=True)


def so3lr_calculator(numbers):
    import jax
    from ase.calculators.calculator import Calculator, all_changes

    from biomlff.neighbors import build_pairs
    from biomlff.potential import energy_and_forces
    from biomlff.so3lr.model import so3lr_potential
    from biomlff.so3lr.weights import read_params_pickle

    pot = so3lr_potential(numbers, lr_cutoff=None, params=read_params_pickle(SHARED / "so3lr" / "params.pkl"))
    ef = jax.jit(energy_and_forces(pot))

    class SO3LR(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            x = self.atoms.positions
            pairs = {k: build_pairs(x, s.cutoff, None, s.half) for k, s in pot.neighbors.items()}
            e, f = ef(x, pairs, None)
            self.results = {"energy": float(e), "forces": np.asarray(f, dtype=float)}

    return SO3LR()


def langevin(atoms, path, steps, every, dt_fs, temperature, friction_per_fs=0.01, seed=0):
    """Langevin MD with ASE, written like biomlff.md writes extxyz (velocities Å/fs, time_ps)."""
    import ase.io
    from ase import units as u
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    md = Langevin(
        atoms,
        dt_fs * u.fs,
        temperature_K=temperature,
        friction=friction_per_fs / u.fs,
        rng=np.random.default_rng(seed + 1),
        fixcm=False,
    )
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as fh:
        for k in range(steps // every + 1):
            if k:
                md.run(every)
            a = atoms.copy()
            a.calc = None
            a.arrays["velocities"] = atoms.get_velocities() / u.fs
            if "momenta" in a.arrays:
                del a.arrays["momenta"]
            a.info["step"] = k * every
            a.info["time_ps"] = k * every * dt_fs / 1000.0
            a.info["potential_energy"] = atoms.get_potential_energy()
            a.info["temperature"] = atoms.get_temperature()
            ase.io.write(fh, a, format="extxyz")
            fh.flush()
            if k % 100 == 0:
                print(
                    f"  {path.name}: step {k * every}/{steps}, T = {a.info['temperature']:.0f} K", flush=True
                )
    os.replace(tmp, path)


def stage_water(work: Path):
    import ase.io
    from analysis_builders import FlexibleWater

    traj = work / "water.extxyz"
    if not traj.exists():
        atoms = ase.io.read(SHARED / "so3lr" / "reference" / "water_64.xyz")
        atoms.calc = FlexibleWater()
        langevin(atoms, work / "water_eq.extxyz", 1000, 50, 0.5, 300.0, friction_per_fs=0.05)
        langevin(atoms, traj, 8000, 4, 0.5, 300.0, friction_per_fs=0.002, seed=5)
    analyze("rdf", traj, "--pairs", "O-O,O-H,H-H", "--intermolecular", "-o", FIG / "rdf_water")
    analyze("msd", traj, "--select", "O", "--fit", "500", "2500", "-o", FIG / "msd_water")
    analyze("spectrum", traj, "--mass-weighted", "--max-lag", "1000", "-o", FIG / "spectrum_water")


def stage_peptide(work: Path):
    import ase.io

    traj = work / "peptide.extxyz"
    if not traj.exists():
        atoms = ase.io.read(SHARED / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz", index=0)
        atoms.calc = so3lr_calculator(atoms.numbers)
        langevin(atoms, traj, 4000, 5, 0.5, 500.0, friction_per_fs=0.01)
    analyze("rama", traj, "--temperature", "500", "-o", FIG / "rama_peptide")
    analyze("rmsd", traj, "--select", "heavy", "-o", FIG / "rmsd_peptide")
    analyze("rg", traj, "-o", FIG / "rg_peptide")
    analyze("series", traj, "--observable", "potential_energy", "-o", FIG / "series_energy")


def stage_helix(work: Path):
    import ase.io

    traj = work / "helix.extxyz"
    if not traj.exists():
        atoms = ase.io.read(SHARED / "so3lr" / "reference" / "ala15_folded.xyz")
        atoms.pbc = False
        atoms.calc = so3lr_calculator(atoms.numbers)
        langevin(atoms, traj, 800, 5, 0.5, 300.0, friction_per_fs=0.01)
    analyze("dssp", traj, "-o", FIG / "dssp_ala15")


def stage_bilayer(work: Path):
    import ase.io
    from analysis_builders import synthetic_bilayer
    from ase import Atoms

    traj = work / "bilayer.extxyz"
    numbers, x, cell, _, _ = synthetic_bilayer(n_side=3, shift_z=10.0)
    rng = np.random.default_rng(0)
    lipid = np.arange(len(numbers)) // (len(numbers) // 18)  # 18 lipids of equal size
    frames = []
    for _ in range(40):
        # rigid vertical displacement of each lipid (σ = 1.5 Å) plus 0.03 Å thermal noise per atom
        dz = rng.normal(scale=1.5, size=18)[lipid]
        y = x + rng.normal(scale=0.03, size=x.shape)
        y[:, 2] += dz
        frames.append(Atoms(numbers=numbers, positions=y, cell=cell, pbc=True))
    ase.io.write(traj, frames)
    analyze("lipids", traj, "-o", FIG / "lipids_ideal")


def stage_binding(work: Path):
    import ase.io

    from biomlff.analysis import interaction_energy, plots
    from biomlff.so3lr.model import so3lr_potential
    from biomlff.so3lr.weights import read_params_pickle

    params = read_params_pickle(SHARED / "so3lr" / "params.pkl")
    dimer = ase.io.read(SHARED / "so3lr" / "reference" / "water_64.xyz")
    from biomlff.analysis.topology import bonds_from_positions, make_whole, molecule_ids

    x = make_whole(
        dimer.positions,
        dimer.cell.array,
        bonds_from_positions(dimer.numbers, dimer.positions, dimer.cell.array),
    )[0]
    mol = molecule_ids(len(x), bonds_from_positions(dimer.numbers, x))
    # the closest pair of water molecules in the box, pulled apart along their O–O axis
    o = np.nonzero(dimer.numbers == 8)[0]
    d = np.linalg.norm(x[o][:, None] - x[o][None], axis=-1) + np.eye(len(o)) * 99
    i, j = np.unravel_index(np.argmin(d), d.shape)
    a, b = np.nonzero(mol == mol[o[i]])[0], np.nonzero(mol == mol[o[j]])[0]
    axis = (x[o[j]] - x[o[i]]) / d[i, j]
    shifts = np.linspace(-0.4, 3.0, 18)
    frames = []
    for s in shifts:
        y = np.concatenate([x[a], x[b] + s * axis])
        frames.append(y)
    z = np.concatenate([dimer.numbers[a], dimer.numbers[b]])

    def build(numbers, charge, fragments=None):
        return so3lr_potential(numbers, charge=charge, lr_cutoff=None, params=params, fragments=fragments)

    res = interaction_energy(build, z, np.array(frames), [np.arange(len(a)), len(a) + np.arange(len(b))])
    r_oo = d[i, j] + shifts
    plots.write_csv(
        work / "binding_water_dimer.csv",
        {"r_OO_A": r_oo, "E_int_kcal_mol": res.interaction_kcal_mol},
        comment="SO3LR water dimer interaction energy (rigid monomers from water_64.xyz)",
    )
    plots.plot_lines(
        FIG / "binding_water_dimer.png",
        r_oo,
        {"SO3LR": res.interaction_kcal_mol},
        "O–O distance (Å)",
        "interaction energy (kcal/mol)",
        title="water dimer, SO3LR",
        hline=0.0,
        ylim=(-7.0, 8.0),
        marker="o",
    )
    print(
        f"minimum {res.interaction_kcal_mol.min():.2f} kcal/mol at {r_oo[np.argmin(res.interaction)]:.2f} Å"
    )


def stage_argon(work: Path):
    """Liquid argon with the biomlff MD engine (LJ test potential, H5MD trajectory)."""
    from test_analysis_e2e_md import argon_liquid

    traj = work / "argon.h5"
    if not traj.exists():
        argon_liquid(work / "argon.xyz")
        cmd = [
            sys.executable,
            "-m",
            "biomlff",
            "md",
            "nvt",
            str(work / "argon.xyz"),
            "--model",
            "lj",
            "--temperature",
            "94.4",
            "--dt",
            "5",
            "--steps",
            "5000",
            "--traj-every",
            "4",
            "--log-every",
            "1000",
            "--checkpoint-every",
            "0",
            "--output",
            str(traj),
        ]
        subprocess.run(cmd, check=True)
    analyze("rdf", traj, "--frames", "100:", "--bins", "120", "-o", FIG / "rdf_argon")
    analyze("msd", traj, "--frames", "100:", "-o", FIG / "msd_argon")


def stage_popc(work: Path):
    """The POPC bilayer shipped in the openmm wheel (app/data/POPC.pdb: 128 POPC + 5120 waters).
    Give its path in BIOMLFF_POPC_PDB, e.g. after `pip download openmm --no-deps` and unzipping."""
    pdb = os.environ.get("BIOMLFF_POPC_PDB")
    if not pdb:
        print("  skipped: set BIOMLFF_POPC_PDB to openmm's app/data/POPC.pdb")
        return
    analyze("lipids", pdb, "-o", FIG / "lipids_popc")


STAGES = {
    "argon": stage_argon,
    "water": stage_water,
    "peptide": stage_peptide,
    "helix": stage_helix,
    "bilayer": stage_bilayer,
    "binding": stage_binding,
    "popc": stage_popc,
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/biomlff_figures")
    p.add_argument("--stage", action="append", choices=sorted(STAGES))
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.stage or STAGES:
        print(f"== {name}", flush=True)
        STAGES[name](work)
    for extra in list(FIG.glob("*.csv")) + list(FIG.glob("*.txt")):  # keep only the figures here
        extra.unlink()


if __name__ == "__main__":
    main()
