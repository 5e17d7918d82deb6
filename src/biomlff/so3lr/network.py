"""The SO3krates network of SO3LR as pure JAX functions of the parameter tree (spec §1.3–1.6).

``params`` is the nested dict of the checkpoint without its top-level ``"params"`` key (131 float32
leaves, see :mod:`biomlff.so3lr.weights`). Everything works on sparse, padded pair lists: per-pair
arrays of length P and ``jax.ops.segment_sum`` over the receiving atom ``i`` (pair vector
r_ij = R_j − R_i). Weights are cast to the compute dtype inside; operations that involve parameters
only (ZBL constants, the charge-embedding query·key) are kept in the parameters' own dtype as the
reference implementation does, so that float64 runs reproduce it to the last digits.
"""

from __future__ import annotations

import math

import numpy as np

from .architecture import PUBLISHED, Architecture

# Sizes of the published checkpoint (kept for reference; the functions below read them from an
# :class:`~biomlff.so3lr.architecture.Architecture`, default the published one).
#: message normalisation of the checkpoint (dataset average number of neighbours within 4.5 Å)
AVG_NUM_NEIGHBORS = PUBLISHED.avg_num_neighbors
#: Bernstein γ (1/Å) — stored as float32 in the reference even in float64 runs
BERNSTEIN_GAMMA = float(np.float32(0.9448630629184640))
NUM_RBF = 32
NUM_FEATURES = 128
NUM_HEADS = 4
HEAD_DIM = 32
DEGREES = (1, 2, 3, 4)
#: number of m components per degree and the per-component degree index
DEGREE_SIZES = tuple(2 * l + 1 for l in DEGREES)
#: Clebsch–Gordan coupling of two degree-l vectors to l = 0: 1/√(2l+1)
CG_L0 = np.array([1.0 / math.sqrt(2 * l + 1) for l in DEGREES])
LAYERNORM_EPS = 1e-6
NUM_LAYERS = 3
HIRSHFELD_DIM = 64


def silu(x):
    import jax

    return jax.nn.silu(x)


def dense(p, x, dtype):
    """Flax Dense: x·K + b (b optional)."""
    y = x @ p["kernel"].astype(dtype)
    if "bias" in p:
        y = y + p["bias"].astype(dtype)
    return y


def layer_norm(p, x, dtype):
    """Flax LayerNorm over the last axis: ε = 1e-6, var = E[x²] − E[x]² (clipped at 0)."""
    import jax.numpy as jnp
    from jax import lax

    mean = jnp.mean(x, axis=-1, keepdims=True)
    mean2 = jnp.mean(x * x, axis=-1, keepdims=True)
    var = jnp.maximum(0.0, mean2 - mean * mean)
    mul = lax.rsqrt(var + LAYERNORM_EPS) * p["scale"].astype(dtype)
    return (x - mean) * mul + p["bias"].astype(dtype)


def spherical_harmonics(u):
    """Real orthonormal spherical harmonics Y_lm(û) for l = 1..4, m = −l..l, shape (P, 24).

    ``u`` (P, 3) are unit vectors. Only the normalisation (∫Y² dΩ = 1) matters for the model, since
    the equivariant features enter the energy only through per-degree squared norms."""
    import jax.numpy as jnp

    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    x2, y2, z2 = x * x, y * y, z * z
    pi = math.pi
    c1 = math.sqrt(3.0 / (4 * pi))
    y1 = [c1 * y, c1 * z, c1 * x]
    c2a = 0.5 * math.sqrt(15.0 / pi)
    y2_ = [
        c2a * x * y,
        c2a * y * z,
        0.25 * math.sqrt(5.0 / pi) * (3 * z2 - 1.0),
        c2a * x * z,
        0.25 * math.sqrt(15.0 / pi) * (x2 - y2),
    ]
    y3 = [
        0.25 * math.sqrt(35.0 / (2 * pi)) * y * (3 * x2 - y2),
        0.5 * math.sqrt(105.0 / pi) * x * y * z,
        0.25 * math.sqrt(21.0 / (2 * pi)) * y * (5 * z2 - 1.0),
        0.25 * math.sqrt(7.0 / pi) * z * (5 * z2 - 3.0),
        0.25 * math.sqrt(21.0 / (2 * pi)) * x * (5 * z2 - 1.0),
        0.25 * math.sqrt(105.0 / pi) * z * (x2 - y2),
        0.25 * math.sqrt(35.0 / (2 * pi)) * x * (x2 - 3 * y2),
    ]
    y4 = [
        0.75 * math.sqrt(35.0 / pi) * x * y * (x2 - y2),
        0.75 * math.sqrt(35.0 / (2 * pi)) * y * z * (3 * x2 - y2),
        0.75 * math.sqrt(5.0 / pi) * x * y * (7 * z2 - 1.0),
        0.75 * math.sqrt(5.0 / (2 * pi)) * y * z * (7 * z2 - 3.0),
        (3.0 / 16.0) * math.sqrt(1.0 / pi) * (35 * z2 * z2 - 30 * z2 + 3.0),
        0.75 * math.sqrt(5.0 / (2 * pi)) * x * z * (7 * z2 - 3.0),
        (3.0 / 8.0) * math.sqrt(5.0 / pi) * (x2 - y2) * (7 * z2 - 1.0),
        0.75 * math.sqrt(35.0 / (2 * pi)) * x * z * (x2 - 3 * y2),
        (3.0 / 16.0) * math.sqrt(35.0 / pi) * (x2 * (x2 - 3 * y2) - y2 * (3 * x2 - y2)),
    ]
    return jnp.stack(y1 + y2_ + y3 + y4, axis=-1)


