"""The one model interface (biomlff.potential.Model / bind, biomlff.models registry): a toy model
added through the registry matches its analytic energy and forces on every path (bound potential,
batched apply, ASE calculator, the MD command's factory); SO3LR's apply on the shared reference
structures equals the evaluation path that predates it bit for bit (float64); sGDML's apply is
GDMLModel.predict."""

from dataclasses import dataclass

import ase.io
import numpy as np
import pytest

from biomlff import models
from biomlff.calculators import calculator
from biomlff.neighbors import build_pairs
from biomlff.potential import ChemicalSystem, Model, NeighborSpec, bind, energy_and_forces


@dataclass(frozen=True)
class Springs(Model):
    """E = ½ k Σ_{i<j} (r_ij − r0)² over all pairs; params {"k": eV/Å², "r0": Å}."""

    name = "springs"

    @property
    def neighbors(self):
        return {"all": NeighborSpec(None, half=True)}

    def energy(self, params, inputs, positions, pairs, cell=None):
        import jax.numpy as jnp

        p = pairs["all"]
        d = positions[p.j] - positions[p.i]
        r = jnp.sqrt(jnp.where(p.mask, jnp.sum(d * d, axis=-1), 1.0))
        return 0.5 * params["k"] * jnp.sum(jnp.where(p.mask, (r - params["r0"]) ** 2, 0.0))


PARAMS = {"k": 2.0, "r0": 1.5}
models.register("springs-test", lambda system, settings: bind(Springs(), PARAMS, system))


def _analytic(x):
    k, r0 = PARAMS["k"], PARAMS["r0"]
    e, f = 0.0, np.zeros_like(x)
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            d = x[j] - x[i]
            r = np.linalg.norm(d)
            e += 0.5 * k * (r - r0) ** 2
            f[i] += k * (r - r0) * d / r
            f[j] -= k * (r - r0) * d / r
    return e, f


def _pairs(pot, x, capacity=None):
    return {n: build_pairs(x, s.cutoff, half=s.half, capacity=capacity) for n, s in pot.neighbors.items()}


def test_toy_model_through_registry_bind_apply_calculator_and_md_factory():
    import jax
    from ase import Atoms

    from biomlff.cli.md import _build_potential
    from biomlff.md.structure import System

    rng = np.random.default_rng(3)
    x = rng.normal(scale=1.3, size=(5, 3))
    e_ref, f_ref = _analytic(x)
    pot = models.build_potential("springs-test", [1, 6, 8, 1, 1])
    assert pot.model == Springs() and pot.params is PARAMS and list(pot.atomic_numbers) == [1, 6, 8, 1, 1]
    with jax.enable_x64(True):
        e, f = jax.jit(energy_and_forces(pot))(x, _pairs(pot, x))
        assert float(e) == pytest.approx(e_ref, rel=1e-12)
        assert np.allclose(np.asarray(f), f_ref, rtol=1e-10, atol=1e-12)
        # batched: two frames, the second with a padding atom (species 0, no pairs)
        y = np.concatenate([x[:4] * 1.1, np.zeros((1, 3))])
        lists = [_pairs(pot, x, 16)["all"], _pairs(pot, y[:4], 16)["all"]]
        batch = {
            "species": np.array([[1, 6, 8, 1, 1], [1, 6, 8, 1, 0]], np.int32),
            "positions": np.stack([x, y]),
            "pairs": {"all": tuple(np.stack([getattr(p, a) for p in lists]) for a in ("i", "j", "mask"))},
        }
        out = jax.jit(pot.model.apply)(pot.params, batch)
    e_y, f_y = _analytic(y[:4])
    assert np.allclose(out["energy"], [e_ref, e_y], rtol=1e-12)
    assert np.allclose(out["forces"][0], f_ref, atol=1e-12)
    assert np.allclose(out["forces"][1, :4], f_y, atol=1e-12) and not np.any(out["forces"][1, 4])
    calc = calculator("springs-test", precision="float64")
    atoms = Atoms("HCOHH", positions=x)
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(e_ref, rel=1e-12)
    assert np.allclose(atoms.get_forces(), f_ref, atol=1e-10)
    opts = {"model": "springs-test", "charge": None, "multiplicity": None, "lr_cutoff": None}
    opts.update(dispersion_damping=2.0, precision="float64")
    md_pot = _build_potential(opts, System(np.array([1, 6, 8, 1, 1]), x, np.ones(5)))
    assert md_pot.model == Springs()
    with pytest.raises(Exception, match="does not exist"):
        models.build_potential("no-such-model", [1])


