"""Training and fine-tuning loop for SO3krates/SO3LR models.

:func:`train` takes a :class:`~biomlff.training.config.TrainConfig` and

1. reads the data and makes (or reads) the train/validation split; checks labels;
2. builds the model: a seeded new one (``model: scratch``), the pretrained SO3LR or a model file;
3. fits per-element reference energies by least squares (residual of the initial model) and folds
   them into the ``energy_offset`` leaf;
4. optionally labels a generic replay set with the initial model (fine-tuning without forgetting);
5. runs the optimiser over padded, bucketed batches (one compiled program per shape), optionally
   data-parallel over several devices (the batch is sharded, gradients reduced by XLA);
6. validates every epoch (MAE/RMSE of every label, eV and kcal/mol), keeps the best parameters,
   stops early after ``patience`` epochs without improvement, writes ``history.csv`` and
   ``learning_curves.png`` into the work directory;
7. checkpoints atomically every ``checkpoint_every`` steps (parameters, optimiser state, EMA, step,
   position in the epoch; the data order is a function of the seed and epoch), so ``resume=True``
   continues bit for bit (CPU, float64) — also after the process was killed;
8. writes the best model as a self-describing model file (:mod:`biomlff.so3lr.modelfile`).

The loop is :func:`prepare` (1–4 and the optimiser state) → :func:`run_epoch` (5–7, one epoch) →
:func:`finish` (8), which share one :class:`TrainRun`; :func:`train` runs them.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..defaults import DEFAULT_DISPERSION_DAMPING, DEFAULT_LR_CUTOFF
from ..errors import ConfigError, DataError, TrainingError
from ..fileio import atomic_path, atomic_write, open_npz, remove_stale_temporaries
from ..precision import dtype_of, precision_context
from .batching import build_frames, check_labels, epoch_batches, make_batch
from .config import TrainConfig
from .loss import predict_groups, training_model

#: kcal/mol per eV
KCAL = 1.0 / units.kcal_mol


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the best model, its validation metrics and the per-epoch history."""

    model: object
    metrics: dict
    history: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    workdir: Path | None = None
    stopped: str = ""


# ----------------------------------------------------------------------------- data and model
def _read(path, cfg: TrainConfig, what: str):
    from ..data.io import read_dataset

    if not str(path).startswith("shipped:") and not Path(path).exists():
        raise DataError(f"{what} dataset {path} does not exist")
    return read_dataset(path, **cfg.reader)


def load_data(cfg: TrainConfig):
    """(train, valid, split info) datasets of a config (valid from ``valid_data`` or a split)."""
    from ..data.splits import make_split

    ds = _read(cfg.data, cfg, "training")
    if cfg.valid_data:
        train = ds if cfg.n_train is None else ds.subset(np.arange(min(int(cfg.n_train), len(ds))))
        valid = _read(cfg.valid_data, cfg, "validation")
        info = {
            "train": {"file": cfg.data, "hash": ds.content_hash(), "indices": np.arange(len(train)).tolist()},
            "valid": {"file": cfg.valid_data, "hash": valid.content_hash()},
        }
    else:
        n_valid = cfg.n_valid if cfg.n_valid is not None else max(1, int(round(0.05 * len(ds))))
        n_train = cfg.n_train if cfg.n_train is not None else len(ds) - int(n_valid if n_valid >= 1 else 0)
        split = make_split(ds, n_train, n_valid, 0, seed=cfg.split_seed, source=str(cfg.data))
        train, valid = split.apply(ds, "train"), split.apply(ds, "valid")
        info = {
            "file": cfg.data,
            "hash": ds.content_hash(),
            "split_seed": cfg.split_seed,
            "train_indices": split.train.tolist(),
            "valid_indices": split.valid.tolist(),
        }
    if len(train) == 0:
        raise DataError(f"{cfg.data}: the training split is empty")
    if len(valid) == 0:
        raise DataError(f"{cfg.data}: the validation split is empty (set n_valid ≥ 1 or valid_data)")
    missing = check_labels(train, cfg.label_weights(), str(cfg.data))
    if missing:
        info["missing_labels"] = missing
    return train, valid, info


def _elements_of(*datasets) -> tuple[int, ...]:
    return tuple(sorted({int(z) for ds in datasets for z in np.unique(ds.atomic_numbers)}))


