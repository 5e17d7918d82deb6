"""Tabulated radial filters of SO3krates (issue 13).

Each SO3krates layer has two radial filter networks w(r) = D2(silu(D1(B(r)))) (Bernstein basis B,
see :func:`biomlff.so3lr.network.radial_filters`). They depend on the pair distance r alone, so they
can be replaced by a piecewise polynomial of r, built once from the weights (any weights: published,
fine-tuned, trained or random), like the model compression of DeePMD-kit's embedding nets.

Construction (:func:`build_tables`): a uniform grid of ``num_cells`` cells over [0, r_c] (r_c the
short-range cutoff of the architecture, 4.5 Å in SO3LR). At every node the network is evaluated in
float64 together with its first and second derivatives in r (forward-mode autodiff, ``jax.jvp`` of
``jax.jvp``: exact derivatives of the network, no finite differences). On each cell the quintic
Hermite polynomial matching value, slope and curvature at both ends is stored as its six power
coefficients in the local coordinate t = r/h − k ∈ [0, 1] (h = r_c / num_cells): the interpolant is
C² across nodes, so forces are continuous and their derivative too. ``kind="cubic"`` stores the
cubic Hermite polynomial (value and slope, C¹) instead.

Error: quintic Hermite interpolation errs by ≤ h⁶ max|w⁽⁶⁾| / 46080. With the default 512 cells
(h = 8.8 mÅ for SO3LR) the measured maximum error of the published filters is far below float32
rounding of the filter values (see :func:`table_error` and docs/so3lr.md), so float32 results are
limited by float32 arithmetic, not by the table.

Evaluation (:func:`evaluate`): one gather of the cell's coefficients per pair and a Horner scheme,
(P, 2F) multiply-adds instead of the (P, K)·(K, 2F) and two (P, F)·(F, F) products of the networks.
The derivative dw/dr used by the forces is the derivative of this polynomial (JAX autodiff).

The tables are a pytree: ``{"layers_k": coeffs}`` with ``coeffs`` of shape (num_cells, 6 or 4, 2F)
(filter 1 in the first F columns, filter 2 in the last F), NumPy arrays in the compute dtype. They
travel with the weights as ``params["radial_tables"]`` (:func:`with_tables`), so a jitted energy
function receives them as arguments and never rebuilds them.

Units: r in Å; the filter values are dimensionless (they multiply the attention logits).
"""

from __future__ import annotations

import functools

import numpy as np

from ..precision import precision_context
from . import network
from .architecture import PUBLISHED, Architecture

#: key of the tables in a parameter tree
TABLES_KEY = "radial_tables"
#: default number of grid cells over [0, r_c]
NUM_CELLS = 512
KINDS = ("quintic", "cubic")
#: default cells per precision: 512 quintic cells put the table error of the published filters
#: (≤ 2e-8 absolute on values up to 11.5) far below float32 rounding (~4e-6 in evaluation); float64
#: runs use 1024 (≤ 5e-10), measured with :func:`table_error`
DEFAULT_CELLS = {"float32": 512, "float64": 1024}
#: the node at r = 0 is evaluated at this distance (Å): the Bernstein basis is analytic at 0 but its
#: log-space formula gives 0·(−∞) there; the shift changes the node value by ~1e-9 relative
R_FIRST_NODE = 1e-9


def _radial_fn(ab, arch: Architecture):
    """r (P,) Å → both radial filters (P, 2F) in float64, the network's own functions."""
    import jax.numpy as jnp

    def f(r):
        rbf = network.bernstein_basis(r, jnp.float64, arch.num_rbf)
        w = network.radial_filters(ab, rbf, jnp.float64)  # (2, P, F)
        return jnp.concatenate([w[0], w[1]], axis=-1)

    return f