def contract_l0(ev, degrees=DEGREES):
    """Per-degree invariants C(v)_l = Σ_m v_lm² / √(2l+1): (..., Σ(2l+1)) → (..., len(degrees))."""
    import jax.numpy as jnp

    sq = ev * ev
    out = []
    start = 0
    # degrees are always 1..L: the first L published coefficients (NumPy float64 scalars, as before)
    for size, cg in zip([2 * l + 1 for l in degrees], CG_L0[: len(degrees)], strict=True):
        out.append(jnp.sum(sq[..., start : start + size], axis=-1) * cg)
        start += size
    return jnp.stack(out, axis=-1)


def repeat_degrees(v, degrees=DEGREES):
    """(..., 4) per-degree values repeated over their 2l+1 components: → (..., 24).

    Written with slices and broadcasts rather than a NumPy index array: a NumPy integer constant
    converted under ``jax.enable_x64`` is cached by JAX and breaks later 32-bit traces."""
    import jax.numpy as jnp

    parts = [
        jnp.broadcast_to(v[..., k : k + 1], v.shape[:-1] + (size,))
        for k, size in enumerate([2 * l + 1 for l in degrees])
    ]
    return jnp.concatenate(parts, axis=-1)


def bernstein_basis(r, dtype, num_rbf: int = NUM_RBF):
    """Exponential Bernstein basis B_k(r), k = 0..K−1, shape (P, K) (no cutoff factor; K = 32 in SO3LR).

    x = exp(−γ r); B_k = exp(ln C(K−1,k) + k ln x + (K−1−k) ln(1−x)). ``r`` (Å) must be > 0."""
    import jax.numpy as jnp

    k = np.arange(num_rbf, dtype=np.float64)
    n = num_rbf - 1
    log_binom = np.array(
        [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(num_rbf)]
    )
    x = jnp.exp(-BERNSTEIN_GAMMA * r)[:, None]
    lx = jnp.log(x)
    l1x = jnp.log(1.0 - x)
    return jnp.exp(log_binom.astype(dtype) + k.astype(dtype) * lx + (n - k).astype(dtype) * l1x)


def charge_spin_embedding(p, species, psi, graph_ids, n_graphs: int, dtype):
    """SpookyNet-style charge (ψ = Q) or spin (ψ = S) embedding e_i (N, F); exactly 0 for ψ = 0.

    ``psi``: (n_graphs,) values per graph; ``graph_ids``: (N,) graph index of every atom."""
    import jax
    import jax.numpy as jnp

    wq = p["Embed_0"]["embedding"]
    wk = p["Embed_1"]["embedding"]
    wv = p["Embed_2"]["embedding"]
    psi_atom = psi[graph_ids]
    idx = jnp.where(psi_atom >= 0, 0, 1)
    q = wq[species]
    k = wk[idx]
    # parameter-only product, kept in the parameter dtype like the reference
    y = jax.nn.softplus(jnp.sum(q * k, axis=-1) / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))).astype(dtype)
    denom = jax.ops.segment_sum(y, graph_ids, num_segments=n_graphs)
    a = psi_atom.astype(dtype) * y / denom[graph_ids]
    av = a[:, None] * wv[idx].astype(dtype)
    res = p["Residual_0"]
    h = silu(av) @ res["layers_0"]["kernel"].astype(dtype)
    h = silu(h) @ res["layers_1"]["kernel"].astype(dtype)
    return av + h


