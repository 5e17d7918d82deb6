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

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from .defaults import (  # noqa: F401  (the registry's defaults, kept here for its users)
    DEFAULT_DISPERSION_DAMPING,
    DEFAULT_EWALD_ACCURACY,
    DEFAULT_LJ_CUTOFF,
    DEFAULT_LR_CUTOFF,
)
from .settings import SETTING_HELP, ModelSettings, Settings, system_of  # noqa: F401  (re-exported)

#: a builder: ``builder(system: ChemicalSystem, settings: Settings) -> Potential``
Builder = Callable
_BUILDERS: dict[str, Builder] = {}


_META: dict[str, dict] = {}


def register(name: str, builder: Builder | None = None, *, meta: Mapping | None = None):
    """Register ``builder(system, settings) -> Potential`` under ``name`` (case-insensitive); usable
    as a decorator. ``settings`` arrive resolved (:meth:`ModelSettings.resolve`) with ``meta`` as the
    model's own defaults (e.g. ``{"lr_cutoff": 8.5}``: its periodic cutoff). Returns the builder."""

    def add(fn):
        _BUILDERS[name.lower()] = fn
        _META[name.lower()] = dict(meta or {})
        return fn

    return add if builder is None else add(builder)


def names() -> list[str]:
    """The model names: "so3lr" and the registered ones."""
    return sorted({"so3lr", *_BUILDERS})


def build_potential(
    name_or_path,
    system,
    settings: ModelSettings | Mapping | None = None,
    *,
    charge=None,
    multiplicity=None,
    params=None,
    **overrides,
):
    """The front door: the :class:`~biomlff.potential.Potential` of model ``name_or_path`` (a
    registered name, a model file, or an :class:`~biomlff.so3lr.modelfile.SO3LRModel`) for
    ``system`` (anything :func:`system_of` takes) with ``settings`` (:class:`ModelSettings`, a
    mapping or keywords ``overrides``; None values mean "not given") resolved once by
    :meth:`ModelSettings.resolve`. ``params``: SO3LR weights to use instead of the installed ones.

    Every path that evaluates a model goes through here: md, opt, pimd, i-PI, the calculators,
    labels ``--calc`` and (through :func:`so3lr_model`) eval, bind, finetune, replay and
    ``dataset_errors``. The potential's ``info`` records the resolved settings (``precision``,
    ``lr_cutoff``, ...). ConfigError for an unknown name or a missing file."""
    sysm = system_of(system, charge=charge, multiplicity=multiplicity)
    opts = ModelSettings.of(settings, **overrides)
    model = _model_object(name_or_path)
    if model is not None:  # SO3LR / SO3krates
        resolved = opts.resolve(sysm, model.meta.get("inference"))
        pot = model.bind(sysm, resolved, params)
    else:
        key = str(name_or_path)
        resolved = opts.resolve(sysm, _META.get(key.lower()))
        if key.lower() in _BUILDERS:
            pot = _BUILDERS[key.lower()](sysm, resolved)
        else:
            from .gdml.model import GDMLModel

            pot = GDMLModel.load(Path(key)).potential()
    info = {"precision": resolved.precision, "model": str(getattr(model, "name", name_or_path)), **pot.info}
    return replace(pot, info=info)


def _model_object(name_or_path):
    """The SO3LRModel behind ``name_or_path`` ("so3lr": the published one, loaded lazily; a biomlff
    model file; an SO3LRModel given directly), or None for another registered name or an sGDML file.
    ConfigError for an unknown name or a missing file; DataError for an unreadable one."""
    from .errors import ConfigError

    if hasattr(name_or_path, "arch") and hasattr(name_or_path, "params"):
        return name_or_path
    key = str(name_or_path)
    if key.lower() == "so3lr":
        from .so3lr.modelfile import SO3LRModel

        return SO3LRModel.lazy_published()
    if key.lower() in _BUILDERS:
        return None
    path = Path(key)
    if not path.exists():
        known = ", ".join(repr(n) for n in names())
        raise ConfigError(f"model must be one of {known} or an existing model file; {key!r} does not exist")
    _readable_model_file(path)
    from .so3lr.modelfile import is_model_file, load_model

    return load_model(path) if is_model_file(path) else None


def so3lr_model(
    name_or_path, system=None, settings: ModelSettings | Mapping | None = None, *, params=None, **overrides
):
    """The unbound SO3LR for batched evaluation: ``(model, params, resolved settings)`` with ``model``
    a :class:`~biomlff.so3lr.model.SO3LR` (its ``apply(params, batch)`` evaluates padded batches),
    ``params`` its weights ready for its config and the :class:`ModelSettings` resolved for
    ``system`` (its cell decides "auto") and the model file's inference metadata — the same rule and
    builder as :func:`build_potential` (:meth:`~biomlff.so3lr.modelfile.SO3LRModel.unbound`).
    ConfigError if ``name_or_path`` is not an SO3LR/SO3krates model."""
    from .errors import ConfigError

    obj = _model_object(name_or_path)
    if obj is None:
        raise ConfigError(
            f"{name_or_path!r} is not an SO3LR/SO3krates model (the name 'so3lr' or a model file)"
        )
    model, resolved = obj.unbound(system, ModelSettings.of(settings, **overrides))
    return model, obj.weights_for(model, params), resolved


def _readable_model_file(path: Path) -> None:
    """DataError naming ``path`` as a model file if it is no readable .npz archive (before the model
    kind is told from its entries; :func:`biomlff.fileio.open_npz`)."""
    from .fileio import open_npz

    with open_npz(path, "model file"):
        pass


@register("lj", meta={"lr_cutoff": DEFAULT_LJ_CUTOFF})
def _lj_builder(system, settings: ModelSettings):
    from .testing import lennard_jones

    # lr_cutoff "auto" resolves to 12 Å (periodic) / None (free space); Lennard-Jones keeps its own
    # periodic default unless a cutoff was given explicitly
    return lennard_jones(system.atomic_numbers, cutoff=settings.lr_cutoff)
