"""Where SO3LR's CPU time goes (issue 13): host pair lists, calculator list reuse, and XLA's own
per-operation trace of the jitted energy + forces.

1. ``pair_indices`` (``biomlff.neighbors``) at 4.5 Å and at the 12 Å long-range cutoff, with the time
   ``np.lexsort`` (the sort it used before 2026-12-07) would take on the same pairs.
2. ``SO3LRCalculator`` calls with the long-range list rebuilt every call (``skin=0``) against the
   default reused Verlet list (``skin=0.5``), alternating in one process: median ms, energy and force
   differences.
3. ``jax.profiler`` trace of the jitted energy + forces (float32, tabulated filters, pair lists built
   beforehand) read back with ``jax.profiler.ProfileData``: time per stage (message passing = blocks
   of 256 pairs, long range = blocks of 8192, the rest outside the block loops), forward and reverse,
   and the most expensive XLA operations. The sums include the profiler's overhead.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/so3lr_profile.py [--systems water]
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def host_lists(atoms) -> None:
    from scipy.spatial import cKDTree

    from biomlff.neighbors import pair_indices

    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    for cut in (4.5, 12.0):
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            i, _ = pair_indices(atoms.positions, cut, cell=cell, half=True)
            ts.append(time.perf_counter() - t)
        box = None if cell is None else np.diag(cell)
        tree = (
            cKDTree(np.mod(atoms.positions, box), boxsize=box)
            if box is not None
            else cKDTree(atoms.positions)
        )
        ij = tree.query_pairs(cut, output_type="ndarray")
        t = time.perf_counter()
        ij[np.lexsort((ij[:, 1], ij[:, 0]))]
        lex = time.perf_counter() - t
        print(f"  pair_indices {cut:4.1f} Å: {len(i):7d} pairs, {1e3 * np.median(ts):6.1f} ms median "
              f"(np.lexsort of the same pairs alone: {1e3 * lex:5.1f} ms)")  # fmt: skip


def calculator_reuse(atoms, calls: int) -> None:
    from biomlff.calculators import SO3LRCalculator

    rng = np.random.default_rng(0)
    runs = {}
    for skin in (0.0, 0.5):
        a = atoms.copy()
        a.calc = SO3LRCalculator(lr_cutoff=12.0, dispersion_damping=2.0, skin=skin)
        a.get_forces()
        runs[skin] = (a, [])
    for _ in range(calls):
        step = rng.normal(scale=1e-3, size=atoms.positions.shape)
        for a, ts in runs.values():
            a.positions += step
            t = time.perf_counter()
            a.get_potential_energy()
            a.get_forces()
            ts.append(time.perf_counter() - t)
    (a0, t0), (a1, t1) = runs[0.0], runs[0.5]
    de = abs(a0.get_potential_energy() - a1.get_potential_energy())
    print(f"  calculator, lr list rebuilt every call: {1e3 * np.median(t0):7.1f} ms median; reused "
          f"(skin 0.5 Å): {1e3 * np.median(t1):7.1f} ms; |ΔE| {de:.1e} eV, "
          f"max |ΔF| {np.abs(a0.get_forces() - a1.get_forces()).max():.1e} eV/Å; lr list builds "
          f"{a1.calc.list_builds.get('lr')} of {calls + 1} calls")  # fmt: skip


def xla_profile(atoms, repeats: int, top: int) -> None:
    import jax
    import jax.numpy as jnp
    from jax.profiler import ProfileData

    from biomlff.md.engine import as_pytree_fn
    from biomlff.neighbors import build_pairs
    from biomlff.potential import Potential, energy_and_forces
    from biomlff.so3lr import so3lr_potential

    pot = so3lr_potential(atoms.numbers, lr_cutoff=12.0, dispersion_damping=2.0, filters="tabulated")
    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    pos = atoms.positions % np.diag(cell) if cell is not None else atoms.positions
    pairs = {k: build_pairs(pos, s.cutoff, cell=cell, half=s.half) for k, s in pot.neighbors.items()}
    x = jnp.asarray(pos, jnp.float32)
    c = None if cell is None else jnp.asarray(cell, jnp.float32)
    efn = as_pytree_fn(pot.energy_fn)
    f = jax.jit(
        lambda efn, r, p, c: energy_and_forces(Potential(efn, pot.neighbors, pot.atomic_numbers))(r, p, c)
    )
    ts = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        jax.block_until_ready(f(efn, x, pairs, c))
        ts.append(time.perf_counter() - t)
    print(f"  jitted energy + forces: {1e3 * np.median(ts[1:]):.1f} ms median of {repeats} (no profiler)")
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(repeats):
                jax.block_until_ready(f(efn, x, pairs, c))
        pd = ProfileData.from_file(glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)[0])
        leaf = collections.Counter()
        for plane in pd.planes:
            for line in plane.lines:
                if line.name == "python":
                    continue
                for e in line.events:  # operations, not the executor, loop and branch containers
                    if not ("Execute" in e.name or e.name.startswith(("while", "cond"))):
                        leaf[e.name] += e.duration_ns
    hlo = f.lower(efn, x, pairs, c).compile().as_text()
    meta = dict(re.findall(r"^\s*%?([\w.\-]+) = .*?metadata=\{op_name=\"([^\"]*)\"", hlo, re.M))
    shape = dict(re.findall(r"^\s*%?([\w.\-]+) = (\S+)", hlo, re.M))
    stages = collections.Counter()
    for name, ns in leaf.items():
        md, sh = meta.get(name, ""), shape.get(name, "")
        if "while" not in md:
            stage = "outside the block loops"
        elif re.search(r"\[(\d+,)?8192", sh):
            stage = "long range (blocks of 8192)"
        elif re.search(r"\[(\d+,)?256", sh):
            stage = "message passing (blocks of 256)"
        else:
            stage = "inside loops, other shapes"
        stages[(stage, "reverse" if "transpose" in md else "forward")] += ns
    print(
        f"  profiled (with overhead): {sum(leaf.values()) / repeats / 1e6:.1f} ms per call, "
        f"{len(leaf)} operations"
    )
    for (stage, direction), ns in sorted(stages.items(), key=lambda t: -t[1]):
        print(f"    {ns / repeats / 1e6:8.1f} ms  {stage}, {direction}")
    print(f"  top {top} operations:")
    for name, ns in leaf.most_common(top):
        print(
            f"    {ns / repeats / 1e6:8.2f} ms  {name:32s} {shape.get(name, '?')[:30]:30s} "
            f"{meta.get(name, '')[-50:]}"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="water,solvated_ala15")
    p.add_argument("--calls", type=int, default=8, help="calculator calls per setting")
    p.add_argument("--repeats", type=int, default=3, help="profiled energy + forces calls")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    from so3lr_speed import load_system

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(f"machine: {cpu}; SO3LR float32, tabulated filters, lr cutoff 12 Å")
    for name in args.systems.split(","):
        atoms = load_system(name)
        print(f"{name} ({len(atoms)} atoms, {'periodic' if atoms.pbc.any() else 'free space'}):")
        host_lists(atoms)
        calculator_reuse(atoms, args.calls)
        xla_profile(atoms, args.repeats, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
