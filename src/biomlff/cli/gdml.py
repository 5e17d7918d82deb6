"""Subcommands of the ``gdml`` pillar: ``biomlff gdml train | test | predict | reduce | heatmap``.

Registration uses argparse only; numpy/JAX and :mod:`biomlff.gdml` are imported in the handlers.
"""

from __future__ import annotations

from ._common import add_command, add_command_group, pick

TRAIN_EPILOG = """\
σ grid (--sigma): real numbers and inclusive ranges A:B (step 1) or A:STEP:B, e.g.
  --sigma 5 10 20 40   or   --sigma 2:2:20   (σ is in descriptor units, 1/Å)
The best σ is chosen by the validation force RMSE (every grid point is tried).

solvers: closed = in-place Cholesky of the (3NM)² kernel matrix (memory estimated first);
cg = Nyström-preconditioned conjugate gradient (memory ~ 3N·M × 3N·n_inducing);
auto = closed if it fits in --max-memory.

examples:
  biomlff gdml train ethanol_train.npz --energy-key energies --n-train 1000 --n-valid 500 -o ethanol.npz
  biomlff gdml train md22_ac_ala3.xyz --energy-unit kcal/mol --n-train 600 --n-valid 200 \\
      --solver cg --checkpoint ala3.ckpt.npz -o ala3.npz
  biomlff gdml test ethanol.npz ethanol_test.npz --energy-key energies
"""


def _read_group(p) -> None:
    g = p.add_argument_group("reading options (see 'biomlff data info --help')")
    g.add_argument("--format", dest="fmt", metavar="FMT", help="input format (default: from the file)")
    g.add_argument("--energy-unit", metavar="UNIT", help="energy unit of files that do not say")
    g.add_argument("--force-unit", metavar="UNIT", help="force unit (default: energy unit per Å)")
    g.add_argument("--length-unit", metavar="UNIT", help="length unit (Ang, Bohr, nm)")
    g.add_argument("--energy-key", metavar="KEY", help="energy label (rMD17: energies or old_energies)")
    g.add_argument("--forces-key", metavar="KEY", help="forces label (rMD17: forces or old_forces)")


