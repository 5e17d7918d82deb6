"""The model registry: one place that turns a model name or model file into a
:class:`~biomlff.potential.Potential` for a system, or into an ASE calculator, and one place for the
defaults those models share (the 12 Å long-range cutoff, the dispersion switch width, ...).

Built in: ``"so3lr"`` (the pretrained SO3LR), ``"lj"`` (Lennard-Jones, argon parameters; for tests
and examples), and paths: a biomlff SO3krates/SO3LR model file (``biomlff train``) or an sGDML
model ``.npz`` (biomlff or sgdml 1.0.3). More names are added with :func:`register`; the CLI
(``biomlff md --model NAME``, ``biomlff labels sample --calc NAME``) resolves names here.

This module imports no pillar at import time (the builders import theirs when called), so pillars
may read the defaults from it. Units: Å, eV, e.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .defaults import (  # noqa: F401  (the registry's defaults, kept here for its users)
    DEFAULT_DISPERSION_DAMPING,
    DEFAULT_EWALD_ACCURACY,
    DEFAULT_LJ_CUTOFF,
    DEFAULT_LR_CUTOFF,
)


@dataclass(frozen=True)
class Settings:
    """Model settings a builder may use (each ignores what does not apply to it).

    lr_cutoff: Å, or None for the model's default (SO3LR: all pairs in free space,
    :data:`DEFAULT_LR_CUTOFF` for periodic systems); dispersion_damping: Å; precision: "float32" |
    "float64"; filters: SO3LR radial filters ("exact" | "tabulated" | None = by precision);
    electrostatics: "cutoff" | "ewald" | "pme"; ewald_accuracy: relative force accuracy."""

    lr_cutoff: float | None = None
    dispersion_damping: float = DEFAULT_DISPERSION_DAMPING
    precision: str = "float32"
    filters: str | None = None
    electrostatics: str = "cutoff"
    ewald_accuracy: float = DEFAULT_EWALD_ACCURACY

    def lr_for(self, periodic: bool) -> float | None:
        """The long-range cutoff (Å) for a periodic or free-space system."""
        if self.lr_cutoff is None and periodic:
            return DEFAULT_LR_CUTOFF
        return self.lr_cutoff


#: a builder: ``builder(system: ChemicalSystem, settings: Settings) -> Potential``
Builder = Callable
_BUILDERS: dict[str, Builder] = {}


def register(name: str, builder: Builder | None = None):
    """Register ``builder(system, settings) -> Potential`` under ``name`` (case-insensitive); usable
    as a decorator. Returns the builder."""

    def add(fn):
        _BUILDERS[name.lower()] = fn
        return fn

    return add if builder is None else add(builder)


def names() -> list[str]:
    """The registered model names."""
    return sorted(_BUILDERS)


def system_of(obj, *, charge=None, multiplicity=None, fragments=None):
    """A :class:`~biomlff.potential.ChemicalSystem` from ASE ``Atoms`` (``info["charge"]``,
    ``info["multiplicity"]``, cell when fully periodic), an MD :class:`~biomlff.md.structure.System`
    (its charge, multiplicity and cell), a ChemicalSystem or atomic numbers. ``charge`` (e) and
    ``multiplicity`` override what the object carries."""
    import numpy as np

    from .potential import ChemicalSystem

    if isinstance(obj, ChemicalSystem):
        base = obj
    elif hasattr(obj, "get_atomic_numbers"):  # ASE Atoms
        from .calculators.base import cell_of

        base = ChemicalSystem(
            obj.get_atomic_numbers(),
            float(obj.info.get("charge", 0.0)),
            int(obj.info.get("multiplicity", 1)),
            cell=cell_of(obj),
        )
    elif hasattr(obj, "atomic_numbers"):  # biomlff.md.structure.System
        base = ChemicalSystem(
            obj.atomic_numbers, float(obj.charge or 0.0), int(obj.multiplicity or 1), cell=obj.cell
        )
    else:
        base = ChemicalSystem(np.asarray(obj))
    over = {"charge": charge, "multiplicity": multiplicity, "fragments": fragments}
    return replace(base, **{k: v for k, v in over.items() if v is not None})


def build_potential(name_or_path, system, *, charge=None, multiplicity=None, **settings):
    """The :class:`~biomlff.potential.Potential` of model ``name_or_path`` (a registered name or a
    model file) for ``system`` (see :func:`system_of`); ``settings``: the fields of
    :class:`Settings`. ConfigError for an unknown name or a missing file."""
    from .errors import ConfigError

    sysm = system_of(system, charge=charge, multiplicity=multiplicity)
    opts = Settings(**{k: v for k, v in settings.items() if v is not None})
    key = str(name_or_path)
    if key.lower() in _BUILDERS:
        return _BUILDERS[key.lower()](sysm, opts)
    path = Path(key)
    if not path.exists():
        known = ", ".join(repr(n) for n in names())
        raise ConfigError(f"model must be one of {known} or an existing model file; {key!r} does not exist")
    return _from_file(path, sysm, opts)


def _readable_model_file(path: Path) -> None:
    """DataError naming ``path`` as a model file if it is no readable .npz archive (before the model
    kind is told from its entries; :func:`biomlff.fileio.open_npz`)."""
    from .fileio import open_npz

    with open_npz(path, "model file"):
        pass


def _from_file(path: Path, system, settings: Settings):
    from .so3lr.modelfile import is_model_file

    _readable_model_file(path)
    if is_model_file(path):  # a trained / fine-tuned SO3krates-SO3LR model (biomlff train/finetune)
        from .so3lr.modelfile import load_model

        return _so3lr(system, settings, load_model(path))
    from .gdml.model import GDMLModel

    return GDMLModel.load(path).potential()


def _so3lr(system, settings: Settings, model=None):
    """SO3LR (``model=None``: the pretrained weights) or a trained SO3LRModel, bound to ``system``."""
    from .so3lr.model import so3lr_potential

    build = so3lr_potential if model is None else model.potential
    return build(
        system.atomic_numbers,
        charge=float(system.charge),
        multiplicity=int(system.multiplicity),
        fragments=system.fragments,
        lr_cutoff=settings.lr_for(system.periodic),
        dispersion_damping=settings.dispersion_damping,
        precision=settings.precision,
        filters=settings.filters,
        electrostatics=settings.electrostatics or "cutoff",
        cell=system.cell,
        ewald_accuracy=float(settings.ewald_accuracy),
    )


@register("so3lr")
def _so3lr_builder(system, settings: Settings):
    return _so3lr(system, settings)


@register("lj")
def _lj_builder(system, settings: Settings):
    from .md.testing import lennard_jones

    cut = settings.lr_cutoff
    if cut is None and system.periodic:
        cut = DEFAULT_LJ_CUTOFF
    return lennard_jones(system.atomic_numbers, cutoff=cut)


def calculator(name_or_path, *, charge: float = 0.0, multiplicity: int = 1, **settings):
    """An ASE calculator of model ``name_or_path``: :class:`~biomlff.calculators.SO3LRCalculator`
    for ``"so3lr"``, :class:`~biomlff.calculators.GDMLCalculator` for an sGDML ``.npz``, otherwise
    a calculator that builds the registered model (or model file) for each new set of atoms.
    ``charge`` (e) and ``multiplicity``: defaults for atoms without them in ``info``."""
    from .errors import ConfigError

    key = str(name_or_path)
    if key.lower() == "so3lr":
        from .calculators.so3lr import SO3LRCalculator

        lr = settings.pop("lr_cutoff", None)
        settings = {k: v for k, v in settings.items() if v is not None}
        return SO3LRCalculator(
            DEFAULT_LR_CUTOFF if lr is None else lr,
            charge=float(charge),
            multiplicity=int(multiplicity),
            **settings,
        )
    path = Path(key)
    if key.lower() not in _BUILDERS and not path.exists():
        raise ConfigError(f"model {key!r}: use {', '.join(names())} or an existing model file")
    if key.lower() not in _BUILDERS:
        from .so3lr.modelfile import is_model_file

        _readable_model_file(path)
        if not is_model_file(path):
            from .calculators.gdml import GDMLCalculator

            precision = settings.get("precision")
            return GDMLCalculator(path, **({} if precision is None else {"precision": precision}))
    from functools import partial

    from .calculators.base import ModelCalculator

    precision = settings.pop("precision", None) or "float32"
    build = partial(_build_for, key, settings)
    return ModelCalculator(build, charge=float(charge), multiplicity=int(multiplicity), precision=precision)


def _build_for(key: str, settings: dict, system, precision: str):
    return build_potential(key, system, precision=precision, **settings)
