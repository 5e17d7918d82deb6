"""Prototype measurement (issue 13): one SO3krates layer's message pass (forward only, tabulated radial
filters) as biomlff runs it (XLA program of ``biomlff.so3lr.network._tabulated_messages``) against a
hand-written fused C++ loop over the pairs (``mp_forward.cc``, same math, compiled here with g++),
on the periodic water 1536 box of ``../shared/so3lr/reference`` with random per-atom heads.

Prints the largest difference of the two results and the median/minimum times of alternating calls.
Not part of the package: it measures how much a fused kernel could gain before anyone writes one.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/fused_mp/compare.py
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def build(out: Path) -> ctypes.CDLL:
    cmd = ["g++", "-O3", "-march=native", "-ffast-math", "-shared", "-fPIC", str(HERE / "mp_forward.cc")]
    subprocess.run(cmd + ["-o", str(out)], check=True)
    return ctypes.CDLL(str(out))


def main(repeats: int = 15) -> None:
    import jax
    import jax.numpy as jnp
    from so3lr_speed import load_system

    from biomlff.neighbors import build_pairs
    from biomlff.so3lr import model, network, physics, tabulate
    from biomlff.so3lr.architecture import PUBLISHED as arch
    from biomlff.so3lr.weights import load_params

    atoms = load_system("water")
    cell = np.asarray(atoms.cell[:])
    pos = atoms.positions % np.diag(cell)
    sr = build_pairs(pos, arch.sr_cutoff, cell=cell, half=True)
    params = tabulate.with_tables(load_params(), arch, np.float32, num_cells=512)
    table = params["radial_tables"]["layers_1"]
    ab = params["layers_1"]["attention_block"]
    n = len(atoms)
    d, r, mask = model._pair_geometry(jnp.asarray(pos, jnp.float32), sr, jnp.asarray(cell, jnp.float32))
    phi = jnp.where(mask, physics.physnet_cutoff(r, arch.sr_cutoff), 0.0)
    ylm = network.spherical_harmonics(d / r[:, None])
    geom = {"i": sr.i, "j": sr.j, "n": n, "ylm": ylm, "phi": phi, "r": r}
    rng = np.random.default_rng(0)
    heads = tuple(jnp.asarray(rng.normal(size=(n, 4, 32)), jnp.float32) for _ in range(5))
    ev = jnp.asarray(0.1 * rng.normal(size=(n, 24)), jnp.float32)

    xla = jax.jit(
        lambda heads, ev: network._tabulated_messages(ab, heads, ev, geom, jnp.float32, False, arch, table)
    )
    ref = [np.asarray(a) for a in xla(heads, ev)]

    def f32(a):
        return np.ascontiguousarray(np.asarray(a, np.float32))

    def ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    spher = [ab[f"spherical_filter{w}_layer_{k}"] for k in (1, 2) for w in (1, 2)]
    sk1, sk2 = f32([p["kernel"] for p in spher[:2]]), f32([p["kernel"] for p in spher[2:]])
    sb1, sb2 = f32([p["bias"] for p in spher[:2]]), f32([p["bias"] for p in spher[2:]])
    h = [f32(a).reshape(n, 128) for a in heads]
    gi, gj = (np.ascontiguousarray(np.asarray(geom[k], np.int32)) for k in ("i", "j"))
    gr, gy, gp, evn, tab = (f32(a) for a in (geom["r"], geom["ylm"], geom["phi"], ev, table))
    cg, par = f32(network.CG_L0), f32(network.PARITY)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(Path(tmp) / "libmp_forward.so")

        def fused():
            dx = np.zeros((n, 128), np.float32)
            dev = np.zeros((n, 24), np.float32)
            lib.mp_forward(
                ctypes.c_int64(len(gi)), ptr(gi), ptr(gj), ptr(gr), ptr(gy), ptr(gp), *[ptr(a) for a in h],
                ptr(evn), ptr(tab), ctypes.c_int64(tab.shape[0]), ctypes.c_float(arch.sr_cutoff),
                ptr(sk1), ptr(sb1), ptr(sk2), ptr(sb2), ptr(cg), ptr(par),
                ctypes.c_float(1.0 / arch.avg_num_neighbors), ptr(dx), ptr(dev),
            )  # fmt: skip
            return dx, dev

        dx, dev = fused()
        print(
            f"water 1536, {int(mask.sum())} unordered pairs: max |Δ(Δx)| {np.abs(dx - ref[0]).max():.1e} "
            f"(max |Δx| {np.abs(ref[0]).max():.2f}), max |Δ(Δev)| {np.abs(dev - ref[1]).max():.1e}"
        )
        times = {"XLA (biomlff)": [], "fused C++": []}
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(xla(heads, ev))
            times["XLA (biomlff)"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fused()
            times["fused C++"].append(time.perf_counter() - t)
    print(f"{'layer forward':15s} {'median ms':>10s} {'min ms':>8s}")
    for k, v in times.items():
        print(f"{k:15s} {1e3 * np.median(v):10.1f} {1e3 * np.min(v):8.1f}")


if __name__ == "__main__":
    main()
