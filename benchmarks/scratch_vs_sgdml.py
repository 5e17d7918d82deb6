"""A from-scratch SO3krates (+ SO3LR's long-range terms) against sGDML on the identical split.

Both models are trained on the same training frames, use the same validation frames (early stopping
/ best model for SO3krates, the σ search for sGDML) and are scored on the same test frames, so the
force MAEs in the table are directly comparable (benchmark, not a test).

    python benchmarks/scratch_vs_sgdml.py DATA.xyz --n-train 200 --n-valid 50 --minutes 40

DATA: one molecule with energies and forces (e.g. the Ac-Ala3-NHMe GFN2-xTB set made by
``biomlff sample shipped:ac_ala3_nhme --calc xtb ...``; dipoles are used by SO3krates if present).
The remaining frames are the test set. Prints a table and writes ``<out>/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from biomlff.units import kcal_mol  # noqa: E402

KCAL = 1.0 / kcal_mol  # kcal/mol per eV


def sgdml_errors(train_ds, valid_ds, test_ds, sigmas, solver="closed") -> tuple[dict, float, float]:
    """Train sGDML (closed form by default, symmetries) on all of ``train_ds``; errors on ``test_ds``
    (kcal/mol, kcal/mol/Å), the chosen σ and the training wall time in s."""
    from biomlff.gdml.data import from_dataset
    from biomlff.gdml.train import TrainConfig, evaluate, train

    tr, va, te = (from_dataset(d) for d in (train_ds, valid_ds, test_ds))
    t0 = time.perf_counter()
    cfg = TrainConfig(n_train=len(tr), n_valid=len(va), sigmas=sigmas, solver=solver)
    model, report = train(tr, cfg, valid=va)
    seconds = time.perf_counter() - t0
    err = evaluate(model, te)
    return err, float(model.sigma), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-valid", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="split seed")
    ap.add_argument("--minutes", type=float, default=40.0, help="SO3krates training budget")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--solver", default="closed", help="sGDML solver (closed | cg | auto)")
    ap.add_argument("--skip-sgdml", action="store_true")
    ap.add_argument("--out", default="benchmarks/out/scratch")
    args = ap.parse_args()

    from biomlff.data.io import read_dataset, write_dataset
    from biomlff.data.splits import make_split
    from biomlff.training import TrainConfig, train
    from biomlff.training.trainer import dataset_errors

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(args.data).stem
    ds = read_dataset(args.data)
    split = make_split(ds, args.n_train, args.n_valid, None, seed=args.seed, source=args.data)
    parts = {k: ds.subset(getattr(split, k)) for k in ("train", "valid", "test")}
    paths = {k: out / f"{name}_{k}.xyz" for k in parts}
    for k, d in parts.items():
        write_dataset(d, paths[k])
    print(
        f"{name}: {len(ds)} frames → train {len(parts['train'])}, valid {len(parts['valid'])}, "
        f"test {len(parts['test'])} (seed {args.seed})"
    )

    row: dict = {
        "data": args.data,
        "n_train": len(parts["train"]),
        "n_valid": len(parts["valid"]),
        "n_test": len(parts["test"]),
        "seed": args.seed,
    }
    if not args.skip_sgdml:
        err, sigma, sec = sgdml_errors(
            parts["train"], parts["valid"], parts["test"], args.sigmas, args.solver
        )
        row["sgdml"] = {
            "F_mae_kcal": err["f_mae_kcal"],
            "E_mae_kcal": err["e_mae_kcal"],
            "sigma": sigma,
            "train_seconds": round(sec, 1),
        }
        print(
            f"sGDML M = {len(parts['train'])}: σ = {sigma:g}, test F MAE {err['f_mae_kcal']:.3f} "
            f"kcal/mol/Å, E MAE {err['e_mae_kcal']:.3f} kcal/mol ({sec:.0f} s)"
        )

    tag = f"{name}_so3krates_F{args.features}_T{args.layers}"
    import shutil

    cfg = TrainConfig(
        data=str(paths["train"]),
        valid_data=str(paths["valid"]),
        model="scratch",
        strategy="scratch",
        architecture={
            "num_features": args.features,
            "num_layers": args.layers,
            "energy_regression_dim": args.features,
            "hirshfeld_dim": args.features // 2,
        },
        lr=args.lr,
        warmup_steps=100,
        batch_size=8,
        epochs=args.epochs,
        max_time=args.minutes * 60,
        output=str(out / f"{tag}.model.npz"),
        workdir=str(out / f"{tag}.train"),
        checkpoint_every=1000,
    )
    shutil.rmtree(cfg.workdir, ignore_errors=True)
    res = train(cfg.validate())
    m = dataset_errors(res.model, parts["test"])
    row["so3krates"] = {
        "F_mae_kcal": m["forces"]["mae_kcal"],
        "E_mae_kcal": m["energy"]["mae_kcal"],
        "dipole_mae_eA": m.get("dipole", {}).get("mae"),
        "steps": res.steps,
        "train_seconds": round(res.seconds, 1),
        "stopped": res.stopped,
        "parameters": int(sum(np.size(x) for x in __import__("jax").tree_util.tree_leaves(res.model.params))),
    }
    (out / f"{name}.json").write_text(json.dumps(row, indent=1))
    print("\n| model | test F MAE (kcal/mol/Å) | test E MAE (kcal/mol) | training |")
    print("|---|---|---|---|")
    if "sgdml" in row:
        s = row["sgdml"]
        print(
            f"| sGDML M = {row['n_train']}, σ = {s['sigma']:g} | {s['F_mae_kcal']:.3f} | "
            f"{s['E_mae_kcal']:.3f} | {s['train_seconds']:.0f} s |"
        )
    s = row["so3krates"]
    print(
        f"| SO3krates F = {args.features}, T = {args.layers} + ZBL/elec./disp. | {s['F_mae_kcal']:.3f} | "
        f"{s['E_mae_kcal']:.3f} | {s['steps']} steps, {s['train_seconds'] / 60:.0f} min ({s['stopped']}) |"
    )
    print(f"(same {row['n_train']} training / {row['n_valid']} validation / {row['n_test']} test frames)")


if __name__ == "__main__":
    main()
