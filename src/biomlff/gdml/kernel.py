"""Matérn-5/2 force-field kernel of sGDML, written analytically (spec §3).

Base kernel in descriptor space (unit amplitude, length scale σ in 1/Å):

    κ(d)  = (1 + √5 r/σ + 5 r²/(3σ²)) exp(−√5 r/σ),          r = ‖d‖
    ∇κ(d) = −(5/(3σ³)) (σ + √5 r) e^{−√5 r/σ} d
    H(d)  = (5/(3σ⁴)) e^{−√5 r/σ} [5 d dᵀ − (σ² + √5 σ r) I]

The Hessian is coded from this closed form instead of differentiating κ: autodiff through
r = sqrt(dᵀd) is NaN/inaccurate at d = 0, exactly where the diagonal blocks of K live.

Force–force block between training geometries i and j (3N×3N, already sign-flipped, i.e. the PSD
matrix that is factorised):

    K_ij = Σ_π J_iᵀ [−H(x_i − P_π x_j)] (P_π J_j)
         = Σ_π a_π J_iᵀ P_π J_j − 5 w_π (J_iᵀ d_π)(J_jᵀ P_πᵀ d_π)ᵀ,
    w_π = (5/(3σ⁴)) e^{−√5 r_π/σ},  a_π = w_π (σ² + √5 σ r_π).

Assembly computes tiles of T×T blocks with one jitted function (batched over blocks), only for
tile rows ≥ tile columns, and mirrors the transposed tile into the upper triangle.
"""

from __future__ import annotations

import math

import numpy as np

from ..precision import precision_context

SQRT5 = math.sqrt(5.0)


def matern52(d, sigma):
    """κ(d) for difference vectors d (..., D) → (...)."""
    import jax.numpy as jnp

    r = jnp.sqrt(jnp.sum(d * d, axis=-1))
    return (1.0 + SQRT5 * r / sigma + 5.0 * r**2 / (3.0 * sigma**2)) * jnp.exp(-SQRT5 * r / sigma)