def test_so3lr_apply_equals_the_evaluate_path_bitwise_float64(shared):
    import jax

    from biomlff.neighbors import bucket
    from biomlff.so3lr import SO3LRConfig
    from biomlff.so3lr import evaluate as ev
    from biomlff.so3lr.model import SO3LR, _EnergyFunction
    from biomlff.so3lr.weights import read_params_pickle

    params = read_params_pickle(shared / "so3lr" / "params.pkl")
    config = SO3LRConfig(lr_cutoff=12.0, dispersion_damping=2.0, precision="float64")
    model = SO3LR(config)
    atoms = [ase.io.read(shared / "so3lr" / "reference" / f"{n}.xyz") for n in ("dha", "atat")]
    systems = [ev.System(a.numbers, a.positions, charge=q) for a, q in zip(atoms, (0.0, 1.0), strict=True)]
    npad = {bucket(s.n_atoms, ev.ATOM_BUCKET_MINIMUM) for s in systems}
    assert len(npad) == 1  # one batch: evaluate_systems pads both the same way
    lists = [ev._system_pairs(model.neighbors, s) for s in systems]
    caps = {k: bucket(max(len(li[k][0]) for li in lists)) for k in model.neighbors}
    batch = ev.pad_batch(systems, npad.pop(), lists, caps, np.float64, 2)

    def legacy(params, species, charge, spin, ids, fch, positions, pairs, cell):
        """The evaluation kernel as it was before Model.apply (jit(vmap(value_and_grad)))."""
        args = (params, species, charge, spin, ids, fch)

        def f(x):
            return _EnergyFunction(config)(*args, x, pairs, cell), _EnergyFunction(config, True)(
                *args, x, pairs, cell
            )

        (e, out), g = jax.value_and_grad(f, has_aux=True)(positions)
        return {**out, "forces": -g, "energy": e}

    keys = ("species", "charge", "spin", "frag_ids", "frag_charges", "positions", "pairs")
    with jax.enable_x64(True):
        old = jax.jit(jax.vmap(legacy, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, None)))(
            params, *(batch[k] for k in keys), None
        )
        new = jax.jit(model.apply)(params, batch)
    evaluated = ev.evaluate_systems(systems, config, params, batch_size=2)
    flat_old, tree_old = jax.tree_util.tree_flatten(old)
    flat_new, tree_new = jax.tree_util.tree_flatten(new)
    assert tree_old == tree_new
    for a, b in zip(flat_old, flat_new, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    for k, (s, o) in enumerate(zip(systems, evaluated, strict=True)):
        assert np.array_equal(o["forces"], np.asarray(new["forces"][k, : s.n_atoms]))
        assert o["energy"] == float(new["energy"][k]) and np.array_equal(o["dipole"], new["dipole"][k])


def test_sgdml_apply_is_predict(shared):
    import jax

    from biomlff.gdml import TrainConfig, load_frames, train
    from biomlff.gdml.predict import row_chunk

    root = shared / "datasets" / "rmd17"
    frames = load_frames(root / "rmd17_ethanol_train_01.npz", energy_key="energies", forces_key="forces")
    cfg = TrainConfig(n_train=20, sigmas=[10.0], perms=np.arange(9)[None], solver="closed")
    model, _ = train(frames, cfg)
    pos = frames.R[500:508]
    e, f = model.predict(pos)
    chunk = row_chunk(model.n_train * model.n_perms, len(pos))
    with jax.enable_x64(True):
        out = jax.jit(model.sgdml(chunk).apply)(model.params(chunk), {"positions": pos})
        auto = jax.jit(model.sgdml().apply)(model.params(), {"positions": pos})  # autodiff of energy
    assert np.array_equal(np.asarray(out["energy"]), e) and np.array_equal(np.asarray(out["forces"]), f)
    assert np.allclose(np.asarray(auto["energy"]), e, rtol=1e-12, atol=0)
    assert np.allclose(np.asarray(auto["forces"]), f, atol=1e-8)
    pot = model.potential()
    assert pot.model == model.sgdml() and pot.neighbors == {}
    assert model.potential().info["n_train"] == 20 and ChemicalSystem(model.z).periodic is False