def embed(params, species, charge, spin, graph_ids, n_graphs: int, dtype, arch: Architecture = PUBLISHED):
    """Initial invariant features x⁰ = (E_Z + e^Q + e^S)/√3, shape (N, F) (the charge and spin
    embeddings only when the architecture has them; the divisor is √(number of embeddings))."""
    x = params["feature_embeddings_0"]["Embed_0"]["embedding"][species].astype(dtype)
    for on, name, value in (
        (arch.charge_embedding, "feature_embeddings_1", charge),
        (arch.spin_embedding, "feature_embeddings_2", spin),
    ):
        if on:  # charge first, then spin: the published summation order
            p = params[name]["ChargeSpinEmbedSparse_0"]
            x = x + charge_spin_embedding(p, species, value, graph_ids, n_graphs, dtype)
    if arch.num_embeddings == 1:
        return x
    return x / math.sqrt(float(arch.num_embeddings))


#: (−1)^l per spherical-harmonic component: Y_lm(−r̂) = (−1)^l Y_lm(r̂)
PARITY = np.concatenate([np.full(2 * l + 1, (-1.0) ** l) for l in DEGREES])


#: pairs per block of the message pass: larger pair lists are processed block by block (lax.scan) so
#: that the per-pair intermediates of the filter networks stay in the CPU cache; measured on the
#: 2-core EPYC VM, the radial filters cost 7 µs/pair at 1024 pairs but 20 µs/pair at 4096 pairs and more
PAIR_BLOCK = 1024
#: the same with tabulated radial filters, whose per-pair working set is smaller than the networks':
#: water 1536 (lr 12 Å) energy + forces, one core, 1024 → 1432 ms, 512 → 1060, 256 → 961, 128 → 970
PAIR_BLOCK_TABULATED = 256
#: tabulated filters: use the hand-written reverse pass of a block (:func:`_tabulated_block_vjp`)
HAND_VJP = True


def radial_filters(ab, rbf, dtype):
    """Radial parts D2(silu(D1(rbf))) of both attention filters of one layer, shape (2, P, F).

    They depend on the distances only; both first layers are applied as one (P, 32)·(32, 256)
    product."""
    import jax.numpy as jnp

    k1 = jnp.concatenate([ab[f"radial_filter{w}_layer_1"]["kernel"] for w in (1, 2)], axis=1)
    b1 = jnp.concatenate([ab[f"radial_filter{w}_layer_1"]["bias"] for w in (1, 2)], axis=0)
    hidden = silu(rbf @ k1.astype(dtype) + b1.astype(dtype))
    f = k1.shape[1] // 2
    return jnp.stack(
        [
            dense(ab[f"radial_filter{w}_layer_2"], hidden[:, m * f : (m + 1) * f], dtype)
            for m, w in enumerate((1, 2))
        ]
    )


def _spherical_filter(ab, which: int, inv, dtype):
    """Spherical part S2(silu(S1(C(ev_j − ev_i)))) of attention filter ``which``, shape (P, F)."""
    return dense(
        ab[f"spherical_filter{which}_layer_2"],
        silu(dense(ab[f"spherical_filter{which}_layer_1"], inv, dtype)),
        dtype,
    )


def _heads(w, x, dtype):
    """Apply per-head (H, d, d) matrices: out[n, h, a] = Σ_b W[h, a, b] x[n, h, b]."""
    import jax.numpy as jnp

    h, _, d = w.shape
    return jnp.einsum("hab,nhb->nha", w.astype(dtype), x.reshape(x.shape[0], h, d))


def _both_directions(q, k, w, i, j, scale):
    """Attention weights of both directions of every unordered pair, (2P, 4): rows 0..P−1 are
    i ← j (Σ_f q_i w_ij k_j), rows P..2P−1 are j ← i (the filter w is symmetric in i and j)."""
    import jax.numpy as jnp

    a_ij = (q[i] * w * k[j]).sum(-1)
    a_ji = (q[j] * w * k[i]).sum(-1)
    return jnp.concatenate([a_ij, a_ji], axis=0) * jnp.concatenate([scale, scale], axis=0)


