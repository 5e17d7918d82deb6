"""Tests of the data pillar (datasets, readers and writers, validation, the ``biomlff data`` commands).
"""
