"""SO3LR inference speed: biomlff (JAX) against so3krates-torch 0.2.1 (PyTorch, CPU), side by side.

Both are driven through their ASE calculators (host neighbour lists included), energy + forces per
call, lr cutoff 12 Å, dispersion damping 2 Å; positions are displaced slightly before every call so no
result is cached. Reported: compile/first-call time and the median of ``--repeats`` calls after one
warm-up call, for float32 and float64, and the ratio torch/biomlff. The energies of both are compared
as a sanity check (so3krates-torch adds −163.618 eV/atom, removed here). Since 2026-12-07 biomlff's
calculator reuses its 12 Å list between calls (Verlet list, 0.5 Å skin: the 1e-3 Å displacements
never trigger a rebuild, as in an optimisation or ASE MD between rebuilds) and rebuilds the 4.5 Å
list every call; so3krates-torch builds its lists on every call. The "jit ms" column below excludes
list building altogether. biomlff runs with each of
``--filters`` (exact radial filter networks and tabulated filters, biomlff.so3lr.tabulate); the peer
once per system and precision.

A second biomlff column, "jit ms", times the jitted energy + forces function alone with pair lists
built once beforehand (``biomlff.neighbors.build_pairs``): the basis on which the original SO3LR code
(JAX) was measured for issue 13 on this VM type (one core, lr 12 Å): water 1536 2.261 s (float32) and
5.124 s (float64), T4 lysozyme (2,603 atoms, free space) 3.089 s and 7.103 s. The "orig/jit" column
divides those by biomlff's time (water for ``water``, T4 for ``solvated_ala15``).

The peer runs in its own virtual environment (torch conflicts with the package's pins):

    python -m venv .venv-bench-so3lr
    .venv-bench-so3lr/bin/pip install torch==2.13.0 so3krates-torch==0.2.1 ase==3.29.0
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/so3lr_speed.py --torch-python .venv-bench-so3lr/bin/python

Systems: dha (56 atoms), ala15_folded (162 atoms), water 1536 (periodic 24.8 Å box); from
../shared/so3lr/reference. ``solvated_ala15`` is the T4-lysozyme-sized case of issue 13: ala15_folded
in a free-space water droplet cut from the tiled ``water_64`` box (waters with no atom closer than
2.0 Å to the peptide, the nearest to its centre kept until 2,603 atoms as T4 lysozyme has: 162 + 813 × 3
= 2,601), no cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared"))
TORCH_SHIFT = -163.6181182861328  # eV/atom, so3krates-torch's energy shift as it stores it (float32)
#: the original SO3LR (JAX) code, jitted energy + forces with prebuilt pair lists, one core of this VM
#: type, lr 12 Å (issue 13): seconds per call
ORIGINAL_S = {
    ("water", "float32"): 2.261,
    ("water", "float64"): 5.124,
    ("solvated_ala15", "float32"): 3.089,  # measured on T4 lysozyme, 2,603 atoms
    ("solvated_ala15", "float64"): 7.103,
}


def load_system(name: str):
    import ase.io

    ref = SHARED / "so3lr" / "reference"
    if name == "solvated_ala15":
        return solvated_peptide(ref, n_target=2603)
    if name == "water":
        atoms = ase.io.read(ref / "water_64.xyz")
        atoms.wrap()
        atoms = atoms * (2, 2, 2)
    else:
        atoms = ase.io.read(ref / f"{name}.xyz")
        atoms.set_cell(None)
        atoms.pbc = False
        # the reference files put the molecules ~500 Å from the origin, where so3krates-torch's
        # gas-phase neighbour list is pathological (7.6 s/call for dha): centre them for a fair test
        atoms.positions -= atoms.positions.mean(axis=0)
    atoms.info = {}
    atoms.arrays.pop("momenta", None)
    return atoms


def solvated_peptide(ref: Path, n_target: int):
    """ala15_folded (162 atoms) in a free-space water droplet with about ``n_target`` atoms."""
    import ase.io
    from scipy.spatial import cKDTree

    pep = ase.io.read(ref / "ala15_folded.xyz")
    pep.set_cell(None)
    pep.pbc = False
    pep.positions -= pep.positions.mean(axis=0)
    water = ase.io.read(ref / "water_64.xyz")
    water.wrap()
    # molecules of the box: O followed by its two H (checked below), made whole, then tiled 5×5×5
    sym = water.get_chemical_symbols()
    assert sym[::3] == ["O"] * (len(sym) // 3), "water_64.xyz is not in O,H,H order"
    box = water * (5, 5, 5)
    pos = box.positions.reshape(-1, 3, 3)
    cell = box.cell.array
    frac = np.linalg.solve(cell.T, (pos[:, 1:] - pos[:, :1]).reshape(-1, 3).T).T.reshape(-1, 2, 3)
    pos[:, 1:] = pos[:, :1] + (frac - np.round(frac)) @ cell  # whole molecules
    pos = pos - pos[:, 0].mean(axis=0)
    tree = cKDTree(pep.positions)
    clash = np.array([tree.query(m, k=1)[0].min() < 2.0 for m in pos])
    pos = pos[~clash]
    order = np.argsort(np.linalg.norm(pos[:, 0], axis=1))
    n_water = (n_target - len(pep)) // 3
    keep = pos[order[:n_water]]
    atoms = pep + ase.Atoms("OH2" * n_water, positions=keep.reshape(-1, 3))
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms


def time_calculator(atoms, calc, repeats: int) -> dict:
    """first-call time (s), median and all per-call times (s) of energy + forces, and the energy."""
    rng = np.random.default_rng(0)
    a = atoms.copy()
    a.calc = calc
    t = time.perf_counter()
    e = a.get_potential_energy()
    a.get_forces()
    first = time.perf_counter() - t
    a.positions += rng.normal(scale=1e-3, size=a.positions.shape)  # warm-up call
    a.get_forces()
    times = []
    for _ in range(repeats):
        a.positions += rng.normal(scale=1e-3, size=a.positions.shape)
        t = time.perf_counter()
        a.get_potential_energy()
        a.get_forces()
        times.append(time.perf_counter() - t)
    return {"first": first, "median": float(np.median(times)), "times": times, "energy": float(e)}


def run_biomlff(name: str, precision: str, repeats: int, filters: str = "exact") -> dict:
    from biomlff.calculators import SO3LRCalculator

    atoms = load_system(name)
    calc = SO3LRCalculator(lr_cutoff=12.0, dispersion_damping=2.0, precision=precision, filters=filters)
    out = time_calculator(atoms, calc, repeats)
    out["n_traces"] = calc.n_traces
    out["jit"] = time_jitted(atoms, precision, repeats, filters)
    return out


def time_jitted(atoms, precision: str, repeats: int, filters: str) -> dict:
    """Median (s) of the jitted energy + forces function alone, pair lists built once beforehand."""
    import jax
    import jax.numpy as jnp

    from biomlff.md.engine import as_pytree_fn
    from biomlff.neighbors import build_pairs
    from biomlff.potential import Potential, energy_and_forces
    from biomlff.so3lr import so3lr_potential

    with jax.enable_x64(precision == "float64"):
        pot = so3lr_potential(
            atoms.numbers, lr_cutoff=12.0, dispersion_damping=2.0, precision=precision, filters=filters
        )
        periodic = bool(atoms.pbc.any())
        cell = np.asarray(atoms.cell[:]) if periodic else None
        pos = atoms.positions % np.diag(cell) if periodic else atoms.positions
        pairs = {k: build_pairs(pos, s.cutoff, cell=cell, half=s.half) for k, s in pot.neighbors.items()}
        dt = np.float64 if precision == "float64" else np.float32
        x = jnp.asarray(pos, dt)
        c = None if cell is None else jnp.asarray(cell, dt)

        def ef(efn, r, p, c):
            return energy_and_forces(Potential(efn, pot.neighbors, pot.atomic_numbers))(r, p, c)

        f = jax.jit(ef)
        efn = as_pytree_fn(pot.energy_fn)
        jax.block_until_ready(f(efn, x, pairs, c))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(f(efn, x, pairs, c))
            times.append(time.perf_counter() - t)
    return {"median": float(np.median(times)), "times": times}


def run_torch(name: str, precision: str, repeats: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from so3krates_torch.calculator.so3 import SO3LRCalculator

    atoms = load_system(name)
    calc = SO3LRCalculator(r_max_lr=12.0, dispersion_energy_cutoff_lr_damping=2.0, default_dtype=precision)
    out = time_calculator(atoms, calc, repeats)
    out["energy"] -= TORCH_SHIFT * len(atoms)
    return out


def peer(args) -> int:
    res = run_torch(args.system, args.precision, args.repeats)
    print("RESULT " + json.dumps(res))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="dha,ala15_folded,water")
    p.add_argument("--precisions", default="float32,float64")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--filters", default="exact,tabulated", help="biomlff radial filters to time")
    p.add_argument(
        "--torch-python",
        default=str(ROOT / ".venv-bench-so3lr" / "bin" / "python"),
        help="python of the environment with so3krates-torch (empty: skip the peer)",
    )
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write all numbers to this JSON file")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin to one core (XLA keeps a second thread busy even with OMP_NUM_THREADS=1; "
        "pinning makes the comparison with the 1-thread peer fair)",
    )
    args = p.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # inherited by the peer subprocess
    if args.peer:
        return peer(args)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    pinned = "pinned to 1 core" if not args.no_pin else "not pinned"
    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"machine: {cpu}, {os.cpu_count()} cores, OMP_NUM_THREADS={omp}, {pinned}")
    print(
        f"energy + forces per call, ASE calculators, lr cutoff 12 Å; median of {args.repeats} after warm-up\n"
    )
    header = (
        f"{'system':13s} {'N':>5s} {'prec':7s} {'filters':9s} {'biomlff first/s':>15s} {'biomlff ms':>10s} "
        f"{'torch first/s':>13s} {'torch ms':>9s} {'ratio':>6s} {'|ΔE|/eV':>9s} {'jit ms':>8s} "
        f"{'orig/jit':>8s}"
    )
    print(header)
    rows = []
    for name in args.systems.split(","):
        n = len(load_system(name))
        for prec in args.precisions.split(","):
            theirs = None
            if args.torch_python:
                cmd = [
                    args.torch_python,
                    __file__,
                    "--peer",
                    "--system",
                    name,
                    "--precision",
                    prec,
                    "--repeats",
                    str(args.repeats),
                ]
                r = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
                if r.returncode == 0 and lines:
                    theirs = json.loads(lines[-1][7:])
                else:
                    print(f"  (so3krates-torch failed: {r.stderr.strip()[-300:]})")
            for filters in args.filters.split(","):
                ours = run_biomlff(name, prec, args.repeats, filters)
                t_first = f"{theirs['first']:13.2f}" if theirs else f"{'-':>13s}"
                t_med = f"{1e3 * theirs['median']:9.1f}" if theirs else f"{'-':>9s}"
                ratio = f"{theirs['median'] / ours['median']:6.1f}" if theirs else f"{'-':>6s}"
                de = f"{abs(theirs['energy'] - ours['energy']):9.1e}" if theirs else f"{'-':>9s}"
                jit = ours["jit"]["median"]
                orig = ORIGINAL_S.get((name, prec))
                oj = f"{orig / jit:8.1f}" if orig else f"{'-':>8s}"
                print(
                    f"{name:13s} {n:5d} {prec:7s} {filters:9s} {ours['first']:15.2f} "
                    f"{1e3 * ours['median']:10.1f} {t_first} {t_med} {ratio} {de} {1e3 * jit:8.1f} {oj}",
                    flush=True,
                )
                rows.append(
                    {
                        "system": name,
                        "n_atoms": n,
                        "precision": prec,
                        "filters": filters,
                        "biomlff": ours,
                        "torch": theirs,
                    }
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": cpu, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
