"""Blocked sums over pair lists with a hand-written reverse pass (the inference fast path).

Message passing and long-range pair energies are sums over pairs scattered onto atoms:
``out[a] = Σ_{p: i_p = a} m_i(p) + Σ_{p: j_p = a} m_j(p)`` with ``(m_i, m_j) = fn(rows of i, rows of j,
pair data)``. Evaluated block by block (a ``lax.scan`` over blocks of pairs, so the per-pair
intermediates stay in the cache), JAX's own reverse pass of such a scan keeps a cotangent of every
per-atom input *per block*: each block creates a zero (N, …) array, scatters its few hundred rows into
it and adds it to the running sum. That costs O(N) memory traffic per block, O(N²/B) in all, and was
the largest single cost of SO3LR energy + forces on CPU (water 1,536 atoms: ~100 ms of 520 ms
short-range; more at larger N).

:func:`pair_sum` is the same sum with a ``jax.custom_vjp`` whose backward pass scans the blocks again,
recomputes each block's pair function (as ``jax.checkpoint`` would), and scatters the per-pair
cotangents straight into one running (N, …) accumulator. Forward and backward touch O(B) memory per
block. Reverse-over-reverse (forces in a loss, Hessians by ``jax.jacrev``) works; forward mode
(``jax.jvp``, ``jax.jacfwd``) does not, as for every custom VJP.

Written here rather than taken from a library: neither JAX nor JAX-MD offers a scatter-sum whose
reverse pass accumulates in place across scan iterations.
"""

from __future__ import annotations

from collections.abc import Callable


