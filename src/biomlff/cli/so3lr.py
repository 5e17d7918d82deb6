"""Subcommands of the ``so3lr`` pillar: ``biomlff weights fetch|import|info``, ``biomlff eval`` and
``biomlff bind`` (registration uses argparse only; JAX and the model load inside the handlers)."""

from __future__ import annotations

import sys

from ._common import (
    SYSTEM_OPTIONS,
    add_command,
    add_command_group,
    add_model_options,
    model_options,
    model_settings,
)


def _model_options(p, lr_default: str | None = None, precision_default: str | None = None) -> None:
    """The model settings (every field of biomlff.settings.ModelSettings) and --weights; ``eval``
    and ``bind`` differ only in their defaults."""
    g = add_model_options(
        p,
        list(model_options()),
        title="model settings",
        defaults={"lr-cutoff": lr_default, "precision": precision_default},
    )
    g.add_argument("--weights", metavar="PATH", help="weights file (default: the installed weights)")
    return g


def register(sub) -> None:
    """Add ``weights``, ``eval`` and ``bind`` (argparse only, no heavy imports)."""
    _, wsub = add_command_group(
        sub,
        "weights",
        "SO3LR weights: fetch from PyPI, import, info",
        "Install and inspect the pretrained SO3LR weights.",
        "weights_command",
    )
    f = add_command(
        wsub,
        "fetch",
        "download so3krates-torch 0.2.1 from PyPI and convert its SO3LR weights",
        "Downloads the so3krates-torch 0.2.1 wheel (no dependencies, torch not "
        "needed), converts its so3lr.model with a restricted unpickler, drops its "
        "−163.618 eV/atom energy shift and stores the weights in the user cache.",
        raw=False,
    )
    f.add_argument("--dir", help="target directory (default: $BIOMLFF_CACHE/so3lr or ~/.cache/biomlff/so3lr)")
    f.add_argument("--download-dir", help="keep the downloaded wheel here (default: a temporary directory)")
    f.set_defaults(func=_weights_fetch)
    i = wsub.add_parser("import", help="import params.pkl (or a so3krates-torch so3lr.model) into the cache")
    i.add_argument("path", help="params.pkl of SO3LR, so3lr.model of so3krates-torch, or a biomlff npz")
    i.add_argument("--dir", help="target directory (default: the user cache)")
    i.set_defaults(func=_weights_import)
    n = wsub.add_parser(
        "info", help="where the weights are, their checksum and whether they are the published ones"
    )
    n.add_argument("path", nargs="?", help="a weights file (default: the installed weights)")
    n.set_defaults(func=_weights_info)

    e = add_command(
        sub,
        "eval",
        "predictions and errors of a model on a dataset",
        "Evaluate SO3LR on every frame of a dataset (any format the data layer reads), write the "
        "predictions and report force/energy/dipole/Hirshfeld errors against the labels present "
        "(energies after removing the mean offset: SO3LR energies are relative).",
        epilog="example: biomlff eval --model so3lr --data frames.extxyz --out predictions.extxyz",
        raw=False,
    )
    e.add_argument(
        "--model", default="so3lr", help="so3lr (the pretrained model, default) or a model file (.npz)"
    )
    e.add_argument("--energy-key", help="energy label key of the dataset (e.g. rMD17: energies)")
    e.add_argument("--data", required=True, help="dataset file (.npz, .xyz/.extxyz, .h5)")
    e.add_argument("--out", help="predictions file (format from the extension, e.g. .extxyz, .h5)")
    e.add_argument("--batch-size", type=int, default=16, help="frames per vmapped batch (16)")
    e.add_argument("--energy-unit", metavar="UNIT", help=SYSTEM_OPTIONS["energy-unit"])
    e.add_argument("--format", dest="fmt", help="input format (default: from the file)")
    e.add_argument("--index", help="frames to evaluate, e.g. ':100' or '::10' (default: all)")
    _model_options(e)
    e.set_defaults(func=_eval)

    b = add_command(
        sub,
        "bind",
        "SO3LR binding energies of dimers (per-fragment charge conservation)",
        "E_bind = E(complex) − E(complex with the fragments translated ≥ --separation Å "
        "apart), both at the complex's total charge with lr cutoff 1000 Å; in the separated complex each "
        "fragment's partial charges add up to its own charge.",
        epilog="example: biomlff bind dimer.xyz --fragment 0-2 --fragment 3-5 --charges 0 0",
        raw=False,
    )
    b.add_argument("structures", help="structure file (any ASE-readable format; all frames)")
    b.add_argument("--model", default="so3lr", help="so3lr (default) or a trained model file (.npz)")
    b.add_argument(
        "--fragment",
        action="append",
        metavar="RANGES",
        help="atoms of one fragment, e.g. '0-5,9' (0-based; give it once per fragment). Default: "
        "the info keys selection_a/selection_b (sapt10k style) or two halves are NOT guessed",
    )
    b.add_argument(
        "--charges",
        type=float,
        nargs="+",
        help="charge (e) of each fragment (default 0, or the info keys charge_a/charge_b)",
    )
    b.add_argument("--separation", type=float, default=1000.0, help="minimal fragment distance in Å (1000)")
    b.add_argument("--index", help="frames to evaluate (ASE index string, default all)")
    b.add_argument("--out", help="write a CSV table of binding energies here")
    _model_options(b, "1000", "float64")
    b.set_defaults(func=_bind)


