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


#: the system options shared by the commands that take a model (flag → help); the model settings
#: themselves come from the fields of :class:`biomlff.settings.ModelSettings` (:func:`model_options`)
SYSTEM_OPTIONS = {
    "model": "so3lr (the pretrained model, default), a model file written by biomlff train/finetune, "
    "an sGDML model .npz, or another registered name (lj: Lennard-Jones test potential)",
    "charge": "total charge in e (default: from the file, else 0)",
    "multiplicity": "spin multiplicity 2S+1 (default: from the file, else 1)",
    "energy-unit": "energy unit of files that do not say (e.g. kcal/mol)",
}

_SYSTEM_TYPES = {"charge": {"type": float}, "multiplicity": {"type": int}, "energy-unit": {"metavar": "UNIT"}}
_KINDS = {"cutoff": {"type": lr_cutoff_value, "metavar": "Å"}, "float": {"type": float}, "int": {"type": int}}


def model_options() -> dict:
    """flag → (help, argparse keywords) of every model setting: one per field of
    :class:`biomlff.settings.ModelSettings` (declared there with its help, kind and choices), so a new
    setting reaches every command that takes a model without a line here."""
    from dataclasses import fields

    from ..settings import ModelSettings

    out = {}
    for f in fields(ModelSettings):
        meta = f.metadata
        kw = dict(_KINDS.get(meta.get("kind"), {}))
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        if meta.get("metavar"):
            kw["metavar"] = meta["metavar"]
        out[f.name.replace("_", "-")] = (meta["help"], kw)
    return out


#: the vocabulary of the shared options (flag → help): the system options and every model setting
def __getattr__(name):  # MODEL_OPTIONS is built on first use (it imports biomlff.settings)
    if name == "MODEL_OPTIONS":
        return {**SYSTEM_OPTIONS, **{k: h for k, (h, _) in model_options().items()}}
    raise AttributeError(name)


def add_model_options(p, names=None, *, title: str = "model", help: dict | None = None, defaults=None):
    """Add the shared options ``names`` (flags of :data:`SYSTEM_OPTIONS` and of the model settings,
    :func:`model_options`; default: model, charge, multiplicity and every model setting) to parser
    ``p`` in one argument group, with one vocabulary everywhere. Every option defaults to None ("not
    given": the library's dataclasses hold the defaults) unless ``defaults`` (flag → value) says
    otherwise for this command; ``help`` replaces a help text. Returns the group."""
    settings = model_options()
    if names is None:
        names = ["model", "charge", "multiplicity", *settings]
    defaults, help = defaults or {}, help or {}
    g = p.add_argument_group(title)
    for name in names:
        text, kw = settings[name] if name in settings else (SYSTEM_OPTIONS[name], _SYSTEM_TYPES.get(name, {}))
        text = help.get(name, text)
        default = defaults.get(name)
        if default is not None:
            text += f" [this command: {default}]"
        g.add_argument(f"--{name}", default=default, help=text, **kw)
    return g


def model_settings(opts) -> dict:
    """The :class:`biomlff.settings.ModelSettings` keywords among parsed options (a Namespace or the
    md command's option dict); values of None mean "not given"."""
    from dataclasses import fields

    from ..settings import ModelSettings

    get = opts.get if isinstance(opts, dict) else (lambda k, d=None: getattr(opts, k, d))
    return {f.name: get(f.name) for f in fields(ModelSettings)}
