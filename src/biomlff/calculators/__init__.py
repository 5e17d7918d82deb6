"""ASE calculators on top of any :class:`biomlff.potential.Potential` (see docs/architecture.md).

``PotentialCalculator`` is the generic one; model-specific calculators subclass it. Importing this
package is cheap: the model calculators are loaded on first attribute access.
"""

from .base import ModelCalculator, PotentialCalculator, cell_of, precision_context

__all__ = [
    "GDMLCalculator",
    "calculator",
    "ModelCalculator",
    "PotentialCalculator",
    "SO3LRCalculator",
    "cell_of",
    "precision_context",
]


def calculator(name_or_path, *, charge: float = 0.0, multiplicity: int = 1, **settings):
    """An ASE calculator of any model the front door :func:`biomlff.models.build_potential` takes:
    :class:`SO3LRCalculator` for SO3LR and SO3krates model files, :class:`GDMLCalculator` for an sGDML
    ``.npz``, otherwise a :class:`ModelCalculator` that builds the registered model for each new set
    of atoms. ``charge`` (e) and ``multiplicity``: defaults for atoms without them in ``info``;
    ``settings``: :class:`~biomlff.settings.ModelSettings` fields (None = not given)."""
    from functools import partial
    from pathlib import Path

    from .. import models

    settings = {k: v for k, v in settings.items() if v is not None}
    model = models._model_object(name_or_path)
    if model is not None:
        from .so3lr import SO3LRCalculator

        return SO3LRCalculator(model=model, charge=float(charge), multiplicity=int(multiplicity), **settings)
    key = str(name_or_path)
    if key.lower() not in models.names():
        from .gdml import GDMLCalculator

        precision = settings.get("precision")
        return GDMLCalculator(Path(key), **({} if precision is None else {"precision": precision}))
    precision = settings.pop("precision", None) or "float32"
    build = partial(_build_for, key, settings)
    return ModelCalculator(build, charge=float(charge), multiplicity=int(multiplicity), precision=precision)


def _build_for(key: str, settings: dict, system, precision: str):
    from ..models import build_potential

    return build_potential(key, system, precision=precision, **settings)


def __getattr__(name):  # lazy: importing SO3LR pulls in JAX and the weights machinery
    if name == "SO3LRCalculator":
        from .so3lr import SO3LRCalculator

        return SO3LRCalculator
    if name == "GDMLCalculator":
        from .gdml import GDMLCalculator

        return GDMLCalculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
