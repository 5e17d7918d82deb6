"""Solvers for (K + λI) a = y: in-place Cholesky (closed form) and Nyström-preconditioned CG
(Chmiela et al., Sci. Adv. 2023; spec §5–6).

Memory hygiene of the closed form: K is allocated once in Fortran order and factorised in place by
LAPACK ``potrf`` (only the lower triangle is overwritten). If the factorisation fails (K not
numerically positive definite), the lower triangle is restored from the untouched upper one, jitter is
added to the diagonal and the factorisation retried — there is never a second copy of K.

The CG loop is written here rather than calling ``scipy.sparse.linalg.cg`` because it needs the
residual history (stagnation → more inducing columns), periodic checkpoints and a progress bar.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, ModelError

log = logging.getLogger(__name__)

GiB = 1024**3


def closed_form_bytes(n: int) -> int:
    """Peak bytes of the closed-form solve for an n×n kernel (K in place + O(n) vectors + tiles)."""
    return n * n * 8 + 16 * n * 8 + 256 * 1024**2


def _restore_lower(k: np.ndarray, diag: np.ndarray, block: int = 2048) -> None:
    """Copy the strict upper triangle into the lower one (in place, O(block·n) extra memory) and
    reset the diagonal."""
    n = k.shape[0]
    for s in range(0, n, block):
        e = min(s + block, n)
        # rows s:e, columns < e of the lower triangle come from the transposed upper part
        k[s:e, :e] = np.where(np.tril(np.ones((e - s, e), dtype=bool), k=s - 0), k[:e, s:e].T, k[s:e, :e])
    k[np.diag_indices(n)] = diag


def cholesky_inplace(k: np.ndarray, lam: float, max_tries: int = 12) -> tuple[np.ndarray, float]:
    """Factor K + λI = L Lᵀ in place (lower triangle of ``k``), adding jitter on failure.

    k: (n, n) float64, Fortran order, symmetric. Returns (k holding L, total diagonal shift).
    """
    from scipy.linalg import lapack

    if not (k.flags.f_contiguous and k.dtype == np.float64):
        raise ValueError("cholesky_inplace needs a Fortran-ordered float64 array")
    n = k.shape[0]
    diag = np.array(k[np.diag_indices(n)])
    scale = float(np.mean(diag)) if n else 1.0
    shift = lam
    for attempt in range(max_tries):
        k[np.diag_indices(n)] = diag + shift
        c, info = lapack.dpotrf(k, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            if c is not k:  # pragma: no cover - LAPACK wrapper copied; keep the factor anyway
                k[...] = c
            return k, shift
        if info < 0:
            raise ModelError(f"LAPACK dpotrf: illegal argument {-info}")
        new_shift = max(shift * 10.0, scale * 1e-14 * 10.0**attempt)
        log.warning(
            "Cholesky failed (leading minor %d not positive); retrying with diagonal shift %.3g",
            info,
            new_shift,
        )
        _restore_lower(k, diag)
        shift = new_shift
    raise ModelError(
        "the kernel matrix is not positive definite even with jitter; try a larger σ or the CG solver"
    )


def solve_closed(k: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, dict]:
    """Solve (K + λI) a = y with K overwritten by its Cholesky factor. Returns (a, stats)."""
    from scipy.linalg import lapack

    t0 = time.perf_counter()
    k, shift = cholesky_inplace(k, lam)
    a, info = lapack.dpotrs(k, y, lower=1)
    if info != 0:
        raise ModelError(f"LAPACK dpotrs failed (info={info})")
    return a, {"solver": "closed", "diag_shift": float(shift), "solve_s": time.perf_counter() - t0}


# ---------------------------------------------------------------- Nyström-preconditioned CG
@dataclass
class Nystroem:
    """Nyström preconditioner M = BBᵀ + μI of K from columns ``cols``, B = K_nm U⁻¹ (K_mm = UᵀU),
    applied by Woodbury: M⁻¹ v = (v − B (BᵀB + μI)⁻¹ Bᵀ v) / μ with (BᵀB + μI) = U₂ᵀU₂.

    Stores Bᵀ (m × n) and U₂ (m × m) only. The explicit C = U₂⁻ᵀBᵀ of the textbook form would cost
    a second n·m² triangular solve (33 of 126 s of the aspirin M = 1000 preconditioner) for an
    apply that is no cheaper: two GEMVs over an m × n array either way, plus two m × m triangular
    solves here. The ridge leverage scores (squared column norms of C) are computed on demand, in
    column blocks, only when columns are (re)sampled."""

    cols: np.ndarray
    bt: np.ndarray = field(repr=False)
    u2: np.ndarray = field(repr=False)
    lam: float
    _leverage: np.ndarray | None = field(default=None, repr=False)

    def apply(self, v: np.ndarray) -> np.ndarray:
        """M⁻¹ v."""
        from scipy.linalg import solve_triangular

        w = solve_triangular(self.u2, self.bt @ v, trans="T", lower=False, check_finite=False)
        w = solve_triangular(self.u2, w, lower=False, check_finite=False)
        return (v - self.bt.T @ w) / self.lam

    @property
    def leverage(self) -> np.ndarray:
        """Ridge leverage scores ℓ_j = ‖U₂⁻ᵀ Bᵀ e_j‖² of all n columns."""
        if self._leverage is None:
            from scipy.linalg import solve_triangular

            n = self.bt.shape[1]
            out = np.empty(n)
            for s in range(0, n, 4096):
                c = solve_triangular(
                    self.u2, self.bt[:, s : s + 4096], trans="T", lower=False, check_finite=False
                )
                out[s : s + 4096] = np.einsum("ij,ij->j", c, c)
            self._leverage = out
        return self._leverage


def _cho_stable(a: np.ndarray, exps=range(-15, 2)) -> np.ndarray:
    """Upper Cholesky factor of a symmetric PSD matrix, adding cumulative jitter 10^e on failure."""
    from scipy.linalg import LinAlgError, cholesky

    eps = np.finfo(float).eps
    a = a + eps * np.eye(len(a))
    for e in [None, *exps]:
        if e is not None:
            a[np.diag_indices(len(a))] += 10.0**e
        try:
            return cholesky(a, lower=False, check_finite=False)
        except LinAlgError:
            continue
    raise ModelError("Nyström factor: K_mm is not positive definite even with jitter")


def build_nystroem(
    rows_fn: Callable[[np.ndarray], np.ndarray], cols: np.ndarray, lam: float, shift: bool = False
) -> Nystroem:
    """Preconditioner from kernel rows K[cols, :] (m × n) = (K_nm)ᵀ (K is symmetric); ``shift``:
    regularise with μ = max(λ, smallest Nyström eigenvalue) instead of λ (see below).

    ``rows_fn`` must return a new array: it is overwritten in place by Bᵀ."""
    from scipy.linalg import blas

    cols = np.sort(np.asarray(cols))
    kmn = np.ascontiguousarray(rows_fn(cols))  # (m, n), C order
    kmm = kmn[:, cols]
    kmm = 0.5 * (kmm + kmm.T)
    u = np.asfortranarray(_cho_stable(kmm))
    # B = K_nm U⁻¹ by BLAS dtrsm from the right on the Fortran-ordered view K_nm = K_mnᵀ, in place:
    # Bᵀ overwrites K_mn, so only one m × n array is alive (scipy's solve_triangular made a Fortran
    # copy, and its trtrs path ran at 2/3 of dtrsm's speed: m = 2000, n = 57 000, 9.4 → 6.7 s).
    # Tried and dropped: skipping the triangular solve with the Gram form (K_mn K_nm + λK_mm)⁻¹ of
    # the Woodbury identity: forming K_mn K_nm squares the condition number, its Cholesky needs
    # jitter, and CG took 352 instead of 124 iterations on aspirin M = 1000.
    b = blas.dtrsm(1.0, u, kmn.T, side=1, lower=0, trans_a=0, overwrite_b=1)
    if not np.shares_memory(b, kmn):  # pragma: no cover - the wrapper copied after all
        kmn = None
    bt = b.T  # (m, n), C order
    del kmn, b
    btb = bt @ bt.T  # NumPy calls dsyrk for a product with its own transpose
    # Shift: sgdml regularises the Nyström factor with λ itself, i.e. M = BBᵀ + λI. With λ = 1e-10
    # every direction the m columns miss is then amplified by 1/λ, which stalls CG when the columns
    # capture little of K (large molecules, few inducing points). Shifting by the smallest Nyström
    # eigenvalue μ instead (randomised Nyström PCG, Frangella, Tropp & Udell 2023) keeps the
    # preconditioned spectrum bounded; when the columns capture K well, μ ≈ λ-scale and nothing changes.
    mu = lam
    if shift:
        # smallest Nyström eigenvalue that is not a numerical zero (each geometry contributes six
        # exact zeros: rigid translations and rotations leave the descriptor unchanged)
        ev = np.linalg.eigvalsh(btb)
        ev = ev[ev > 1e-8 * ev[-1]]
        mu = max(lam, float(ev[0])) if len(ev) else lam
    btb[np.diag_indices(len(btb))] += mu
    u2 = _cho_stable(btb, exps=range(-16, -13))
    return Nystroem(cols=cols, bt=bt, u2=u2, lam=mu)


def sample_columns(leverage: np.ndarray, m: int, rng: np.random.Generator, group: int = 1) -> np.ndarray:
    """About m column indices drawn without replacement with probability ∝ ridge leverage score,
    sorted, in whole groups of ``group`` consecutive columns (one training geometry = 3N columns).

    Sampling whole geometries (group leverage = sum over its columns) instead of single columns as
    sgdml does keeps the kernel-row computation at (chosen geometries × M) blocks; single columns
    spread over many geometries would need nearly all blocks of K.
    """
    p = np.maximum(np.asarray(leverage, dtype=float), 0.0)
    p = p.reshape(-1, group).sum(axis=1)
    if not np.any(p > 0):
        p = np.ones_like(p)
    p = p / p.sum()
    k = min(max(1, int(math.ceil(m / group))), int(np.count_nonzero(p)))
    chosen = np.sort(rng.choice(len(p), size=k, replace=False, p=p))
    return (chosen[:, None] * group + np.arange(group)[None, :]).reshape(-1)


@dataclass
class CGResult:
    x: np.ndarray
    converged: bool
    iterations: int
    residual: float
    norm_y: float
    cols: np.ndarray  # inducing columns of the (last) Nyström preconditioner
    restarts: int
    history: list
    precond_s: float = 0.0  # building Nyström factors (kernel columns included), s
    iter_s: float = 0.0  # CG iterations (matvec + preconditioner applies), s

    @property
    def n_inducing_cols(self) -> int:
        return len(self.cols)


def solve_cg(
    matvec: Callable[[np.ndarray], np.ndarray],
    rows_fn: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    lam: float,
    n_cols: int,
    n_per_point: int,
    *,
    tol: float = 1e-4,
    maxiter: int | None = None,
    x0: np.ndarray | None = None,
    cols0: np.ndarray | None = None,
    seed: int = 0,
    checkpoint: Callable[[np.ndarray, int, np.ndarray], None] | None = None,
    checkpoint_every_s: float = 120.0,
    max_restarts: int = 6,
    progress: bool = False,
    shift: bool | None = None,
) -> CGResult:
    """Preconditioned CG for (K + λI) x = y with K given by ``matvec`` (K·v without λ) and
    ``rows_fn`` (rows of K for the Nyström preconditioner).

    Stops when ‖r‖ ≤ tol·‖y‖. Inducing columns: ``n_cols`` (rounded up to whole geometries of
    ``n_per_point`` columns) chosen by ridge leverage scores from a quick Nyström factor of up to 10
    random geometries; on stagnation (no net residual decrease over
    100 iterations) CG restarts from the current x with 1.2× more columns, at most ``max_restarts``
    times. ``checkpoint(x, it, cols)`` is called every ``checkpoint_every_s`` seconds.
    ``shift``: shifted Nyström preconditioner (see :func:`build_nystroem`); None = automatic, on when
    the inducing columns are fewer than 2 % of n (there the λ-regularised one stalls).
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    maxiter = maxiter or 10 * n
    n_cols = int(min(max(n_cols, 1), n))
    norm_y = float(np.linalg.norm(y))
    if shift is None:
        shift = n_cols < 0.02 * n
    if norm_y == 0:
        return CGResult(np.zeros(n), True, 0, 0.0, 0.0, np.arange(0), 0, [])

    t_start = time.perf_counter()
    if cols0 is not None and len(cols0) == n_cols:
        cols = np.sort(np.asarray(cols0))
    else:
        n_geo = n // n_per_point
        n_quick = min(n_geo, max(n_cols // n_per_point, 1), 10)
        quick_geo = np.sort(rng.choice(n_geo, n_quick, replace=False))
        quick_cols = (quick_geo[:, None] * n_per_point + np.arange(n_per_point)[None, :]).reshape(-1)
        quick = build_nystroem(rows_fn, quick_cols, lam, shift)
        cols = sample_columns(quick.leverage, n_cols, rng, n_per_point)
        del quick  # free its m × n factor before the final one is built
    pre = build_nystroem(rows_fn, cols, lam, shift)
    precond_s = time.perf_counter() - t_start
    log.info("Nyström preconditioner with %d columns built in %.1f s", len(cols), precond_s)

    A = lambda v: matvec(v) + lam * v
    x = np.zeros(n) if x0 is None else np.array(x0, dtype=float)
    it_total, restarts, history = 0, 0, []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc="CG", unit="it", leave=False)
    last_ckpt = time.perf_counter()
    converged = False
    while True:
        r = y - A(x)
        z = pre.apply(r)
        p = z.copy()
        rz = float(r @ z)
        res = float(np.linalg.norm(r))
        changes: list[float] = []
        stagnated = False
        while it_total < maxiter:
            if res <= tol * norm_y:
                converged = True
                break
            ap = A(p)
            alpha = rz / float(p @ ap)
            x += alpha * p
            r -= alpha * ap
            new_res = float(np.linalg.norm(r))
            changes.append(new_res - res)
            res = new_res
            history.append(res / norm_y)
            it_total += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rel_res=f"{res / norm_y:.2e}", cols=len(cols))
            if checkpoint is not None and time.perf_counter() - last_ckpt > checkpoint_every_s:
                checkpoint(x, it_total, cols)
                last_ckpt = time.perf_counter()
            if len(changes) >= 100:
                recent = np.array(changes[-100:])
                eff = 2.0 * (math.floor(100.0 * np.sum(-recent[recent < 0]) / np.sum(np.abs(recent))) - 50)
                if eff <= 0 and len(cols) < n and restarts < max_restarts:
                    stagnated = True
                    break
            z = pre.apply(r)
            rz_new = float(r @ z)
            p = z + (rz_new / rz) * p
            rz = rz_new
        if not stagnated:
            break
        restarts += 1
        n_cols = min(int(math.ceil(1.2 * len(cols))), n)
        log.warning("CG stagnated at iteration %d; restarting with %d inducing columns", it_total, n_cols)
        t_pre = time.perf_counter()
        cols = sample_columns(pre.leverage, n_cols, rng, n_per_point)
        pre = build_nystroem(rows_fn, cols, lam, shift)
        precond_s += time.perf_counter() - t_pre
    if bar is not None:
        bar.close()
    true_res = float(np.linalg.norm(y - A(x)))
    return CGResult(
        x=x,
        converged=converged,
        iterations=it_total,
        residual=true_res,
        norm_y=norm_y,
        cols=cols,
        restarts=restarts,
        history=history,
        precond_s=precond_s,
        iter_s=time.perf_counter() - t_start - precond_s,
    )


