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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .defaults import (  # noqa: F401  (the registry's defaults, kept here for its users)
    DEFAULT_DISPERSION_DAMPING,
    DEFAULT_EWALD_ACCURACY,
    DEFAULT_LJ_CUTOFF,
    DEFAULT_LR_CUTOFF,
)

#: ModelSettings fields and what they mean (the CLI's option builder and the docs read this)
SETTING_HELP = {
    "lr_cutoff": "long-range cutoff in Å; 'auto' (default): the model file's own, else all pairs in free "
    "space and 12 Å for periodic systems; 'none': all pairs (free space only)",
    "dispersion_damping": "width (Å) of the dispersion switch before the long-range cutoff (2)",
    "precision": "floating-point precision, float32 (default) or float64",
    "filters": "SO3LR radial filters, exact or tabulated (default: tabulated in float32, exact in float64)",
    "electrostatics": "cutoff (default), ewald or pme: electrostatics in periodic boxes",
    "ewald_accuracy": "relative force accuracy of the Ewald/PME sum (1e-4)",
    "pme_order": "PME B-spline order (6)",
}


@dataclass(frozen=True)
class ModelSettings:
    """The settings of a model, and the only place their defaults are resolved (:meth:`resolve`).

    lr_cutoff: Å, None (all pairs; free space only) or "auto" (the model file's inference setting,
    else all pairs in free space and :data:`DEFAULT_LR_CUTOFF` for periodic systems);
    dispersion_damping: Å (None: the model file's, else :data:`DEFAULT_DISPERSION_DAMPING`);
    precision: "float32" | "float64" (the owner of a model's precision: MD, optimiser, i-PI and the
    calculators read it from the potential, :func:`biomlff.precision.resolve_precision`); filters:
    SO3LR radial filters "exact" | "tabulated" | None (= tabulated in float32, exact in float64);
    electrostatics: "cutoff" | "ewald" | "pme"; ewald_accuracy: relative force accuracy; pme_order:
    PME B-spline order. Each builder ignores what does not apply to its model.

    A new setting is one field here (with its line in :data:`SETTING_HELP`): the CLI's shared model
    options (``cli/_common.add_model_options``), the calculators, MD and training then carry it."""

    lr_cutoff: float | str | None = "auto"
    dispersion_damping: float | None = None
    precision: str = "float32"
    filters: str | None = None
    electrostatics: str = "cutoff"
    ewald_accuracy: float = DEFAULT_EWALD_ACCURACY
    pme_order: int = 6

    @classmethod
    def of(cls, settings: ModelSettings | Mapping | None = None, **overrides) -> ModelSettings:
        """Settings from a ModelSettings, a mapping and/or keywords; a value of None means "not given"
        (the default stays), except ``lr_cutoff="none"`` (all pairs). ConfigError for unknown names."""
        from dataclasses import fields

        from .errors import ConfigError

        base = settings if isinstance(settings, ModelSettings) else cls()
        given = {} if settings is None or isinstance(settings, ModelSettings) else dict(settings)
        given.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        given = {k: v for k, v in given.items() if v is not None}
        if isinstance(given.get("lr_cutoff"), str):
            text = given["lr_cutoff"].lower()
            given["lr_cutoff"] = None if text in ("none", "inf", "off") else text
        return replace(base, **given).validate()

    def validate(self) -> ModelSettings:
        from .errors import ConfigError
        from .precision import check_precision

        check_precision(self.precision)
        lr = self.lr_cutoff
        if isinstance(lr, str) and lr != "auto":
            raise ConfigError(f"lr_cutoff must be a length in Å, 'none' or 'auto', got {lr!r}")
        if not isinstance(lr, str) and lr is not None and not float(lr) > 0:
            raise ConfigError(f"lr_cutoff must be positive, got {lr} Å")
        if self.filters not in (None, "exact", "tabulated"):
            raise ConfigError(f"filters must be 'exact' or 'tabulated', got {self.filters!r}")
        if self.electrostatics not in ("cutoff", "ewald", "pme"):
            raise ConfigError(
                f"electrostatics must be 'cutoff', 'ewald' or 'pme', got {self.electrostatics!r}"
            )
        return self

    def resolve(self, system=None, meta: Mapping | None = None) -> ModelSettings:
        """Concrete settings for ``system`` (anything :func:`system_of` takes; its cell decides
        periodicity) and a model file's inference metadata ``meta`` (``{"lr_cutoff": Å,
        "trained_lr_cutoff": Å | None, "dispersion_damping": Å}``, written by ``biomlff train``):

        * lr_cutoff "auto": the cutoff the model was trained with (``trained_lr_cutoff``) if it had
          one; otherwise none (all pairs) in free space and the file's ``lr_cutoff`` (else 12 Å) for a
          periodic system. An explicit value always wins.
        * dispersion_damping None: the file's, else 2 Å. filters None: tabulated in float32, exact in
          float64."""
        meta = dict(meta or {})
        periodic = system is not None and system_of(system).periodic
        lr = self.lr_cutoff
        if lr == "auto":
            trained = meta.get("trained_lr_cutoff")
            if trained is not None:
                lr = float(trained)
            elif periodic:
                lr = float(meta.get("lr_cutoff") or DEFAULT_LR_CUTOFF)
            else:
                lr = None
        damping = self.dispersion_damping
        if damping is None:
            damping = float(meta.get("dispersion_damping") or DEFAULT_DISPERSION_DAMPING)
        filters = self.filters or ("exact" if self.precision == "float64" else "tabulated")
        return replace(
            self, lr_cutoff=None if lr is None else float(lr), dispersion_damping=damping, filters=filters
        )

    def lr_for(self, periodic: bool) -> float | None:
        """The long-range cutoff (Å) of a periodic or free-space system without model-file metadata
        (kept for callers of the old ``Settings``; :meth:`resolve` is the rule)."""
        from .potential import ChemicalSystem

        cell = np.eye(3) * 1e3 if periodic else None
        return self.resolve(ChemicalSystem(np.zeros(1, np.int32), cell=cell)).lr_cutoff


