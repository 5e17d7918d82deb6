"""Geometry optimisation with SO3LR: biomlff's FIRE and L-BFGS against ASE's FIRE and LBFGS on biomlff's
SO3LRCalculator, side by side (same model, same precision, same fmax).

Systems: the shipped Ac-Ala3-NHMe (42 atoms) and, with ``--water``, the same peptide in a droplet of 30
unrelaxed water molecules (shipped:ac_ala3_nhme_water, 132 atoms). Gas phase, all-pairs long range.
Prints one row per optimiser: final energy (eV), max |F| (eV/Å), steps, energy/force evaluations and
the wall time of the optimisation itself (s; the compilation is done by a first evaluation before the
clock starts). ASE's FIRE and LBFGS evaluate once per step (steps + 1 evaluations); biomlff's L-BFGS
counts its line-search evaluations too.

    python benchmarks/optimize.py [--precision float32 float64] [--fmax 0.05] [--water]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def ase_run(path, opt_cls, calc, fmax, max_steps):
    from ase.io import read

    atoms = read(path)
    atoms.calc = calc
    atoms.get_potential_energy()  # compile (first system of this calculator) before the clock
    calc.reset()
    opt = opt_cls(atoms, logfile=None)
    t = time.perf_counter()
    opt.run(fmax=fmax, steps=max_steps)
    wall = time.perf_counter() - t
    fm = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
    return atoms.get_potential_energy(), fm, opt.nsteps, opt.nsteps + 1, wall


def biomlff_run(system, pot, method, precision, fmax, max_steps):
    from biomlff.md import optimize

    optimize(pot, system, fmax=fmax, max_steps=0, precision=precision, method=method, echo=False)  # compile
    t = time.perf_counter()
    res = optimize(
        pot, system, fmax=fmax, max_steps=max_steps, precision=precision, method=method, echo=False
    )
    wall = time.perf_counter() - t
    return res.energy, res.fmax, res.steps, res.evaluations, wall, res.method


def main() -> None:
    from ase.optimize import FIRE, LBFGS

    from biomlff.calculators import SO3LRCalculator
    from biomlff.md import read_structure, shipped_structure
    from biomlff.so3lr import so3lr_potential
    from biomlff.so3lr.weights import load_params

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", nargs="+", default=["float32", "float64"])
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--water", action="store_true", help="also the solvated peptide (132 atoms)")
    args = ap.parse_args()
    params = load_params(SHARED / "so3lr" / "params.pkl")
    names = ["ac_ala3_nhme"] + (["ac_ala3_nhme_water"] if args.water else [])
    print(f"fmax {args.fmax} eV/Å; wall times exclude compilation; {os.cpu_count()} CPUs, OMP_NUM_THREADS=1")
    print(
        f"{'system':<20} {'precision':<8} {'optimiser':<18} {'E (eV)':>12} {'max|F|':>8} {'steps':>6} "
        f"{'evals':>6} {'wall s':>7}"
    )
    for name in names:
        path = shipped_structure(name)
        system = read_structure(path)
        for precision in args.precision:
            calc = SO3LRCalculator(lr_cutoff=None, precision=precision, params=params)
            pot = so3lr_potential(system.atomic_numbers, lr_cutoff=None, precision=precision, params=params)
            rows = []
            for opt_cls in (FIRE, LBFGS):
                e, fm, steps, evals, wall = ase_run(path, opt_cls, calc, args.fmax, args.max_steps)
                rows.append((f"ASE {opt_cls.__name__}", e, fm, steps, evals, wall))
            for method in ("fire", "lbfgs"):
                e, fm, steps, evals, wall, used = biomlff_run(
                    system, pot, method, precision, args.fmax, args.max_steps
                )
                rows.append((f"biomlff {used}", e, fm, steps, evals, wall))
            for label, e, fm, steps, evals, wall in rows:
                print(
                    f"{name:<20} {precision:<8} {label:<18} {e:>12.5f} {fm:>8.4f} {steps:>6d} {evals:>6d} "
                    f"{wall:>7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
