"""ASE calculator for (s)GDML models (biomlff or sgdml 1.0.3 model files).

Energy in eV, forces in eV/Å (autodiff of the model's energy function, identical to the analytic
sGDML forces). Evaluated in float64 by default: sGDML energies carry a large integration constant.
"""

from __future__ import annotations

from .base import PotentialCalculator


class GDMLCalculator(PotentialCalculator):
    """ASE calculator for a GDML model.

    Args:
        model: path of a model file (biomlff ``.npz`` or sgdml 1.0.3 ``.npz``) or a
            :class:`biomlff.gdml.GDMLModel`.
        precision: "float64" (default) or "float32".
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model, *, precision: str = "float64", **kwargs):
        from ..gdml.model import GDMLModel

        self.model = model if isinstance(model, GDMLModel) else GDMLModel.load(model)
        super().__init__(self.model.potential(), precision=precision, **kwargs)
