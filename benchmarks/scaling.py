"""SO3LR at scale: NVT of water boxes from 1,536 atoms upward, on any JAX device (issue 13).

Every size runs in a fresh subprocess (so that peak memory belongs to that size alone):

1. build the box (``water_64.xyz``, 192 atoms, 12.4 Å, repeated a×b×c) and the SO3LR potential
   (float32 by default, radial filters as chosen, lr cutoff 12 Å);
2. ``Simulation`` (Nosé–Hoover NVT, dt 0.5 fs, pair lists with skin maintained inside the compiled
   loop): the first ``advance`` compiles (``compile_s`` = wall time of the first 2 steps, compilation
   included); then ``--steps`` timed steps, median over ``--repeats`` blocks;
3. peak memory: peak RSS of the process (``ru_maxrss``), read after each stage (``rss_*``: after
   imports and weights, after the potential and box, after compilation, after the timed steps), and
   on accelerators the device's ``peak_bytes_in_use``.

``--mode ef`` replaces step 2 by one jitted energy + forces call with host-built pair lists
(``biomlff.neighbors``): the model's own time and memory without the MD loop's pair-list buffers.

Output: a table per size (µs/atom/step, ns/day at 0.5 fs, peak RSS, compile time), then
least-squares fits time/step = a + b·N and peak RSS = c + d·N (slope d in KB/atom). The published
SO3LR figure (3.25 µs/atom/step, one H100) is printed for reference.

    python benchmarks/scaling.py --sizes 1536 12288 24576 --steps 4 --repeats 2
    python benchmarks/scaling.py --sizes 1536 12288 98304 1038336 --steps 20   # on a GPU

Sizes are rounded to 192·a·b·c with a ≥ b ≥ c as even as possible (12288 = 4×4×4 boxes,
24576 = 8×4×4, 49152 = 8×8×4, 98304 = 8×8×8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared"))
PUBLISHED_US_ATOM_STEP = 3.25  # SO3LR paper, one H100 GPU
BASE_ATOMS = 192


def repeats_for(n_atoms: int) -> tuple[int, int, int]:
    """(a, b, c), a ≥ b ≥ c, with 192·a·b·c ≥ n_atoms: among the products within 5 % of the
    smallest possible one, the most cubic box."""
    k = max(1, int(np.ceil(n_atoms / BASE_ATOMS)))
    best = None
    top = int(np.ceil(k ** (1 / 3))) + 2
    for c in range(1, top + 1):
        for b in range(c, int(np.ceil(np.sqrt(k / c))) + 2):
            a = max(b, int(np.ceil(k / (b * c))))
            if a * b * c <= 1.05 * k:
                cand = (a - c, a * b * c, (a, b, c))
                best = cand if best is None or cand[:2] < best[:2] else best
    if best is None:  # no product within 5 %: the plain cube
        a = int(np.ceil(k ** (1 / 3)))
        return (a, a, a)
    return best[2]


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _device_peak_mb():
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # CPU devices have no memory stats
        return None
    if not stats:
        return None
    return stats.get("peak_bytes_in_use", 0) / 2**20


def worker(args) -> dict:
    import jax

    from biomlff.md import Ensemble, MDSettings, Simulation
    from biomlff.md.structure import System
    from biomlff.so3lr import so3lr_potential
    from biomlff.so3lr.weights import load_params

    params = load_params(args.params)
    out = {"rss_start_mb": _rss_mb()}
    from ase.io import read

    base = read(SHARED / "so3lr" / "reference" / "water_64.xyz")
    base.wrap()
    rep = repeats_for(args.worker)
    atoms = base.repeat(rep)
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    sysm = System.from_atoms(atoms, name=f"water{len(atoms)}")
    pot = so3lr_potential(
        sysm.atomic_numbers,
        lr_cutoff=args.lr_cutoff,
        precision=args.precision,
        params=params,
        filters=args.filters,
    )
    out.update(n_atoms=len(atoms), repeats=rep, filters=pot.info["filters"], rss_potential_mb=_rss_mb())
    if args.mode == "ef":
        return out | energy_forces(pot, atoms, args)
    ens = Ensemble(kind="nvt", dt_fs=0.5, temperature_K=300.0, tau_t_fs=50.0)
    st = MDSettings(
        steps=0,
        skin=args.skin,
        log_every=0,
        traj_every=0,
        checkpoint_every=0,
        precision=args.precision,
        pair_lists=args.pair_lists,
        echo=False,
        progress=False,
    )
    t0 = time.perf_counter()
    sim = Simulation(pot, sysm, ens, st)
    out["rss_allocated_mb"] = _rss_mb()
    sim.advance(2)
    jax.block_until_ready(sim.state["R"])
    out["compile_s"] = time.perf_counter() - t0
    out["rss_compiled_mb"] = _rss_mb()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        sim.advance(args.steps)
        jax.block_until_ready(sim.state["R"])
        times.append((time.perf_counter() - t) / args.steps)
    step_s = statistics.median(times)
    out["step_s"] = step_s
    out["us_atom_step"] = step_s / len(atoms) * 1e6
    out["ns_day"] = 0.5e-6 / step_s * 86400
    out["rss_peak_mb"] = _rss_mb()
    out["device_peak_mb"] = _device_peak_mb()
    out["reallocations"] = sim.reallocations
    out["pair_lists"] = sim.pairlists.builder
    out["capacities"] = {k: list(v) for k, v in sim.pairlists.capacities(sim.lists).items()}
    return out


def energy_forces(pot, atoms, args) -> dict:
    """``--mode ef``: one jitted energy + forces call with host-built pair lists (the model's own
    memory, without the MD loop's pair-list buffers); ``rss_allocated_mb`` after the host lists."""
    import jax
    import jax.numpy as jnp

    from biomlff.md.engine import as_pytree_fn
    from biomlff.neighbors import build_pairs
    from biomlff.potential import Potential, energy_and_forces

    cell = np.asarray(atoms.cell[:])
    pos = atoms.positions % np.diag(cell)
    pairs = {k: build_pairs(pos, s.cutoff, cell=cell, half=s.half) for k, s in pot.neighbors.items()}
    out = {
        "rss_allocated_mb": _rss_mb(),
        "capacities": {k: [int(p.mask.sum()), p.capacity] for k, p in pairs.items()},
    }
    dt = np.float64 if args.precision == "float64" else np.float32

    def ef(efn, r, p, c):
        return energy_and_forces(Potential(efn, pot.neighbors, pot.atomic_numbers))(r, p, c)

    f = jax.jit(ef)
    efn = as_pytree_fn(pot.energy_fn)
    x, c = jnp.asarray(pos, dt), jnp.asarray(cell, dt)
    t0 = time.perf_counter()
    jax.block_until_ready(f(efn, x, pairs, c))
    out["compile_s"] = time.perf_counter() - t0
    out["rss_compiled_mb"] = _rss_mb()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(efn, x, pairs, c))
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    out.update(
        step_s=step_s,
        us_atom_step=step_s / len(atoms) * 1e6,
        ns_day=0.5e-6 / step_s * 86400,
        rss_peak_mb=_rss_mb(),
        device_peak_mb=_device_peak_mb(),
        reallocations=0,
    )
    return out