def initial_model(cfg: TrainConfig, elements: tuple[int, ...]):
    """The model training starts from (see module docstring); ModelError for elements unknown to a
    pretrained model."""
    from ..so3lr.architecture import Architecture, init_params
    from ..so3lr.model import check_elements
    from ..so3lr.modelfile import SO3LRModel, load_model

    if cfg.model == "scratch":
        arch = Architecture.from_dict(cfg.architecture) if cfg.architecture else Architecture()
        return SO3LRModel(arch, init_params(arch, cfg.init_seed), elements, {}, "so3krates")
    if cfg.architecture:
        raise ConfigError(
            "config: 'architecture' is only used with model: scratch (a trained model has its own)"
        )
    if str(cfg.model).lower() == "so3lr":  # known without reading the weights
        from ..so3lr.model import TRAINED_ELEMENTS

        check_elements(np.asarray(elements), TRAINED_ELEMENTS, "SO3LR")
    base = load_model(cfg.model)
    check_elements(np.asarray(elements), base.elements, base.name.upper())
    return base


def training_settings(settings, base_meta, *datasets):
    """The resolved :class:`~biomlff.settings.ModelSettings` of a training run or evaluation: the
    given settings (``lr_cutoff="auto"``: the starting model file's own cutoff, else none — all pairs,
    the SO3LR training setting — for free-space data and 12 Å when any frame is periodic), by the one
    rule of every path (:meth:`ModelSettings.resolve`; periodicity: ``geometry.cell_from_pbc``)."""
    from ..potential import ChemicalSystem
    from ..settings import ModelSettings
    from .batching import _frame_cell

    cells = (_frame_cell(ds.frame(k)) for ds in datasets for k in range(len(ds)))
    cell = next((c for c in cells if c is not None), None)
    system = ChemicalSystem(np.zeros(1, np.int32), cell=cell)
    return ModelSettings.of(settings).resolve(system, base_meta)


def _settings_of(cfg) -> dict:
    """The model settings of a TrainConfig: its ``model_settings`` mapping with ``lr_cutoff`` and
    ``precision`` (their own keys) on top."""
    lr = "none" if cfg.lr_cutoff is None else cfg.lr_cutoff
    return {**(cfg.model_settings or {}), "lr_cutoff": lr, "precision": cfg.precision}


# ------------------------------------------------------------------------------- numerics
def fit_reference_energies(params, groups, model, batch_size, dtype, elements) -> dict[int, float]:
    """Least-squares per-element energies e_Z (eV) with E_label − E_model ≈ Σ_Z n_Z e_Z
    (``model``: the SO3LR model or its config)."""
    preds = predict_groups(params, groups, model, batch_size, dtype)
    rows, rhs = [], []
    for fr, p in zip(groups, preds, strict=True):
        m = fr.masks["energy"]
        for r in np.flatnonzero(m):
            z = fr.species[r]
            rows.append([np.sum(z == e) for e in elements])
            rhs.append(fr.labels["energy"][r] - p["energy"][r])
    if not rows:
        return {}
    sol, *_ = np.linalg.lstsq(np.asarray(rows, float), np.asarray(rhs, float), rcond=None)
    return {int(e): float(v) for e, v in zip(elements, sol, strict=True)}


def metrics_of(groups, preds) -> dict:
    """MAE/RMSE per label (energy eV and kcal/mol per frame; forces eV/Å and kcal/mol/Å per
    component; dipole e·Å; Hirshfeld ratios) over the labelled frames/atoms."""
    acc: dict[str, list] = {}
    for fr, p in zip(groups, preds, strict=True):
        real = fr.species > 0
        for name in ("energy", "forces", "dipole", "hirshfeld_ratios"):
            m = fr.masks[name]
            if not m.any():
                continue
            d = p[name][m] - fr.labels[name][m]
            if name in ("forces", "hirshfeld_ratios"):
                d = d[real[m]]
            acc.setdefault(name, []).append(np.ravel(d))
    out = {}
    for name, parts in acc.items():
        d = np.concatenate(parts)
        out[name] = {
            "mae": float(np.mean(np.abs(d))),
            "rmse": float(np.sqrt(np.mean(d * d))),
            "n": int(d.size),
        }
        if name in ("energy", "forces"):
            out[name]["mae_kcal"] = out[name]["mae"] * KCAL
            out[name]["rmse_kcal"] = out[name]["rmse"] * KCAL
    return out


