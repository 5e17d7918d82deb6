"""SO3LR: the pretrained SO3krates + long-range (ZBL, electrostatics, dispersion) force field.

``so3lr_potential(atomic_numbers, ...)`` builds a :class:`biomlff.potential.Potential`;
``load_params()`` reads the weights from the user cache (``biomlff weights fetch``). See docs/so3lr.md.
"""

from .model import TRAINED_ELEMENTS, SO3LRConfig, check_cell, check_elements, so3lr_potential, so3lr_terms
from .weights import WeightsError, cache_dir, load_params

__all__ = [
    "so3lr_potential",
    "so3lr_terms",
    "load_params",
    "cache_dir",
    "check_cell",
    "check_elements",
    "SO3LRConfig",
    "TRAINED_ELEMENTS",
    "WeightsError",
]
