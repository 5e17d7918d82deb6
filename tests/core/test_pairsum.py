"""biomlff.pairsum: blocked pair sums with a hand-written reverse pass, against plain segment sums
and JAX's own autodiff (values, gradients, reverse over reverse, Hessians, skipped blocks)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomlff.pairsum import as_blocks, pair_sum

N, P, B = 9, 37, 8


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _problem(seed=0, padded_tail=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3))
    i = rng.integers(0, N, P)
    j = rng.integers(0, N, P)
    mask = rng.random(P) > 0.2
    if padded_tail:
        mask[-padded_tail:] = False
    return dict(
        x=jnp.asarray(x),
        w=jnp.asarray(rng.normal(size=3)),
        s=jnp.asarray(rng.normal(size=P)),
        t=jnp.asarray(rng.normal(size=4)),
        i=i,
        j=j,
        mask=mask,
    )


def _pair_fn(c, frozen, ni, nj, pd, ax):
    d = nj - ni
    e = jnp.where(ax, jnp.sin(d @ c) * pd + jnp.sum(frozen) * jnp.sum(d * d, -1), 0.0)
    return {"e": e, "v": d * e[:, None]}, {"e": 2.0 * e, "v": -d * ax[:, None]}


def _reference(pr):
    def f(x, w, s):
        d = x[pr["j"]] - x[pr["i"]]
        m = pr["mask"]
        e = jnp.where(m, jnp.sin(d @ w) * s + jnp.sum(pr["t"]) * jnp.sum(d * d, -1), 0.0)
        recv = np.concatenate([pr["i"], pr["j"]])
        return {
            "e": jax.ops.segment_sum(jnp.concatenate([e, 2.0 * e]), recv, N),
            "v": jax.ops.segment_sum(jnp.concatenate([d * e[:, None], -d * m[:, None]]), recv, N),
        }

    return f


def _blocked(pr, live=False):
    def f(x, w, s):
        mask = as_blocks(jnp.asarray(pr["mask"]), B, False)
        return pair_sum(
            _pair_fn,
            N,
            x,
            as_blocks(jnp.asarray(pr["i"]), B, 0),
            as_blocks(jnp.asarray(pr["j"]), B, 0),
            pairs=as_blocks(s, B, 0.0),
            consts=w,
            frozen=pr["t"],
            aux=mask,
            live=mask.any(axis=1) if live else None,
        )

    return f


def _loss(f):
    def loss(x, w, s):
        out = f(x, w, s)
        return jnp.sum(out["e"] ** 2) + jnp.sum(jnp.cos(out["v"]))

    return loss


def _close(a, b, rtol=1e-12):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        scale = max(1.0, float(jnp.abs(v).max()))
        assert float(jnp.abs(u - v).max()) <= rtol * scale


@pytest.mark.parametrize("live", [False, True])
def test_values_and_gradients_match_segment_sums(live):
    pr = _problem(padded_tail=20)  # the last two blocks of 8 hold only padding pairs
    new, ref = _blocked(pr, live), _reference(pr)
    args = (pr["x"], pr["w"], pr["s"])
    _close(new(*args), ref(*args))
    _close(jax.jit(new)(*args), ref(*args))
    g_new = jax.grad(_loss(new), argnums=(0, 1, 2))(*args)
    g_ref = jax.grad(_loss(ref), argnums=(0, 1, 2))(*args)
    _close(g_new, g_ref)


def test_reverse_over_reverse_and_hessian():
    pr = _problem(seed=1)
    new, ref = _blocked(pr, live=True), _reference(pr)
    args = (pr["x"], pr["w"], pr["s"])

    def grad_norm(f):
        return lambda x, w, s: jnp.sum(jax.grad(_loss(f))(x, w, s) ** 2)

    _close(
        jax.grad(grad_norm(new), argnums=(0, 1, 2))(*args),
        jax.grad(grad_norm(ref), argnums=(0, 1, 2))(*args),
    )
    h_new = jax.jacrev(jax.grad(_loss(new)))(*args)
    h_ref = jax.hessian(_loss(ref))(*args)
    _close(h_new, h_ref)


def test_frozen_arrays_get_no_gradient_and_vmap_works():
    pr = _problem(seed=2)

    def via_t(t):
        q = dict(pr, t=t)
        return jnp.sum(_blocked(q)(pr["x"], pr["w"], pr["s"])["e"])

    assert float(jnp.abs(jax.grad(via_t)(pr["t"])).max()) == 0.0
    xs = jnp.stack([pr["x"], pr["x"] + 0.1])
    batched = jax.vmap(lambda x: _blocked(pr)(x, pr["w"], pr["s"])["e"])(xs)
    _close(batched[1], _reference(pr)(xs[1], pr["w"], pr["s"])["e"])


def test_as_blocks_pads_and_keeps_short_lists():
    a = jnp.arange(10.0)
    assert as_blocks(a, 16).shape == (1, 10)
    b = as_blocks(a, 4, "first")
    assert b.shape == (3, 4) and float(b[-1, -1]) == 0.0 and float(b[-1, 1]) == 9.0
    assert float(as_blocks(a + 1, 4, "first")[-1, -1]) == 1.0
    assert float(as_blocks(a, 4, -1.0)[-1, -1]) == -1.0
