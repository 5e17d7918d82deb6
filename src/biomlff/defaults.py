"""Defaults shared by the models and the model registry (:mod:`biomlff.models`), in one place.

A leaf module (imports nothing), so that pillars, calculators and the registry can all read it.
Units: Å.
"""

#: SO3LR's long-range cutoff (Å) for periodic systems (the thesis setting); free-space systems
#: default to no cutoff (all pairs, the training setting)
DEFAULT_LR_CUTOFF = 12.0
#: width (Å) of SO3LR's dispersion switch before the long-range cutoff
DEFAULT_DISPERSION_DAMPING = 2.0
#: relative force accuracy of the lattice sums ("ewald" / "pme" electrostatics)
DEFAULT_EWALD_ACCURACY = 1e-4
#: Lennard-Jones cutoff (Å) for periodic systems (free space: all pairs)
DEFAULT_LJ_CUTOFF = 8.5
