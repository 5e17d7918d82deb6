"""The one host-side batcher (biomlff.batching): the bucket rule, the batch layout of
biomlff.potential, padding that changes no result (checked against each structure evaluated alone,
unpadded), and training batches that are the core batch plus labels."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomlff import batching
from biomlff.errors import BiomlffError, ConfigError, DataError
from biomlff.neighbors import bucket, pair_indices
from biomlff.potential import ChemicalSystem, Model, NeighborSpec, Pairs


@dataclass(frozen=True)
class Springs(Model):
    """E = ½ k Σ_{i<j, r<3 Å} (r − r0)² (a pair list with a cutoff) + q Σ_i |x_i|² (charge term)."""

    @property
    def neighbors(self):
        return {"short": NeighborSpec(3.0, half=True), "all": NeighborSpec(None, half=False)}

    def row_inputs(self, row):
        return {"species": row["species"], "charge": row["charge"]}

    def energy(self, params, inputs, positions, pairs, cell=None):
        p = pairs["short"]
        d = positions[p.j] - positions[p.i]
        r = jnp.sqrt(jnp.where(p.mask, jnp.sum(d * d, axis=-1), 1.0))
        e = 0.5 * params["k"] * jnp.sum(jnp.where(p.mask, (r - params["r0"]) ** 2, 0.0))
        real = inputs["species"] > 0
        return e + inputs["charge"] * jnp.sum(jnp.where(real[:, None], positions**2, 0.0))


def _structures():
    rng = np.random.default_rng(0)
    out = []
    for n, q in ((5, 0.0), (11, 1.0), (19, -1.0)):  # atom buckets 16, 16, 32
        z = rng.choice([1, 6, 8], size=n).astype(np.int32)
        x = rng.uniform(0.0, 4.0, size=(n, 3))
        out.append((ChemicalSystem(z, q), x))
    return out


def test_one_bucket_rule_for_atoms_and_pairs():
    assert [batching.atom_bucket(n) for n in (1, 16, 17, 32, 33, 64, 65, 97, 200)] == [
        16, 16, 32, 32, 64, 64, 96, 128, 256
    ]  # fmt: skip
    assert [batching.pair_bucket(n) for n in (0, 64, 65, 100, 1000)] == [64, 64, 96, 128, 1024]
    for n in range(1, 3000, 37):
        assert batching.atom_bucket(n) == bucket(n, batching.ATOM_BUCKET_MINIMUM) >= n
        assert batching.pair_bucket(n) == bucket(n, batching.PAIR_BUCKET_MINIMUM) >= n


def test_pad_batch_layout():
    structs = _structures()
    systems = [s for s, _ in structs]
    systems[1] = ChemicalSystem(systems[1].atomic_numbers, 1.0, 2, (np.r_[[0] * 5, [1] * 6], [1.0, 0.0]))
    xs = [x for _, x in structs]
    b = batching.pad_batch(systems, xs, Springs().neighbors, width=4, dtype=np.float32)
    assert set(b) == set(batching.BATCH_KEYS) - {"cell"}  # free space: no cell
    assert b["species"].shape == (4, 32) and b["species"].dtype == np.int32
    assert b["positions"].shape == (4, 32, 3) and b["positions"].dtype == np.float32
    assert np.array_equal(b["charge"], [0.0, 1.0, -1.0, -1.0]) and np.array_equal(b["spin"], [0, 1, 0, 0])
    assert np.array_equal(b["frag_charges"], [[0, 0], [1, 0], [-1, 0], [-1, 0]])
    assert np.array_equal(b["frag_ids"][1, :11], systems[1].fragments[0]) and not b["frag_ids"][1, 11:].any()
    for k, (s, x) in enumerate(structs):
        n = len(x)
        assert np.array_equal(b["species"][k, :n], s.atomic_numbers) and not b["species"][k, n:].any()
        assert np.array_equal(b["positions"][k, :n], x.astype(np.float32))
        for name, spec in Springs().neighbors.items():
            i, j = pair_indices(x, spec.cutoff, half=spec.half)
            longest = max(len(pair_indices(y, spec.cutoff, half=spec.half)[0]) for _, y in structs)
            p = b["pairs"][name]
            assert isinstance(p, Pairs) and p.i.shape[1] == batching.pair_bucket(longest)
            m = p.mask[k]
            assert m.sum() == len(i) and np.array_equal(p.i[k][m], i) and np.array_equal(p.j[k][m], j)
    for v in jax.tree_util.tree_leaves(b):  # the 4th frame is a copy of the last structure
        assert np.array_equal(v[3], v[2])
    boxed = batching.pad_batch([ChemicalSystem([1, 1], cell=np.eye(3) * 10)], [np.eye(3)[:2]], {})
    assert boxed["cell"].shape == (1, 3, 3) and boxed["pairs"] == {}


def test_pad_batch_errors():
    (s, x), (s2, _) = _structures()[:2]
    with pytest.raises(ConfigError, match="periodic and free-space"):
        batching.pad_batch([s, ChemicalSystem(s.atomic_numbers, cell=np.eye(3) * 20)], [x, x], {})
    with pytest.raises(DataError, match="positions of shape"):
        batching.pad_batch([s2], [x], {})
    with pytest.raises(ConfigError, match="atom padding 4"):
        batching.pad_batch([s], [x], {}, n_atoms=4)
    with pytest.raises(BiomlffError, match="pair capacity"):
        batching.pad_batch([s], [x], Springs().neighbors, capacities={"short": 64, "all": 8})
    with pytest.raises(ConfigError, match="do not add up"):
        batching.pad_batch([ChemicalSystem(s.atomic_numbers, 1.0, 1, (np.zeros(5, int), [0.0]))], [x], {})


def test_padding_changes_nothing():
    """Model.apply on one padded batch of three sizes equals each structure evaluated unpadded."""
    model, params = Springs(), {"k": 2.0, "r0": 1.5}
    structs = _structures()
    b = batching.pad_batch([s for s, _ in structs], [x for _, x in structs], model.neighbors, width=4)
    with jax.enable_x64(True):
        out = jax.jit(model.apply)(params, b)
        for k, (s, x) in enumerate(structs):
            lists = [batching.structure_pairs(model.neighbors, x)]
            exact = {name: len(i) for name, (i, _) in lists[0].items()}  # no padded atom or pair
            alone = batching.pad_batch([s], [x], lists=lists, n_atoms=len(x), capacities=exact)
            ref = jax.jit(model.apply)(params, alone)
            n = len(x)
            np.testing.assert_allclose(out["energy"][k], ref["energy"][0], rtol=1e-13)
            np.testing.assert_allclose(out["forces"][k, :n], ref["forces"][0], rtol=1e-12, atol=1e-12)
            assert not np.asarray(out["forces"][k, n:]).any()  # padding atoms: no force