def tabulated_radial_filters(coeffs, r, rc: float, dtype):
    """Both radial filters (2, P, F) from a layer table ``coeffs`` (cells, K, 2F) of
    :mod:`biomlff.so3lr.tabulate` at distances ``r`` (P,) Å; ``rc`` the table's upper end (Å).
    Distances beyond rc use the last cell's polynomial (finite; such pairs carry cutoff factor 0)."""
    import jax.numpy as jnp

    c = jnp.asarray(coeffs).astype(dtype)
    cells, k, two_f = c.shape
    x = r.astype(dtype) * (cells / rc)
    cell = jnp.clip(jnp.floor(x), 0, cells - 1)
    t = (x - cell)[:, None]
    rows = c[cell.astype(jnp.int32)]  # (P, K, 2F)
    y = rows[:, k - 1]
    for a in range(k - 2, -1, -1):  # Horner
        y = y * t + rows[:, a]
    f = two_f // 2
    return jnp.stack([y[:, :f], y[:, f:]])


def _messages(ab, heads, ev, g, n: int, dtype, first: bool, arch: Architecture = PUBLISHED, table=None):
    """Attention updates (Δx (n, F), Δev (n, Σ(2l+1))) from one block of unordered pairs ``g`` (dict of
    per-pair ``i``, ``j``, ``rbf``, ``ylm``, ``phi``); ``heads`` = (q1, k1, v1, q2, k2) per atom.
    ``table``: tabulated radial filters of this layer (:mod:`biomlff.so3lr.tabulate`, then ``g`` holds
    the distances ``r`` instead of ``rbf``); None: the exact filter networks."""
    import jax
    import jax.numpy as jnp

    q1, k1, v1, q2, k2 = heads
    i, j = g["i"], g["j"]
    if table is None:
        radial = radial_filters(ab, g["rbf"], dtype)
    else:
        radial = tabulated_radial_filters(table, g["r"], arch.sr_cutoff, dtype)
    if first:  # ev = 0 → C(ev_j − ev_i) = 0: the spherical filter is the same constant for all pairs
        inv = jnp.zeros((1, arch.max_degree), dtype)
    else:
        inv = contract_l0(ev[j] - ev[i], arch.degrees)
    w1 = (radial[0] + _spherical_filter(ab, 1, inv, dtype)).reshape(-1, arch.num_heads, arch.head_dim)
    w2 = (radial[1] + _spherical_filter(ab, 2, inv, dtype)).reshape(-1, arch.max_degree, arch.degree_head_dim)
    scale = g["phi"][:, None] / arch.avg_num_neighbors
    recv = jnp.concatenate([i, j])
    # invariant attention over 4 heads: messages i ← j then j ← i
    alpha = _both_directions(q1, k1, w1, i, j, scale)  # (2P, 4)
    send = jnp.concatenate([v1[j], v1[i]], axis=0)
    dx = jax.ops.segment_sum(alpha[:, :, None] * send, recv, num_segments=n).reshape(n, arch.num_features)
    # equivariant attention over 4 degree heads (block l−1 of x ↔ degree l)
    beta = _both_directions(q2, k2, w2, i, j, scale)  # (2P, L)
    ylm = g["ylm"]
    parity = PARITY if arch.max_degree == len(DEGREES) else PARITY[: arch.num_components]
    ylm2 = jnp.concatenate([ylm, ylm * jnp.asarray(parity, dtype)], axis=0)
    dev = jax.ops.segment_sum(repeat_degrees(beta, arch.degrees) * ylm2, recv, num_segments=n)
    return dx, dev


_SPHERICAL_KEYS = tuple(f"spherical_filter{w}_layer_{k}" for w in (1, 2) for k in (1, 2))