#: the former name of :class:`ModelSettings`
Settings = ModelSettings


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
        pot = _so3lr(sysm, resolved, model, params)
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
    """The unbound SO3LR for the batched paths (eval, bind, finetune, replay, ``dataset_errors``):
    ``(model, params, resolved settings)`` with ``model`` a :class:`~biomlff.so3lr.model.SO3LR` (its
    ``apply(params, batch)`` evaluates padded batches), ``params`` its weights ready for its config and
    the :class:`ModelSettings` resolved for ``system`` (its cell decides "auto") and the model file's
    inference metadata — the same rule and the same builder (:func:`biomlff.so3lr.model.build_so3lr`)
    as :func:`build_potential`. ConfigError if ``name_or_path`` is not an SO3LR/SO3krates model."""
    from .so3lr.model import so3lr_params

    obj = so3lr_source(name_or_path)
    model, resolved = so3lr_for(obj, system, ModelSettings.of(settings, **overrides))
    return model, so3lr_params(model, obj.params if params is None else params), resolved


def so3lr_source(name_or_path):
    """The :class:`~biomlff.so3lr.modelfile.SO3LRModel` behind a name ("so3lr"), a model file or an
    SO3LRModel (weights of the published model load lazily). ConfigError for anything else."""
    from .errors import ConfigError

    obj = _model_object(name_or_path)
    if obj is None:
        raise ConfigError(
            f"{name_or_path!r} is not an SO3LR/SO3krates model (the name 'so3lr' or a model file)"
        )
    return obj


