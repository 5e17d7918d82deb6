"""biomlff.aot: jitted programs stored as jax.export artefacts and loaded by a later process.

A "later process" is a new :func:`biomlff.aot.cached_jit` wrapper (its own per-process table is
empty): it must load the stored program without tracing and give jax.jit's outputs bit for bit, and
fall back to tracing on a corrupt file, another static key or another biomlff source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomlff import aot
from biomlff.potential import Pairs

TRACES = [0]


@jax.custom_vjp
def _square(x):
    return x * x


def _square_fwd(x):
    return x * x, x


def _square_bwd(x, g):  # a hand-written reverse pass, as biomlff.pairsum's
    return (2.0 * x * g,)


_square.defvjp(_square_fwd, _square_bwd)


def _fn(params, batch):
    """A small function of a pytree with a custom node (Pairs) whose outputs are a dict tree; it
    differentiates through a custom VJP and a lax.scan, as SO3LR's forces do."""
    TRACES[0] += 1  # trace-time side effect
    pairs = batch["pairs"]

    def energy(x):
        d = jnp.where(pairs.mask[:, None], x[pairs.j] - x[pairs.i], 0.0)
        blocks = jnp.tanh(d @ params["w"]).reshape(2, 2, -1)
        _, e = jax.lax.scan(lambda c, b: (c, jnp.sum(b * params["b"])), 0.0, blocks)
        return jnp.sum(e) + 0.5 * jnp.sum(_square(x))

    e, g = jax.value_and_grad(energy)(batch["x"])
    return {"energy": e, "forces": -g, "terms": [e, -e]}


@pytest.fixture()
def args():
    rng = np.random.default_rng(1)
    params = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
    i, j = np.array([0, 1, 2, 0], np.int32), np.array([1, 2, 0, 0], np.int32)
    pairs = Pairs(i, j, np.array([1, 1, 1, 0], bool))
    return params, {"x": rng.normal(size=(3, 3)).astype(np.float32), "pairs": pairs}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path))
    monkeypatch.delenv("BIOMLFF_COMPILE_CACHE", raising=False)
    monkeypatch.delenv("BIOMLFF_AOT_DIR", raising=False)
    return tmp_path / "aot"


def _same(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _run(args, key="k"):
    f = aot.cached_jit(_fn, key=key, name="test")
    out = f(*args)
    (source,) = f.sources.values()
    return out, source


def test_round_trip_is_bitwise_and_skips_tracing(args, cache):
    expected = jax.jit(_fn)(*args)
    out, source = _run(args)
    assert source == "exported" and len(list(cache.glob("test-*.jaxexport"))) == 1
    _same(out, expected)
    before = TRACES[0]
    out, source = _run(args)  # a later process
    assert source == "loaded" and TRACES[0] == before  # no tracing
    _same(out, expected)
    with jax.enable_x64(True):  # the 64-bit flag is part of the signature
        out, source = _run(args)
    assert source == "exported" and len(list(cache.glob("test-*.jaxexport"))) == 2


def test_corrupt_artefact_is_traced_again_and_replaced(args, cache):
    expected = jax.jit(_fn)(*args)
    _run(args)
    (path,) = cache.glob("test-*.jaxexport")
    good = path.read_bytes()  # (exports differ in debug locations only: compare validity, not bytes)
    for bad in (good[:-7], good[:40] + bytes(b ^ 0xFF for b in good[40:60]) + good[60:]):
        path.write_bytes(bad)
        out, source = _run(args)
        assert source == "exported"
        _same(out, expected)
        assert aot._read(path) is not None  # replaced by a valid artefact
    # a checksum-valid file whose content is not an export: deserialization fails, traced again
    junk = b"not a jax export"
    import hashlib

    path.write_bytes(aot.MAGIC + hashlib.sha256(junk).digest() + junk)
    out, source = _run(args)
    assert source == "exported" and aot._read(path) is not None
    _same(out, expected)
    assert _run(args)[1] == "loaded"


def test_other_key_or_source_misses(args, cache, monkeypatch):
    _run(args)
    assert _run(args, key="other")[1] == "exported"
    monkeypatch.setattr(aot, "source_hash", lambda: "edited")
    assert _run(args)[1] == "exported"
    assert len(list(cache.glob("test-*.jaxexport"))) == 3


def test_off_and_unexportable_fall_back_to_jit(args, cache, monkeypatch):
    expected = jax.jit(_fn)(*args)

    def named_output(params, batch):  # a NamedTuple output does not serialize: plain jit
        return Pairs(*jax.tree_util.tree_leaves(_fn(params, batch))[:3])

    f = aot.cached_jit(named_output, key="k", name="named")
    out = f(*args)
    assert list(f.sources.values()) == ["jit"] and isinstance(out, Pairs)
    monkeypatch.setenv("BIOMLFF_COMPILE_CACHE", "off")
    out, source = _run(args)
    assert source == "jit" and not cache.exists()
    _same(out, expected)