def node_derivatives(ab, r, arch: Architecture = PUBLISHED):
    """Radial filters of one layer's ``attention_block`` parameters ``ab`` and their first and
    second derivatives in r at distances ``r`` (P,) Å: array (3, P, 2F), float64.

    Every output depends only on its own pair's r, so the Jacobian is diagonal and a forward-mode
    product with a tangent of ones gives all first derivatives at once (and again for the second).
    Needs 64-bit JAX (call inside ``jax.enable_x64(True)``)."""
    import jax
    import jax.numpy as jnp

    f = _radial_fn(ab, arch)
    ones = jnp.ones_like(r)

    def d1(x):
        return jax.jvp(f, (x,), (ones,))[1]

    val, der = jax.jvp(f, (r,), (ones,))
    der2 = jax.jvp(d1, (r,), (ones,))[1]
    return jnp.stack([val, der, der2])


def hermite_coefficients(f0, f1, kind: str = "quintic"):
    """Power coefficients (in t ∈ [0, 1]) of the Hermite polynomial matching the scaled values
    ``f0`` = (y, h·y′, h²·y″) at t = 0 and ``f1`` at t = 1 (arrays (3, ...)): (6, ...) for quintic,
    (4, ...) for cubic (then the second derivatives are ignored)."""
    y0, g0, c0 = f0
    y1, g1, c1 = f1
    dy = y1 - y0
    if kind == "cubic":
        return np.stack([y0, g0, 3 * dy - 2 * g0 - g1, -2 * dy + g0 + g1])
    if kind != "quintic":
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    a3 = 10 * dy - 6 * g0 - 4 * g1 - (3 * c0 - c1) / 2
    a4 = -15 * dy + 8 * g0 + 7 * g1 + (3 * c0 - 2 * c1) / 2
    a5 = 6 * dy - 3 * (g0 + g1) - (c0 - c1) / 2
    return np.stack([y0, g0, c0 / 2, a3, a4, a5])


def layer_table(ab, arch: Architecture = PUBLISHED, num_cells: int = NUM_CELLS, kind: str = "quintic"):
    """Coefficients (num_cells, 6 | 4, 2F) float64 of one layer's radial filters on [0, r_c]."""
    import jax
    import jax.numpy as jnp

    rc = float(arch.sr_cutoff)
    h = rc / num_cells
    nodes = np.arange(num_cells + 1, dtype=np.float64) * h
    nodes[0] = R_FIRST_NODE
    with precision_context("float64"):
        ab64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a), ab)
        d = np.asarray(jax.jit(node_derivatives, static_argnums=2)(ab64, jnp.asarray(nodes), arch))
    scaled = d * np.array([1.0, h, h * h])[:, None, None]  # derivatives in t = r/h
    coeffs = hermite_coefficients(scaled[:, :-1], scaled[:, 1:], kind)  # (K, cells, 2F)
    return np.ascontiguousarray(np.moveaxis(coeffs, 0, 1))


def build_tables(
    params,
    arch: Architecture = PUBLISHED,
    dtype=np.float32,
    num_cells: int = NUM_CELLS,
    kind: str = "quintic",
) -> dict:
    """Radial-filter tables of every layer of ``params`` (nested dict without the top "params" key):
    ``{"layers_k": coeffs (num_cells, 6 | 4, 2F)}`` as NumPy arrays of ``dtype``."""
    from ..errors import ConfigError

    if kind not in KINDS:
        raise ConfigError(f"table kind must be one of {KINDS}, got {kind!r}")
    if int(num_cells) < 2:
        raise ConfigError(f"num_cells must be ≥ 2, got {num_cells}")
    return {
        f"layers_{k}": layer_table(
            params[f"layers_{k}"]["attention_block"], arch, int(num_cells), kind
        ).astype(dtype)
        for k in range(arch.num_layers)
    }


