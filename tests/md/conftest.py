"""Tests of the md pillar (ensembles, integrators, neighbour lists, restarts, PIMD, i-PI, the optimiser and
the md/opt commands). The Lennard-Jones argon lattice is the ``argon_file`` fixture of ``tests/conftest.py``.
"""
