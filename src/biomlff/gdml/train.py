"""Training of (s)GDML models: data split, symmetries, σ search, closed-form or CG solve,
integration constant (spec §4–§8).

Units: positions Å, energies eV, forces eV/Å (errors are reported in eV and kcal/mol).
Deterministic for a given ``seed`` (split, symmetry subset, Nyström column sampling).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import units
from ..errors import ConfigError, DataError
from ..precision import precision_context
from .data import Frames, check_frames
from .descriptor import check_pair_list, descriptor_and_jacobian, jvp, pair_list
from .kernel import KernelAssembler, internal_basis
from .model import GDMLModel
from .perms import check_group, check_orbit_closed, descriptor_perms, find_perms, identity, sort_group
from .solvers import GiB, check_memory, closed_form_bytes, default_max_memory_gb, solve_cg, solve_closed

log = logging.getLogger(__name__)

DEFAULT_SIGMAS = (5.0, 10.0, 20.0, 40.0, 80.0)


@dataclass
class TrainConfig:
    """Options of :func:`train` (σ in 1/Å descriptor units, memory in GiB)."""

    n_train: int
    n_valid: int = 0
    sigmas: Sequence[float] = DEFAULT_SIGMAS
    use_sym: bool = True
    perms: np.ndarray | None = None
    solver: str = "auto"
    lam: float = 1e-10
    max_memory_gb: float | None = None
    seed: int = 0
    use_E: bool = True
    n_inducing: int | None = None  # inducing training points for CG (× 3N columns)
    cg_tol: float = 1e-4
    checkpoint: str | None = None
    resume: bool = False
    idx_train: np.ndarray | None = None
    idx_valid: np.ndarray | None = None
    progress: bool = False
    sym_max_geometries: int = 1000
    #: solve (closed form and CG) in the coordinates orthogonal to the rigid-body modes (M(3N − 6)
    #: unknowns instead of 3NM: same predictions, Cholesky ((3N − 6)/3N)³ cheaper, CG preconditioner
    #: ((3N − 6)/3N)³ cheaper at the same inducing geometries); False = the full 3NM system
    reduce: bool = True
    #: energy constraints (sgdml's use_E_cstr, spec §3): energies enter the kernel system as M extra
    #: observations (closed form only); c is then the mean training energy
    energy_constraints: bool = False
    #: descriptor pair list (a, b) (rGDML: a reduced list, see :mod:`biomlff.gdml.reduce`); None = all
    #: pairs. With symmetries it must be a union of orbits of the permutation group.
    pairs: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class TrainReport:
    sigma_scan: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    solver_stats: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ helpers
def errors(e_ref, e_pred, f_ref, f_pred) -> dict:
    """MAE/RMSE of energies (per structure) and force components, in eV(/Å) and kcal/mol(/Å)."""
    out = {}
    kc = 1.0 / units.kcal_mol
    if e_ref is not None and e_pred is not None:
        de = np.asarray(e_pred) - np.asarray(e_ref)
        out["e_mae_eV"] = float(np.mean(np.abs(de)))
        out["e_rmse_eV"] = float(np.sqrt(np.mean(de**2)))
        out["e_mae_kcal"] = out["e_mae_eV"] * kc
        out["e_rmse_kcal"] = out["e_rmse_eV"] * kc
    df = (np.asarray(f_pred) - np.asarray(f_ref)).ravel()
    out["f_mae_eV"] = float(np.mean(np.abs(df)))
    out["f_rmse_eV"] = float(np.sqrt(np.mean(df**2)))
    out["f_mae_kcal"] = out["f_mae_eV"] * kc
    out["f_rmse_kcal"] = out["f_rmse_eV"] * kc
    return out


def evaluate(model: GDMLModel, frames: Frames, batch_size: int = 1024, progress: bool = False) -> dict:
    """Errors of ``model`` on ``frames`` (see :func:`errors`) plus the number of structures; the
    predictions come from the model's batched ``SGDML.apply`` (through :meth:`GDMLModel.predict`)."""
    if np.any(frames.z != model.z):
        raise DataError(
            f"{frames.source}: atoms {frames.z.tolist()} differ from the model's {model.z.tolist()}"
        )
    check_frames(frames, use_E=frames.E is not None)
    e, f = model.predict(frames.R, batch_size=batch_size, progress=progress)
    out = errors(frames.E, e, frames.F, f)
    out["n"] = len(frames)
    return out