# ----------------------------------------------------------------------------- handlers
def _weights_fetch(args) -> int:
    from ..so3lr import weights

    print(f"downloading {weights.TORCH_PACKAGE} from PyPI (no dependencies) ...", file=sys.stderr)
    path = weights.fetch(args.dir, args.download_dir)
    _print_info(path)
    return 0


def _weights_import(args) -> int:
    from ..so3lr import weights

    path = weights.import_params(args.path, args.dir)
    _print_info(path)
    return 0


def _print_info(path) -> None:
    from ..so3lr import weights

    _, meta = weights.read_canonical(path)
    published = meta["sha256"] == weights.PUBLISHED_SHA256
    print(f"weights:    {path}")
    print(f"source:     {meta.get('source', '')}")
    print(f"parameters: {meta['n_parameters']} in {meta['n_leaves']} arrays (float32)")
    print(f"sha256:     {meta['sha256']} (checksum verified)")
    print(
        f"published:  {'yes, the published SO3LR weights' if published else 'NO (modified or other weights)'}"
    )


def _weights_info(args) -> int:
    from pathlib import Path

    from ..so3lr import weights

    if args.path is None:
        target = weights.cache_dir() / weights.PARAMS_FILE
        if not target.exists():
            weights.load_params()  # raises the error that names `biomlff weights fetch`
        _print_info(target)
        return 0
    path = Path(args.path)
    if path.is_dir() or path.suffix == ".npz":
        _print_info(path)
        return 0
    params = weights.read_any(path)
    digest = weights.checksum(params)
    print(f"weights:    {path} (converted in memory)")
    print(f"sha256:     {digest}")
    print(f"published:  {'yes' if digest == weights.PUBLISHED_SHA256 else 'NO'}")
    return 0


def _load_params(args):
    from ..so3lr import load_params

    return load_params(args.weights)


def _trained_model(args):
    """The trained model named by --model PATH, or None for the pretrained SO3LR."""
    if str(getattr(args, "model", "so3lr")).lower() == "so3lr":
        return None
    from ..so3lr.modelfile import load_model

    return load_model(args.model)


