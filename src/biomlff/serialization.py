"""Conversion of metadata (dicts of NumPy arrays and scalars, paths) to plain JSON values, shared
by the model files of every pillar."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_jsonable(obj):
    """``obj`` with NumPy arrays → lists, NumPy scalars → Python numbers, paths → strings, dict keys
    → strings and tuples → lists (recursively), ready for :func:`json.dumps`."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj
