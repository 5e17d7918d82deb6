"""sGDML prediction (spec §4) in JAX: batched energies and forces, and the energy function of a
:class:`biomlff.potential.Potential`.

For a query with descriptor x and Jacobian c, training descriptors X_j and coefficients
u_j = J_j α_j (both permuted by every π of the group: rows of Xp, Up with M·P rows), d = x − P_π X_j,
r = ‖d‖, e = exp(−√5 r/σ):

    E = c + s Σ (5/(3σ³)) (σ + √5 r) e (d·u)
    g = s Σ (5/(3σ⁴)) e [5 (d·u) d − (σ² + √5 σ r) u],     F = J(x)ᵀ g

so that F = −∇E exactly. The batched path expands ‖d‖² = ‖x‖² + ‖X‖² − 2 x·X (on descriptors
centred on the training mean) so that every sum over training rows is a matrix product (GEMM), and
runs over the training rows in cache-sized chunks; the single-geometry energy function keeps the
direct differences (exact at d = 0 and safe for autodiff).
"""

from __future__ import annotations

import math

SQRT5 = math.sqrt(5.0)


#: target size (elements) of one (batch × training-row chunk) block of the batched path: about 2.6 MB
#: of float64 per temporary, which keeps the exp/sqrt passes and the GEMM operands in cache (measured
#: on ethanol M = 1000, P = 6, one thread: batch 1024 × 312 rows gives 1.5× the throughput of
#: batch 128 × 1250 rows and ~2× that of one (128 × M·P) block)
BLOCK_ELEMENTS = 320_000