def _tabulated_block(ab, table, ni, nj, g, aux, *, dtype, first: bool, arch: Architecture):
    """Messages of one block of unordered pairs with tabulated radial filters, for
    :func:`biomlff.pairsum.pair_sum`: ``ni``/``nj`` = (q1, k1, v1, q2, k2[, ev]) rows of atoms i and j,
    ``g`` the per-pair ``r`` (Å), ``ylm`` and ``phi``. Returns ((Δx, Δev) to i, (Δx, Δev) to j):
    the same messages as :func:`_messages` (i ← j and j ← i)."""
    import jax.numpy as jnp

    q1i, k1i, v1i, q2i, k2i = ni[:5]
    q1j, k1j, v1j, q2j, k2j = nj[:5]
    radial = tabulated_radial_filters(table, g["r"], arch.sr_cutoff, dtype)
    if first:  # ev = 0: the spherical filter is one constant row
        inv = jnp.zeros((1, arch.max_degree), dtype)
    else:
        inv = contract_l0(nj[5] - ni[5], arch.degrees)
    w1 = (radial[0] + _spherical_filter(ab, 1, inv, dtype)).reshape(-1, arch.num_heads, arch.head_dim)
    w2 = (radial[1] + _spherical_filter(ab, 2, inv, dtype)).reshape(-1, arch.max_degree, arch.degree_head_dim)
    scale = g["phi"][:, None] / arch.avg_num_neighbors
    b = scale.shape[0]
    a_ij = (q1i * w1 * k1j).sum(-1) * scale  # (B, heads)
    a_ji = (q1j * w1 * k1i).sum(-1) * scale
    b_ij = (q2i * w2 * k2j).sum(-1) * scale  # (B, L)
    b_ji = (q2j * w2 * k2i).sum(-1) * scale
    ylm = g["ylm"]
    parity = PARITY if arch.max_degree == len(DEGREES) else PARITY[: arch.num_components]
    to_i = ((a_ij[:, :, None] * v1j).reshape(b, arch.num_features), repeat_degrees(b_ij, arch.degrees) * ylm)
    to_j = (
        (a_ji[:, :, None] * v1i).reshape(b, arch.num_features),
        repeat_degrees(b_ji, arch.degrees) * (ylm * jnp.asarray(parity, dtype)),
    )
    return to_i, to_j


def _dense_vjp(p, x, g, dtype):
    """Cotangents (dp, dx) of :func:`dense` (x·K + b) for the output cotangent g; dp in the
    parameters' dtypes. ``x`` may have one row broadcast over g's rows (layer 1's constant filter)."""
    import jax.numpy as jnp

    k = p["kernel"]
    if x.shape[0] == 1 and g.shape[0] != 1:
        g = jnp.sum(g, axis=0, keepdims=True)
    dp = {"kernel": (x.T @ g).astype(k.dtype)}
    if "bias" in p:
        dp["bias"] = jnp.sum(g, axis=0).astype(p["bias"].dtype)
    return dp, g @ k.astype(dtype).T


