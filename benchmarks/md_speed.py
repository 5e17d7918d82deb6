"""MD speed of biomlff: SO3LR NVT of water boxes of increasing size, and the cost of the MD loop
over a bare energy+forces call of the same model.

For each system: µs/atom/step and ns/day of the compiled MD loop (Nosé–Hoover NVT, dt 0.5 fs, pair
lists with skin refreshed in the loop), and the median time of one jitted energy+forces call with
fixed host-built pair lists (``biomlff.potential.energy_and_forces``); overhead = MD step time /
bare call time (goal ≤ 1.1); overhead2 = MD step time / the same bare call fed with the MD loop's
own pair buffers (isolates integrator + list maintenance from the pair-padding policy).
Medians over repeats after warm-up; compile time reported apart.
The published SO3LR figure (3.25 µs/atom/step, one H100) is printed for reference on GPUs.

    python benchmarks/md_speed.py --sizes 192 1536 12288 --steps 20 --precision float32
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared"))
PUBLISHED_US_ATOM_STEP = 3.25  # SO3LR paper, one H100 GPU


def water_box(n_atoms: int):
    """water_64.xyz (192 atoms, 12.4 Å) repeated k×k×k with k³·192 ≥ n_atoms."""
    from ase.io import read

    from biomlff.md.structure import System

    base = read(SHARED / "so3lr" / "reference" / "water_64.xyz")
    base.wrap()
    k = 1
    while 192 * k**3 < n_atoms:
        k += 1
    atoms = base.repeat((k, k, k))
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    return System.from_atoms(atoms, name=f"water{len(atoms)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288])
    ap.add_argument("--steps", type=int, default=20, help="MD steps per timed block")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--lr-cutoff", type=float, default=6.0, help="Å (12.4 Å base box allows ≤ 6.2)")
    ap.add_argument("--params", default=str(SHARED / "so3lr" / "params.pkl"))
    args = ap.parse_args(argv)

    import jax

    from biomlff.md import Ensemble, MDSettings, Simulation
    from biomlff.md.engine import as_pytree_fn
    from biomlff.neighbors import build_pairs
    from biomlff.potential import Potential, energy_and_forces
    from biomlff.so3lr import so3lr_potential
    from biomlff.so3lr.weights import load_params

    params = load_params(args.params)
    dev = jax.devices()[0]
    print(
        f"# device: {dev.platform} {getattr(dev, 'device_kind', '')}; "
        f"{platform.processor() or platform.machine()}; precision {args.precision}; "
        f"lr_cutoff {args.lr_cutoff} Å; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(
        f"{'atoms':>7} {'compile_s':>9} {'md_ms/step':>10} {'bare_ms':>8} {'overhead':>8} "
        f"{'us/atom/step':>12} {'ns/day':>8} {'same_ms':>10} {'overhead2':>9}"
    )
    rows = []
    for n in args.sizes:
        sysm = water_box(n)
        pot = so3lr_potential(
            sysm.atomic_numbers, lr_cutoff=args.lr_cutoff, precision=args.precision, params=params
        )
        ens = Ensemble(kind="nvt", dt_fs=0.5, temperature_K=300.0, tau_t_fs=50.0)
        st = MDSettings(
            steps=0,
            log_every=0,
            traj_every=0,
            checkpoint_every=0,
            precision=args.precision,
            echo=False,
            progress=False,
        )
        t0 = time.perf_counter()
        sim = Simulation(pot, sysm, ens, st)
        sim.advance(2)
        jax.block_until_ready(sim.state["R"])
        compile_s = time.perf_counter() - t0
        steps = max(2, min(args.steps, int(args.steps * 1536 / sysm.n_atoms)))  # fewer for big boxes
        md = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            sim.advance(steps)
            jax.block_until_ready(sim.state["R"])
            md.append((time.perf_counter() - t) / steps)
        md_s = statistics.median(md)
        # bare energy + forces with fixed host pair lists at the current positions
        with jax.enable_x64(args.precision == "float64"):
            pos = np.asarray(sim.positions())
            cell = sim.cell()
            pairs = {k: build_pairs(pos, s.cutoff, cell=cell, half=s.half) for k, s in pot.neighbors.items()}
            dt = np.float64 if args.precision == "float64" else np.float32

            # the parameters are passed as arguments (as in the MD loop), not folded as constants
            def ef(efn, r, p, c, pot=pot):
                return energy_and_forces(Potential(efn, pot.neighbors, pot.atomic_numbers))(r, p, c)

            f = jax.jit(ef)
            jpos = jax.numpy.asarray(pos % np.diag(cell), dt)
            jcell = jax.numpy.asarray(cell, dt)
            efn = as_pytree_fn(pot.energy_fn)
            jax.block_until_ready(f(efn, jpos, pairs, jcell))
            bare = []
            for _ in range(max(args.repeats, 3)):
                t = time.perf_counter()
                jax.block_until_ready(f(efn, jpos, pairs, jcell))
                bare.append(time.perf_counter() - t)
            bare_s = statistics.median(bare)
            # the same call with the MD loop's own (compacted) pair buffers: isolates the loop's cost
            # (integrator, list maintenance, compaction) from the padding policy of the host lists
            with sim._ctx():
                md_pairs = sim.pairlists.pairs(sim.lists, sim.state["R"], sim.state.get("cell"))
                rw = sim.state["R"] - np.floor(np.asarray(sim.state["R"]) @ np.linalg.inv(cell)) @ cell
                rw = jax.numpy.asarray(rw, dt)
                jax.block_until_ready(f(efn, rw, md_pairs, jcell))
                same = []
                for _ in range(max(args.repeats, 3)):
                    t = time.perf_counter()
                    jax.block_until_ready(f(efn, rw, md_pairs, jcell))
                    same.append(time.perf_counter() - t)
            same_s = statistics.median(same)
            caps = {k: (int(np.asarray(p.mask).sum()), int(p.mask.shape[0])) for k, p in md_pairs.items()}
            host_caps = {k: int(p.mask.shape[0]) for k, p in pairs.items()}
        us = md_s / sysm.n_atoms * 1e6
        nsday = 0.5e-6 / md_s * 86400
        rows.append(
            (
                sysm.n_atoms,
                compile_s,
                md_s * 1e3,
                bare_s * 1e3,
                md_s / bare_s,
                us,
                nsday,
                same_s * 1e3,
                md_s / same_s,
            )
        )
        print(
            f"{sysm.n_atoms:>7d} {compile_s:>9.1f} {md_s * 1e3:>10.2f} {bare_s * 1e3:>8.2f} "
            f"{md_s / bare_s:>8.2f} {us:>12.2f} {nsday:>8.4f} {same_s * 1e3:>10.2f} {md_s / same_s:>9.2f}"
            f"   pairs(real/buffer) MD {caps} host {host_caps}",
            flush=True,
        )
        del sim
    print(f"# published SO3LR (one H100): {PUBLISHED_US_ATOM_STEP} µs/atom/step")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