#: ``auto`` switches to CG above this closed-form order. Measured on rMD17 (2-core EPYC, one thread):
#: the closed form is faster at n ≤ 11 400 (ethanol and aspirin M = 200: 2.8 vs 3.2 s, 19 vs 34 s),
#: CG is faster at n = 21 000 (ethanol M = 1000 GDML: 19 vs 105 s) with the same test errors
#: (force MAE equal to 4 digits in all six cases measured at tolerance 1e-4).
AUTO_CG_ABOVE = 15_000


def check_memory(n: int, max_memory_gb: float, solver: str, cg_allowed: bool = True) -> str:
    """Pick/validate the solver for an n×n problem. ``auto``: the closed form if it fits in
    ``max_memory_gb`` and n ≤ :data:`AUTO_CG_ABOVE` (or CG is not allowed), else CG."""
    need = closed_form_bytes(n)
    if solver not in ("auto", "closed", "cg"):
        raise ConfigError(f"solver must be auto, closed or cg, got {solver!r}")
    if solver == "auto":
        fits = need <= max_memory_gb * GiB
        if not cg_allowed:
            return "closed" if fits else "cg"  # the caller reports why cg is not possible
        return "closed" if fits and n <= AUTO_CG_ABOVE else "cg"
    if solver == "closed" and need > max_memory_gb * GiB:
        raise ConfigError(
            f"the closed-form solver needs ~{need / GiB:.1f} GiB for a {n}×{n} kernel but "
            f"--max-memory is {max_memory_gb:g} GiB; use --solver cg (or auto)"
        )
    return solver


def default_max_memory_gb() -> float:
    """Default memory budget: 80 % of the available RAM (GiB)."""
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return 0.8 * pages / GiB
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8.0