def validation_score(m: dict, spec) -> float:
    """Weighted sum of validation MSEs, the quantity early stopping and 'best' refer to."""
    w = spec.weights()
    return float(sum(w[k] * m[k]["rmse"] ** 2 for k in m if w.get(k)))


# ------------------------------------------------------------------------------ the loop
def _cast(tree, dtype):
    import jax

    return jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), tree)


#: consecutive steps with a non-finite loss or gradient (each skipped) after which training stops
MAX_BAD_STEPS = 10


def _make_step(model, spec, replay_spec, tx, ema_decay: float):
    import jax
    import optax

    from .loss import batch_loss

    def loss_fn(params, batch, rbatch):
        total, terms = batch_loss(params, batch, model, spec)
        if rbatch is not None:
            rl, _ = batch_loss(params, rbatch, model, replay_spec)
            total = total + rl
            terms = dict(terms, replay=rl)
        return total, terms

    def step(state, batch, rbatch):
        import jax.numpy as jnp

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch, rbatch)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new = dict(state, params=params, opt=opt)
        if ema_decay:
            new["ema"] = jax.tree_util.tree_map(
                lambda e, p: ema_decay * e + (1 - ema_decay) * p, state["ema"], params
            )
        # a step with a non-finite loss or gradient is skipped (state unchanged), so that one bad
        # batch cannot poison the parameters; the loop stops after MAX_BAD_STEPS of them in a row
        ok = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads))  # NaN/inf in any leaf
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, state)
        return new, loss, terms, ok

    return jax.jit(step)


