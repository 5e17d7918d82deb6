"""Pieces shared by the subcommand modules of :mod:`biomlff.cli`: building parsers and handing
parsed options on to library functions. argparse only, so that registration stays cheap."""

from __future__ import annotations

import argparse


def add_command(sub, name: str, help: str, description=None, epilog=None, raw: bool = True):
    """``sub.add_parser(name, ...)``; ``raw`` keeps the line breaks of description and epilog."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
    )


def add_command_group(
    sub,
    name: str,
    help: str,
    description: str,
    dest: str,
    *,
    epilog=None,
    raw: bool = False,
    metavar: str = "SUBCOMMAND",
    status: int = 0,
):
    """A command with subcommands of its own (``biomlff NAME SUBCOMMAND``). Given without one it
    prints its help and returns ``status``. Returns the parser and its subparsers."""
    parser = add_command(sub, name, help, description, epilog, raw)
    group = parser.add_subparsers(dest=dest, metavar=metavar)
    parser.set_defaults(func=lambda args: (parser.print_help(), status)[1])
    return parser, group


def pick(args, *names: str, **renamed: str) -> dict:
    """Options to hand on as keywords: ``{name: args.name}`` for each name and ``{key: args.attr}``
    for each ``key=attr``."""
    out = {n: getattr(args, n) for n in names}
    out.update({key: getattr(args, attr) for key, attr in renamed.items()})
    return out


def csv_ints(text, what: str) -> list[int] | None:
    """Comma-separated integers ('0,5,7', or already a list) → ints; None stays None. Raises
    ConfigError naming the option ``what``."""
    from ..errors import ConfigError

    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        return [int(x) for x in text]
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from exc


# ------------------------------------------------------------------ shared model and system options
def lr_cutoff_value(text):
    """``--lr-cutoff`` values: a length in Å (> 0), 'none' (all pairs) or 'auto' (the model's default,
    :meth:`biomlff.models.ModelSettings.resolve`)."""
    if not isinstance(text, str):
        return text
    if text.lower() in ("none", "inf", "off"):
        return "none"
    if text.lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a cutoff in Å, 'none' or 'auto', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the lr cutoff must be positive, got {value}")
    return value


#: the one vocabulary of the shared options (flag → help); defaults are not set here: None means "not
#: given" and the library's dataclasses (biomlff.models.ModelSettings, ...) hold the defaults
MODEL_OPTIONS = {
    "model": "so3lr (the pretrained model, default), a model file written by biomlff train/finetune, "
    "an sGDML model .npz, or another registered name (lj: Lennard-Jones test potential)",
    "precision": "floating-point precision: float32 (default) or float64",
    "lr-cutoff": "long-range cutoff in Å, 'none' (all pairs, free space) or 'auto' (default: a model "
    "file's own cutoff, else all pairs in free space and 12 Å for periodic systems)",
    "dispersion-damping": "width in Å of the dispersion switch before the lr cutoff (default: the model "
    "file's, else 2)",
    "filters": "SO3LR radial filters: 'exact' networks per pair or 'tabulated' (piecewise-quintic tables "
    "built once from the weights; error below float32 rounding). Default: tabulated in float32, exact "
    "in float64",
    "electrostatics": "electrostatics in periodic boxes: 'cutoff' (default, SO3LR's shifted lr cutoff) "
    "or the damped Coulomb sum over the whole lattice by 'ewald' (small boxes) or 'pme' (large boxes)",
    "ewald-accuracy": "requested relative force accuracy of the Ewald/PME sum (1e-4)",
    "charge": "total charge in e (default: from the file, else 0)",
    "multiplicity": "spin multiplicity 2S+1 (default: from the file, else 1)",
    "energy-unit": "energy unit of files that do not say (e.g. kcal/mol)",
}

_TYPES = {
    "precision": {"choices": ("float32", "float64")},
    "lr-cutoff": {"type": lr_cutoff_value, "metavar": "Å"},
    "dispersion-damping": {"type": float, "metavar": "Å"},
    "filters": {"choices": ("exact", "tabulated")},
    "electrostatics": {"choices": ("cutoff", "ewald", "pme")},
    "ewald-accuracy": {"type": float, "metavar": "EPS"},
    "charge": {"type": float},
    "multiplicity": {"type": int},
    "energy-unit": {"metavar": "UNIT"},
}


def add_model_options(p, names=None, *, title: str = "model", help: dict | None = None, defaults=None):
    """Add the shared model/system options ``names`` (keys of :data:`MODEL_OPTIONS`; default: all
    but energy-unit) to parser ``p`` in one argument group, with one vocabulary everywhere. Every
    option defaults to None ("not given") unless ``defaults`` (flag → value) says otherwise for this
    command; ``help`` replaces a help text. Returns the group."""
    names = [n for n in MODEL_OPTIONS if n != "energy-unit"] if names is None else list(names)
    defaults, help = defaults or {}, help or {}
    g = p.add_argument_group(title)
    for name in names:
        text = help.get(name, MODEL_OPTIONS[name])
        default = defaults.get(name)
        if default is not None:
            text += f" [this command: {default}]"
        g.add_argument(f"--{name}", default=default, help=text, **_TYPES.get(name, {}))
    return g


def model_settings(opts) -> dict:
    """The :class:`biomlff.models.ModelSettings` keywords among parsed options (a Namespace or the
    md command's option dict); values of None mean "not given"."""
    get = opts.get if isinstance(opts, dict) else (lambda k, d=None: getattr(opts, k, d))
    keys = ("lr_cutoff", "dispersion_damping", "precision", "filters", "electrostatics", "ewald_accuracy")
    return {k: get(k) for k in keys}
