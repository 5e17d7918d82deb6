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


def precision_of(potential) -> str | None:
    """The precision a potential was built in (``potential.info["precision"]``, set by
    :func:`biomlff.models.build_potential` and the SO3LR builders), or None if it does not say."""
    info = getattr(potential, "info", None) or {}
    p = info.get("precision")
    return None if p is None else check_precision(str(p))


def resolve_precision(
    requested: str | None, potential=None, what: str = "the run", default: str = "float32"
) -> str:
    """The one owner of precision for anything that runs a potential (MD, PIMD, optimiser, i-PI,
    calculators): ``requested`` if given, else the potential's own (:func:`precision_of`), else
    ``default`` ("float32"). ConfigError when both are given and differ: a float64 model driven in
    float32 (or the reverse) would silently compute in a precision nobody asked for."""
    own = None if potential is None else precision_of(potential)
    if requested is None:
        return own or check_precision(default)
    check_precision(requested)
    if own is not None and own != requested:
        raise ConfigError(
            f"precision mismatch: the model was built in {own} but {what} was asked to run in "
            f"{requested}; build the model with precision={requested!r} (--precision {requested}) "
            "or leave the run's precision unset to follow the model"
        )
    return requested