@functools.cache
def _shardings(n_devices: int):
    """(split along frames, replicated) shardings over the first ``n_devices`` devices."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:n_devices]), ("data",))
    return NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())


def _shard(batch, n_devices: int):
    """Place a batch on ``n_devices`` devices split along the frame axis (data parallelism)."""
    if n_devices <= 1 or batch is None:
        return batch
    import jax

    split, _ = _shardings(n_devices)
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, split), batch)


def _replicate(tree, n_devices: int):
    if n_devices <= 1:
        return tree
    import jax

    _, repl = _shardings(n_devices)
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, repl), tree)


def _strip(batch):
    return {k: v for k, v in batch.items() if k != "weight"}


def _save_checkpoint(path: Path, state, best, info: dict) -> None:
    from ..fileio import save_tree

    # one container: every leaf under its path in the tree (state/opt/1/0/mu/...), so that a resumed
    # run finds each by name, not by its position in the flatten order
    save_tree(path, {"state": state, "best": best}, info, kind="training-checkpoint")


def read_training_checkpoint(path) -> tuple[dict, list, list]:
    """The training state saved by a run (``<workdir>/checkpoint.npz``): (info, state, best
    parameters). The state and best parameters are trees of dicts (optimiser NamedTuples as dicts of
    their fields; :func:`biomlff.fileio.load_tree`), or, in a checkpoint of biomlff before the one
    container, lists of leaves in the flatten order of the trainer's state. An empty, truncated,
    corrupt or foreign file is a DataError naming it (:func:`biomlff.fileio.open_npz`)."""
    from ..fileio import read_tree, tree_header

    what = "training checkpoint"
    with open_npz(path, what) as z:
        if tree_header(z) is not None:
            tree, info = read_tree(z, kind="training-checkpoint")
            state, best = tree.get("state"), tree.get("best")
        else:  # the layout before the one container: leaves s00000..., b00000..., JSON in __info__
            info = json.loads(bytes(z["__info__"]).decode())
            state = [z[k] for k in sorted(k for k in z.files if k.startswith("s"))]
            best = [z[k] for k in sorted(k for k in z.files if k.startswith("b"))]
        if not isinstance(info, dict) or "step" not in info:
            raise DataError(f"{what} {path}: it holds no training metadata (step)")
    return info, state, best


def _load_checkpoint(path: Path, state, best):
    import jax

    from ..fileio import fill_tree, flatten_tree

    info, s_saved, b_saved = read_training_checkpoint(path)
    mismatch = f"{path}: checkpoint does not match this configuration (different model or optimiser)"
    if not isinstance(s_saved, list):  # leaves by path, into this run's state (optax NamedTuples)
        try:
            state = fill_tree(state, flatten_tree(s_saved), "its state")
            if b_saved is not None:
                best = fill_tree(best, flatten_tree(b_saved), "its best parameters")
        except DataError as exc:
            raise ConfigError(f"{mismatch}: {exc}") from None
        return state, best, info
    treedef = jax.tree_util.tree_structure(state)
    if len(s_saved) != treedef.num_leaves:
        raise ConfigError(mismatch)
    state = jax.tree_util.tree_unflatten(treedef, s_saved)
    if b_saved:
        best = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(best), b_saved)
    return state, best, info


def _write_history(workdir: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(history[-1].keys())
    with atomic_write(workdir / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow(row)


def plot_learning_curves(history: list[dict], path) -> None:
    """Training loss and validation force MAE per epoch (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train loss")
    ax[0].semilogy(ep, [h["valid_score"] for h in history], label="validation (weighted MSE)")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    for key, lab in (
        ("valid_forces_mae_kcal", "forces (kcal/mol/Å)"),
        ("valid_energy_mae_kcal", "energy (kcal/mol)"),
    ):
        if key in history[-1]:
            ax[1].semilogy(ep, [h[key] for h in history], label=lab)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("validation MAE")
    ax[1].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _history_row(epoch, step, train_loss, m, score, lr, seconds) -> dict:
    row = {
        "epoch": epoch,
        "step": step,
        "train_loss": train_loss,
        "valid_score": score,
        "lr": lr,
        "seconds": round(seconds, 2),
    }
    for name, v in m.items():
        row[f"valid_{name}_mae"] = v["mae"]
        row[f"valid_{name}_rmse"] = v["rmse"]
        if "mae_kcal" in v:
            row[f"valid_{name}_mae_kcal"] = v["mae_kcal"]
    return row


def train(cfg: TrainConfig, *, resume: bool = False, log=print) -> TrainResult:
    """Train or fine-tune a model as configured (see module docstring); returns a TrainResult."""
    with precision_context(cfg.precision):
        run = prepare(cfg, resume=resume, log=log)
        while run.epoch < cfg.epochs and not run.stopped:
            run_epoch(run)
        return finish(run)


@dataclass
class Replay:
    """The replay set (padded once, :func:`biomlff.training.replay.replay_frames`) and its loss.
    The batches of each pass over the set are shuffled by (seed, pass), and a step's pass and batch
    follow from the step number, so a resumed run replays the same batches."""

    groups: list
    spec: object  # LossSpec
    batch_size: int
    seed: int
    dtype: type
    _passes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.n_batches = len(epoch_batches(self.groups, self.batch_size, self.seed, 0))

    def batch(self, step: int) -> dict:
        """The replay batch of optimiser step ``step``."""
        c = step // self.n_batches
        if c not in self._passes:
            self._passes.clear()
            self._passes[c] = epoch_batches(self.groups, self.batch_size, self.seed, c)
        g, rows = self._passes[c][step % self.n_batches]
        return _strip(make_batch(self.groups[g], rows, self.dtype))


@dataclass
class TrainRun:
    """A training run between :func:`prepare`, :func:`run_epoch` and :func:`finish`: what prepare
    fixed (settings, data, model, optimiser) and the loop's state (parameters, optimiser state, EMA,
    best parameters, position, ``info`` = what a checkpoint stores besides the arrays)."""

    cfg: TrainConfig
    log: object
    workdir: Path
    ckpt: Path
    split_info: dict
    base: object  # the SO3LRModel training starts from
    elements: tuple
    lr_cutoff: float | None
    model: object  # the SO3LR model evaluated (exact filters)
    dtype: type
    spec: object  # LossSpec
    train_groups: list
    valid_groups: list
    replay: Replay | None
    lr_sched: object
    total_steps: int
    step_fn: object
    state: dict
    best: object
    info: dict
    t_start: float
    bar: object = None
    t_mark: float = 0.0
    stopped: str = ""
    losses: list = field(default_factory=list)
    bad_steps: int = 0  # consecutive skipped (non-finite) steps

    @property
    def step(self) -> int:
        return int(self.info["step"])

    @property
    def epoch(self) -> int:
        return int(self.info["epoch"])

    @property
    def history(self) -> list:
        return self.info["history"]


def prepare(cfg: TrainConfig, *, resume: bool = False, log=print) -> TrainRun:
    """Everything before the first step (module docstring, 1–4): data and split, the initial model,
    the work directory, reference energies, the replay set, the optimiser, and the state — from the
    checkpoint when ``resume``. Call inside ``precision_context(cfg.precision)``."""
    t_start = time.perf_counter()
    dtype = dtype_of(cfg.precision)
    _check_devices(cfg)
    train_ds, valid_ds, split_info = load_data(cfg)
    if split_info.get("missing_labels"):
        missing = ", ".join(split_info["missing_labels"])
        log(f"note: the training data have no {missing} labels; those loss terms are off")
    elements = _elements_of(train_ds, valid_ds)
    base = initial_model(cfg, elements)
    workdir, ckpt = _workdir(cfg, resume, log)
    settings = training_settings(_settings_of(cfg), base.meta.get("inference"), train_ds, valid_ds)
    lr_cutoff = settings.lr_cutoff
    model = training_model(settings, base.arch)
    train_groups = build_frames(train_ds, model.neighbors, source=str(cfg.data))
    valid_groups = build_frames(valid_ds, model.neighbors, source="validation data")
    spec = cfg.loss_spec()
    params0, ref = _cast(base.params, dtype), {}
    if cfg.fit_reference_energies and "energy" in train_ds.frame_data and not resume:
        params0, ref = _with_reference_energies(params0, train_groups, model, cfg, dtype, elements, log)
    replay = _replay(cfg, base, spec, dtype, log) if cfg.replay_weight else None
    n_batches = len(epoch_batches(train_groups, cfg.batch_size, cfg.seed, 0))
    tx, lr_sched, total, state, best, info = _start(cfg, params0, ref, n_batches, base.arch, ckpt, resume)
    if resume:
        log(f"resumed from {ckpt} at step {info['step']} (epoch {info['epoch']})")
    run = TrainRun(
        cfg=cfg,
        log=log,
        workdir=workdir,
        ckpt=ckpt,
        split_info=split_info,
        base=base,
        elements=elements,
        lr_cutoff=lr_cutoff,
        model=model,
        dtype=dtype,
        spec=spec,
        train_groups=train_groups,
        valid_groups=valid_groups,
        replay=replay,
        lr_sched=lr_sched,
        total_steps=total,
        step_fn=_make_step(model, spec, None if replay is None else replay.spec, tx, cfg.ema_decay),
        state=_replicate(state, cfg.devices),
        best=best,
        info=info,
        t_start=t_start,
    )
    if cfg.progress:
        from tqdm.auto import tqdm

        run.bar = tqdm(total=total, initial=run.step, unit="step", dynamic_ncols=True, mininterval=1.0)
    run.t_mark = time.perf_counter()
    return run


def _check_devices(cfg: TrainConfig) -> None:
    import jax

    if cfg.devices > len(jax.devices()):
        raise ConfigError(
            f"config: devices={cfg.devices} but JAX sees {len(jax.devices())} device(s) "
            "(on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)"
        )


def _replay(cfg: TrainConfig, base, spec, dtype, log) -> Replay:
    """The replay set labelled by ``base`` (the initial model) and its loss: the training loss
    without energies (the pretrained model's absolute energies are arbitrary) × ``replay_weight``."""
    from .replay import replay_frames

    rspec = dataclasses.replace(spec, energy=0.0).scaled(cfg.replay_weight)
    return Replay(replay_frames(base, cfg, log=log), rspec, cfg.replay_batch_size, cfg.seed + 7919, dtype)


def _workdir(cfg: TrainConfig, resume: bool, log) -> tuple[Path, Path]:
    """(work directory, checkpoint path), created; ConfigError for a checkpoint left by another run
    unless ``resume``. Temporaries of writes interrupted by a kill are removed (a checkpoint is
    ~10 MB for SO3LR; a run killed before its first checkpoint leaves only these)."""
    out_path = Path(cfg.output)
    stem = out_path.stem.removesuffix(".model")
    workdir = Path(cfg.workdir) if cfg.workdir else out_path.with_name(stem + ".train")
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "checkpoint.npz"
    if ckpt.exists() and not resume:
        raise ConfigError(
            f"{ckpt} exists: pass --resume to continue that run, or choose another output/workdir"
        )
    model_file = out_path if out_path.suffix == ".npz" else out_path.with_name(out_path.name + ".npz")
    outputs = (ckpt, workdir / "history.csv", workdir / "learning_curves.png", model_file)
    for p in remove_stale_temporaries(*outputs):
        log(f"removed {p}, left by an interrupted write")
    return workdir, ckpt


def _with_reference_energies(params, groups, model, cfg, dtype, elements, log):
    """``params`` with the fitted per-element reference energies (eV) folded into the
    ``energy_offset`` leaf, and those energies {Z: eV}."""
    ref = fit_reference_energies(params, groups, model, cfg.batch_size, dtype, elements)
    off = np.array(params["observables_0"]["energy_offset"], dtype)
    for z, e in ref.items():
        off[z] += e
    params["observables_0"]["energy_offset"] = off
    log(f"reference energies (eV): {', '.join(f'Z={z}: {e:.4f}' for z, e in ref.items())}")
    return params, ref


def _start(cfg, params0, ref, n_batches, arch, ckpt, resume):
    """(optimiser, lr schedule, total steps, state, best parameters, info): fresh, or read from the
    checkpoint when ``resume``. The schedule spans the configured epochs (not max_steps / max_time),
    so that a resumed run with a larger step budget keeps the same learning rates."""
    import jax
    import jax.numpy as jnp

    from .optim import make_optimizer

    tx, lr_sched = make_optimizer(cfg, params0, cfg.epochs * n_batches, arch.num_layers)
    total_steps = cfg.epochs * n_batches
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    state = {"params": jax.tree_util.tree_map(jnp.asarray, params0)}
    state["opt"] = tx.init(state["params"])
    if cfg.ema_decay:
        state["ema"] = state["params"]
    best = state["params"]
    info = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best_score": math.inf,
        "bad_epochs": 0,
        "history": [],
        "seconds": 0.0,
        "reference_energies": {str(k): v for k, v in ref.items()},
        "best_epoch": -1,
    }
    if resume:
        if not ckpt.exists():
            raise ConfigError(f"--resume: no checkpoint at {ckpt}")
        state, best, info = _load_checkpoint(ckpt, state, best)
    return tx, lr_sched, total_steps, state, best, info


