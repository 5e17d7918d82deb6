"""SO3LR water with Ewald/PME electrostatics against the shifted cutoff: energy and force differences
and cost per energy+forces evaluation (median of repeats after compilation).

Usage: OMP_NUM_THREADS=1 python benchmarks/ewald_water.py [--repeat 2x2x2] [--lr-cutoff 12]
       [--precision float32] [--reps 3]

The reference is electrostatics="ewald" at accuracy 1e-6 in the same precision; rows give the total
energy, the electrostatic term, |ΔE| and the RMS / max force difference against the reference, the
relative RMS force difference, and the median wall time of one energy+forces call (host pair lists
included, as in the ASE calculator)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--structure",
        default=str(Path(__file__).resolve().parents[2] / "shared/so3lr/reference/water_64.xyz"),
    )
    ap.add_argument("--repeat", default="1x1x1")
    ap.add_argument("--lr-cutoff", type=float, default=6.0)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from ase.io import read

    from biomlff.calculators import SO3LRCalculator
    from biomlff.so3lr.lattice import describe

    atoms = read(args.structure)
    atoms = atoms.repeat(tuple(int(v) for v in args.repeat.split("x")))
    print(
        f"# {len(atoms)} atoms, box {atoms.cell.lengths().round(3).tolist()} Å, "
        f"lr cutoff {args.lr_cutoff} Å, {args.precision}"
    )
    modes = [("ewald", 1e-6), ("cutoff", None), ("ewald", 1e-4), ("pme", 1e-4), ("pme", 1e-3)]
    results = {}
    rng = np.random.default_rng(0)
    for mode, acc in modes:
        a = atoms.copy()
        kw = {} if acc is None else {"ewald_accuracy": acc}
        a.calc = SO3LRCalculator(
            lr_cutoff=args.lr_cutoff, precision=args.precision, electrostatics=mode, **kw
        )
        t0 = time.perf_counter()
        f = a.get_forces()
        e = a.get_potential_energy()
        terms = a.calc.get_property("energy_terms", a)
        t_first = time.perf_counter() - t0
        times = []
        for _ in range(args.reps):
            b = a.copy()
            b.calc = a.calc
            b.positions += rng.normal(scale=1e-4, size=b.positions.shape)
            t0 = time.perf_counter()
            b.get_forces()
            times.append(time.perf_counter() - t0)
        results[(mode, acc)] = (e, float(terms["electrostatics"]), f, t_first, float(np.median(times)))
        print(f"# {mode} {acc}: {describe(a.calc.potential.info['ewald'])}", flush=True)
    e0, el0, f0, _, _ = results[("ewald", 1e-6)]
    print(
        f"{'mode':8s} {'acc':>6s} {'E (eV)':>14s} {'E_el (eV)':>12s} {'|ΔE| eV':>10s} {'RMS ΔF':>9s} "
        f"{'max ΔF':>9s} {'rel RMS':>9s} {'first s':>8s} {'median s':>9s}"
    )
    for (mode, acc), (e, el, f, tf, tm) in results.items():
        d = f - f0
        rms = float(np.sqrt(np.mean(d**2)))
        print(
            f"{mode:8s} {acc if acc else '-':>6} {e:14.4f} {el:12.4f} {abs(e - e0):10.2e} {rms:9.2e} "
            f"{np.abs(d).max():9.2e} {rms / np.sqrt(np.mean(f0**2)):9.2e} {tf:8.1f} {tm:9.3f}"
        )


if __name__ == "__main__":
    main()