def _tabulated_block_vjp(ab, table, ni, nj, g, aux, ct_i, ct_j, *, dtype, first: bool, arch: Architecture):
    """Hand-written reverse pass of :func:`_tabulated_block`: (d ab, d ni, d nj, d g) for the
    cotangents ``ct_i``, ``ct_j`` of its two outputs. The block is recomputed once, with the table's
    value and slope from one Horner pass; JAX's own vjp of the block (recompute, then transpose every
    reshape, broadcast and product) was measured at ~3.8× the block's forward time. Checked against
    ``jax.vjp`` in tests/so3lr/test_so3lr_tabulate.py."""
    import jax
    import jax.numpy as jnp

    f, nh, hd = arch.num_features, arch.num_heads, arch.head_dim
    nl, dd = arch.max_degree, arch.degree_head_dim
    q1i, k1i, v1i, q2i, k2i = ni[:5]
    q1j, k1j, v1j, q2j, k2j = nj[:5]
    r, ylm, phi = g["r"], g["ylm"], g["phi"]
    b = r.shape[0]
    # table value and slope
    c = jnp.asarray(table).astype(dtype)
    cells, kk, _ = c.shape
    xs = r.astype(dtype) * (cells / arch.sr_cutoff)
    cell = jnp.clip(jnp.floor(xs), 0, cells - 1)
    t = (xs - cell)[:, None]
    rows = c[cell.astype(jnp.int32)]
    y = rows[:, kk - 1]
    dy = jnp.zeros_like(y)
    for a in range(kk - 2, -1, -1):
        dy = dy * t + y
        y = y * t + rows[:, a]
    # spherical filters
    if first:
        inv = jnp.zeros((1, nl), dtype)
    else:
        de = nj[5] - ni[5]
        inv = contract_l0(de, arch.degrees)
    sph = []
    for w in (1, 2):
        p1 = ab[f"spherical_filter{w}_layer_1"]
        pre = dense(p1, inv, dtype)
        sph.append((pre, dense(ab[f"spherical_filter{w}_layer_2"], silu(pre), dtype)))
    w1 = (y[:, :f] + sph[0][1]).reshape(b, nh, hd)
    w2 = (y[:, f:] + sph[1][1]).reshape(b, nl, dd)
    s = phi[:, None] / arch.avg_num_neighbors
    p_ij, p_ji = q1i * k1j, q1j * k1i
    u_ij, u_ji = (p_ij * w1).sum(-1), (p_ji * w1).sum(-1)  # (B, heads), unscaled logits
    o_ij, o_ji = q2i * k2j, q2j * k2i
    z_ij, z_ji = (o_ij * w2).sum(-1), (o_ji * w2).sum(-1)  # (B, L)
    parity = PARITY if arch.max_degree == len(DEGREES) else PARITY[: arch.num_components]
    par = jnp.asarray(parity, dtype)
    # messages: dx_i = s u_ij v_j, dev_i = rep(s z_ij) Y, dx_j = s u_ji v_i, dev_j = rep(s z_ji) Y P
    gxi = ct_i[0].reshape(b, nh, hd)
    gxj = ct_j[0].reshape(b, nh, hd)
    gevi, gevj = ct_i[1], ct_j[1]
    a_ij, a_ji = s * u_ij, s * u_ji
    rb_ij = repeat_degrees(s * z_ij, arch.degrees)
    rb_ji = repeat_degrees(s * z_ji, arch.degrees)
    d_v1j = a_ij[:, :, None] * gxi
    d_v1i = a_ji[:, :, None] * gxj
    d_ylm = rb_ij * gevi + rb_ji * par * gevj
    ga_ij = (gxi * v1j).sum(-1)  # d loss / d a_ij
    ga_ji = (gxj * v1i).sum(-1)
    sizes = [2 * l + 1 for l in arch.degrees]
    starts = np.cumsum([0] + sizes[:-1])

    def per_degree(v):  # (B, Σ(2l+1)) → (B, L) sums over m
        return jnp.stack([v[:, a : a + n].sum(-1) for a, n in zip(starts, sizes, strict=True)], -1)

    gb_ij = per_degree(gevi * ylm)
    gb_ji = per_degree(gevj * ylm * par)
    d_s = (ga_ij * u_ij + ga_ji * u_ji).sum(-1) + (gb_ij * z_ij + gb_ji * z_ji).sum(-1)
    A, Ab = (ga_ij * s)[:, :, None], (ga_ji * s)[:, :, None]
    Bm, Bb = (gb_ij * s)[:, :, None], (gb_ji * s)[:, :, None]
    d_q1i, d_k1j = A * w1 * k1j, A * w1 * q1i
    d_q1j, d_k1i = Ab * w1 * k1i, Ab * w1 * q1j
    d_q2i, d_k2j = Bm * w2 * k2j, Bm * w2 * q2i
    d_q2j, d_k2i = Bb * w2 * k2i, Bb * w2 * q2j
    d_w = jnp.concatenate([(A * p_ij + Ab * p_ji).reshape(b, f), (Bm * o_ij + Bb * o_ji).reshape(b, f)], -1)
    d_r = (d_w * dy).sum(-1) * (cells / arch.sr_cutoff)
    # spherical filters back to the invariants
    d_ab = {}
    d_inv = None
    for m, w in enumerate((1, 2)):
        pre, _ = sph[m]
        l1, l2 = f"spherical_filter{w}_layer_1", f"spherical_filter{w}_layer_2"
        d_ab[l2], d_h = _dense_vjp(ab[l2], silu(pre), d_w[:, m * f : (m + 1) * f], dtype)
        sg = jax.nn.sigmoid(pre)
        d_pre = d_h * (sg * (1.0 + pre * (1.0 - sg)))
        d_ab[l1], di = _dense_vjp(ab[l1], inv, d_pre, dtype)
        d_inv = di if d_inv is None else d_inv + di
    d_ni = [d_q1i, d_k1i, d_v1i, d_q2i, d_k2i]
    d_nj = [d_q1j, d_k1j, d_v1j, d_q2j, d_k2j]
    if not first:
        cg = jnp.asarray(CG_L0[: len(arch.degrees)], dtype)
        d_de = 2.0 * de * repeat_degrees(d_inv * cg, arch.degrees)
        d_ni.append(-d_de)
        d_nj.append(d_de)
    d_g = {"r": d_r.astype(r.dtype), "ylm": d_ylm, "phi": d_s / arch.avg_num_neighbors}
    return d_ab, tuple(d_ni), tuple(d_nj), d_g