def run_epoch(run: TrainRun) -> None:
    """The rest of the current epoch (from the batch a resumed run stopped at) or up to a stop
    (max_steps, max_time), then validation (also after an interrupted epoch, so the last state is
    scored), early stopping, the epoch checkpoint and ``history.csv``."""
    cfg = run.cfg
    batches = epoch_batches(run.train_groups, cfg.batch_size, cfg.seed, run.epoch)
    start = int(run.info["batch"])
    for k in range(start, len(batches)):
        _train_step(run, *batches[k])
        if run.step % cfg.checkpoint_every == 0:
            _checkpoint(run, run.epoch, k + 1)
        if cfg.max_steps and run.step >= cfg.max_steps:
            run.stopped = "max_steps"
        elif cfg.max_time is not None and time.perf_counter() > run.t_start + float(cfg.max_time):
            run.stopped = "max_time"
        if run.stopped:
            start = k + 1
            break
    else:
        start = 0
    _validate(run)
    if cfg.patience and run.info["bad_epochs"] >= cfg.patience and not run.stopped:
        run.stopped = "early_stopping"
    _checkpoint(run, run.epoch + (start == 0), start)
    _write_history(run.workdir, run.history)


def _train_step(run: TrainRun, g: int, rows: np.ndarray) -> None:
    """One optimiser step on rows ``rows`` of training group ``g`` (plus the step's replay batch);
    a non-finite step is skipped, and MAX_BAD_STEPS of them in a row stop training."""
    cfg = run.cfg
    batch = _shard(_strip(make_batch(run.train_groups[g], rows, run.dtype)), cfg.devices)
    rbatch = _shard(None if run.replay is None else run.replay.batch(run.step), cfg.devices)
    run.state, loss, _, ok = run.step_fn(run.state, batch, rbatch)
    step = run.info["step"] = run.step + 1
    loss = float(loss)
    if not bool(ok):
        run.bad_steps += 1
        if run.bad_steps == 1:
            run.log(f"\nstep {step}: non-finite loss or gradient (loss {loss}); the update is skipped")
        if run.bad_steps >= MAX_BAD_STEPS:
            raise TrainingError(
                f"{run.bad_steps} steps in a row up to step {step} had a non-finite loss or gradient: "
                "lower the lr, tighten clip_norm or check the labels (units?)"
            )
    else:
        run.bad_steps = 0
        run.losses.append(loss)
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{loss:.3g}", epoch=run.epoch)


