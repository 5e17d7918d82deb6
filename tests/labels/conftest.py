"""Tests of the labels pillar (xTB and PySCF labellers, sampling, fragments, the job runner).
"""
