"""Tests of the gdml pillar (sGDML / rGDML: descriptor, symmetries, kernels, solvers, prediction, CLI).
"""