def pair_sum(
    fn: Callable,
    n: int,
    nodes,
    i,
    j,
    pairs=None,
    consts=None,
    frozen=None,
    aux=None,
    live=None,
    fn_vjp: Callable | None = None,
):
    """Σ over blocks of pairs of ``fn`` scattered to both atoms of every pair.

    Args:
        fn: ``fn(consts, frozen, nodes_i, nodes_j, pairs, aux) -> (m_i, m_j)``, pure, on one block:
            ``nodes_i``/``nodes_j`` are the rows ``nodes[i]``/``nodes[j]`` of every per-atom array
            (leading axis B), ``pairs``/``aux`` the block's per-pair arrays. ``m_i`` (contribution to
            atom i) and ``m_j`` (to atom j) are pytrees of (B, …) arrays of one common structure.
        n: number of atoms (rows of the output).
        nodes: pytree of per-atom arrays (N, …) (differentiable).
        i, j: (blocks, B) int atom indices of every pair (padding pairs must give m = 0 in ``fn``).
        pairs: pytree of (blocks, B, …) per-pair float arrays (differentiable), or None.
        consts: pytree of arrays used by every block (differentiable: weights, the cell), or None.
        frozen: pytree of arrays used by every block that receive **no gradient** (zero cotangent;
            e.g. interpolation tables built from the weights outside JAX), or None.
        aux: pytree of (blocks, B, …) non-differentiable per-pair arrays (masks), or None.
        live: optional (blocks,) bool: blocks to evaluate. Blocks marked False must contribute
            nothing (all their pairs padding); they are skipped in both passes (``lax.cond``), which
            saves the head-room of padded pair lists (typically 20–25 % of the pairs).
        fn_vjp: optional hand-written reverse pass of ``fn``:
            ``fn_vjp(consts, frozen, nodes_i, nodes_j, pairs, aux, ct_i, ct_j) -> (d consts, d nodes_i,
            d nodes_j, d pairs)`` for the cotangents ``ct_i``, ``ct_j`` of ``(m_i, m_j)``; default
            ``jax.vjp`` of ``fn``.

    Returns the pytree of (N, …) sums, the structure of ``m_i``.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    tmap = jax.tree_util.tree_map

    def gather(tree, idx):
        return tmap(lambda a: a[idx], tree)

    def scatter(acc, idx_i, idx_j, mi, mj):
        return tmap(lambda a, u, v: a.at[idx_i].add(u).at[idx_j].add(v), acc, mi, mj)

    def block0(tree):
        return tmap(lambda a: a[0], tree)

    shapes = jax.eval_shape(
        lambda c, f, nd, pd, ax, bi, bj: fn(c, f, gather(nd, bi), gather(nd, bj), pd, ax)[0],
        consts,
        frozen,
        nodes,
        block0(pairs),
        block0(aux),
        i[0],
        j[0],
    )

    def zeros_out():
        return tmap(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype), shapes)

    if live is None:
        live = jnp.ones(i.shape[:1], bool)

    @jax.custom_vjp
    def run(consts, frozen, nodes, pairs, i, j, aux, live):
        def body(acc, xs):
            pd, ax, bi, bj, lv = xs

            def messages(_):
                return fn(consts, frozen, gather(nodes, bi), gather(nodes, bj), pd, ax)

            def nothing(_):
                return tmap(lambda s: jnp.zeros((bi.shape[0],) + s.shape[1:], s.dtype), (shapes, shapes))

            # the branch returns block-sized arrays only: a cond over the (N, …) accumulator would
            # copy it in every block
            mi, mj = lax.cond(lv, messages, nothing, None)
            return scatter(acc, bi, bj, mi, mj), None

        out, _ = lax.scan(body, zeros_out(), (pairs, aux, i, j, live))
        return out

    def run_fwd(consts, frozen, nodes, pairs, i, j, aux, live):
        res = (consts, frozen, nodes, pairs, i, j, aux, live)
        return run(consts, frozen, nodes, pairs, i, j, aux, live), res

    def run_bwd(res, ct):
        consts, frozen, nodes, pairs, i, j, aux, live = res

        def body(carry, xs):
            pd, ax, bi, bj, lv = xs

            ct_c, ct_n = carry
            ni, nj = gather(nodes, bi), gather(nodes, bj)

            def cotangents(_):
                ct_i, ct_j = gather(ct, bi), gather(ct, bj)
                if fn_vjp is not None:
                    return fn_vjp(consts, frozen, ni, nj, pd, ax, ct_i, ct_j)

                def f(c, ni, nj, p):
                    return fn(c, frozen, ni, nj, p, ax)

                _, vjp = jax.vjp(f, consts, ni, nj, pd)
                return vjp((ct_i, ct_j))

            def nothing(_):
                return tmap(jnp.zeros_like, (consts, ni, nj, pd))

            d_c, d_ni, d_nj, d_p = lax.cond(lv, cotangents, nothing, None)
            ct_n = scatter(ct_n, bi, bj, d_ni, d_nj)
            return (tmap(jnp.add, ct_c, d_c), ct_n), d_p

        init = (tmap(jnp.zeros_like, consts), tmap(jnp.zeros_like, nodes))
        (ct_c, ct_n), ct_p = lax.scan(body, init, (pairs, aux, i, j, live))
        return ct_c, tmap(jnp.zeros_like, frozen), ct_n, ct_p, None, None, None, None

    run.defvjp(run_fwd, run_bwd)
    return run(consts, frozen, nodes, pairs, i, j, aux, live)


def as_blocks(a, block: int, fill=0):
    """(P, …) per-pair array → (⌈P/block⌉, block, …), padded with ``fill`` (a scalar, or ``"first"``
    to repeat the first row: a finite value for arrays that padding pairs must still evaluate);
    lists of at most ``block`` pairs become one block of their own length."""
    import jax.numpy as jnp

    p = a.shape[0]
    if p <= block:
        return a[None]
    nb = -(-p // block)
    pad = nb * block - p
    if pad:
        if isinstance(fill, str) and fill == "first":
            tail = jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])
        else:
            tail = jnp.full((pad,) + a.shape[1:], fill, a.dtype)
        a = jnp.concatenate([a, tail])
    return a.reshape((nb, block) + a.shape[1:])
