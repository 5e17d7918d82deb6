"""The test models of MD (Lennard-Jones, a harmonic tether, lattices): they live in the core module
:mod:`biomlff.testing` (the model registry's ``"lj"`` uses them, and a core module may not import the
MD pillar); this module keeps the former import path."""

from ..testing import (  # noqa: F401
    fcc_lattice,
    harmonic_tether,
    lennard_jones,
    lj_cluster,
    minimum_image,
)
