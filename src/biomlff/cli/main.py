"""``biomlff`` command line: ``biomlff <command> [options]``.

Each pillar contributes subcommands from its own module in :mod:`biomlff.cli` through a
``register(subparsers)`` function. Registration must stay cheap (argparse only): heavy imports
(JAX, JAX-MD, models) happen inside the command handlers, so ``biomlff --help`` answers in well
under a second.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import BiomlffError

#: modules under biomlff.cli that contribute subcommands, in help order
COMMAND_MODULES = ("data", "so3lr", "training", "gdml", "md", "labels", "analysis")

EPILOG = """\
examples:
  biomlff data info ../shared/datasets/rmd17/rmd17_ethanol_train_01.npz
  biomlff eval --model so3lr --data frames.extxyz --out predictions.extxyz
  biomlff md nvt peptide.xyz --temperature 300 --steps 2000 --output traj.h5
  biomlff gdml train ethanol.npz --n-train 1000 --n-valid 1000 -o ethanol.model.npz

Units everywhere: positions Å, energies eV, forces eV/Å, time fs, temperature K
(kcal/mol only where a file format says so). Run 'biomlff COMMAND --help' for details.
"""


class Parser(argparse.ArgumentParser):
    """argparse's parser, reading negative numbers in scientific notation (``--pressure -1e9``) as
    values: argparse's own rule knows only ``-5`` and ``-0.5`` and takes ``-1e9`` for an option.
    Subcommand parsers are of the same class (argparse makes them with ``type(parent)``)."""

    def __init__(self, *args, **kwargs):
        import re

        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="biomlff",
        description="Machine-learned force fields for (bio)molecules: data, SO3LR, sGDML, MD, analysis.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"biomlff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register(sub)
    return parser


def _print_warnings_as_lines() -> None:
    """Show biomlff's own warnings (:class:`~biomlff.errors.BiomlffWarning`) as one
    ``biomlff: warning: ...`` line on stderr, every time (not once per code location)."""
    import warnings

    from ..errors import BiomlffWarning

    shown = warnings.showwarning
    warnings.simplefilter("always", BiomlffWarning)
    if getattr(shown, "biomlff", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, BiomlffWarning):
            print(f"biomlff: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.biomlff = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2 if args.command is None else 0
    debug = args.debug or os.environ.get("BIOMLFF_DEBUG")
    _print_warnings_as_lines()
    from ..defaults import enable_compilation_cache

    enable_compilation_cache()  # a repeated command reuses compiled programs (BIOMLFF_COMPILE_CACHE=off)
    try:
        result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("biomlff: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (BiomlffError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if debug:
            raise
        print(f"biomlff: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