def _validate(run: TrainRun) -> None:
    """Validation metrics of the current (EMA) parameters: a history row, the best parameters."""
    import jax

    cfg, info = run.cfg, run.info
    params = run.state["ema"] if cfg.ema_decay else run.state["params"]
    preds = predict_groups(params, run.valid_groups, run.model, cfg.batch_size, run.dtype)
    m = metrics_of(run.valid_groups, preds)
    score = validation_score(m, run.spec)
    loss = float(np.mean(run.losses)) if run.losses else float("nan")
    lr = float(run.lr_sched(run.step))
    elapsed = info["seconds"] + time.perf_counter() - run.t_mark
    run.history.append(_history_row(run.epoch, run.step, loss, m, score, lr, elapsed))
    run.losses = []
    if score < info["best_score"]:
        info.update(best_score=score, bad_epochs=0, best_epoch=run.epoch, best_metrics=m)
        run.best = jax.tree_util.tree_map(lambda a: a, params)
    else:
        info["bad_epochs"] += 1
    if run.bar is not None and "forces" in m:
        run.bar.set_postfix(loss=f"{loss:.3g}", F_mae=f"{m['forces']['mae']:.4f} eV/Å", epoch=run.epoch)


def _checkpoint(run: TrainRun, epoch: int, batch_index: int) -> None:
    """Record the position (epoch, next batch, step) and the time spent, and write the checkpoint."""
    now = time.perf_counter()
    run.info.update(epoch=epoch, batch=batch_index, seconds=run.info["seconds"] + now - run.t_mark)
    run.t_mark = now
    _save_checkpoint(run.ckpt, run.state, run.best, run.info)


