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