@functools.lru_cache(maxsize=8)
def _cached_tables(digest: str, arch: Architecture, dtype_name: str, num_cells: int, kind: str, params_ref):
    """The tables of one parameter set, kept in memory (this process) and on disk (the user cache,
    :func:`biomlff.aot.cached_arrays`, keyed by the weights' checksum, architecture, dtype and grid):
    a repeated command reads them instead of building them (1–5 s for SO3LR)."""
    from .. import aot

    dtype = np.dtype(dtype_name)
    width = 6 if kind == "quintic" else 4

    def build():
        return build_tables(params_ref.tree, arch, dtype, num_cells, kind)

    def check(tables) -> bool:  # the stored file holds exactly the tables asked for
        names = {f"layers_{k}" for k in range(arch.num_layers)}
        return set(tables) == names and all(
            t.dtype == dtype and t.ndim == 3 and t.shape[:2] == (num_cells, width) for t in tables.values()
        )

    key = repr((digest, arch, dtype.name, int(num_cells), kind))
    return aot.cached_arrays("so3lr-tables", key, build, check)


class _Ref:
    """Unhashed holder so that the lru_cache key is the weights' checksum, not the dict."""

    def __init__(self, tree):
        self.tree = tree

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, _Ref)


def with_tables(params, arch: Architecture = PUBLISHED, dtype=np.float32, **grid):
    """``params`` with ``params["radial_tables"]`` added (a shallow copy; the weights are shared);
    ``grid``: ``num_cells`` and ``kind`` as in :func:`build_tables`.

    Tables are built once per parameter set: they are cached by the SHA-256 of the weights
    (:func:`biomlff.so3lr.weights.checksum`), architecture, dtype, grid size and kind, so that the
    calculator, batched evaluation and MD reuse them, and stored in the user cache so that a later
    process reads them (``BIOMLFF_COMPILE_CACHE=off``: never stored). Existing tables of the same
    shape and dtype are kept."""
    from .weights import checksum

    num_cells, kind = int(grid.pop("num_cells", NUM_CELLS)), grid.pop("kind", "quintic")
    if grid:
        raise TypeError(f"with_tables: unknown keyword(s) {', '.join(sorted(grid))}")
    dtype = np.dtype(dtype)
    old = params.get(TABLES_KEY)
    if old is not None:
        first = old.get("layers_0")
        if first is not None and first.dtype == dtype and first.shape[0] == num_cells:
            return params
    weights = {k: v for k, v in params.items() if k != TABLES_KEY}
    tables = _cached_tables(checksum(weights), arch, dtype.name, int(num_cells), kind, _Ref(weights))
    return {**weights, TABLES_KEY: tables}


def without_tables(params):
    """``params`` without its radial tables (the plain weight tree)."""
    if TABLES_KEY not in params:
        return params
    return {k: v for k, v in params.items() if k != TABLES_KEY}


def default_cells(precision: str) -> int:
    """Default grid size for ``precision`` ("float32" | "float64")."""
    return DEFAULT_CELLS.get(precision, NUM_CELLS)


#: both radial filters (2, P, F) from a layer table at distances r (P,) Å (lives in
#: :mod:`biomlff.so3lr.network`, which evaluates it inside the layers)
evaluate = network.tabulated_radial_filters


def table_error(params, tables, arch: Architecture = PUBLISHED, samples: int = 20011) -> dict:
    """Largest |table − network| per layer over ``samples`` distances in [0.05 Å, r_c] (float64
    evaluation of both; the table in its own dtype), and the largest |network| value, as a dict
    ``{"layers_k": (max abs error, max abs value)}``."""
    import jax.numpy as jnp

    r = np.linspace(0.05, float(arch.sr_cutoff), samples)
    out = {}
    with precision_context("float64"):
        for k in range(arch.num_layers):
            ab = params[f"layers_{k}"]["attention_block"]
            exact = np.asarray(_radial_fn(ab, arch)(jnp.asarray(r)))
            coeffs = tables[f"layers_{k}"]
            tab = np.asarray(evaluate(coeffs, jnp.asarray(r, coeffs.dtype), arch.sr_cutoff, coeffs.dtype))
            tab = np.concatenate([tab[0], tab[1]], axis=-1).astype(np.float64)
            out[f"layers_{k}"] = (float(np.abs(tab - exact).max()), float(np.abs(exact).max()))
    return out
