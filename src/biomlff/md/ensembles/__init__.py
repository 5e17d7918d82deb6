"""Ensembles as pure ``init`` / ``step`` pairs and their registry (see :mod:`.base`).

Built in: ``nve`` (velocity Verlet, :mod:`.nve`), ``nvt`` (Nosé–Hoover chain, :mod:`.nose_hoover`),
``langevin`` (BAOAB, :mod:`.langevin`), ``npt`` (MTK barostat + chains, :mod:`.npt`). A new ensemble
is a new file that calls :func:`register`; ``Ensemble(kind=name)`` then runs it through
:class:`~biomlff.md.Simulation`'s loop (``docs/architecture.md``, "Adding an ensemble").
"""

from __future__ import annotations

from . import langevin, nose_hoover, npt, nve  # noqa: F401  (register the built-in ensembles)
from .base import REGISTRY, Context, EnsembleSpec, Forces, get, register

__all__ = ["REGISTRY", "Context", "EnsembleSpec", "Forces", "get", "register"]
