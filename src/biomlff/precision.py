"""The one precision switch of biomlff: "float32" (default) or "float64".

:func:`precision_context` is the thread-local JAX switch every evaluator, calculator, MD engine and
trainer enters (``jax.enable_x64(precision == "float64")``, restored on exit, so the global
``jax_enable_x64`` flag is never flipped); :func:`dtype_of` is the matching NumPy dtype. Below every
pillar: imports JAX lazily.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

PRECISIONS = ("float32", "float64")


def check_precision(precision: str) -> str:
    """Validate a precision name ('float32' or 'float64'); ConfigError otherwise."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def dtype_of(precision: str):
    """NumPy float dtype of a precision name: np.float64 for "float64", else np.float32."""
    return np.float64 if precision == "float64" else np.float32


def precision_context(precision: str):
    """Context in which JAX computes in ``precision``: 64-bit JAX inside for "float64", 32-bit for
    "float32" (thread-local ``jax.enable_x64``, restored on exit)."""
    import jax

    return jax.enable_x64(precision == "float64")