def register(sub) -> None:
    """Add ``biomlff gdml ...`` (argparse only, no heavy imports)."""
    _, gsub = add_command_group(
        sub,
        "gdml",
        "sGDML/GDML kernel force fields: train, test, predict, reduce (rGDML), heatmap",
        "Global symmetric gradient-domain machine learning (sGDML) models.",
        "gdml_command",
    )
    t = add_command(gsub, "train", "train a model (σ search on a validation set)", epilog=TRAIN_EPILOG)
    t.add_argument("data", help="training dataset (one molecule, fixed atom order, with forces)")
    t.add_argument("--n-train", type=int, help="training structures (M)")
    t.add_argument("--n-valid", type=int, default=0, help="validation structures for the σ search")
    t.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="test structures evaluated after training (default: none; -1 = all unused)",
    )
    t.add_argument("--valid-data", help="separate validation dataset (default: drawn from DATA)")
    t.add_argument("--test-data", help="separate test dataset (default: unused structures of DATA)")
    t.add_argument("--split", help="split record from 'biomlff data split' (train/valid/test indices)")
    t.add_argument(
        "--sigma", nargs="+", default=None, metavar="S", help="length-scale grid (default 5 10 20 40 80)"
    )
    sym = t.add_mutually_exclusive_group()
    sym.add_argument("--no-sym", action="store_true", help="no permutational symmetries (GDML)")
    sym.add_argument(
        "--perms-from",
        metavar="FILE",
        help="take the permutations from a model or dataset .npz (key 'perms')",
    )
    t.add_argument(
        "--no-E",
        dest="no_e",
        action="store_true",
        help="ignore energies (no integration constant: E defined up to a constant)",
    )
    t.add_argument("--solver", choices=("auto", "closed", "cg"), default="auto")
    t.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="memory budget in GiB (default: 80%% of the available RAM)",
    )
    t.add_argument("--lam", type=float, default=1e-10, help="ridge λ (default 1e-10)")
    t.add_argument(
        "--energy-constraints",
        action="store_true",
        help="energies as extra kernel observations (sgdml's --E_cstr; closed form only, M more "
        "unknowns; c = mean training energy)",
    )
    t.add_argument(
        "--no-reduce",
        dest="reduce",
        action="store_false",
        help="closed form on all 3NM force components (default: the M(3N-6) components orthogonal "
        "to rigid-body motions, same predictions, faster)",
    )
    t.add_argument(
        "--n-inducing",
        type=int,
        default=None,
        help="CG: inducing training points of the Nyström preconditioner "
        "(default 6%% of M, at least 10, capped by --max-memory)",
    )
    t.add_argument("--cg-tol", type=float, default=1e-4, help="CG: relative residual tolerance")
    t.add_argument("--checkpoint", metavar="FILE", help="CG: checkpoint file (written every ~2 min)")
    t.add_argument("--resume", action="store_true", help="CG: continue from --checkpoint")
    t.add_argument("--seed", type=int, default=0, help="random seed (split, symmetry subset, columns)")
    t.add_argument(
        "--sgdml",
        action="store_true",
        help="write the sgdml 1.0.3 model format (kcal/mol, Å) instead of biomlff's",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    _read_group(t)
    t.set_defaults(func=_train)

    te = gsub.add_parser("test", help="errors of a model on a dataset (kcal/mol and eV)")
    te.add_argument("model", help="model file (biomlff or sgdml .npz)")
    te.add_argument("data", help="dataset with energies and/or forces")
    te.add_argument("--batch-size", type=int, default=1024)
    te.add_argument("--json", metavar="FILE", help="also write the errors as JSON")
    _read_group(te)
    te.set_defaults(func=_test)

    pr = gsub.add_parser("predict", help="energies and forces for structures")
    pr.add_argument("model", help="model file (biomlff or sgdml .npz)")
    pr.add_argument("structures", help="structures (any format ase or biomlff.data reads)")
    pr.add_argument(
        "-o",
        "--output",
        required=True,
        help="output: .xyz/.extxyz (energy eV, forces eV/Å) or .npz (E, F arrays in eV, eV/Å)",
    )
    pr.add_argument("--batch-size", type=int, default=1024)
    pr.set_defaults(func=_predict)

    rd = add_command(
        gsub,
        "reduce",
        "rGDML: rank descriptor pairs by masking, keep the important ones, retrain",
        epilog=REDUCE_EPILOG,
    )
    rd.add_argument("model", help="trained model (biomlff or sgdml .npz)")
    rd.add_argument("data", help="dataset: the model's training data (its indices are reused) or --n-train")
    rd.add_argument(
        "--keep", required=True, help="descriptor part to keep: percentage '40%%', fraction 0.4 or count"
    )
    rd.add_argument(
        "--scan",
        nargs="+",
        default=[],
        metavar="KEEP",
        help="more keep values to retrain and list in the table (not written), e.g. 20%% 60%%",
    )
    _heldout_group(rd)
    rd.add_argument("--test-data", help="test dataset for the table (default: held-out frames of DATA)")
    rd.add_argument("--n-test", type=int, default=1000, help="test structures for the table (default 1000)")
    rd.add_argument("--n-train", type=int, help="training structures when DATA is not the model's data")
    rd.add_argument("--n-valid", type=int, default=0, help="validation structures (with --n-train)")
    rd.add_argument(
        "--sigma", nargs="+", default=None, metavar="S", help="σ grid (default σ × 0.5 0.7 1 1.4)"
    )
    rd.add_argument("--solver", choices=("auto", "closed", "cg"), default="auto")
    rd.add_argument("--max-memory", type=float, default=None, metavar="GB", help="memory budget in GiB")
    rd.add_argument(
        "--no-sym",
        action="store_true",
        help="select single pairs and retrain without permutations (GDML) even for an sGDML model",
    )
    rd.add_argument(
        "--rank",
        choices=("mask", "force"),
        default="mask",
        help="feature ranking: mask = rGDML masking loss (default); force = mean pair force "
        "contribution (measured better on aspirin, see docs/gdml.md)",
    )
    rd.add_argument("--no-retrain", action="store_true", help="only drop the features (α unchanged)")
    rd.add_argument("--index-file", metavar="FILE", help="also write an rGDML index file (idxs = removed)")
    rd.add_argument("--sgdml", action="store_true", help="write the sgdml format (desc_type=2 + rm_arr)")
    rd.add_argument("--no-progress", action="store_true", help="no progress bars")
    rd.add_argument("-o", "--output", required=True, help="reduced model file to write (.npz)")
    _read_group(rd)
    rd.set_defaults(func=_reduce)

    hm = gsub.add_parser(
        "heatmap",
        help="pair-importance heatmap, atom contributions, importance vs distance (PNG + CSV)",
    )
    hm.add_argument("model", help="trained model (biomlff or sgdml .npz)")
    hm.add_argument("data", help="configurations to average over (held-out frames of the model's data)")
    hm.add_argument(
        "--measure",
        choices=("loss", "force", "energy"),
        default="loss",
        help="loss = masking loss (force RMSE, eV/Å); force = mean pair force contribution; "
        "energy = mean |pair energy contribution| (default loss)",
    )
    hm.add_argument("--keep", default=None, help="mark the pairs that reduce --keep would keep")
    hm.add_argument("--title", default="", help="figure title")
    _heldout_group(hm, default=200)
    hm.add_argument("--no-progress", action="store_true", help="no progress bars")
    hm.add_argument(
        "-o", "--output", required=True, help="output directory (pairs/atoms/distance .png, .csv)"
    )
    _read_group(hm)
    hm.set_defaults(func=_heatmap)


REDUCE_EPILOG = """\
Steps: (1) the loss of every descriptor feature (pair) is the force RMSE between the model with
that feature masked and the model itself on --n-configs held-out frames of DATA (vectorised
masking; sGDML models: whole symmetry orbits, so the reduced model stays exactly symmetric);
(--rank force ranks by mean pair force contribution instead);
(2) the least important features are removed until --keep remain; (3) the model is retrained on
the reduced descriptor (σ search); (4) a table of q (removed %) against test errors and prediction
speed is printed.

examples:
  biomlff gdml reduce aspirin.npz rmd17_aspirin_train_01.npz --energy-key energies --keep 40% \\
      --scan 20% 60% --test-data rmd17_aspirin_test_01.npz -o aspirin_rgdml40.npz
  biomlff gdml heatmap aspirin.npz rmd17_aspirin_train_01.npz --energy-key energies -o aspirin_pairs/
"""


def _heldout_group(p, default: int = 500) -> None:
    p.add_argument(
        "--n-configs",
        type=int,
        default=default,
        help=f"held-out configurations for the masking losses (N_s, default {default})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (held-out draw)")


# ------------------------------------------------------------------------------ helpers
def parse_sigmas(tokens) -> list[float]:
    """'5', '2:20' (step 1), '2:2:20' (inclusive), comma lists → floats. Raises ConfigError."""
    from ..errors import ConfigError

    out: list[float] = []
    for tok in tokens:
        for part in str(tok).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                nums = [float(v) for v in part.split(":")]
            except ValueError as exc:
                raise ConfigError(
                    f"--sigma: cannot read {part!r} (numbers or ranges A:B / A:STEP:B)"
                ) from exc
            if len(nums) == 1:
                out.append(nums[0])
            elif len(nums) in (2, 3):
                a, b = nums[0], nums[-1]
                step = nums[1] if len(nums) == 3 else 1.0
                if step <= 0 or b < a:
                    raise ConfigError(f"--sigma: bad range {part!r}")
                k = int(round((b - a) / step + 1e-9))
                out.extend(a + i * step for i in range(k + 1))
            else:
                raise ConfigError(f"--sigma: bad range {part!r}")
    for s in out:
        if not s > 0:
            raise ConfigError(f"--sigma: σ must be > 0, got {s:g}")
    return out


def _read_kwargs(args) -> dict:
    return pick(args, "fmt", "energy_unit", "force_unit", "length_unit", "energy_key", "forces_key")


def _log_progress() -> None:
    """Training progress (INFO) to the terminal, without JAX's own messages."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("jax", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _model_frames(model, args):
    """The frames of DATA (reading options of ``args``), checked to be the model's molecule."""
    from ..errors import ConfigError
    from ..gdml import load_frames

    frames = load_frames(args.data, **_read_kwargs(args))
    if len(frames.z) != model.n_atoms or (frames.z != model.z).any():
        raise ConfigError(
            f"{args.data}: atoms {frames.z.tolist()} differ from the model's {model.z.tolist()}"
        )
    return frames


def _print_errors(title: str, err: dict) -> None:
    print(f"{title} ({err.get('n', '?')} structures)")
    if "e_mae_eV" in err:
        print(
            f"  energy  MAE {err['e_mae_kcal']:.4f} kcal/mol  ({err['e_mae_eV'] * 1e3:.3f} meV)   "
            f"RMSE {err['e_rmse_kcal']:.4f} kcal/mol  ({err['e_rmse_eV'] * 1e3:.3f} meV)"
        )
    print(
        f"  forces  MAE {err['f_mae_kcal']:.4f} kcal/mol/Å ({err['f_mae_eV'] * 1e3:.3f} meV/Å) "
        f"RMSE {err['f_rmse_kcal']:.4f} kcal/mol/Å ({err['f_rmse_eV'] * 1e3:.3f} meV/Å)"
    )


def _train(args) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..gdml import TrainConfig, evaluate, load_frames, train
    from ..gdml.train import DEFAULT_SIGMAS

    _log_progress()
    kw = _read_kwargs(args)
    frames = load_frames(args.data, **kw)
    valid = load_frames(args.valid_data, **kw) if args.valid_data else None
    sigmas = parse_sigmas(args.sigma) if args.sigma else list(DEFAULT_SIGMAS)
    idx_train = idx_valid = idx_test = None
    if args.split:
        from ..data.splits import Split

        split = Split.load(args.split)
        if split.n_frames != len(frames) or split.source_hash != frames.content_hash():
            raise ConfigError(f"{args.split}: the split was made for different data than {args.data}")
        idx_train, idx_valid, idx_test = split.train, split.valid, split.test
        n_train = len(idx_train)
    else:
        if args.n_train is None:
            raise ConfigError("give --n-train (or --split)")
        n_train = args.n_train
    perms = None
    if args.perms_from:
        from ..fileio import open_npz

        with open_npz(args.perms_from, "sGDML model or task (--perms-from)", object_arrays=True) as f:
            if "perms" not in f.files:
                raise ConfigError(f"{args.perms_from}: no 'perms' array")
            perms = np.array(f["perms"])
    cfg = TrainConfig(
        n_train=n_train,
        sigmas=sigmas,
        use_sym=not args.no_sym,
        perms=perms,
        use_E=not args.no_e,
        idx_train=idx_train,
        idx_valid=idx_valid,
        progress=not args.no_progress,
        **pick(
            args,
            "n_valid",
            "solver",
            "lam",
            "reduce",
            "energy_constraints",
            "seed",
            "n_inducing",
            "cg_tol",
            "checkpoint",
            "resume",
            max_memory_gb="max_memory",
        ),
    )
    model, report = train(frames, cfg, valid=valid)
    for entry in report.sigma_scan:
        v = entry.get("valid")
        extra = f"  valid F RMSE {v['f_rmse_kcal']:.4f} kcal/mol/Å" if v else ""
        print(f"σ = {entry['sigma']:g}: {entry['solver']} {entry.get('train_s', 0):.1f} s{extra}")
    print(
        f"selected σ = {model.sigma:g}, {model.n_perms} permutation(s), M = {model.n_train}, "
        f"total {report.timings['total_s']:.1f} s"
    )
    if "valid_errors" in model.info:
        _print_errors("validation", model.info["valid_errors"])
    # test set
    test = None
    if args.test_data:
        test = load_frames(args.test_data, **kw)
        if args.n_test is not None and args.n_test >= 0:
            test = test.subset(
                np.sort(np.random.default_rng(args.seed + 2).permutation(len(test))[: args.n_test])
            )
    elif idx_test is not None and len(idx_test):
        test = frames.subset(idx_test)
    elif args.n_test is not None:
        used = set(model.info["idxs_train"]) | (set(model.info["idxs_valid"]) if valid is None else set())
        rest = np.array([i for i in range(len(frames)) if i not in used], dtype=np.int64)
        if args.n_test >= 0:
            if args.n_test > len(rest):
                raise ConfigError(f"--n-test {args.n_test} exceeds the {len(rest)} unused structures")
            rest = np.sort(np.random.default_rng(args.seed + 2).permutation(rest)[: args.n_test])
        test = frames.subset(rest) if len(rest) else None
    if test is not None:
        err = evaluate(model, test)
        model.info["test_errors"] = err
        _print_errors("test", err)
    path = model.save_sgdml(args.output) if args.sgdml else model.save(args.output)
    print(f"model written to {path}")
    return 0


def _test(args) -> int:
    import json

    from ..gdml import GDMLModel, evaluate, load_frames

    model = GDMLModel.load(args.model)
    frames = load_frames(args.data, **_read_kwargs(args))
    err = evaluate(model, frames, batch_size=args.batch_size)
    _print_errors(f"{args.model} on {args.data}", err)
    if args.json:
        from ..data import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as fh:
            json.dump(err, fh, indent=1)
    return 0


def _predict(args) -> int:
    from pathlib import Path

    import ase.io
    import numpy as np

    from ..errors import DataError
    from ..gdml import GDMLModel

    model = GDMLModel.load(args.model)
    frames = ase.io.read(args.structures, index=":")
    for i, at in enumerate(frames):
        if len(at) != model.n_atoms or np.any(at.numbers != model.z):
            raise DataError(
                f"{args.structures}: frame {i} does not have the model's atoms {model.z.tolist()}"
            )
    pos = np.stack([at.positions for at in frames])
    e, f = model.predict(pos, batch_size=args.batch_size)
    out = Path(args.output)
    if out.suffix == ".npz":
        from ..gdml.model import _atomic_savez

        _atomic_savez(out, {"E": e, "F": f, "R": pos, "z": model.z, "e_unit": "eV", "r_unit": "Ang"})
    else:
        from ase.calculators.singlepoint import SinglePointCalculator

        for at, ei, fi in zip(frames, e, f, strict=True):
            at.calc = SinglePointCalculator(at, energy=float(ei), forces=fi)
        from ..fileio import atomic_path

        with atomic_path(out) as tmp:
            ase.io.write(tmp, frames, format="extxyz")
    print(f"{len(frames)} structures predicted → {out} (energy eV, forces eV/Å)")
    return 0


def _heldout_pool(model, frames, extra_used=()):
    """Indices of frames not used in training/validation of ``model`` (when DATA is its data)."""
    import numpy as np

    used = set(extra_used)
    if model.info.get("dataset_hash") and model.info.get("dataset_hash") == frames.content_hash():
        used |= set(model.info.get("idxs_train", [])) | set(model.info.get("idxs_valid", []))
    return np.array([i for i in range(len(frames)) if i not in used], dtype=np.int64)


def _draw(pool, n: int, seed: int, what: str):
    import numpy as np

    from ..errors import ConfigError

    if n < 1:
        raise ConfigError(f"--n-{what} must be ≥ 1, got {n}")
    if len(pool) == 0:
        raise ConfigError(f"no held-out frames left in the data for the {what}")
    return np.sort(np.random.default_rng(seed).permutation(pool)[: min(n, len(pool))])


def _reduce(args) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..gdml import GDMLModel, evaluate, load_frames
    from ..gdml import reduce as rgdml
    from ..gdml.perms import identity
    from ..gdml.train import split_indices

    _log_progress()
    keep = rgdml.parse_keep(args.keep)
    scan = [rgdml.parse_keep(k) for k in args.scan]
    model = GDMLModel.load(args.model)
    kw = _read_kwargs(args)
    frames = _model_frames(model, args)
    rgdml.check_keep(keep, model.n_features)
    for k in scan:
        rgdml.check_keep(k, model.n_features)
    same = bool(model.info.get("dataset_hash")) and model.info["dataset_hash"] == frames.content_hash()
    idx_train = idx_valid = None
    if args.n_train is not None:
        idx_train, idx_valid = split_indices(len(frames), args.n_train, args.n_valid, args.seed)
    elif not same and not args.no_retrain:
        raise ConfigError(
            f"{args.data} is not the dataset {args.model} was trained on (content hash differs): "
            "give --n-train (and --n-valid) to retrain on it, or --no-retrain"
        )
    used = [] if idx_train is None else list(idx_train) + list(idx_valid)
    pool = _heldout_pool(model, frames, used)
    cfg_idx = _draw(pool, args.n_configs, args.seed, "configs")
    if args.test_data:
        test = load_frames(args.test_data, **kw)
        test = test.subset(_draw(np.arange(len(test)), args.n_test, args.seed + 1, "test"))
    else:
        rest = np.setdiff1d(pool, cfg_idx)
        test = frames.subset(_draw(rest, args.n_test, args.seed + 1, "test"))
    sym = model.n_perms > 1 and not args.no_sym
    if args.no_retrain and model.n_perms > 1 and not sym:
        raise ConfigError("--no-retrain keeps the model's symmetries: it cannot be combined with --no-sym")
    print(
        f"model: N = {model.n_atoms}, D = {model.n_features}, M = {model.n_train}, P = {model.n_perms}, "
        f"σ = {model.sigma:g}; masking on {len(cfg_idx)} held-out frames"
        + (" (symmetry orbits)" if sym else " (single pairs)")
    )
    if args.rank == "mask":
        imp = rgdml.feature_importance(model, frames.R[cfg_idx], orbits=sym, progress=not args.no_progress)
    else:
        imp = rgdml.contribution_importance(model, frames.R[cfg_idx], orbits=sym)
    sigmas = parse_sigmas(args.sigma) if args.sigma else None
    perms = None if sym else identity(model.n_atoms)
    rows = []
    err = evaluate(model, test)
    rows.append(["full", 0.0, model.n_features, model.sigma, err, None, model])
    written = None
    for k in [keep, *scan]:
        kept = rgdml.select_features(imp, k)
        if args.no_retrain:
            red = rgdml.reduce_model(model, kept)
        else:
            red, _ = rgdml.retrain(
                model,
                frames,
                kept,
                sigmas,
                idx_train=idx_train,
                idx_valid=idx_valid,
                **pick(args, "solver", "seed", max_memory_gb="max_memory"),
                perms=perms,
                progress=not args.no_progress,
            )
        e = evaluate(red, test)
        q = 100.0 * (1.0 - red.n_features / model.n_features)
        rows.append([str(k), q, red.n_features, red.sigma, e, None, red])
        if written is None:
            written = red
    for row, tp in zip(rows, rgdml.throughput([r[6] for r in rows], test.R), strict=True):
        row[5] = tp
    _print_reduce_table(rows, len(test))
    path = written.save_sgdml(args.output) if args.sgdml else written.save(args.output)
    print(f"reduced model ({written.n_features} of {model.n_features} pairs) written to {path}")
    if args.index_file:
        a, b = written.pairs
        print(f"index file written to {rgdml.save_index_file(args.index_file, written.n_atoms, a, b)}")
    return 0


def _print_reduce_table(rows, n_test: int) -> None:
    print(
        f"\ntest errors on {n_test} structures (force MAE per component); prediction throughput in "
        "geometries per CPU second (median of 5 interleaved rounds) and its ratio to the full model"
    )
    print(
        f"{'keep':>6} {'q %':>6} {'D':>6} {'σ':>7} {'E MAE kcal/mol':>15} {'F MAE kcal/mol/Å':>17} "
        f"{'F MAE meV/Å':>12} {'geo/s':>9} {'speed-up':>9}"
    )
    for keep, q, d, sigma, e, tp, _ in rows:
        emae = f"{e['e_mae_kcal']:.4f}" if "e_mae_kcal" in e else "-"
        print(
            f"{keep:>6} {q:6.1f} {d:6d} {sigma:7.3g} {emae:>15} {e['f_mae_kcal']:17.4f} "
            f"{e['f_mae_eV'] * 1e3:12.2f} {tp['cpu_gps']:9.0f} {tp['ratio_cpu']:8.2f}×"
        )


def _heatmap(args) -> int:
    from ..gdml import GDMLModel
    from ..gdml import reduce as rgdml
    from ..gdml.figures import pair_report

    model = GDMLModel.load(args.model)
    frames = _model_frames(model, args)
    keep = rgdml.parse_keep(args.keep) if args.keep else None
    idx = _draw(_heldout_pool(model, frames), args.n_configs, args.seed, "configs")
    rep = pair_report(
        model, frames.R[idx], args.output, args.measure, keep, args.title, progress=not args.no_progress
    )
    print(f"pair importance ({args.measure}) of {model.n_features} pairs on {len(idx)} frames:")
    for name, path in rep["paths"].items():
        print(f"  {name}: {path}")
    return 0