def row_chunk(n_rows: int, batch: int) -> int:
    """Training rows per chunk for ``batch`` queries (all rows when they fit in one block)."""
    c = max(256, BLOCK_ELEMENTS // max(batch, 1))
    if c >= n_rows:
        return n_rows
    # equal chunks (rounded up to 4 rows) instead of full ones plus zero padding: aspirin M = 200
    # (1200 rows) takes 4 × 300 rows instead of 4 × 312 with 48 padded rows. Measured in one process
    # pinned to one core, 4 alternating rounds: ethanol M = 200 62k → 72k geo/s, aspirin 15.8k → 16.4k
    k = -(-n_rows // c)
    per = -(-n_rows // k)
    return (per + 3) // 4 * 4


def prepare_rows(xp, up, chunk: int, ae=None):
    """Centred, zero-padded training rows for :func:`kernel_sums`: returns (x̄, xp − x̄, up, Σ(xp − x̄)²,
    Σ(xp − x̄)·up) and, for energy-constrained models, the per-row energy coefficients ``ae`` (R,);
    the rows padded with zeros to a multiple of ``chunk`` (padded rows have u = 0 and α_E = 0 and
    contribute exactly nothing).

    Centring (d = (x − x̄) − (P x_j − x̄) is unchanged) shrinks the terms of the expanded products
    ‖d‖² = ‖x‖² + ‖X‖² − 2x·X and d·u = x·u − X·u, whose cancellation limits the accuracy when |α| is
    large (λ = 1e-10 gives |α| ~ 1e8 on rMD17): the energy error against direct differences in extended
    precision drops from ~2e-12 to ~1e-13 (relative) on ethanol M = 1000.
    """
    import numpy as np

    xp = np.asarray(xp, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    xbar = xp.mean(axis=0)
    xc = xp - xbar
    pad = (-len(xc)) % chunk
    if pad:
        xc = np.concatenate([xc, np.zeros((pad, xc.shape[1]))])
        up = np.concatenate([up, np.zeros((pad, up.shape[1]))])
    out = (xbar, xc, up, np.sum(xc * xc, axis=1), np.sum(xc * up, axis=1))
    if ae is not None:
        out += (np.concatenate([np.asarray(ae, dtype=np.float64), np.zeros(pad)]),)
    return out


def _sums(x, xp, up, x2p, xup, sigma, ae=None, xnp=None, grad: bool = True):
    """Energy sums Σ (5/(3σ³))(σ + √5 r) e (d·u) (B,) and descriptor gradients g/s (B, D) over the
    rows xp, up (R, D) for centred queries x (B, D); the sums over rows are GEMMs.

    ``ae`` (R,): energy-constraint coefficients α_E per row (spec §3): adds Σ α_E κ(d) to the energy
    sum and −∇ₓ of it, Σ α_E c2 d, to g (with c2 below: −∇κ(d) = c2 d). ``xnp``: array module
    (default jax.numpy; NumPy evaluates the same formula without compiling); ``grad=False`` returns
    (energy, None)."""
    if xnp is None:
        import jax.numpy as xnp

    x2 = xnp.sum(x * x, axis=-1)
    r2 = x2[:, None] + x2p[None, :] - 2.0 * (x @ xp.T)
    r = xnp.sqrt(xnp.maximum(r2, 0.0))
    du = x @ up.T - xup[None, :]
    e = xnp.exp(-SQRT5 * r / sigma)
    # c2 = w (σ² + √5σr) with w = 5e/(3σ⁴) is also the energy weight: E-sum = Σ c2 (d·u)
    c2 = (5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e
    energy = xnp.sum(c2 * du, axis=-1)
    if ae is not None:
        kappa = (1.0 + SQRT5 * r / sigma + (5.0 / (3.0 * sigma**2)) * r * r) * e
        energy = energy + kappa @ ae
    if not grad:
        return energy, None
    c1 = (25.0 / (3.0 * sigma**4)) * e * du  # 5 w (d·u)
    if ae is not None:
        c1 = c1 + c2 * ae[None, :]  # Σ α_E c2 (x − X) joins the d-term of g
    g = x * xnp.sum(c1, axis=-1, keepdims=True) - c1 @ xp - c2 @ up
    return energy, g


def kernel_sums(x, xp, up, x2p, xup, sigma, chunk: int | None = None, ae=None):
    """:func:`_sums` accumulated over chunks of ``chunk`` training rows (``lax.scan``; the row count
    must be a multiple of ``chunk``, see :func:`prepare_rows`)."""
    import jax
    import jax.numpy as jnp

    n_rows, d = xp.shape
    if chunk is None or chunk >= n_rows:
        return _sums(x, xp, up, x2p, xup, sigma, ae)
    k = n_rows // chunk
    rows = (xp.reshape(k, chunk, d), up.reshape(k, chunk, d), x2p.reshape(k, chunk), xup.reshape(k, chunk))
    if ae is not None:
        rows += (ae.reshape(k, chunk),)

    def body(carry, blk):
        en, g = _sums(x, *blk[:4], sigma, blk[4] if len(blk) > 4 else None)
        return (carry[0] + en, carry[1] + g), None

    init = (jnp.zeros(x.shape[0], dtype=x.dtype), jnp.zeros_like(x))
    (energy, g), _ = jax.lax.scan(body, init, rows)
    return energy, g


def batch_energy_forces(
    x, c, xbar, xp, up, x2p, xup, sigma, std, const, a, b, n_atoms: int, chunk: int | None = None, ae=None
):
    """Energies (B,) and forces (B, N, 3) for descriptors x (B, D), Jacobians c (B, D, 3).

    xbar, xp, up, x2p, xup (and ae for energy-constrained models): training rows from
    :func:`prepare_rows` (centred on x̄, padded to a multiple of ``chunk``). Units follow the model
    (eV, eV/Å for biomlff models).
    """
    from .descriptor import vjp

    energy, g = kernel_sums(x - xbar, xp, up, x2p, xup, sigma, chunk, ae)
    forces = vjp(c, std * g, a, b, n_atoms)
    return const + std * energy, forces


def energies_numpy(x, xbar, xp, up, x2p, xup, sigma, std, const, ae=None, block: int = 256):
    """Energies (B,) of descriptors x (B, D) in NumPy (no JIT compilation; used for the integration
    constant on the training set). Rows as from :func:`prepare_rows`; the formula of :func:`_sums`."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64) - xbar
    out = np.empty(len(x))
    for s in range(0, len(x), block):
        en, _ = _sums(x[s : s + block], xp, up, x2p, xup, sigma, ae, xnp=np, grad=False)
        out[s : s + block] = const + std * en
    return out


def single_energy(x, xp, up, sigma, std, const, ae=None):
    """Energy of one descriptor x (D,) with direct differences (autodiff-safe at d = 0); ``ae`` (R,):
    energy-constraint coefficients per row."""
    import jax.numpy as jnp

    d = x[None, :] - xp
    r2 = jnp.sum(d * d, axis=-1)
    pos = r2 > 1e-30
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)  # double-where: finite gradient at 0
    du = jnp.sum(d * up, axis=-1)
    e = jnp.exp(-SQRT5 * r / sigma)
    total = jnp.sum((5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e * du)
    if ae is not None:
        total = total + jnp.sum((1.0 + SQRT5 * r / sigma + 5.0 * r2 / (3.0 * sigma**2)) * e * ae)
    return const + std * total


def potential_energy(params, positions, pairs, cell):
    """energy_fn of the GDML Potential: positions (N, 3) Å → energy (eV). ``pairs`` is ignored
    (global model); ``cell`` (rows = lattice vectors, Å) switches on the minimum image, otherwise
    the model's own lattice (if any) is used."""
    from .descriptor import descriptor

    a, b = params["a"], params["b"]
    lattice = params.get("lattice")
    if cell is not None:
        lattice = cell.T
    x = descriptor(positions, a, b, lattice)
    return single_energy(
        x, params["xp"], params["up"], params["sigma"], params["std"], params["c"], params.get("ae")
    )