def _eval(args) -> int:
    from tqdm import tqdm

    from ..data import read_dataset, write_dataset
    from ..so3lr.predict import metrics, predict_dataset, predictions_dataset

    model = _trained_model(args)
    params = None if model is not None else _load_params(args)
    kw = {"energy_key": args.energy_key} if args.energy_key else {}
    ds = read_dataset(args.data, args.fmt, energy_unit=args.energy_unit, index=args.index, **kw)
    with tqdm(total=len(ds), desc="so3lr eval", unit="frame", file=sys.stderr, disable=None) as bar:
        preds = predict_dataset(
            ds,
            batch_size=args.batch_size,
            params=params,
            progress=bar.update,
            model=model,
            **{k: v for k, v in model_settings(args).items() if v is not None},
        )
    if args.out:
        write_dataset(predictions_dataset(ds, preds), args.out)
        print(f"predictions written to {args.out}", file=sys.stderr)
    m = metrics(ds, preds)
    print(f"frames: {m['n_frames']}")
    rows = [
        ("forces", "eV/Å"),
        ("energy", "eV (mean offset removed)"),
        ("dipole", "e·Å"),
        ("hirshfeld_ratios", ""),
    ]
    for name, unit in rows:
        if f"{name}_mae" in m:
            print(f"{name:17s} MAE {m[f'{name}_mae']:.6f}  RMSE {m[f'{name}_rmse']:.6f}  {unit}")
    if "energy_offset" in m:
        print(f"energy offset (mean SO3LR − label): {m['energy_offset']:.6f} eV")
    if len(m) == 1:
        print("no labels to compare with (energy, forces, dipole, hirshfeld_ratios)")
    return 0


def _bind(args) -> int:
    import ase.io

    from ..errors import ConfigError, DataError
    from ..so3lr.binding import binding_energy, fragment_arrays, frame_fragments
    from ..units import kcal_mol

    model = _trained_model(args)
    params = None if model is not None else _load_params(args)
    try:
        frames = ase.io.read(args.structures, index=args.index or ":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DataError(f"{args.structures}: cannot read structures ({exc})") from None
    frames = frames if isinstance(frames, list) else [frames]
    if args.lr_cutoff == "auto":
        raise ConfigError("bind: give --lr-cutoff as a number (1000 Å as in the SO3LR paper) or 'none'")
    precision = args.precision or "float64"
    rows = []
    head = ("frame", "E_bind/eV", "kcal/mol", "so3krates", "zbl", "elec", "disp")
    print(f"{head[0]:>5} {head[1]:>12} " + " ".join(f"{h:>10}" for h in head[2:]))
    for k, atoms in enumerate(frames):
        n = len(atoms)
        try:
            frags, charges = frame_fragments(atoms.info, n, args.fragment, args.charges)
        except ConfigError as exc:
            raise ConfigError(f"{args.structures} frame {k}: {exc}") from None
        ids = fragment_arrays(n, frags)
        res = binding_energy(
            atoms.numbers,
            atoms.positions,
            ids,
            charges,
            lr_cutoff=args.lr_cutoff,
            dispersion_damping=args.dispersion_damping,
            precision=precision,
            separation=args.separation,
            multiplicity=int(atoms.info.get("multiplicity", 1)),
            params=params,
            filters=args.filters,
            model=model,
        )
        t = res["terms"]
        e = res["binding_energy"]
        print(
            f"{k:5d} {e:12.6f} {e / kcal_mol:10.4f} {t['so3krates']:10.5f} {t['zbl']:10.5f} "
            f"{t['electrostatics']:10.5f} {t['dispersion']:10.5f}"
        )
        rows.append((k, e, e / kcal_mol, t["so3krates"], t["zbl"], t["electrostatics"], t["dispersion"]))
    if args.out:
        from ..data import atomic_path

        with atomic_path(args.out) as tmp, open(tmp, "w") as fh:
            fh.write(
                "frame,binding_energy_eV,binding_energy_kcal_mol,so3krates_eV,zbl_eV,electrostatics_eV,"
                "dispersion_eV\n"
            )
            for r in rows:
                fh.write(",".join([str(r[0])] + [f"{v:.10g}" for v in r[1:]]) + "\n")
    return 0
