"""Fine-tuning the pretrained SO3LR on rMD17 (benchmark, not a test).

For each molecule: zero-shot SO3LR force/energy MAE on ``test_01``; fine-tune on ``train_01``
(950 train / 50 validation frames) within a wall-time budget; test MAE of the fine-tuned model; drift
from the pretrained model on the shared reference structures (dha, atat, bb: max |ΔF| in eV/Å,
all pairs in free space). Prints a table and writes ``<out>/<molecule>.json``.

    python benchmarks/finetune_rmd17.py aspirin --minutes 70 [--replay-weight 1.0] [--lr 5e-4]

Energies: SO3LR's absolute energies are arbitrary, so the zero-shot energy MAE is given after
removing the mean offset; the fine-tuned model has fitted reference energies.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
from biomlff.units import kcal_mol  # noqa: E402

KCAL = 1.0 / kcal_mol  # kcal/mol per eV


def drift(model, base) -> dict:
    from ase.io import read

    from biomlff.so3lr.evaluate import System, evaluate_systems
    from biomlff.so3lr.model import make_config

    out = {}
    for name in ("dha", "atat", "bb"):
        at = read(SHARED / "so3lr" / "reference" / f"{name}.xyz")
        s = [System(atomic_numbers=at.numbers.astype(np.int32), positions=at.positions)]
        f = []
        for m in (base, model):
            cfg = make_config(None, 2.0, "float32", m.arch, filters="exact")
            f.append(evaluate_systems(s, cfg, m.params, batch_size=1)[0]["forces"])
        out[name] = float(np.abs(f[1] - f[0]).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("molecule")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--strategy", default="full")
    ap.add_argument("--replay-weight", type=float, default=0.0)
    ap.add_argument("--energy-weight", type=float, default=1.0)
    ap.add_argument("--out", default="benchmarks/out/finetune")
    args = ap.parse_args()

    from biomlff.data.io import read_dataset
    from biomlff.so3lr.modelfile import load_model
    from biomlff.training import TrainConfig, train
    from biomlff.training.trainer import dataset_errors

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = SHARED / "datasets" / "rmd17"
    train_file = d / f"rmd17_{args.molecule}_train_01.npz"
    test = read_dataset(d / f"rmd17_{args.molecule}_test_01.npz", energy_key="energies")
    base = load_model("so3lr")
    t0 = time.perf_counter()
    zero = dataset_errors(base, test)
    t_zero = time.perf_counter() - t0
    tag = f"{args.molecule}_{args.strategy}_r{args.replay_weight:g}"
    cfg = TrainConfig(
        data=str(train_file),
        reader={"energy_key": "energies"},
        n_train=950,
        n_valid=50,
        model="so3lr",
        strategy=args.strategy,
        lr=args.lr,
        warmup_steps=50,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_time=args.minutes * 60,
        energy_weight=args.energy_weight,
        replay_weight=args.replay_weight,
        output=str(out / f"{tag}.model.npz"),
        workdir=str(out / f"{tag}.train"),
        checkpoint_every=500,
    )
    import shutil

    shutil.rmtree(cfg.workdir, ignore_errors=True)
    res = train(cfg.validate())
    tuned = dataset_errors(res.model, test)
    dr = drift(res.model, base)
    row = {
        "molecule": args.molecule,
        "strategy": args.strategy,
        "replay_weight": args.replay_weight,
        "steps": res.steps,
        "train_seconds": round(res.seconds, 1),
        "stopped": res.stopped,
        "zero_shot_F_mae_kcal": zero["forces"]["mae_kcal"],
        "zero_shot_E_mae_kcal_offset_removed": None,
        "finetuned_F_mae_kcal": tuned["forces"]["mae_kcal"],
        "finetuned_E_mae_kcal": tuned["energy"]["mae_kcal"],
        "drift_max_dF_eV_A": dr,
        "zero_shot_eval_seconds": round(t_zero, 1),
    }
    # zero-shot energies with the mean offset removed
    from biomlff.so3lr.predict import predict_dataset

    pe = np.array(
        [p["energy"] for p in predict_dataset(test, params=base.params, lr_cutoff=None, filters="exact")]
    )
    de = pe - test.frame_data["energy"]
    row["zero_shot_E_mae_kcal_offset_removed"] = float(np.mean(np.abs(de - de.mean())) * KCAL)
    (out / f"{tag}.json").write_text(json.dumps(row, indent=1))
    print(
        "\n| molecule | zero-shot F MAE | fine-tuned F MAE | fine-tuned E MAE | steps | time "
        "| drift max|ΔF| dha/atat/bb |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.molecule} ({args.strategy}, replay {args.replay_weight:g}) "
        f"| {row['zero_shot_F_mae_kcal']:.3f} | "
        f"{row['finetuned_F_mae_kcal']:.3f} | {row['finetuned_E_mae_kcal']:.3f} | {res.steps} | "
        f"{res.seconds / 60:.0f} min | {dr['dha']:.3f} / {dr['atat']:.3f} / {dr['bb']:.3f} eV/Å |"
    )
    print("(MAE in kcal/mol/Å and kcal/mol on test_01)")


if __name__ == "__main__":
    main()