def matern52_grad(d, sigma):
    """∇κ(d) (..., D), analytic."""
    import jax.numpy as jnp

    r = jnp.sqrt(jnp.sum(d * d, axis=-1, keepdims=True))
    return -(5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * jnp.exp(-SQRT5 * r / sigma) * d


def matern52_hessian(d, sigma):
    """H(d) (..., D, D), analytic (well defined at d = 0: H(0) = −(5/(3σ²)) I)."""
    import jax.numpy as jnp

    r = jnp.sqrt(jnp.sum(d * d, axis=-1))[..., None, None]
    w = (5.0 / (3.0 * sigma**4)) * jnp.exp(-SQRT5 * r / sigma)
    eye = jnp.eye(d.shape[-1], dtype=d.dtype)
    return w * (5.0 * d[..., :, None] * d[..., None, :] - (sigma**2 + SQRT5 * sigma * r) * eye)


def _tile(xi, ji, xpj, pjj, sigma):
    """K blocks for row geometries i (T_i) and column geometries j (T_j).

    xi (Ti, D), ji (Ti, D, 3N) dense Jacobians; xpj (Tj, P, D) permuted descriptors,
    pjj (Tj, P, D, 3N) permuted dense Jacobians. Returns (Ti·3N, Tj·3N).
    """
    import jax.numpy as jnp

    d = xi[:, None, None, :] - xpj[None]  # (Ti, Tj, P, D)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1))
    w = (5.0 / (3.0 * sigma**4)) * jnp.exp(-SQRT5 * r / sigma)
    a = w * (sigma**2 + SQRT5 * sigma * r)
    y = jnp.einsum("ijp,jpdl->ijdl", a, pjj)
    k1 = jnp.einsum("idk,ijdl->ijkl", ji, y)
    v = jnp.einsum("idk,ijpd->ijpk", ji, d)
    u = jnp.einsum("jpdl,ijpd->ijpl", pjj, d)
    k2 = jnp.einsum("ijpk,ijpl->ijkl", (5.0 * w)[..., None] * v, u)
    blk = k1 - k2
    ti, tj, n3, _ = blk.shape
    return blk.transpose(0, 2, 1, 3).reshape(ti * n3, tj * n3)


def _energy_tile(xi, ji, xpj, sigma):
    """Energy blocks of a tile: K_FE (Ti·k, Tj) = cov(F_i, E_j) = J_iᵀ Σ_π c2(r_π) d_π and
    K_EE (Ti, Tj) = cov(E_i, E_j) = Σ_π κ(d_π), with d_π = x_i − P_π x_j and
    c2 = (5/(3σ³))(σ + √5 r) e^{−√5 r/σ} (= −∇κ(d)/d). ji (Ti, D, k) (dense or reduced Jacobians),
    xpj (Tj, P, D)."""
    import jax.numpy as jnp

    d = xi[:, None, None, :] - xpj[None]  # (Ti, Tj, P, D)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1))
    e = jnp.exp(-SQRT5 * r / sigma)
    c2 = (5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e
    kee = jnp.sum((1.0 + SQRT5 * r / sigma + 5.0 * r**2 / (3.0 * sigma**2)) * e, axis=-1)
    s = jnp.einsum("ijp,ijpd->ijd", c2, d)
    kfe = jnp.einsum("idk,ijd->ikj", ji, s)
    ti, k, tj = kfe.shape
    return kfe.reshape(ti * k, tj), kee


def sparse_indices(q: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Static index arrays of the sparse block formula.

    Row k of J_i touches atoms (a_k: −c_ik, b_k: +c_ik); row k of P_p J_j is row q_p[k] of J_j and
    touches atoms (a_q: −c_jq, b_q: +c_jq). Their product c_ik c_jqᵀ lands in 4 atom blocks.
    Returns (flat target index A·N + B (P, D, 4), sign (P, D, 4), inverse maps qinv (P, D)).
    """
    n = int(max(a.max(), b.max())) + 1
    aq, bq = a[q], b[q]  # (P, D)
    ak, bk = np.broadcast_to(a, q.shape), np.broadcast_to(b, q.shape)
    rows = np.stack([bk, ak, bk, ak], axis=-1)
    cols = np.stack([bq, aq, aq, bq], axis=-1)
    sign = np.array([1.0, 1.0, -1.0, -1.0])
    qinv = np.argsort(q, axis=1)
    return rows * n + cols, np.broadcast_to(sign, rows.shape).copy(), qinv


def _vjp_segment(g, c, a, b, n_atoms):
    """Jᵀg for g (..., D) and one compressed Jacobian c (D, 3) per leading batch → (..., N, 3).

    ``c`` broadcasts against g's leading axes. Scatter-add over the D pairs (segment_sum): O(D)
    per vector, unlike the dense (N × D) incidence product.
    """
    import jax
    import jax.numpy as jnp

    contrib = g[..., None] * c  # (..., D, 3)
    lead = contrib.shape[:-2]
    d = contrib.shape[-2]
    data = jnp.moveaxis(contrib, -2, 0).reshape(d, -1)
    out = jax.ops.segment_sum(data, jnp.asarray(b), num_segments=n_atoms) - jax.ops.segment_sum(
        data, jnp.asarray(a), num_segments=n_atoms
    )
    return jnp.moveaxis(out.reshape((n_atoms,) + lead + (3,)), 0, -2)


def _tile_sparse(xi, ci, xj, cj, sigma, q, a, b, n_atoms, flat_idx, sign, qinv):
    """Sparse variant of :func:`_tile` (same result): uses that every Jacobian row touches only two
    atoms, so J_iᵀ P_p J_j is a scatter of D·4 3×3 outer products (O(P·D) per block instead of the
    dense O(D·9N²)). Inputs: xi (Ti, D), ci (Ti, D, 3), xj (Tj, D), cj (Tj, D, 3)."""
    import jax
    import jax.numpy as jnp

    ti, tj = xi.shape[0], xj.shape[0]
    p_count, d_len = q.shape
    xpj = xj[:, q]  # (Tj, P, D)
    cq = cj[:, q]  # (Tj, P, D, 3): rows q_p[k] of J_j
    d = xi[:, None, None, :] - xpj[None]  # (Ti, Tj, P, D)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1))
    w = (5.0 / (3.0 * sigma**4)) * jnp.exp(-SQRT5 * r / sigma)
    aw = w * (sigma**2 + SQRT5 * sigma * r)  # (Ti, Tj, P)
    # term 1: Σ_p a_p J_iᵀ P_p J_j
    z = jnp.einsum("ijp,ika,jpkb->pkijab", aw, ci, cq)  # (P, D, Ti, Tj, 3, 3)
    z4 = z[:, :, None] * jnp.asarray(sign)[:, :, :, None, None, None, None]  # (P, D, 4, Ti, Tj, 3, 3)
    data = z4.reshape(p_count * d_len * 4, ti * tj * 9)
    k1 = jax.ops.segment_sum(data, jnp.asarray(flat_idx.reshape(-1)), num_segments=n_atoms * n_atoms)
    k1 = k1.reshape(n_atoms, n_atoms, ti, tj, 3, 3).transpose(2, 0, 4, 3, 1, 5)  # (Ti, N, 3, Tj, N, 3)
    # term 2: −5 w_p (J_iᵀ d_p)(J_jᵀ P_pᵀ d_p)ᵀ
    v = _vjp_segment(d, ci[:, None, None], a, b, n_atoms)  # (Ti, Tj, P, N, 3)
    dq = jnp.take_along_axis(d, jnp.asarray(qinv)[None, None], axis=-1)  # P_pᵀ d: dq[q_p[k]] = d[k]
    u = _vjp_segment(dq, cj[None, :, None], a, b, n_atoms)  # (Ti, Tj, P, N, 3)
    n3 = 3 * n_atoms
    k2 = jnp.einsum(
        "ijp,ijpx,ijpy->ixjy", 5.0 * w, v.reshape(ti, tj, p_count, n3), u.reshape(ti, tj, p_count, n3)
    )
    return k1.reshape(ti * n3, tj * n3) - k2.reshape(ti * n3, tj * n3)


def internal_basis(R: np.ndarray) -> np.ndarray | None:
    """Orthonormal bases Q (M, 3N, 3N − 6) of the displacements orthogonal to the rigid-body modes
    (3 translations, 3 rotations about the centroid) of each geometry R (M, N, 3) in Å, or None if
    some geometry is linear (fewer than 6 independent rigid modes) or N < 3.

    The descriptor (all inverse distances) is invariant under rigid motions, so these modes span the
    null space of every Jacobian J_i and of K: K = blockdiag(Q) K̃ blockdiag(Q)ᵀ with the reduced
    kernel K̃_ij = Σ_π (J_i Q_i)ᵀ [−H] P_π (J_j Q_j) of size M(3N − 6). Solving in the reduced space
    gives the same J·a (hence the same predictions) as the full closed form: the full solution only
    adds y_null/λ along modes that J annihilates.
    """
    R = np.asarray(R, dtype=np.float64)
    m, n, _ = R.shape
    if n < 3:
        return None
    rc = R - R.mean(axis=1, keepdims=True)
    modes = np.zeros((m, 3 * n, 6))
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        modes[:, :, k] = np.tile(e, n)
        modes[:, :, 3 + k] = np.cross(e, rc).reshape(m, -1)
    # rank check: a linear geometry has only two independent rotations
    sv = np.linalg.svd(modes, compute_uv=False)
    if np.any(sv[:, -1] < 1e-8 * sv[:, 0]):
        return None
    q, _ = np.linalg.qr(modes, mode="complete")
    return np.ascontiguousarray(q[:, :, 6:])


class KernelAssembler:
    """Kernel blocks of a training set (descriptors, Jacobians, symmetries) for one or more σ.

    X (M, D) 1/Å, C (M, D, 3) compressed Jacobians 1/Å², q (P, D) descriptor index maps,
    pair list a, b; tile: blocks per tile side (jit shape).
    """

    def __init__(
        self,
        X,
        C,
        q,
        a,
        b,
        n_atoms: int,
        tile: int | None = None,
        sparse: bool | None = None,
        basis: np.ndarray | None = None,
    ):
        self.X = np.asarray(X, dtype=np.float64)
        self.C = np.asarray(C, dtype=np.float64)
        self.q = np.asarray(q)
        self.a, self.b = np.asarray(a), np.asarray(b)
        self.n_atoms = n_atoms
        self.m = self.X.shape[0]
        # basis (M, 3N, k): blocks in reduced coordinates Q_iᵀ K_ij Q_j (see internal_basis)
        self.basis = None if basis is None else np.asarray(basis, dtype=np.float64)
        self.n3 = 3 * n_atoms if basis is None else self.basis.shape[2]
        p, d = self.q.shape
        # dense Jacobian products are faster for small molecules (GEMM-friendly), the sparse
        # scatter formula for larger ones (its cost does not grow with N² per descriptor entry)
        self.sparse = (n_atoms > 60) if sparse is None else bool(sparse)
        if self.sparse and self.basis is not None:
            raise ValueError("the reduced (basis) kernel is only implemented for the dense block formula")
        if tile is None:
            # keep the tile intermediates around ≤ 64 MB
            per = p * d * (36 * 8 if self.sparse else self.n3 * 8 * 2) + 2 * self.n3**2 * 8
            tile = int(max(1, min(32, math.sqrt(64e6 / max(per, 1)))))
        self.tile = min(tile, self.m)
        self._fn = None
        self._efn = None

    def _compiled(self):
        if self._fn is None:
            import jax

            from .descriptor import jacobian_dense

            q, a, b, n = self.q, self.a, self.b, self.n_atoms
            if self.sparse:
                flat_idx, sign, qinv = sparse_indices(q, a, b)

                def fn_sparse(xi, ci, xj, cj, sigma):
                    return _tile_sparse(xi, ci, xj, cj, sigma, q, a, b, n, flat_idx, sign, qinv)

                self._fn = jax.jit(fn_sparse)
                return self._fn

            def fn(xi, ci, xj, cj, sigma, qi=None, qj=None):
                ji = jacobian_dense(ci, a, b, n)
                jj = jacobian_dense(cj, a, b, n)
                if qi is not None:  # reduced coordinates: J Q (D × k)
                    ji = ji @ qi
                    jj = jj @ qj
                xpj = xj[:, q]  # (Tj, P, D)
                pjj = jj[:, q, :]  # (Tj, P, D, 3N)
                return _tile(xi, ji, xpj, pjj, sigma)

            self._fn = jax.jit(fn)
        return self._fn

    def _tile_indices(self, idx: np.ndarray) -> list[np.ndarray]:
        t = self.tile
        out = []
        for s in range(0, len(idx), t):
            chunk = idx[s : s + t]
            if len(chunk) < t:  # pad with a valid index; padded blocks are discarded
                chunk = np.concatenate([chunk, np.full(t - len(chunk), chunk[0])])
            out.append(chunk)
        return out

    def block_tile(self, rows: np.ndarray, cols: np.ndarray, sigma: float) -> np.ndarray:
        """Dense K[rows-blocks, cols-blocks] for geometry index arrays of length ``tile``."""

        extra = () if self.basis is None else (self.basis[rows], self.basis[cols])
        with precision_context("float64"):
            out = self._compiled()(
                self.X[rows], self.C[rows], self.X[cols], self.C[cols], float(sigma), *extra
            )
            return np.asarray(out)

    def full(self, sigma: float, out: np.ndarray | None = None, progress: bool = False) -> np.ndarray:
        """The full (3NM, 3NM) kernel matrix (Fortran order, float64) for ``sigma`` — (kM, kM) in
        reduced coordinates when a basis is set; each tile pair (i ≥ j) computed once and mirrored.
        ``out`` is reused (overwritten) if given."""
        n = self.m * self.n3
        if out is None:
            out = np.empty((n, n), dtype=np.float64, order="F")
        idx = np.arange(self.m)
        tiles = self._tile_indices(idx)
        t, n3 = self.tile, self.n3
        pairs = [(ti, tj) for ti in range(len(tiles)) for tj in range(ti + 1)]
        it = pairs
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(pairs, desc=f"kernel σ={sigma:g}", unit="tile", leave=False)
        for ti, tj in it:
            blk = self.block_tile(tiles[ti], tiles[tj], sigma)
            r0, c0 = ti * t * n3, tj * t * n3
            r1, c1 = min(r0 + t * n3, n), min(c0 + t * n3, n)
            blk = blk[: r1 - r0, : c1 - c0]
            out[r0:r1, c0:c1] = blk
            if ti != tj:
                out[c0:c1, r0:r1] = blk.T
        return out

    def _energy_compiled(self):
        if self._efn is None:
            import jax

            from .descriptor import jacobian_dense

            q, a, b, n = self.q, self.a, self.b, self.n_atoms

            def fn(xi, ci, xj, sigma, qi=None):
                ji = jacobian_dense(ci, a, b, n)
                if qi is not None:
                    ji = ji @ qi
                return _energy_tile(xi, ji, xj[:, q], sigma)

            self._efn = jax.jit(fn)
        return self._efn

    def energy_blocks(self, sigma: float, out_fe=None, out_ee=None):
        """Energy constraint blocks (spec §3): K_FE (kM, M) with K_FE[i-block, j] = cov(F_i, E_j) and
        K_EE (M, M) = cov(E_i, E_j) (k = 3N, or 3N − 6 in reduced coordinates). Written into
        ``out_fe``/``out_ee`` if given (any array views of the right shape)."""

        m, n3, t = self.m, self.n3, self.tile
        if out_fe is None:
            out_fe = np.empty((m * n3, m))
        if out_ee is None:
            out_ee = np.empty((m, m))
        tiles = self._tile_indices(np.arange(m))
        fn = self._energy_compiled()
        with precision_context("float64"):
            for ti, rows in enumerate(tiles):
                extra = () if self.basis is None else (self.basis[rows],)
                for tj, cols in enumerate(tiles):
                    fe, ee = fn(self.X[rows], self.C[rows], self.X[cols], float(sigma), *extra)
                    r0, c0 = ti * t, tj * t
                    r1, c1 = min(r0 + t, m), min(c0 + t, m)
                    out_fe[r0 * n3 : r1 * n3, c0:c1] = np.asarray(fe)[: (r1 - r0) * n3, : c1 - c0]
                    out_ee[r0:r1, c0:c1] = np.asarray(ee)[: r1 - r0, : c1 - c0]
        return out_fe, out_ee

    def _jq(self, idx: np.ndarray) -> np.ndarray:
        """Dense Jacobians J_j (len(idx), D, 3N), times the internal basis Q_j when one is set
        (→ (len(idx), D, 3N − 6)), in NumPy float64."""
        from .descriptor import jacobian_dense

        jac = jacobian_dense(self.C[idx], self.a, self.b, self.n_atoms)
        return jac if self.basis is None else np.matmul(jac, self.basis[idx])

    def _rows_blas(self, sel: np.ndarray, sigma: float, progress: bool = False) -> np.ndarray:
        """:meth:`rows` for the dense block formula, in NumPy on BLAS (same formula as :func:`_tile`).

        Why not the jitted tile: the Nyström preconditioner needs rows of ~80 geometries against all
        M, and the T×T tiles of :func:`_tile` run at ~6 GFlop/s (aspirin: 32 s for the rows of 91
        geometries at M = 1000). Here the dominant product K1_ij = J_iᵀ Y_ij, Y_ij = Σ_π a_π P_π J_j,
        is one GEMM per row geometry over a whole chunk of column geometries,
        (k × D)·(D × T_j k), and J_j Q_j is formed once per column chunk instead of once per tile.
        """
        m, n3, q = self.m, self.n3, self.q
        p_count, d_len = q.shape
        geo = np.unique(sel // n3)
        pos = np.full(m, -1)
        pos[geo] = np.arange(len(geo))
        row_of = pos[sel // n3] * n3 + sel % n3  # row of sel within the stacked block rows of ``geo``
        whole = np.array_equal(row_of, np.arange(len(geo) * n3))  # whole geometries, in order
        out = np.empty((len(sel), m * n3), dtype=np.float64)
        ji_all = self._jq(geo)  # (G, D, k)
        jit_all = np.ascontiguousarray(ji_all.transpose(0, 2, 1))  # (G, k, D)
        ti_size = 8
        # column chunk: Y (Tj, Ti, D, k) about 20 MB of float64
        tj_size = int(max(1, min(m, 2.5e6 // (ti_size * d_len * n3))))
        chunks = [np.arange(s, min(s + tj_size, m)) for s in range(0, m, tj_size)]
        it = chunks
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(chunks, desc="kernel columns", unit="chunk", leave=False)
        c_a = (5.0 / (3.0 * sigma**4), sigma**2, SQRT5 * sigma, -SQRT5 / sigma)
        for cj in it:
            tj = len(cj)
            jj = self._jq(cj)  # (Tj, D, k)
            pj = jj[:, q, :]  # (Tj, P, D, k): rows q_π of J_j Q_j
            xpj = self.X[cj][:, q]  # (Tj, P, D)
            pj_flat = pj.reshape(tj, p_count, d_len * n3)
            pj_dp = pj.reshape(tj * p_count, d_len, n3)
            for s in range(0, len(geo), ti_size):
                gi = geo[s : s + ti_size]
                ti = len(gi)
                ji = ji_all[s : s + ti]  # (Ti, D, k)
                d = self.X[gi][:, None, None, :] - xpj[None]  # (Ti, Tj, P, D)
                r = np.sqrt(np.einsum("ijpd,ijpd->ijp", d, d))
                w = c_a[0] * np.exp(c_a[3] * r)
                aw = w * (c_a[1] + c_a[2] * r)  # (Ti, Tj, P)
                # K1_ij = J_iᵀ Y_ij: Y (Tj, Ti, D·k) by one small GEMM per column geometry (inner
                # dimension P), then one (k × D)·(D × k) GEMM per pair, batched (no transposed copy of Y)
                y = np.matmul(aw.transpose(1, 0, 2), pj_flat).reshape(tj, ti, d_len, n3)
                k1 = np.matmul(jit_all[s : s + ti][None], y)  # (Tj, Ti, k, k)
                # K2: 5 w_π (J_iᵀ d_π)(J_jᵀ P_πᵀ d_π)ᵀ
                v = np.matmul(d.reshape(ti, tj * p_count, d_len), ji).reshape(ti, tj, p_count, n3)
                u = np.matmul(d.transpose(1, 2, 0, 3).reshape(tj * p_count, ti, d_len), pj_dp)
                u = u.reshape(tj, p_count, ti, n3).transpose(2, 0, 1, 3)  # (Ti, Tj, P, k)
                v *= (5.0 * w)[..., None]
                k1 -= np.matmul(v.transpose(0, 1, 3, 2), u).transpose(1, 0, 2, 3)  # (Tj, Ti, k, k)
                lo, c0, c1 = s * n3, cj[0] * n3, (cj[-1] + 1) * n3
                if whole:  # rows lo … lo + Ti·k of ``out`` are these block rows: write in place
                    dst = out[lo : lo + ti * n3, c0:c1].reshape(ti, n3, tj, n3)
                    np.copyto(dst, k1.transpose(1, 2, 0, 3))
                else:
                    blk = k1.transpose(1, 2, 0, 3).reshape(ti * n3, tj * n3)
                    mask = (row_of >= lo) & (row_of < lo + ti * n3)
                    out[np.nonzero(mask)[0], c0:c1] = blk[row_of[mask] - lo]
        return out

    def rows(self, sel: np.ndarray, sigma: float, progress: bool = False) -> np.ndarray:
        """Rows K[sel, :] (len(sel), 3NM) for flat component indices ``sel`` (= columns, K is
        symmetric); (len(sel), kM) of the reduced kernel when a basis is set. Computes only the
        block rows of the geometries that ``sel`` touches."""
        sel = np.asarray(sel)
        if not self.sparse:
            return self._rows_blas(sel, sigma, progress)
        geo = np.unique(sel // self.n3)
        pos = {g: k for k, g in enumerate(geo)}
        n = self.m * self.n3
        t, n3 = self.tile, self.n3
        out = np.empty((len(sel), n), dtype=np.float64)
        row_tiles = self._tile_indices(geo)
        col_tiles = self._tile_indices(np.arange(self.m))
        # map selected flat index -> (row tile, local row within tile)
        local = np.array([pos[g] for g in sel // self.n3]) * n3 + sel % n3
        it = [(ti, tj) for ti in range(len(row_tiles)) for tj in range(len(col_tiles))]
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="kernel columns", unit="tile", leave=False)
        for ti, tj in it:
            blk = self.block_tile(row_tiles[ti], col_tiles[tj], sigma)
            lo, hi = ti * t * n3, (ti + 1) * t * n3
            mask = (local >= lo) & (local < hi)
            if not mask.any():
                continue
            c0 = tj * t * n3
            c1 = min(c0 + t * n3, n)
            out[np.nonzero(mask)[0], c0:c1] = blk[local[mask] - lo, : c1 - c0]
        return out