def _tabulated_messages(ab, heads, ev, geom, dtype, first: bool, arch: Architecture, table):
    """(Δx, Δev) of one layer with tabulated filters through :func:`biomlff.pairsum.pair_sum`:
    blocks of :data:`PAIR_BLOCK_TABULATED` pairs, reverse pass accumulated in place (no per-block
    (N, F) cotangents). The tables get no gradient (they are built from the weights outside JAX)."""
    import functools

    from ..pairsum import as_blocks, pair_sum

    block = PAIR_BLOCK_TABULATED
    # separate per-atom arrays: packing them into one (N, 5F + 24) array for one gather per side
    # was measured 35 % slower (water 1536 energy + forces 530 → 714 ms)
    nodes = heads if first else heads + (ev,)
    pairs = {
        "r": as_blocks(geom["r"], block, "first"),
        "ylm": as_blocks(geom["ylm"], block, 0.0),
        "phi": as_blocks(geom["phi"], block, 0.0),
    }
    live = (pairs["phi"] != 0).any(axis=1)  # φ = 0 (padding, r ≥ r_c): no message
    fn = functools.partial(_tabulated_block, dtype=dtype, first=first, arch=arch)
    fn_vjp = functools.partial(_tabulated_block_vjp, dtype=dtype, first=first, arch=arch)
    return pair_sum(
        fn,
        geom["n"],
        nodes,
        as_blocks(geom["i"], block, 0),
        as_blocks(geom["j"], block, 0),
        pairs=pairs,
        consts={k: ab[k] for k in _SPHERICAL_KEYS},
        frozen=table,
        live=live,
        fn_vjp=fn_vjp if HAND_VJP else None,
    )


