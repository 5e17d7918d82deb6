"""Subcommands of the ``gdml`` pillar (registered by :mod:`biomlff.cli.main`)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this pillar's subcommands to the top-level subparsers (argparse only, no heavy imports)."""
    return None
