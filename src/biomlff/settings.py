"""Model settings and the systems models are bound to: the one place where model defaults are
resolved (:meth:`ModelSettings.resolve`) and where a structure of any kind becomes a
:class:`~biomlff.potential.ChemicalSystem` (:func:`system_of`).

Core (below every pillar): the model pillars (``so3lr``, ``gdml``), the front door
:mod:`biomlff.models`, the calculators, MD and training all read it. Units: Å, e.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np

from .defaults import DEFAULT_DISPERSION_DAMPING, DEFAULT_EWALD_ACCURACY, DEFAULT_LR_CUTOFF


def setting(default, help: str, *, kind: str | None = None, choices: tuple | None = None, metavar=None):
    """A :class:`ModelSettings` field with what the command line needs to offer it: ``help`` (its
    ``--option`` text), ``kind`` ("cutoff": a length in Å, 'none' or 'auto'; "float"; "int"; None: a
    word), ``choices`` and ``metavar``. The one declaration of a model setting (see
    :class:`ModelSettings`)."""
    from dataclasses import field

    return field(
        default=default, metadata={"help": help, "kind": kind, "choices": choices, "metavar": metavar}
    )


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

    A new setting is one field here, declared with :func:`setting` (default, help, kind, choices): the
    command line's shared options (``--name-with-dashes`` in md, opt, pimd, ipi, eval and bind), the
    calculators' keywords, MD and training then carry it (``docs/architecture.md``)."""

    lr_cutoff: float | str | None = setting(
        "auto",
        "long-range cutoff in Å, 'none' (all pairs, free space) or 'auto' (default: a model file's own "
        "cutoff, else all pairs in free space and 12 Å for periodic systems)",
        kind="cutoff",
    )
    dispersion_damping: float | None = setting(
        None,
        "width in Å of the dispersion switch before the lr cutoff (default: the model file's, else 2)",
        kind="float",
        metavar="Å",
    )
    precision: str = setting(
        "float32", "floating-point precision: float32 (default) or float64", choices=("float32", "float64")
    )
    filters: str | None = setting(
        None,
        "SO3LR radial filters: 'exact' networks per pair or 'tabulated' (piecewise-quintic tables built "
        "once from the weights; error below float32 rounding). Default: tabulated in float32, exact in "
        "float64",
        choices=("exact", "tabulated"),
    )
    electrostatics: str = setting(
        "cutoff",
        "electrostatics in periodic boxes: 'cutoff' (default, SO3LR's shifted lr cutoff) or the damped "
        "Coulomb sum over the whole lattice by 'ewald' (small boxes) or 'pme' (large boxes)",
        choices=("cutoff", "ewald", "pme"),
    )
    ewald_accuracy: float = setting(
        DEFAULT_EWALD_ACCURACY,
        "requested relative force accuracy of the Ewald/PME sum (1e-4)",
        kind="float",
        metavar="EPS",
    )
    pme_order: int = setting(6, "PME B-spline order (6)", kind="int", metavar="N")

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
            raise ConfigError(f"filters must be one of ('exact', 'tabulated'), got {self.filters!r}")
        if self.electrostatics not in ("cutoff", "ewald", "pme"):
            raise ConfigError(
                f"electrostatics must be one of ('cutoff', 'ewald', 'pme'), got {self.electrostatics!r}"
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


#: ModelSettings fields and their help texts (the command line's option builder reads the fields)
SETTING_HELP = {f.name: f.metadata["help"] for f in fields(ModelSettings)}

#: the former name of :class:`ModelSettings`
Settings = ModelSettings


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
        from .geometry import cell_from_pbc

        base = ChemicalSystem(
            obj.get_atomic_numbers(),
            float(obj.info.get("charge", 0.0)),
            int(obj.info.get("multiplicity", 1)),
            cell=cell_from_pbc(obj.cell.array, obj.pbc, name="atoms"),
        )
    elif hasattr(obj, "atomic_numbers"):  # biomlff.md.structure.System
        base = ChemicalSystem(
            obj.atomic_numbers, float(obj.charge or 0.0), int(obj.multiplicity or 1), cell=obj.cell
        )
    else:
        base = ChemicalSystem(np.asarray(obj))
    over = {"charge": charge, "multiplicity": multiplicity, "fragments": fragments}
    return replace(base, **{k: v for k, v in over.items() if v is not None})