def finish(run: TrainRun) -> TrainResult:
    """Learning curves and the best parameters as a model file (with the inference settings and the
    training's provenance); returns the TrainResult."""
    import jax

    from .. import __version__
    from ..so3lr.modelfile import SO3LRModel

    cfg, info = run.cfg, run.info
    if run.bar is not None:
        run.bar.close()
    stopped = run.stopped or "epochs"
    try:
        plot_learning_curves(run.history, run.workdir / "learning_curves.png")
    except Exception as exc:  # plotting must never lose a trained model
        run.log(f"warning: learning curves not plotted ({exc})")
    meta = {
        "inference": {
            "lr_cutoff": DEFAULT_LR_CUTOFF if run.lr_cutoff is None else run.lr_cutoff,
            "trained_lr_cutoff": run.lr_cutoff,
            "dispersion_damping": run.model.config.dispersion_damping or DEFAULT_DISPERSION_DAMPING,
        },
        "reference_energies": dict(info.get("reference_energies", {})),
        "training": {
            "config": cfg.to_dict(),
            "data": run.split_info,
            "steps": run.step,
            "stopped": stopped,
            "best_epoch": info.get("best_epoch"),
            "valid_metrics": info.get("best_metrics", {}),
            "package_version": __version__,
            "base_model": cfg.model,
        },
    }
    best = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), run.best)
    scratch = cfg.model == "scratch"
    elements = run.elements if scratch else run.base.elements
    model = SO3LRModel(run.base.arch, best, elements, meta, "so3krates" if scratch else "so3lr-finetuned")
    out_path = Path(cfg.output)
    model.save(out_path)
    seconds = info["seconds"] + time.perf_counter() - run.t_mark
    run.log(f"model written to {out_path} ({run.step} steps, {seconds:.0f} s, stopped: {stopped})")
    metrics = info.get("best_metrics", {})
    return TrainResult(model, metrics, run.history, run.step, seconds, run.workdir, stopped)


def dataset_errors(model, ds, *, batch_size: int = 16, **settings) -> dict:
    """Errors of a model (SO3LRModel) on a labelled dataset: MAE/RMSE per label as in
    :func:`metrics_of` (eV, eV/Å, e·Å; energies also kcal/mol). ``settings``: ModelSettings fields
    (``lr_cutoff="auto"``: the model file's cutoff, else all pairs in free space and 12 Å for periodic
    frames; precision float32), resolved by :func:`training_settings`. Exact radial filters."""
    if settings.get("lr_cutoff", "auto") is None:
        settings["lr_cutoff"] = "none"
    resolved = training_settings(settings, model.meta.get("inference"), ds)
    dtype = dtype_of(resolved.precision)
    with precision_context(resolved.precision):
        so3 = training_model(resolved, model.arch)
        groups = build_frames(ds, so3.neighbors)
        preds = predict_groups(_cast(model.params, dtype), groups, so3, batch_size, dtype)
    return metrics_of(groups, preds)
