"""rGDML descriptor reduction: force/energy MAE and prediction throughput against the kept fraction.

Not a test: a benchmark that prints a Markdown table (and appends raw JSON lines to --out).

For each case a full model is trained (biomlff, fixed σ), the masking losses of all descriptor
features (sGDML: symmetry orbits) are computed on held-out configurations, and for each kept
fraction the model is retrained on the reduced descriptor (σ search over σ_full × --sigma-factors on
a validation set) and evaluated on the test set. Prediction throughput (geometries per process CPU
second, all threads; ``model.predict`` over the test set, batch 1024, compilation excluded) is
measured for the full and all reduced models of a case in interleaved rounds (``--repeats``, median),
so the speed-up column is a same-run ratio that a changing machine load affects little; wall-clock
rates are kept in the JSON lines.

Data:

* rMD17 (``../shared/datasets/rmd17``): train on the first M of a permutation (seed 0) of
  ``<mol>_train_01`` (as ``benchmarks/gdml_parity.py``), validation and masking configurations from
  the rest of ``train_01``, test on all 1000 geometries of ``<mol>_test_01``;
* Ac-Ala3-NHMe (``--ala3-data``, a GFN2-xTB dataset made with ``biomlff sample``; see
  docs/benchmarks.md for the command): one random split of its frames into train / valid / masking /
  test (consecutive MD frames 10 fs apart: test frames are correlated with training frames).

    .venv/bin/python benchmarks/rgdml.py --cases aspirin:200:sym ethanol:200:sym --keep 80% 60% 40% 20%
    .venv/bin/python benchmarks/rgdml.py --cases ala3:100:nosym --ala3-data ala3.npz --figures docs/figures

Errors: energy per structure and force components, kcal/mol(/Å). ``--figures DIR`` writes the pair
heatmap, atom contributions and importance-vs-distance PNGs of the first case's full model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared"))
#: σ of the full models (biomlff's validation scan at M = 200, as in gdml_parity.py; Ala3: own scan)
SIGMA = {
    ("ethanol", True): 20.0,
    ("ethanol", False): 40.0,
    ("aspirin", True): 40.0,
    ("aspirin", False): 40.0,
    ("ala3", False): 40.0,
    ("ala3", True): 40.0,
}


def load_case(mol: str, ala3_data: str | None):
    from biomlff.gdml import load_frames

    if mol == "ala3":
        if not ala3_data:
            raise SystemExit("case ala3 needs --ala3-data (an xTB dataset from 'biomlff sample')")
        frames = load_frames(ala3_data)
        return frames, None
    root = SHARED / "datasets" / "rmd17"
    kw = dict(energy_key="energies", forces_key="forces")
    return (
        load_frames(root / f"rmd17_{mol}_train_01.npz", **kw),
        load_frames(root / f"rmd17_{mol}_test_01.npz", **kw),
    )


def run_case(mol, m, sym, keeps, ranks, args) -> list[dict]:
    from biomlff.gdml import TrainConfig, evaluate, train
    from biomlff.gdml import reduce as rgdml
    from biomlff.gdml.perms import find_perms, identity

    frames, test = load_case(mol, args.ala3_data)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(frames))
    idx_train = np.sort(order[:m])
    rest = order[m:]
    held_out = args.n_valid + args.n_configs
    if test is not None and len(rest) < held_out:
        # rMD17 train_01 has 1000 geometries: at M = 1000 none are left for validation and masking,
        # so those come from the first n_valid + n_configs geometries of test_01 and the errors are
        # measured on the rest of test_01 (never seen by training, σ choice or ranking)
        extra = test.subset(np.arange(held_out))
        frames = dataclasses.replace(
            frames.subset(np.arange(len(frames))),
            R=np.concatenate([frames.R, extra.R]),
            F=np.concatenate([frames.F, extra.F]),
            E=np.concatenate([frames.E, extra.E]),
        )
        rest = np.arange(len(order), len(order) + held_out)
        test = test.subset(np.arange(held_out, len(test)))
    idx_valid = np.sort(rest[: args.n_valid])
    idx_cfg = np.sort(rest[args.n_valid : args.n_valid + args.n_configs])
    if test is None:
        test = frames.subset(np.sort(rest[args.n_valid + args.n_configs :][: args.n_test]))
    else:
        test = test.subset(np.arange(min(args.n_test, len(test))))
    full_sigmas = args.full_sigmas or [SIGMA[(mol, sym)]]
    t0 = time.perf_counter()
    perms = find_perms(frames.R[idx_train], frames.z, seed=0) if sym else identity(len(frames.z))
    t_sym = time.perf_counter() - t0
    cfg = TrainConfig(
        n_train=m, sigmas=full_sigmas, perms=perms, idx_train=idx_train, idx_valid=idx_valid, seed=0
    )
    t0 = time.perf_counter()
    full, _ = train(frames, cfg)
    t_full = time.perf_counter() - t0
    sigma = full.sigma
    err = evaluate(full, test)
    label = f"{mol} M={m} {'sGDML' if sym else 'GDML'} (P={full.n_perms})"
    rows = [
        dict(
            case=label,
            rank="–",
            keep="full",
            q=0.0,
            d=full.n_features,
            sigma=full.sigma,
            f_mae=err["f_mae_kcal"],
            e_mae=err.get("e_mae_kcal"),
            train_s=t_full,
            symmetry_s=t_sym,
        )
    ]
    print(f"{label}: full model F MAE {err['f_mae_kcal']:.4f}, trained in {t_full:.1f} s", flush=True)
    models = [full]
    for rank in ranks:
        t0 = time.perf_counter()
        imp = rgdml.rank_features(full, frames.R[idx_cfg], rank, orbits=sym)
        t_imp = time.perf_counter() - t0
        print(
            f"  importance on {len(idx_cfg)} configurations, {len(imp.groups)} groups: {t_imp:.1f} s",
            flush=True,
        )
        if args.figures and not getattr(run_case, "_figures_done", False):
            from biomlff.gdml.figures import pair_report

            out = Path(args.figures)
            rep = pair_report(
                full, frames.R[idx_cfg[:200]], out / f"rgdml_{mol}", keep=0.4, title=f"{label}, masking loss"
            )
            for key, path in rep["paths"].items():
                print(f"  {key}: {path}")
            run_case._figures_done = True
        for keep in keeps:
            kept = rgdml.select_features(imp, keep)
            t0 = time.perf_counter()
            red, _ = rgdml.retrain(
                full,
                frames,
                kept,
                sigmas=[sigma * f for f in args.sigma_factors],
                idx_train=idx_train,
                idx_valid=idx_valid,
            )
            t_re = time.perf_counter() - t0
            e = evaluate(red, test)
            rows.append(
                dict(
                    case=label,
                    rank=rank,
                    keep=str(keep),
                    q=100.0 * (1 - red.n_features / full.n_features),
                    d=red.n_features,
                    sigma=red.sigma,
                    f_mae=e["f_mae_kcal"],
                    e_mae=e.get("e_mae_kcal"),
                    train_s=t_re,
                    importance_s=t_imp,
                )
            )
            models.append(red)
            print(
                f"  keep {keep}: D = {red.n_features}, σ = {red.sigma:g}, F MAE {e['f_mae_kcal']:.4f}, "
                f"retrain {t_re:.1f} s",
                flush=True,
            )
    # throughput of all models of the case, interleaved (same load for all), CPU-time based
    for r, tp in zip(rows, rgdml.throughput(models, test.R, repeats=args.repeats), strict=True):
        r.update(
            gps=tp["cpu_gps"], speedup=tp["ratio_cpu"], wall_gps=tp["wall_gps"], speedup_wall=tp["ratio_wall"]
        )
    for r in rows:
        r.update(n_test=len(test), n_configs=len(idx_cfg), n_valid=len(idx_valid))
    return rows


def main(argv=None) -> int:
    from biomlff.gdml.reduce import parse_keep

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cases", nargs="+", default=["ethanol:200:sym", "aspirin:200:sym"], help="MOL:M:sym|nosym"
    )
    p.add_argument("--keep", nargs="+", default=["80%", "60%", "40%", "20%"])
    p.add_argument("--n-configs", type=int, default=500, help="masking configurations N_s")
    p.add_argument("--n-valid", type=int, default=200)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--sigma-factors", type=float, nargs="+", default=[0.7, 1.0, 1.4])
    p.add_argument("--repeats", type=int, default=7, help="interleaved throughput rounds")
    p.add_argument("--rank", nargs="+", choices=("mask", "force"), default=["mask"], help="rankings to run")
    p.add_argument("--ala3-data", default=None)
    p.add_argument("--full-sigmas", type=float, nargs="+", default=None, help="σ scan of the full model")
    p.add_argument("--figures", default=None, help="directory for the first case's PNGs")
    p.add_argument("--out", default=None, help="append JSON lines here")
    args = p.parse_args(argv)
    keeps = [parse_keep(k) for k in args.keep]
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}"
    )
    rows = []
    for case in args.cases:
        mol, m, sym = case.split(":")
        case_rows = run_case(mol, int(m), sym == "sym", keeps, args.rank, args)
        rows += case_rows
        if args.out:
            with open(args.out, "a") as fh:
                for r in case_rows:
                    fh.write(json.dumps(r) + "\n")
    print()
    print(
        "| case | rank | keep | q (% removed) | D | σ | F MAE kcal/mol/Å | E MAE kcal/mol | geo/CPU-s "
        "| speed-up | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = "–" if r["e_mae"] is None else f"{r['e_mae']:.4f}"
        print(
            f"| {r['case']} | {r['rank']} | {r['keep']} | {r['q']:.1f} | {r['d']} | {r['sigma']:.3g} | "
            f"{r['f_mae']:.4f} | {e} | {r['gps']:.0f} | {r['speedup']:.2f}× | {r['train_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