def so3krates_layer(p, x, ev, geom, dtype, first: bool = False, arch: Architecture = PUBLISHED, table=None):
    """One SO3krates layer (spec §1.5): attention → add → LN1 → residual MLP → exchange → LN2.

    Works on a *half* pair list (each unordered pair once): the filters w1, w2 depend on d_ij and on
    C(ev_j − ev_i), both symmetric in i and j, so they are computed once per unordered pair and
    used for both message directions (the two directions differ only through q, k, v and the
    parity (−1)^l of Y_lm(r̂_ji) = (−1)^l Y_lm(r̂_ij)). This halves the dominant cost, the filter
    networks, with the same result as the directed formulation up to summation order.

    geom: dict with per-pair ``i``, ``j`` (P,), ``rbf`` (P, 32), ``ylm`` (P, 24) of r̂_ij, ``phi`` (P,)
    (cutoff times mask, 0 for padded pairs) and ``n`` (number of atoms); with ``blocks`` the per-pair
    arrays have a leading block axis and are processed block by block (lax.scan). ``first``: ev is
    known to be 0 (layer 1). ``table``: tabulated radial filters of this layer (geom then carries the
    distances ``r`` (P,) Å instead of ``rbf``), None for the exact networks."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    n = geom["n"]
    ab = p["attention_block"]
    heads = tuple(_heads(ab[w], x, dtype) for w in ("Wq1", "Wk1", "Wv1", "Wq2", "Wk2"))
    pair_keys = ("i", "j", "rbf", "ylm", "phi") if table is None else ("i", "j", "r", "ylm", "phi")
    if table is not None:
        dx, dev = _tabulated_messages(ab, heads, ev, geom, dtype, first, arch, table)
    elif geom.get("blocks"):

        @jax.checkpoint
        def body(acc, g):
            # a block without a message (φ = 0 for every pair: padding, r ≥ r_c) is skipped in both
            # passes, as in the tabulated path: the head-room of padded lists (ASE calculators 25 %,
            # MD lists) costs nothing; the result is the same bit for bit (it would add zeros)
            def add(acc):
                dx, dev = _messages(ab, heads, ev, g, n, dtype, first, arch, table)
                return acc[0] + dx, acc[1] + dev

            return lax.cond((g["phi"] != 0).any(), add, lambda acc: acc, acc), None

        init = (jnp.zeros((n, arch.num_features), dtype), jnp.zeros((n, arch.num_components), dtype))
        (dx, dev), _ = lax.scan(body, init, {k: geom[k] for k in pair_keys})
    else:
        dx, dev = _messages(ab, heads, ev, {k: geom[k] for k in pair_keys}, n, dtype, first, arch, table)
    x = x + dx
    ev = ev + dev
    x = layer_norm(p["layer_normalization_1"], x, dtype)
    x = x + dense(p["res_mlp_1_layer_2"], silu(dense(p["res_mlp_1_layer_1"], silu(x), dtype)), dtype)
    f = arch.num_features
    y = dense(
        p["exchange_block"]["mlp_layer_2"],
        jnp.concatenate([x, contract_l0(ev, arch.degrees)], axis=-1),
        dtype,
    )
    x = x + y[:, :f]
    ev = ev + repeat_degrees(y[:, f:], arch.degrees) * ev
    x = layer_norm(p["layer_normalization_2"], x, dtype)
    return x, ev


def blocked_geometry(geom, block: int = PAIR_BLOCK):
    """Reshape the per-pair arrays of ``geom`` into (blocks, block, ...) when there are more than
    ``block`` pairs (padding with masked pairs: i = j = 0, φ = 0); smaller lists are returned as is."""
    import jax.numpy as jnp

    p = geom["i"].shape[0]
    if p <= block:
        return geom
    nb = -(-p // block)
    pad = nb * block - p
    out = dict(geom, blocks=nb)
    for k in ("i", "j", "rbf", "ylm", "phi", "r"):
        if k not in geom:  # "rbf" (exact filters) or "r" (tabulated filters)
            continue
        a = geom[k]
        if k in ("rbf", "r"):  # any finite row: φ = 0 removes padded pairs
            a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])]) if pad else a
        elif pad:
            a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
        out[k] = a.reshape((nb, block) + a.shape[1:])
    return out


def atomic_energy(params, x, species, dtype):
    """SO3krates atomic energies ε_i (eV), shape (N,)."""
    o = params["observables_0"]
    h = dense(o["energy_dense_final"], silu(dense(o["energy_dense_regression"], x, dtype)), dtype)[:, 0]
    return o["atomic_scales"][species].astype(dtype) * h + o["energy_offset"][species].astype(dtype)


def raw_partial_charges(params, x, species, dtype):
    """Uncorrected partial charges q̃_i (e), shape (N,)."""
    p = params["observables_0"]["electrostatic_energy"]["partial_charges"]
    h = dense(p["charge_dense_final_vec"], silu(dense(p["charge_dense_regression_vec"], x, dtype)), dtype)[
        :, 0
    ]
    return p["Embed_0"]["embedding"][species, 0].astype(dtype) + h


def hirshfeld_ratios(params, x, species, dtype):
    """Hirshfeld volume ratios h_i = |v0[Z] + Σ_f u[Z,f] k_f(x) / 8| (dimensionless), shape (N,)."""
    import jax.numpy as jnp

    p = params["observables_2"]
    k = dense(
        p["hirshfeld_ratios_dense_final"],
        silu(dense(p["hirshfeld_ratios_dense_regression"], x, dtype)),
        dtype,
    )
    u = p["Embed_1"]["embedding"][species].astype(dtype)
    v0 = p["Embed_0"]["embedding"][species, 0].astype(dtype)
    return jnp.abs(v0 + (u * k).sum(-1) / math.sqrt(u.shape[-1]))


def features(
    params,
    species,
    charge,
    spin,
    graph_ids,
    n_graphs: int,
    geom,
    dtype,
    arch: Architecture = PUBLISHED,
    tables=None,
):
    """Final invariant features x (N, F) after embedding and the T layers. ``tables``: tabulated
    radial filters ``{"layers_k": coeffs}`` (:mod:`biomlff.so3lr.tabulate`; geom then has ``r``
    instead of ``rbf``), None for the exact filter networks."""
    import jax.numpy as jnp

    x = embed(params, species, charge, spin, graph_ids, n_graphs, dtype, arch)
    ev = jnp.zeros((x.shape[0], arch.num_components), dtype=dtype)
    if tables is None:  # tabulated filters block the pairs themselves (_tabulated_messages)
        geom = blocked_geometry(geom, PAIR_BLOCK)
    # unrolled: a lax.scan over stacked layer weights was measured to compile no faster and to run
    # ~40 % slower on CPU
    for k in range(arch.num_layers):
        table = None if tables is None else tables[f"layers_{k}"]
        x, ev = so3krates_layer(
            params[f"layers_{k}"], x, ev, geom, dtype, first=k == 0, arch=arch, table=table
        )
    return x
