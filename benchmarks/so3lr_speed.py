"""SO3LR inference speed: biomlff (JAX) against so3krates-torch 0.2.1 (PyTorch, CPU), side by side,
and biomlff's calculator against its own jitted model (issue 26: the calculator must cost nothing
extra).

Both packages are driven through their ASE calculators (host neighbour lists included), energy +
forces per call, lr cutoff 12 Å, dispersion damping 2 Å; positions are displaced by ~1e-3 Å before
every call so no result is cached (as in an optimisation or ASE MD). Reported: first-call time
(compilation included) and the median of ``--repeats`` calls after one warm-up round, the ratio
torch/biomlff, and the energies' difference as a sanity check (so3krates-torch adds −163.618
eV/atom, removed here). biomlff's calculator keeps both pair lists between calls as Verlet lists
(0.5 Å skin: these displacements never trigger a new search) and cuts the 4.5 Å list to its cutoff
every call; so3krates-torch builds its lists on every call. biomlff runs with each of ``--filters``
(exact radial filter networks and tabulated filters, biomlff.so3lr.tabulate); the peer once per
system and precision.

"calc ms" is biomlff's calculator, "jit ms" its model alone: the calculator's potential's energy +
forces, jitted, weights and pair lists (built once at the exact cutoffs, default capacity buckets)
on the device. Every round calls each calculator and its jitted model back to back on the same
positions, all filter modes of a system in one process, orders alternating between rounds, so the
noise of a shared machine hits both alike: "calc/jit" is the calculator's overhead (goal ≤ 1.05),
and the jit columns of the filter modes compare the filters (the default, ModelSettings.resolve,
should be the faster). The original SO3LR code (JAX) was measured on the jit basis for issue 13 on
this VM type (one core, lr 12 Å): water 1536 2.261 s (float32) and 5.124 s (float64), T4 lysozyme
(2,603 atoms, free space) 3.089 s and 7.103 s; "orig/jit" divides those by biomlff's time (water for
``water``, T4 for ``solvated_ala15``).

The peer runs in its own virtual environment (torch conflicts with the package's pins); without it
the peer columns show "-" and the header says why it was skipped:

    python -m venv .venv-bench-so3lr
    .venv-bench-so3lr/bin/pip install torch==2.13.0 so3krates-torch==0.2.1 ase==3.29.0
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/so3lr_speed.py --torch-python .venv-bench-so3lr/bin/python

Systems: ethanol (9 atoms, ase.build), dha (56 atoms), ala15_folded (162 atoms), water 1536
(periodic 24.8 Å box); from ../shared/so3lr/reference. ``solvated_ala15`` is the T4-lysozyme-sized
case of issue 13: ala15_folded in a free-space water droplet cut from the tiled ``water_64`` box
(waters with no atom closer than 2.0 Å to the peptide, the nearest to its centre kept until 2,603
atoms as T4 lysozyme has: 162 + 813 × 3 = 2,601), no cell.
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
    if name == "ethanol":  # 9 atoms: the small end of the default-filter comparison
        from ase.build import molecule

        return molecule("CH3CH2OH")
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


def first_call(a) -> tuple[float, float]:
    """Time (s) of the first energy + forces of ``a`` through its calculator (compilation or model
    set-up included) and the energy (eV)."""
    t = time.perf_counter()
    e = a.get_potential_energy()
    a.get_forces()
    return time.perf_counter() - t, e


def time_calculator(atoms, calc, repeats: int) -> dict:
    """first-call time (s), median and all per-call times (s) of energy + forces, and the energy."""
    rng = np.random.default_rng(0)
    a = atoms.copy()
    a.calc = calc
    first, e = first_call(a)
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


def jitted_call(calc, atoms, precision: str):
    """The calculator's model alone: its potential's energy + forces, jitted, with the weights on the
    device and the pair lists built once at their exact cutoffs (``biomlff.neighbors.build_pairs``,
    default capacity buckets) and put on the device. Returns ``call(positions) -> None`` (blocks
    until the result is ready); the first call compiles."""
    import jax
    import jax.numpy as jnp

    from biomlff.md.engine import as_pytree_fn
    from biomlff.neighbors import build_pairs
    from biomlff.potential import Potential, energy_and_forces
    from biomlff.precision import dtype_of, precision_context

    pot = calc.potential
    periodic = bool(atoms.pbc.any())
    cell = np.asarray(atoms.cell[:]) if periodic else None
    pos = atoms.positions % np.diag(cell) if periodic else atoms.positions
    dt = dtype_of(precision)
    with precision_context(precision):
        pairs = jax.device_put(
            {k: build_pairs(pos, s.cutoff, cell=cell, half=s.half) for k, s in pot.neighbors.items()}
        )
        efn = jax.device_put(as_pytree_fn(pot.energy_fn))
        c = None if cell is None else jnp.asarray(cell, dt)

    def ef(efn, r, p, c):
        return energy_and_forces(Potential(efn, pot.neighbors, pot.atomic_numbers))(r, p, c)

    f = jax.jit(ef)

    def call(positions):
        with precision_context(precision):
            jax.block_until_ready(f(efn, positions.astype(dt), pairs, c))

    return call


def run_biomlff(name: str, precision: str, repeats: int, filters: list[str]) -> dict:
    """For each filter mode: the calculator's first call (s, compilation included) and its energy,
    then ``repeats`` rounds in which every calculator and its jitted model (:func:`jitted_call`) are
    called back to back on the same displaced positions (order alternating between rounds, so drift
    of the shared machine hits both alike). Returns per filter mode the medians (s) and all times."""
    from biomlff.calculators import SO3LRCalculator

    atoms = load_system(name)
    runs = {}
    for flt in filters:
        calc = SO3LRCalculator(lr_cutoff=12.0, dispersion_damping=2.0, precision=precision, filters=flt)
        a = atoms.copy()
        a.calc = calc
        first, e = first_call(a)
        jit = jitted_call(calc, atoms, precision)
        t = time.perf_counter()
        jit(a.positions)
        jit_first = time.perf_counter() - t
        runs[flt] = {"atoms": a, "calc": calc, "jit": jit, "first": first, "jit_first": jit_first}
        runs[flt].update(energy=float(e), calc_times=[], jit_times=[])
    rng = np.random.default_rng(0)
    for rep in range(repeats + 1):  # round 0 is a warm-up
        step = rng.normal(scale=1e-3, size=atoms.positions.shape)
        for flt in filters[:: 1 if rep % 2 else -1]:
            r = runs[flt]
            a = r["atoms"]
            a.positions += step
            order = ("calc", "jit") if rep % 4 < 2 else ("jit", "calc")
            for what in order:
                t = time.perf_counter()
                if what == "calc":
                    a.get_potential_energy()
                    a.get_forces()
                else:
                    r["jit"](a.positions)
                if rep:
                    r[f"{what}_times"].append(time.perf_counter() - t)
    out = {}
    for flt, r in runs.items():
        calc = r["calc"]
        out[flt] = {
            "first": r["first"],
            "jit_first": r["jit_first"],
            "median": float(np.median(r["calc_times"])),
            "jit_median": float(np.median(r["jit_times"])),
            # the ratio within each round (calls seconds apart): robust to slow spells of the machine
            "paired_ratio": float(np.median(np.divide(r["calc_times"], r["jit_times"]))),
            "calc_times": r["calc_times"],
            "jit_times": r["jit_times"],
            "energy": r["energy"],
            "n_traces": calc.n_traces,
            "list_builds": dict(calc.list_builds),
            "capacities": dict(calc.capacities),
        }
    return out


def run_torch(name: str, precision: str, repeats: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from so3krates_torch.calculator.so3 import SO3LRCalculator

    atoms = load_system(name)
    calc = SO3LRCalculator(r_max_lr=12.0, dispersion_energy_cutoff_lr_damping=2.0, default_dtype=precision)
    out = time_calculator(atoms, calc, repeats)
    out["energy"] -= TORCH_SHIFT * len(atoms)
    return out


def peer_status(torch_python: str) -> str | None:
    """None if the so3krates-torch peer can run, else why it is skipped."""
    if not torch_python:
        return "--torch-python is empty"
    if not Path(torch_python).exists():
        return f"{torch_python} does not exist (see the module docstring for its set-up)"
    r = subprocess.run(
        [torch_python, "-c", "import torch, so3krates_torch"], capture_output=True, text=True, timeout=300
    )
    if r.returncode:
        return f"torch / so3krates-torch do not import in {torch_python}: {r.stderr.strip()[-200:]}"
    return None


def peer(args) -> int:
    res = run_torch(args.system, args.precision, args.repeats)
    print("RESULT " + json.dumps(res))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="dha,ala15_folded,water,solvated_ala15")
    p.add_argument("--precisions", default="float32,float64")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument(
        "--filters", default="exact,tabulated", help="biomlff radial filters to time (interleaved)"
    )
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
        f"energy + forces per call, ASE calculators, lr cutoff 12 Å; median of {args.repeats} after warm-up"
    )
    skipped = peer_status(args.torch_python)
    print(f"peer so3krates-torch: {'skipped: ' + skipped if skipped else args.torch_python}")
    print(
        "calc = biomlff's ASE calculator (host lists included), jit = its jitted energy + forces alone "
        "(lists prebuilt), called back to back; calc/jit: ratio of the medians, paired: median of the "
        "ratios within a round\n"
    )
    header = (
        f"{'system':14s} {'N':>5s} {'prec':7s} {'filters':9s} {'first/s':>7s} {'calc ms':>9s} "
        f"{'jit ms':>9s} {'calc/jit':>8s} {'paired':>6s} {'torch first/s':>13s} {'torch ms':>9s} "
        f"{'torch/calc':>10s} {'|ΔE|/eV':>9s} {'orig/jit':>8s}"
    )
    print(header)
    rows = []
    filters = args.filters.split(",")
    for name in args.systems.split(","):
        n = len(load_system(name))
        for prec in args.precisions.split(","):
            theirs = None
            if not skipped:
                cmd = [args.torch_python, __file__, "--peer", "--system", name, "--precision", prec]
                r = subprocess.run([*cmd, "--repeats", str(args.repeats)], capture_output=True, text=True)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
                if r.returncode == 0 and lines:
                    theirs = json.loads(lines[-1][7:])
                else:
                    print(f"  (so3krates-torch failed: {r.stderr.strip()[-300:]})")
            ours = run_biomlff(name, prec, args.repeats, filters)
            for flt in filters:
                o = ours[flt]
                t_first = f"{theirs['first']:13.2f}" if theirs else f"{'-':>13s}"
                t_med = f"{1e3 * theirs['median']:9.1f}" if theirs else f"{'-':>9s}"
                ratio = f"{theirs['median'] / o['median']:10.2f}" if theirs else f"{'-':>10s}"
                de = f"{abs(theirs['energy'] - o['energy']):9.1e}" if theirs else f"{'-':>9s}"
                orig = ORIGINAL_S.get((name, prec))
                oj = f"{orig / o['jit_median']:8.1f}" if orig else f"{'-':>8s}"
                print(
                    f"{name:14s} {n:5d} {prec:7s} {flt:9s} {o['first']:7.1f} {1e3 * o['median']:9.1f} "
                    f"{1e3 * o['jit_median']:9.1f} {o['median'] / o['jit_median']:8.3f} "
                    f"{o['paired_ratio']:6.3f} {t_first} {t_med} {ratio} {de} {oj}",
                    flush=True,
                )
                rows.append(
                    {
                        "system": name,
                        "n_atoms": n,
                        "precision": prec,
                        "filters": flt,
                        "biomlff": o,
                        "torch": theirs,
                    }
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": cpu, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
