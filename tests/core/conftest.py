"""Tests of the core modules below the pillars (geometry, pair sums, containers, the batcher, AOT,
settings and the front door, the model interface, the architecture rules) and of what crosses every
pillar (safe defaults, the documented commands). Shared fixtures (``shared``, ``params``,
``so3lr_cache``, ``argon_file``) live in ``tests/conftest.py``.
"""