def so3lr_for(obj, system, settings: ModelSettings):
    """``(SO3LR model without weights, resolved settings)`` of the SO3LRModel ``obj`` for ``system``
    (None: free space): the settings resolved once (:meth:`ModelSettings.resolve`) and the model built by
    the one builder :func:`biomlff.so3lr.model.build_so3lr`. Cheap: batched paths call it per frame and
    group frames by the (hashable) model."""
    from .so3lr.model import build_so3lr

    sysm = None if system is None else system_of(system)
    r = settings.resolve(sysm, obj.meta.get("inference"))
    model = build_so3lr(
        lr_cutoff=r.lr_cutoff,
        dispersion_damping=r.dispersion_damping,
        precision=r.precision,
        arch=obj.arch,
        elements=obj.elements,
        name=obj.name,
        filters=r.filters,
        electrostatics=r.electrostatics,
        cell=None if sysm is None else sysm.cell,
        ewald_accuracy=r.ewald_accuracy,
        pme_order=r.pme_order,
        charge=0.0 if sysm is None else float(sysm.charge),
    )
    return model, r


def _readable_model_file(path: Path) -> None:
    """DataError naming ``path`` as a model file if it is no readable .npz archive (before the model
    kind is told from its entries; :func:`biomlff.fileio.open_npz`)."""
    from .fileio import open_npz

    with open_npz(path, "model file"):
        pass


def _so3lr(system, settings: ModelSettings, model, params=None):
    """SO3LR / a trained SO3LRModel bound to ``system`` with resolved ``settings``."""
    from .so3lr.model import so3lr_potential

    # the published model may come without weights (loaded lazily: bad input fails before the load)
    extra = {
        "params": model.params if params is None else params,
        "arch": model.arch,
        "elements": model.elements,
        "name": model.name,
    }
    return so3lr_potential(
        system.atomic_numbers,
        charge=float(system.charge),
        multiplicity=int(system.multiplicity),
        fragments=system.fragments,
        lr_cutoff=settings.lr_cutoff,
        dispersion_damping=settings.dispersion_damping,
        precision=settings.precision,
        filters=settings.filters,
        electrostatics=settings.electrostatics or "cutoff",
        cell=system.cell,
        ewald_accuracy=float(settings.ewald_accuracy),
        pme_order=int(settings.pme_order),
        **extra,
    )


@register("lj", meta={"lr_cutoff": DEFAULT_LJ_CUTOFF})
def _lj_builder(system, settings: ModelSettings):
    from .md.testing import lennard_jones

    # lr_cutoff "auto" resolves to 12 Å (periodic) / None (free space); Lennard-Jones keeps its own
    # periodic default unless a cutoff was given explicitly
    return lennard_jones(system.atomic_numbers, cutoff=settings.lr_cutoff)


def calculator(name_or_path, *, charge: float = 0.0, multiplicity: int = 1, **settings):
    """An ASE calculator of model ``name_or_path`` (any name or file :func:`build_potential` takes):
    :class:`~biomlff.calculators.SO3LRCalculator` for SO3LR and SO3krates model files,
    :class:`~biomlff.calculators.GDMLCalculator` for an sGDML ``.npz``, otherwise a calculator that
    builds the registered model for each new set of atoms. ``charge`` (e) and ``multiplicity``:
    defaults for atoms without them in ``info``; ``settings``: :class:`ModelSettings` fields."""
    from .errors import ConfigError

    key = str(name_or_path)
    model = _model_object(name_or_path)
    if model is not None:
        from .calculators.so3lr import SO3LRCalculator

        return SO3LRCalculator(model=model, charge=float(charge), multiplicity=int(multiplicity), **settings)
    if key.lower() not in _BUILDERS:
        from .calculators.gdml import GDMLCalculator

        precision = settings.get("precision")
        return GDMLCalculator(Path(key), **({} if precision is None else {"precision": precision}))
    from functools import partial

    from .calculators.base import ModelCalculator

    if not isinstance(key, str):
        raise ConfigError(f"model {key!r}: use {', '.join(names())} or an existing model file")
    precision = settings.pop("precision", None) or "float32"
    build = partial(_build_for, key, settings)
    return ModelCalculator(build, charge=float(charge), multiplicity=int(multiplicity), precision=precision)


def _build_for(key: str, settings: dict, system, precision: str):
    return build_potential(key, system, precision=precision, **settings)
