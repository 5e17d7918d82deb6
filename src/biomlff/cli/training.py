"""``biomlff train CONFIG.yaml`` and ``biomlff finetune DATA``: training and fine-tuning of
SO3krates/SO3LR models (argparse only here; JAX loads inside the handlers)."""

from __future__ import annotations

from ._common import add_command

TRAIN_HELP = """\
Train an SO3krates/SO3LR model from a YAML config (every key: docs/training.md; example:
docs/train_example.yaml). Flags override the config. The run writes the best model (-o, a
self-describing .npz that --model PATH accepts in eval, md and bind) and a work directory
(<output>.train/) with checkpoint.npz, history.csv and learning_curves.png.

Labels: forces are required; dipoles (e·Å), Hirshfeld ratios and energies are used where present
(a frame without a label adds no term). Loss weights F : μ : h : E default to 100 : 10 : 10 : 1.
"""

TRAIN_EPILOG = """\
examples:
  biomlff train docs/train_example.yaml
  biomlff train config.yaml --lr 5e-4 --epochs 200 -o ala3.model.npz
  biomlff train config.yaml --resume          # continue after an interruption (bit for bit)
  XLA_FLAGS=--xla_force_host_platform_device_count=2 biomlff train config.yaml --devices 2
"""

FINETUNE_HELP = """\
Fine-tune the pretrained SO3LR (or a model file) on your data. Strategies:
  full                all parameters train (default)
  freeze-embedding    everything but the atom/charge/spin embeddings
  last-layer+heads    only the last message-passing layer and the output heads
--replay-weight W mixes into every batch generic structures (small molecules, a peptide, water
clusters) labelled by the model before fine-tuning, so that it does not forget what it knew.
"""

FINETUNE_EPILOG = """\
examples:
  biomlff finetune rmd17_aspirin_train_01.npz --energy-key energies --n-train 950 --n-valid 50 \\
      -o aspirin.model.npz
  biomlff finetune mydata.extxyz --strategy last-layer+heads --replay-weight 1 --epochs 50 -o my.model.npz
  biomlff eval --model aspirin.model.npz --data rmd17_aspirin_test_01.npz --energy-key energies
"""


def _common(p) -> None:
    p.add_argument("-o", "--output", help="model file to write (.npz)")
    p.add_argument("--workdir", help="work directory (default: <output>.train)")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--batch-size", type=int, help="frames per batch")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--max-time", type=float, help="stop after this many seconds (wall time)")
    p.add_argument("--patience", type=int, help="early stopping: epochs without validation improvement")
    p.add_argument("--precision", choices=("float32", "float64"), help="training precision")
    p.add_argument("--devices", type=int, help="data-parallel devices (batch split, gradients reduced)")
    p.add_argument("--seed", type=int, help="seed of the data order")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps")
    p.add_argument("--resume", action="store_true", help="continue from the work directory's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for lab in ("forces", "dipole", "hirshfeld", "energy"):
        p.add_argument(f"--{lab}-weight", type=float, help=f"loss weight of {lab}")


def register(sub) -> None:
    t = add_command(
        sub, "train", "train an SO3krates/SO3LR model from a YAML config", TRAIN_HELP, TRAIN_EPILOG
    )
    t.add_argument("config", help="YAML config file")
    t.add_argument("--data", help="training dataset (overrides the config)")
    t.add_argument("--n-train", type=int, help="training frames (overrides the config's n_train)")
    t.add_argument("--n-valid", type=int, help="validation frames (overrides the config's n_valid)")
    _common(t)
    t.set_defaults(func=_train)
    f = add_command(
        sub, "finetune", "fine-tune the pretrained SO3LR on a dataset", FINETUNE_HELP, FINETUNE_EPILOG
    )
    f.add_argument("data", help="training dataset (any format biomlff reads)")
    f.add_argument("--model", default="so3lr", help="model to start from: so3lr (default) or a model file")
    f.add_argument("--strategy", default="full", choices=("full", "freeze-embedding", "last-layer+heads"))
    f.add_argument("--valid-data", help="validation dataset (default: split off --n-valid frames)")
    f.add_argument("--n-train", type=int, help="training frames (default: all but the validation frames)")
    f.add_argument("--n-valid", type=int, help="validation frames (default: 5 %%)")
    f.add_argument("--replay-weight", type=float, help="weight of the replay frames (0 = off, default)")
    f.add_argument("--energy-key", help="energy label key of the dataset (e.g. rMD17: energies)")
    f.add_argument("--energy-unit", help="energy unit of the file if it does not say (e.g. kcal/mol)")
    _common(f)
    f.set_defaults(func=_finetune)


#: options that override the config key of the same name
_KEYS = (
    "output",
    "workdir",
    "lr",
    "epochs",
    "batch_size",
    "max_steps",
    "max_time",
    "patience",
    "precision",
    "devices",
    "seed",
    "checkpoint_every",
    "forces_weight",
    "dipole_weight",
    "hirshfeld_weight",
    "energy_weight",
)


def _overrides(args) -> dict:
    out = {k: getattr(args, k) for k in _KEYS if getattr(args, k, None) is not None}
    if args.no_progress:
        out["progress"] = False
    return out


def _report(res) -> None:
    m = res.metrics
    print(
        f"stopped: {res.stopped} after {res.steps} steps, {res.seconds:.0f} s; work directory {res.workdir}"
    )
    for name, v in m.items():
        extra = (
            f" ({v['mae_kcal']:.4f} kcal/mol{'/Å' if name == 'forces' else ''})" if "mae_kcal" in v else ""
        )
        print(f"  best validation {name:17s} MAE {v['mae']:.5f}  RMSE {v['rmse']:.5f}{extra}")


def _train(args) -> int:
    from ..training import TrainConfig, train

    ov = _overrides(args)
    if args.data:
        ov["data"] = args.data
    for k in ("n_train", "n_valid"):
        if getattr(args, k) is not None:
            ov[k] = getattr(args, k)
    cfg = TrainConfig.from_yaml(args.config, ov)
    _report(train(cfg, resume=args.resume))
    return 0


def _finetune(args) -> int:
    from ..training import TrainConfig, train

    d = {"data": args.data, "model": args.model, "strategy": args.strategy, "lr": 2e-4}
    reader = {}
    if args.energy_key:
        reader["energy_key"] = args.energy_key
    if args.energy_unit:
        reader["energy_unit"] = args.energy_unit
    d["reader"] = reader
    for k in ("valid_data", "n_train", "n_valid", "replay_weight"):
        if getattr(args, k) is not None:
            d[k] = getattr(args, k)
    d.update(_overrides(args))
    d.setdefault("output", "finetuned.model.npz")
    cfg = TrainConfig.from_dict(d, "finetune")
    _report(train(cfg, resume=args.resume))
    return 0
