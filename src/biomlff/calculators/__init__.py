"""ASE calculators on top of any :class:`biomlff.potential.Potential` (see docs/architecture.md).

``PotentialCalculator`` is the generic one; model-specific calculators subclass it. Importing this
package is cheap: the model calculators are loaded on first attribute access.
"""

from .base import ModelCalculator, PotentialCalculator, cell_of, precision_context

__all__ = [
    "GDMLCalculator",
    "ModelCalculator",
    "PotentialCalculator",
    "SO3LRCalculator",
    "cell_of",
    "precision_context",
]


def __getattr__(name):  # lazy: importing SO3LR pulls in JAX and the weights machinery
    if name == "SO3LRCalculator":
        from .so3lr import SO3LRCalculator

        return SO3LRCalculator
    if name == "GDMLCalculator":
        from .gdml import GDMLCalculator

        return GDMLCalculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
