"""Tests of the so3lr pillar (weights, the network and physical terms against the shared references,
tabulated filters, lattice sums, batched evaluation, calculators and the CLI). The weights come from the
session fixture ``params`` of ``tests/conftest.py``.
"""