def split_indices(n_total: int, n_train: int, n_valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random train/valid index sets (sorted), reproducible for ``seed``."""
    if n_train < 1:
        raise ConfigError(f"n-train must be ≥ 1, got {n_train}")
    if n_valid < 0:
        raise ConfigError(f"n-valid must be ≥ 0, got {n_valid}")
    if n_train + n_valid > n_total:
        raise ConfigError(
            f"n-train ({n_train}) + n-valid ({n_valid}) exceeds the {n_total} structures of the dataset"
        )
    perm = np.random.default_rng(seed).permutation(n_total)
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_valid])


def check_sigmas(sigmas) -> list[float]:
    out = [float(s) for s in sigmas]
    if not out:
        raise ConfigError("no σ values given")
    for s in out:
        if not (s > 0) or not math.isfinite(s):
            raise ConfigError(f"σ must be a positive finite number, got {s}")
    return out


class TrainingSet:
    """Descriptors, Jacobians and symmetries of the training geometries (float64)."""

    def __init__(self, frames: Frames, perms: np.ndarray, pairs=None):
        self.frames = frames
        self.z = frames.z
        self.n_atoms = len(frames.z)
        if pairs is None:
            self.a, self.b = pair_list(self.n_atoms)
        else:
            self.a, self.b = check_pair_list(self.n_atoms, *pairs)
            check_orbit_closed(perms, self.a, self.b, self.n_atoms)
        self.X, self.C = descriptor_and_jacobian(frames.R, self.a, self.b, frames.sgdml_lattice())
        self.perms = perms
        self.q = descriptor_perms(perms, self.a, self.b, self.n_atoms)
        self.m = len(frames)
        self.n = 3 * self.n_atoms * self.m
        self.std = float(np.std(frames.F))
        if self.std == 0:
            raise DataError(f"{frames.source}: all training forces are zero")
        self.y = frames.F.reshape(-1) / self.std
        self.E_mean = None if frames.E is None else float(np.mean(frames.E))
        self.assembler = KernelAssembler(self.X, self.C, self.q, self.a, self.b, self.n_atoms)
        self._kv = None
        self._reduced: KernelAssembler | None | bool = False

    def joint_labels(self) -> tuple[np.ndarray, float]:
        """Labels of the energy-constrained system: [vec F; E − Ē] / s with s the standard deviation
        of the whole vector (as sgdml 1.0.3), and s."""
        if self.frames.E is None:
            raise DataError(f"{self.frames.source}: energy constraints need energies")
        lab = np.concatenate([self.frames.F.reshape(-1), self.frames.E - self.E_mean])
        std = float(np.std(lab))
        return lab / std, std

    def reduced_assembler(self) -> KernelAssembler | None:
        """Assembler of the kernel in coordinates orthogonal to the rigid-body modes
        (:func:`biomlff.gdml.kernel.internal_basis`), or None where that does not apply (linear
        geometries, the sparse block formula of large molecules)."""
        if self._reduced is False:
            basis = None if self.assembler.sparse else internal_basis(self.frames.R)
            self._reduced = (
                None
                if basis is None
                else KernelAssembler(self.X, self.C, self.q, self.a, self.b, self.n_atoms, basis=basis)
            )
        return self._reduced

    def closed_size(self, reduce: bool) -> int:
        """Order of the closed-form system (reduced if ``reduce`` and applicable)."""
        red = self.reduced_assembler() if reduce else None
        return self.n if red is None else red.m * red.n3

    def matvec_fn(self, sigma: float, chunk: int = 512, cache_bytes: float = 1.0 * GiB):
        """K·v (n,) → (n,) without storing K. With the kernel coefficients of all (training point,
        permuted training point) pairs cached (two M × M·P arrays, if they fit in ``cache_bytes``)
        each product is three GEMMs (:func:`_cached_matvec`); otherwise it runs the prediction path
        with ``chunk`` training geometries per compiled call."""
        if 2 * 8 * self.m * self.m * len(self.q) <= cache_bytes:
            return _cached_matvec(self, sigma)
        import jax

        from .descriptor import vjp
        from .predict import kernel_sums, prepare_rows, row_chunk

        a, b, n_atoms, q = self.a, self.b, self.n_atoms, self.q
        X, C, m = self.X, self.C, self.m
        bs = min(chunk, m)
        d = X.shape[1]
        rchunk = row_chunk(m * len(q), bs)
        if self._kv is None or self._kv[0] != (bs, rchunk):

            def kv(xq, cq, xbar, xp, up, x2p, xup, sigma):
                _, g = kernel_sums(xq - xbar, xp, up, x2p, xup, sigma, rchunk)
                return -vjp(cq, g, a, b, n_atoms)

            self._kv = ((bs, rchunk), jax.jit(kv))
        kvj = self._kv[1]
        xp = X[:, q].reshape(-1, d)
        pad = (-m) % bs
        Xpad = np.concatenate([X, X[:pad]]) if pad else X
        Cpad = np.concatenate([C, C[:pad]]) if pad else C

        def matvec(v):
            u = jvp(C, v.reshape(m, n_atoms, 3), a, b)  # (M, D)
            rows = prepare_rows(xp, u[:, q].reshape(-1, d), rchunk)
            out = np.empty((m + pad, n_atoms, 3))
            with precision_context("float64"):
                for s in range(0, m + pad, bs):
                    out[s : s + bs] = np.asarray(kvj(Xpad[s : s + bs], Cpad[s : s + bs], *rows, float(sigma)))
            return out[:m].reshape(-1)

        return matvec


def _cached_matvec(ts: TrainingSet, sigma: float):
    """K·v for CG with the pair coefficients computed once (NumPy/BLAS, one thread).

    With rows π·j of the permuted training descriptors x̃ (centred), queries x_i, d = x_i − x̃,
    r = ‖d‖ and u = P_π J_j v_j, the prediction formula (:mod:`biomlff.gdml.predict`) gives
    g_i = Σ [w5 (d·u) d − c2 u], w5 = (25/(3σ⁴)) e^{−√5r/σ}, c2 = (5/(3σ³))(σ + √5 r) e^{−√5r/σ},
    and (K v)_i = −J_iᵀ g_i. r, w5 and c2 do not depend on v, so each product needs only
    d·u = x_i·u − x̃·u and g = x_i Σ c1 − c1 x̃ − c2 u (c1 = w5 (d·u)): three (M × D)·(D × M·P)
    GEMMs instead of four plus M²P square roots and exponentials (aspirin M = 1000: 0.32 → ~0.2 s).
    """
    from .predict import SQRT5

    m, n_atoms, q = ts.m, ts.n_atoms, ts.q
    d = ts.X.shape[1]
    xp = ts.X[:, q].reshape(-1, d)  # (M·P, D), row j·P + π
    xbar = xp.mean(axis=0)
    xq = ts.X - xbar
    xpc = xp - xbar
    r2 = np.sum(xq * xq, axis=1)[:, None] + np.sum(xpc * xpc, axis=1)[None, :] - 2.0 * (xq @ xpc.T)
    r = np.sqrt(np.maximum(r2, 0.0))
    del r2
    e = np.exp(-SQRT5 * r / sigma)
    c2 = (5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e
    w5 = e
    w5 *= 25.0 / (3.0 * sigma**4)
    del r, e
    # Jᵀ as a sparse (N × D) incidence product: row k of J touches atoms b_k (+c_k) and a_k (−c_k);
    # 2·D·3M multiply-adds (a dense incidence einsum would be N·D·3M: 2.4e9 for 148 atoms, M = 500)
    from scipy.sparse import csr_matrix

    inc = csr_matrix(
        (np.r_[np.ones(d), -np.ones(d)], (np.r_[ts.b, ts.a], np.r_[np.arange(d), np.arange(d)])),
        shape=(n_atoms, d),
    )
    cj = ts.C

    def matvec(v):
        u = jvp(cj, v.reshape(m, n_atoms, 3), ts.a, ts.b)  # (M, D)
        up = u[:, q].reshape(-1, d)
        du = xq @ up.T - np.sum(xpc * up, axis=1)[None, :]
        du *= w5  # c1
        g = xq * np.sum(du, axis=1, keepdims=True) - du @ xpc - c2 @ up
        contrib = (g[:, :, None] * cj).transpose(1, 0, 2).reshape(d, -1)  # (D, M·3)
        return -(inc @ contrib).reshape(n_atoms, m, 3).transpose(1, 0, 2).reshape(-1)

    return matvec


def integration_constant(model: GDMLModel, frames: Frames) -> tuple[float, list[str]]:
    """c = mean(E_ref − E_pred) on the training set (E_pred with c = 0) and label diagnostics."""
    model.c = 0.0
    e_pred = model.predict_energies_numpy(frames.R)
    c = float(np.mean(frames.E - e_pred))
    warnings = []
    if len(frames) > 2 and np.std(e_pred) > 0 and np.std(frames.E) > 0:
        f, _ = np.polyfit(e_pred, frames.E, 1)
        corr = float(np.corrcoef(e_pred, frames.E)[0, 1])
        if f < 0:
            warnings.append(
                "energies anti-correlate with the integrated forces: are the force labels gradients (−F)?"
            )
        if corr < 0.95:
            warnings.append(
                f"energy labels correlate poorly with the integrated forces (r = {corr:.3f}); "
                "are energies and forces from the same calculation?"
            )
        if abs(f - 1) > 0.1:
            warnings.append(
                f"energy scale of integrated forces differs from the labels by a factor {f:.3f}: "
                "check the energy/force units"
            )
    for w in warnings:
        log.warning(w)
    return c, warnings


def _model_from_solution(
    ts: TrainingSet, a_sol: np.ndarray, sigma: float, lam: float, std: float | None = None, a_e=None
) -> GDMLModel:
    """Model from the solution a of (K + λI) a = y: α = −a (forces), α_E = a_E (energy rows)."""
    alphas = -a_sol.reshape(ts.m, ts.n_atoms, 3)
    u = jvp(ts.C, alphas, ts.a, ts.b)
    return GDMLModel(
        z=ts.z,
        R_desc=ts.X,
        R_d_desc_alpha=u,
        sigma=sigma,
        std=ts.std if std is None else std,
        c=0.0 if a_e is None else ts.E_mean,
        perms=ts.perms,
        lam=lam,
        alphas=alphas,
        alphas_E=None if a_e is None else np.asarray(a_e),
        lattice=ts.frames.sgdml_lattice(),
        pairs=(ts.a, ts.b),
    )


def to_internal(basis: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Flat 3N·M vector (force components, eV/Å or scaled) → its M(3N − 6) internal coordinates
    Q_iᵀ v_i, with ``basis`` Q from :func:`biomlff.gdml.kernel.internal_basis`."""
    return np.einsum("mik,mi->mk", basis, v.reshape(len(basis), -1)).reshape(-1)


def from_internal(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Flat M(3N − 6) internal coordinates → the 3N·M vector Q_i x_i (no rigid-body part)."""
    return np.einsum("mik,mk->mi", basis, x.reshape(len(basis), -1)).reshape(-1)


def solve_sigma(ts: TrainingSet, sigma: float, solver: str, cfg: TrainConfig, kbuf=None):
    """Train for one σ. Returns (solution a, stats, kernel buffer for reuse); with energy
    constraints the solution is (a_F, a_E, std)."""
    stats: dict = {"sigma": sigma, "solver": solver}
    if cfg.energy_constraints:
        if solver != "closed":
            raise ConfigError("energy constraints are implemented for the closed-form solver only")
        return _solve_energy_constrained(ts, sigma, cfg, kbuf, stats)
    if solver == "closed":
        red = ts.reduced_assembler() if cfg.reduce else None
        t0 = time.perf_counter()
        kbuf = (red or ts.assembler).full(sigma, out=kbuf, progress=cfg.progress)
        stats["assembly_s"] = time.perf_counter() - t0
        if red is None:
            sol, st = solve_closed(kbuf, ts.y.copy(), cfg.lam)
        else:
            # y' = Qᵀ y per geometry; a = Q a' (no components along the rigid-body modes)
            qb = red.basis
            y_red = to_internal(qb, ts.y)
            sol_red, st = solve_closed(kbuf, y_red, cfg.lam)
            sol = from_internal(qb, sol_red)
        stats.update(st)
        stats["closed_n"] = kbuf.shape[0]
        return sol, stats, kbuf
    red = ts.reduced_assembler() if cfg.reduce else None
    matvec_full = ts.matvec_fn(sigma)
    if red is None:
        matvec, y, n3, asm = matvec_full, ts.y, 3 * ts.n_atoms, ts.assembler
        to_full = lambda x: x
    else:
        # CG in the M(3N − 6) internal coordinates, as the closed form (see TrainingSet.reduced_
        # assembler): the same predictions, and every n·m² step of the preconditioner and every
        # apply shrink (aspirin: n 63 000 → 57 000, m 5103 → 4617 columns, 0.74× the flops)
        qb, asm, n3 = red.basis, red, red.n3
        to_full = lambda x: from_internal(qb, x)
        to_red = lambda v: to_internal(qb, v)
        matvec = lambda v: to_red(matvec_full(to_full(v)))
        y = to_red(ts.y)
    rows_fn = lambda cols: asm.rows(cols, sigma, progress=cfg.progress)
    n_pts = cfg.n_inducing or _default_inducing(ts, cfg)
    n_cols = min(n_pts * n3, len(y))
    x0 = cols0 = None
    ckpt_path = cfg.checkpoint
    if cfg.resume and ckpt_path:
        x0, cols0 = _load_checkpoint(ckpt_path, sigma, ts, len(y))

    def save_ckpt(x, it, cols):
        if ckpt_path:
            from .model import _atomic_savez

            _atomic_savez(
                ckpt_path,
                {
                    "x": x,
                    "iterations": it,
                    "cols": cols,
                    "sigma": sigma,
                    "hash": ts.frames.content_hash(),
                    "n": len(y),
                },
            )

    t0 = time.perf_counter()
    res = solve_cg(
        matvec,
        rows_fn,
        y,
        cfg.lam,
        n_cols,
        n3,
        tol=cfg.cg_tol,
        x0=x0,
        cols0=cols0,
        seed=cfg.seed,
        checkpoint=save_ckpt if ckpt_path else None,
        progress=cfg.progress,
    )
    stats.update(
        {
            "solve_s": time.perf_counter() - t0,
            "solver_iters": res.iterations,
            "solver_resid": res.residual,
            "norm_y_train": res.norm_y,
            "solver_tol": cfg.cg_tol,
            "converged": bool(res.converged),
            "n_inducing_cols": res.n_inducing_cols,
            "restarts": res.restarts,
            "precond_s": res.precond_s,
            "iter_s": res.iter_s,
            # as 3N·M component indices (sgdml's convention) of the whole inducing geometries
            "inducing_pts_idxs": _full_component_indices(res.cols, n3, 3 * ts.n_atoms).tolist(),
            "reduced": red is not None,
        }
    )
    if not res.converged:
        log.warning(
            "CG did not converge (relative residual %.2e); saving the current solution",
            res.residual / res.norm_y,
        )
        save_ckpt(res.x, res.iterations, res.cols)
    return to_full(res.x), stats, kbuf


def _full_component_indices(cols: np.ndarray, k: int, n3: int) -> np.ndarray:
    """Indices into the 3N·M force components of the geometries that ``cols`` (indices into
    k components per geometry) touch."""
    geo = np.unique(np.asarray(cols) // k)
    return (geo[:, None] * n3 + np.arange(n3)[None, :]).reshape(-1)


def _solve_energy_constrained(ts: TrainingSet, sigma: float, cfg: TrainConfig, kbuf, stats: dict):
    """Closed form of the joint system [[K_FF, K_FE], [K_FEᵀ, K_EE]] (a_F; a_E) = [F; E − Ē]/s
    (spec §3), force rows in reduced coordinates when ``cfg.reduce`` applies."""
    red = ts.reduced_assembler() if cfg.reduce else None
    asm = red or ts.assembler
    nf = asm.m * asm.n3
    n = nf + ts.m
    if kbuf is None or kbuf.shape != (n, n):
        kbuf = np.empty((n, n), dtype=np.float64, order="F")
    t0 = time.perf_counter()
    asm.full(sigma, out=kbuf[:nf, :nf], progress=cfg.progress)
    asm.energy_blocks(sigma, out_fe=kbuf[:nf, nf:], out_ee=kbuf[nf:, nf:])
    kbuf[nf:, :nf] = kbuf[:nf, nf:].T
    stats["assembly_s"] = time.perf_counter() - t0
    y, std = ts.joint_labels()
    y_f, y_e = y[: ts.n], y[ts.n :]
    if red is not None:
        y_f = to_internal(red.basis, y_f)
    sol, st = solve_closed(kbuf, np.concatenate([y_f, y_e]), cfg.lam)
    a_f, a_e = sol[:nf], sol[nf:]
    if red is not None:
        a_f = from_internal(red.basis, a_f)
    stats.update(st)
    stats["closed_n"] = n
    stats["energy_constraints"] = True
    return (a_f, a_e, std), stats, kbuf


def _default_inducing(ts: TrainingSet, cfg: TrainConfig) -> int:
    """Inducing training points for the preconditioner: 6 % of M (at least 10), capped so that the
    n×m column block (8·n·m bytes) stays within 60 % of the memory budget. The factor 2 in the cap
    dates from when the triangular solve made a second copy (it is in place now); it is kept as
    head-room so that the default does not change with this session's memory saving.

    6 % rather than 10 %: the Nyström build grows as m² (a triangular solve and a Gram product, n·m²
    each) while the iterations it saves cost two GEMVs each. Aspirin M = 1000 (one core): 81 points
    (the old rule, memory-capped at 8 GiB) 184 s, 124 iterations; 60 points 153 s, 178 iterations,
    the same test errors. Ethanol M = 1000: 100 vs 60 points 22.4 vs 22.1 s.

    (The cap used to be a quarter of the budget for three copies: 22 points for aspirin M = 1000 at
    8 GiB, a preconditioner so weak that CG needed 2033 iterations, where sgdml's memory rule gives
    62 points and 110 iterations.)"""
    budget = (cfg.max_memory_gb or default_max_memory_gb()) * GiB * 0.6
    n3 = 3 * ts.n_atoms
    cap = max(1, int(budget / (2 * 8 * ts.n * n3)))
    return int(min(ts.m, cap, max(10, math.ceil(0.06 * ts.m))))


def _load_checkpoint(path, sigma, ts, n_sys: int):
    import os

    from ..fileio import open_npz, remove_stale_temporaries

    if not os.path.exists(path):
        return None, None
    remove_stale_temporaries(path)  # left by a write interrupted by a kill
    with open_npz(path, "sGDML training checkpoint") as f:
        if float(f["sigma"]) != sigma or str(f["hash"]) != ts.frames.content_hash() or int(f["n"]) != n_sys:
            raise ConfigError(f"checkpoint {path} belongs to a different training task (σ, data or size)")
        log.info("resuming CG from %s (%d iterations done)", path, int(f["iterations"]))
        return np.array(f["x"]), np.array(f["cols"])


# ------------------------------------------------------------------------------ entry point
def train(frames: Frames, cfg: TrainConfig, valid: Frames | None = None) -> tuple[GDMLModel, TrainReport]:
    """Train an (s)GDML model on ``frames`` (eV, Å); returns the best model over ``cfg.sigmas`` by
    validation force RMSE, and a report (σ scan, timings, solver statistics).

    ``valid``: optional separate validation dataset (otherwise drawn from ``frames``).
    """
    report = TrainReport()
    t_all = time.perf_counter()
    sigmas = check_sigmas(cfg.sigmas)
    if len(frames) == 0:
        raise DataError(f"{frames.source}: the dataset is empty")
    check_frames(frames, use_E=cfg.use_E)
    if cfg.idx_train is not None:
        idx_train = np.asarray(cfg.idx_train, dtype=np.int64)
        idx_valid = np.asarray(cfg.idx_valid if cfg.idx_valid is not None else [], dtype=np.int64)
        if idx_train.max(initial=-1) >= len(frames) or idx_train.min(initial=0) < 0:
            raise ConfigError(f"training indices out of range for {len(frames)} structures")
    else:
        n_valid_here = 0 if valid is not None else cfg.n_valid
        idx_train, idx_valid = split_indices(len(frames), cfg.n_train, n_valid_here, cfg.seed)
    if valid is None:
        valid_frames = frames.subset(idx_valid) if len(idx_valid) else None
    else:
        if np.any(valid.z != frames.z):
            raise DataError(f"{valid.source}: validation atoms differ from the training atoms")
        check_frames(valid, use_E=cfg.use_E)
        if cfg.idx_valid is not None:
            idx_valid = np.asarray(cfg.idx_valid)
        else:
            if cfg.n_valid > len(valid):
                raise ConfigError(f"n-valid ({cfg.n_valid}) exceeds the {len(valid)} validation structures")
            idx_valid = np.sort(np.random.default_rng(cfg.seed + 1).permutation(len(valid))[: cfg.n_valid])
        valid_frames = valid.subset(idx_valid) if len(idx_valid) else None
    train_frames = frames.subset(idx_train)
    use_E = cfg.use_E and frames.E is not None
    if cfg.energy_constraints:
        if not use_E:
            raise ConfigError("energy constraints need energy labels (and use_E; not with --no-E)")
        if cfg.solver == "cg":
            raise ConfigError("energy constraints are implemented for the closed-form solver only (not cg)")

    # symmetries
    t0 = time.perf_counter()
    n_atoms = len(frames.z)
    if cfg.perms is not None:
        perms = sort_group(np.asarray(cfg.perms))
        check_group(perms, frames.z)
    elif cfg.use_sym:
        perms = find_perms(
            train_frames.R,
            frames.z,
            max_geometries=cfg.sym_max_geometries,
            seed=cfg.seed,
            progress=cfg.progress,
        )
    else:
        perms = identity(n_atoms)
    report.timings["symmetry_s"] = time.perf_counter() - t0
    log.info("%d permutation(s)", len(perms))

    ts = TrainingSet(train_frames, perms, cfg.pairs)
    max_mem = cfg.max_memory_gb if cfg.max_memory_gb is not None else default_max_memory_gb()
    n_closed = ts.closed_size(cfg.reduce) if cfg.solver != "cg" else ts.n
    if cfg.energy_constraints:
        n_closed += ts.m
    solver = check_memory(n_closed, max_mem, cfg.solver, cg_allowed=not cfg.energy_constraints)
    if cfg.energy_constraints and solver != "closed":
        raise ConfigError(
            f"energy constraints need the closed form, which needs ~{closed_form_bytes(n_closed) / GiB:.1f} "
            f"GiB here (--max-memory {max_mem:g} GiB)"
        )
    log.info("solver: %s (closed form would need %.2f GiB)", solver, closed_form_bytes(n_closed) / GiB)

    best = None
    kbuf = None
    for sigma in sigmas:
        t0 = time.perf_counter()
        sol, stats, kbuf = solve_sigma(ts, sigma, solver, cfg, kbuf)
        if cfg.energy_constraints:
            a_f, a_e, std = sol
            model = _model_from_solution(ts, a_f, sigma, cfg.lam, std=std, a_e=a_e)
        else:
            model = _model_from_solution(ts, sol, sigma, cfg.lam)
        stats["train_s"] = time.perf_counter() - t0
        entry = {"sigma": sigma, **{k: v for k, v in stats.items() if k != "inducing_pts_idxs"}}
        if valid_frames is not None and len(sigmas) > 1:
            if use_E and not cfg.energy_constraints:
                model.c, _ = integration_constant(model, train_frames)
            err = evaluate(model, valid_frames)
            entry["valid"] = err
            score = err["f_rmse_eV"]
        else:
            score = 0.0
        report.sigma_scan.append(entry)
        if best is None or score < best[0]:
            best = (score, model, stats)
    del kbuf
    _, model, stats = best
    if len(sigmas) > 1:
        best_sigma = model.sigma
        if best_sigma in (min(sigmas), max(sigmas)):
            log.warning(
                "the best σ = %g is on the boundary of the grid %s; consider extending it", best_sigma, sigmas
            )
    label_warnings: list[str] = []
    if use_E and not cfg.energy_constraints:  # with energy constraints c = mean training energy
        model.c, label_warnings = integration_constant(model, train_frames)
    report.solver_stats = stats
    report.timings["total_s"] = time.perf_counter() - t_all
    info = {
        "dataset_name": frames.name,
        "dataset_theory": frames.theory,
        "dataset_source": frames.source,
        "dataset_hash": frames.content_hash(),
        "idxs_train": idx_train.tolist(),
        "idxs_valid": np.asarray(idx_valid).tolist(),
        "valid_source": None if valid is None else valid.source,
        "sigma": model.sigma,
        "lam": cfg.lam,
        "seed": cfg.seed,
        "use_E": use_E,
        "energy_constraints": bool(cfg.energy_constraints),
        "n_perms": int(len(perms)),
        "solver": stats["solver"],
        "label_warnings": label_warnings,
        "sigma_scan": report.sigma_scan,
        "timings": report.timings,
        **{
            k: v
            for k, v in stats.items()
            if k
            in (
                "solver_iters",
                "solver_resid",
                "norm_y_train",
                "solver_tol",
                "converged",
                "n_inducing_cols",
                "inducing_pts_idxs",
                "diag_shift",
                "closed_n",
                "restarts",
                "precond_s",
                "iter_s",
            )
        },
    }
    if valid_frames is not None:
        err = evaluate(model, valid_frames)
        info["valid_errors"] = err
        info["valid_f_err"] = {"mae": err["f_mae_eV"], "rmse": err["f_rmse_eV"]}
        if "e_mae_eV" in err:
            info["valid_e_err"] = {"mae": err["e_mae_eV"], "rmse": err["e_rmse_eV"]}
    model.info = info
    return model, report