def fit(x, y):
    """Least-squares y = a + b·x; returns (a, b)."""
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1536, 12288, 24576])
    ap.add_argument("--steps", type=int, default=4, help="MD steps per timed block")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--filters", default=None, choices=(None, "exact", "tabulated"))
    ap.add_argument("--lr-cutoff", type=float, default=12.0)
    ap.add_argument(
        "--pair-lists",
        default="auto",
        choices=("auto", "blocked", "jax_md"),
        help="MD pair-list builder (auto: blocked from 2,048 atoms, see biomlff.md.neighborlist)",
    )
    ap.add_argument(
        "--skin",
        type=float,
        default=0.5,
        help="pair-list skin (Å). JAX-MD uses a cell list only with ≥ 4 cells per side: boxes with "
        "a 49.6 Å edge need lr cutoff + skin ≤ 12.4 Å, else its list is built from all N² pairs",
    )
    ap.add_argument("--params", default=str(SHARED / "so3lr" / "params.pkl"))
    ap.add_argument(
        "--mode",
        choices=("md", "ef"),
        default="md",
        help="md: NVT steps (default); ef: one energy + forces call with host-built pair lists",
    )
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    import jax

    dev = jax.devices()[0]
    print(
        f"# device: {dev.platform} {getattr(dev, 'device_kind', '')}; "
        f"{platform.processor() or platform.machine()}; "
        f"precision {args.precision}; filters {args.filters or 'default'}; lr_cutoff {args.lr_cutoff} Å; "
        f"skin {args.skin} Å; mode {args.mode}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {args.steps} steps × {args.repeats} repeats"
    )
    print(
        f"{'atoms':>8} {'compile_s':>9} {'ms/step':>10} {'us/atom/step':>12} {'ns/day':>8} "
        f"{'peakRSS_MB':>10} {'RSS_pot':>8} {'RSS_alloc':>9} {'RSS_comp':>8} {'dev_MB':>8}"
    )
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--worker", str(n), "--steps", str(args.steps)]
        cmd += ["--repeats", str(args.repeats), "--precision", args.precision]
        cmd += ["--lr-cutoff", str(args.lr_cutoff), "--params", args.params, "--skin", str(args.skin)]
        cmd += ["--mode", args.mode, "--pair-lists", args.pair_lists]
        if args.filters:
            cmd += ["--filters", args.filters]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(
                f"{n:>8d}  failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", flush=True
            )
            break  # larger sizes will not fit either
        r = json.loads(lines[-1][7:])
        rows.append(r)
        dev_mb = "-" if r["device_peak_mb"] is None else f"{r['device_peak_mb']:.0f}"
        print(
            f"{r['n_atoms']:>8d} {r['compile_s']:>9.1f} {r['step_s'] * 1e3:>10.1f} "
            f"{r['us_atom_step']:>12.2f} "
            f"{r['ns_day']:>8.4f} {r['rss_peak_mb']:>10.0f} {r['rss_potential_mb']:>8.0f} "
            f"{r['rss_allocated_mb']:>9.0f} {r['rss_compiled_mb']:>8.0f} {dev_mb:>8}   "
            f"caps {r['capacities']}",
            flush=True,
        )
    if len(rows) >= 2:
        n = [r["n_atoms"] for r in rows]
        a, b = fit(n, [r["step_s"] for r in rows])
        print(f"# fit time/step = {a * 1e3:.1f} ms + {b * 1e6:.3f} µs/atom · N")
        a, b = fit(n, [r["rss_peak_mb"] for r in rows])
        print(f"# fit peak RSS = {a:.0f} MB + {b * 1024:.1f} KB/atom · N")
        if rows[0]["device_peak_mb"] is not None:
            a, b = fit(n, [r["device_peak_mb"] for r in rows])
            print(f"# fit device peak = {a:.0f} MB + {b * 1024:.1f} KB/atom · N")
    print(f"# published SO3LR (one H100): {PUBLISHED_US_ATOM_STEP} µs/atom/step")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out is not None else 1)
