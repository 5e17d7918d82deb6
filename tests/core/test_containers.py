"""The one container layout (biomlff.fileio.save_tree / load_tree) and the files written before it.

* save_tree/load_tree round trips: nested dicts, lists, tuples, None, Python scalars, every dtype,
  bit for bit (NaN payloads, −0.0), keys with '/', optax states (NamedTuples) into a template;
  corrupt, foreign, newer and mismatched files are DataErrors naming the file.
* Files written by biomlff before the container (tests/fixtures/legacy/, made by make_legacy.py at
  commit 5832179, with what that code computed from them in reference.npz) load with today's code
  and give the same results: an MD and a PIMD checkpoint resume and follow the old code's
  trajectory, a training checkpoint resumes to the old code's parameters, a model file and a GDML
  model predict the old energies and forces. Written again, they take the new layout and load back
  bit for bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from biomlff.errors import ConfigError, DataError
from biomlff.fileio import TREE_HEADER, fill_tree, flatten_tree, load_tree, save_tree

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
ETHANOL = LEGACY.parents[2] / "src" / "biomlff" / "resources" / "examples" / "ethanol_md17_50.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(LEGACY / "reference.npz") as z:
        return {k: z[k] for k in z.files}


def _header(path) -> dict:
    with np.load(path) as z:
        return json.loads(z[TREE_HEADER].tobytes().decode())


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------------- save/load
class Pair(NamedTuple):
    first: object
    second: object


def test_round_trip_is_bitwise_and_keeps_structure(tmp_path):
    nan_payload = np.array([0x7FF8000000000123], np.uint64).view(np.float64)
    tree = {
        "f64": np.array([1.0, -0.0, np.inf, np.nan]),
        "payload": nan_payload,
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
        "f16": np.array([1.5, -2.25], np.float16),
        "ints": [np.int8(-3), np.arange(3, dtype=np.uint64) * (2**63 // 3), np.zeros((0, 4), np.int32)],
        "flags": np.array([True, False]),
        "c64": np.array([1 + 2j], np.complex64),
        "text": np.array(["ab", "c"]),
        "scalars": (1, 2.5, True, "word", 1e-300),
        "nested": {"a/b": {"%x": np.ones(2)}, "empty": {}, "none": None, "seq": []},
        "pair": Pair(np.eye(2), None),
    }
    meta = {"step": 7, "best": float("inf"), "names": ["x", "y"], "nested": {"k": [1, 2]}}
    path = save_tree(tmp_path / "t.npz", tree, meta, kind="test")
    with np.load(path) as z:
        assert {"nested/a%2Fb/%25x", "pair/first", "scalars/3", TREE_HEADER} <= set(z.files)
    back, meta_back = load_tree(path, kind="test")
    assert meta_back == meta
    flat, flat_back = flatten_tree(tree), flatten_tree(back)
    assert list(flat_back) == list(flat)
    for k, v in flat.items():
        assert _same_bits(v, flat_back[k]), k
    # Python scalars come back as Python scalars, containers as saved, NamedTuples as dicts
    assert back["scalars"] == (1, 2.5, True, "word", 1e-300)
    assert [type(v) for v in back["scalars"]] == [int, float, bool, str, float]
    assert back["nested"]["empty"] == {} and back["nested"]["none"] is None and back["nested"]["seq"] == []
    assert isinstance(back["ints"], list) and back["pair"].keys() == {"first", "second"}
    # into a template: the NamedTuple is rebuilt
    again, _ = load_tree(path, kind="test", like=tree)
    assert isinstance(again["pair"], Pair) and again["pair"].second is None
    assert _same_bits(again["pair"].first, np.eye(2))


def test_optax_state_goes_into_its_template_by_path(tmp_path):
    import jax
    import optax

    f32 = np.float32
    dense = {"kernel": np.arange(6, dtype=f32).reshape(2, 3), "bias": np.zeros(3, f32)}
    params = {"dense": dense, "scale": np.ones(1, f32)}
    labels = {"dense": {"kernel": "train", "bias": "train"}, "scale": "freeze"}
    train = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    tx = optax.multi_transform({"train": train, "freeze": optax.set_to_zero()}, labels)
    # a state unlike the fresh one, every leaf different (NumPy: no compilation)
    rng = np.random.default_rng(0)
    opt = jax.tree_util.tree_map(
        lambda a: np.asarray(a) + rng.normal(size=np.shape(a)).astype(a.dtype), tx.init(params)
    )
    state = {"params": params, "opt": opt}
    path = save_tree(tmp_path / "opt.npz", state, {}, kind="test")
    fresh = {"params": params, "opt": tx.init(params)}
    back, _ = load_tree(path, kind="test", like=fresh)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(state), strict=True):
        assert _same_bits(a, b)
    # leaves are matched by path, not by flatten order: a template with the dict keys in another
    # insertion order gets the same leaves at the same places
    reordered = {"opt": fresh["opt"], "params": {"scale": params["scale"], "dense": params["dense"]}}
    back2, _ = load_tree(path, kind="test", like=reordered)
    assert _same_bits(back2["params"]["dense"]["kernel"], params["dense"]["kernel"])
    # a template of another model is refused with the paths named
    other = {"params": {**params, "extra": np.zeros(2)}, "opt": fresh["opt"]}
    with pytest.raises(DataError, match=r"opt\.npz does not match .*missing params/extra"):
        load_tree(path, kind="test", like=other)
    wide = {"dense": {"kernel": np.zeros((2, 4)), "bias": np.zeros(3)}, "scale": np.ones(1)}
    with pytest.raises(DataError, match=r"other shapes: params/dense/kernel \(2, 3\) \(expected \(2, 4\)\)"):
        fill_tree({"params": wide}, {"params/" + k: v for k, v in flatten_tree(params).items()}, "x")


def test_bad_trees_and_files_are_named(tmp_path):
    with pytest.raises(TypeError, match="not an array"):
        save_tree(tmp_path / "o.npz", {"x": object()}, {}, kind="test")
    with pytest.raises(TypeError, match="not a string"):
        save_tree(tmp_path / "o.npz", {"x": {1: np.ones(1)}}, {}, kind="test")
    with pytest.raises(ValueError, match="reserved"):
        save_tree(tmp_path / "o.npz", {"file": np.ones(1)}, {}, kind="test")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left
    good = save_tree(tmp_path / "good.npz", {"x": np.ones(3)}, {"a": 1}, kind="test")
    with pytest.raises(DataError, match=r"good\.npz: holds a 'test', not a 'md-checkpoint'"):
        load_tree(good, kind="md-checkpoint")
    bad = tmp_path / "cut.npz"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"checkpoint .*cut\.npz"):
        load_tree(bad, kind="test", what="checkpoint")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.ones(2))
    with pytest.raises(DataError, match=r"foreign\.npz: not a biomlff container"):
        load_tree(foreign, kind="test")
    header = _header(good)
    np.savez(
        tmp_path / "newer.npz",
        x=np.ones(3),
        **{TREE_HEADER: np.frombuffer(json.dumps(dict(header, version=99)).encode(), np.uint8)},
    )
    with pytest.raises(DataError, match=r"newer\.npz: container version 99 was written by a newer biomlff"):
        load_tree(tmp_path / "newer.npz", kind="test")
    np.savez(tmp_path / "gone.npz", **{TREE_HEADER: np.load(good)[TREE_HEADER]})
    with pytest.raises(DataError, match=r"gone\.npz: no entry 'x'"):
        load_tree(tmp_path / "gone.npz", kind="test")


# ------------------------------------------------------------------------------------- MD, PIMD
def _argon():
    from biomlff.md.structure import System
    from biomlff.md.testing import fcc_lattice, lennard_jones

    pos, cell = fcc_lattice(2, 5.40)
    z = np.full(len(pos), 18)
    return lennard_jones(z, cutoff=5.0), System(z, pos, np.full(len(pos), 39.948), cell, name="argon")


def _settings(**kw):
    from biomlff.md.simulation import MDSettings

    quiet = dict(log_every=0, traj_every=0, checkpoint_every=0, echo=False, progress=False)
    return MDSettings(precision="float64", seed=5, **quiet, **kw)


def _check_new_layout(path, state: dict, kind: str = "md-checkpoint", version: int = 2):
    """A checkpoint just written by today's code: the container layout, the state bit for bit."""
    from biomlff.md.driver import read_checkpoint

    header = _header(path)
    assert header["kind"] == kind and header["meta"]["version"] == version
    rs = read_checkpoint(path)
    for k, v in state.items():
        assert _same_bits(rs["state"][k], v), k


def test_legacy_md_checkpoint_resumes(tmp_path, ref):
    from biomlff.md.driver import read_checkpoint
    from biomlff.md.integrators import Ensemble
    from biomlff.md.simulation import Simulation

    chk = shutil.copy(LEGACY / "md_checkpoint_v1.npz", tmp_path / "old.chk.npz")
    rs = read_checkpoint(chk)
    assert rs["meta"]["version"] == 1 and int(rs["state"]["step"]) == 20
    with np.load(chk) as raw:  # the old layout's entries, as read
        assert _same_bits(rs["state"]["R"], raw["state/R"])
        assert _same_bits(rs["lists"]["rebuilds"], raw["lists/rebuilds"])
    pot, sysm = _argon()
    ens = Ensemble(kind="langevin", dt_fs=5.0, temperature_K=80.0, tau_t_fs=200.0)
    sim = Simulation.resume(chk, pot, ens, _settings(steps=30), system=sysm)
    assert sim.step == 20
    sim.run()
    # the old code continued the same run to step 30: the same state (bit for bit on the machine
    # that wrote it; 1e-10 relative and absolute leave room for another CPU's rounding)
    for k, v in sim.state.items():
        np.testing.assert_allclose(np.asarray(v), ref[f"md/{k}"], rtol=1e-10, atol=1e-10, err_msg=k)
    sim.save_checkpoint(tmp_path / "new.chk.npz")
    _check_new_layout(tmp_path / "new.chk.npz", sim.state)


def test_legacy_pimd_checkpoint_loads(tmp_path):
    """A PIMD checkpoint shares the reader (and the container kind) with MD; its own checks (kind,
    beads) still hold for an old file. The PIMD run itself resumes bit for bit in test_pimd.py."""
    from biomlff.md.pimd import PIMD, PIMDSimulation
    from biomlff.md.simulation import Simulation

    chk = LEGACY / "pimd_checkpoint_v1.npz"
    rs = PIMDSimulation.load_checkpoint(chk)
    assert rs["meta"]["kind"] == "pimd" and rs["meta"]["beads"] == 2 and int(rs["state"]["step"]) == 10
    with np.load(chk) as raw:
        for k, v in rs["state"].items():
            assert _same_bits(v, raw[f"state/{k}"]), k
    assert rs["state"]["R"].shape == (2, 32, 3)
    with pytest.raises(DataError, match="is a PIMD checkpoint"):
        Simulation.load_checkpoint(chk)
    pot, sysm = _argon()
    with pytest.raises(ConfigError, match="has 2 beads"):
        PIMDSimulation.resume(chk, pot, PIMD(beads=3), _settings(), system=sysm)
    # written again in the new layout, it loads back bit for bit
    from biomlff.md.driver import write_checkpoint

    write_checkpoint(tmp_path / "new.chk.npz", dict(rs["meta"], version=2), rs["state"], rs["lists"])
    back = PIMDSimulation.load_checkpoint(tmp_path / "new.chk.npz")
    assert back["meta"] == dict(rs["meta"], version=2)
    for part in ("state", "lists"):
        assert back[part].keys() == rs[part].keys()
        assert all(_same_bits(back[part][k], v) for k, v in rs[part].items())


# ------------------------------------------------------------------------------------- training
def _tiny_state(dtype=np.float64):
    """A state as the trainer builds it (params, optax chain state) for a small parameter tree."""
    import optax

    params = {"layer": {"kernel": np.arange(6, dtype=dtype).reshape(2, 3), "bias": np.ones(3, dtype)}}
    tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3))
    return {"params": params, "opt": tx.init(params)}, params


def test_training_checkpoint_round_trip_and_mismatch(tmp_path):
    import jax

    from biomlff.training.trainer import _load_checkpoint, _save_checkpoint

    state, best = _tiny_state()
    state["opt"] = jax.tree_util.tree_map(lambda a: a + 1, state["opt"])  # not the fresh values
    info = {"step": 12, "epoch": 1, "batch": 0, "best_score": float("inf"), "history": [{"lr": 1e-3}]}
    path = tmp_path / "checkpoint.npz"
    _save_checkpoint(path, state, best, info)
    header = _header(path)
    assert header["kind"] == "training-checkpoint" and header["meta"] == info
    with np.load(path) as z:
        assert "state/opt/1/0/mu/layer/kernel" in z.files and "best/layer/bias" in z.files
    fresh, fresh_best = _tiny_state()
    got, got_best, got_info = _load_checkpoint(path, fresh, fresh_best)
    assert got_info == info
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(state), strict=True):
        assert _same_bits(a, b)
    other, other_best = _tiny_state()
    other["params"]["layer"]["kernel"] = np.zeros((3, 3))
    with pytest.raises(ConfigError, match="does not match this configuration.*layer/kernel"):
        _load_checkpoint(path, other, other_best)


def test_legacy_training_checkpoint_loads(tmp_path, ref):
    """The old checkpoint (leaves keyed by flatten order) of a 2-step run goes into the state the
    trainer builds for its configuration (params, optax chain of clipping and Adam): every leaf in
    place (Adam's and the schedule's step counts read 2), and written again it takes the container
    layout and loads back bit for bit. (Resuming that file with the trainer gave the parameters the
    old code reached to 1e-10; not run here: it compiles a training step.)"""
    import jax

    from biomlff.so3lr.modelfile import load_model
    from biomlff.training import TrainConfig
    from biomlff.training.optim import make_optimizer
    from biomlff.training.trainer import _load_checkpoint, _save_checkpoint, read_training_checkpoint

    old = LEGACY / "training_checkpoint_v1.npz"
    cfg = json.loads(ref["training/config"].tobytes().decode())
    cfg = TrainConfig.from_dict(dict(cfg, data=str(ETHANOL), output=str(tmp_path / "m.npz")))
    model = load_model(LEGACY / "so3krates_model_v1.npz")
    params = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, np.float64), model.params)
    tx, _ = make_optimizer(cfg, params, 4, model.arch.num_layers)
    template = {"params": params, "opt": tx.init(params)}
    state, best, info = _load_checkpoint(old, template, params)
    assert info["step"] == 2 and info["epoch"] == 0 and info["batch"] == 2
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(template)
    assert jax.tree_util.tree_structure(best) == jax.tree_util.tree_structure(params)
    _, s_leaves, b_leaves = read_training_checkpoint(old)
    for a, b in zip(jax.tree_util.tree_leaves(state), s_leaves, strict=True):
        assert _same_bits(a, b)
    clip, (adam, sched) = state["opt"]
    assert int(adam.count) == 2 and int(sched.count) == 2
    assert float(np.max(np.abs(adam.nu["observables_0"]["energy_offset"]))) > 0
    assert all(np.asarray(a).dtype == np.float64 for a in jax.tree_util.tree_leaves(state["params"]))
    # the best parameters are the model file's (float32 there)
    for a, b in zip(jax.tree_util.tree_leaves(best), jax.tree_util.tree_leaves(model.params), strict=True):
        assert np.array_equal(np.asarray(a, np.float32), b)
    _save_checkpoint(tmp_path / "new.npz", state, best, info)
    again, again_best, again_info = _load_checkpoint(tmp_path / "new.npz", template, params)
    assert again_info == info
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(template)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves((again, again_best)), leaves((state, best)), strict=True):
        assert _same_bits(a, b)


# ------------------------------------------------------------------------------------- model files
def test_legacy_so3krates_model_file(tmp_path, ref):
    from biomlff.so3lr.evaluate import System, evaluate_systems
    from biomlff.so3lr.model import make_config
    from biomlff.so3lr.modelfile import is_model_file, load_model
    from biomlff.so3lr.weights import flatten

    old = LEGACY / "so3krates_model_v1.npz"
    assert is_model_file(old)
    model = load_model(old)
    assert model.meta["version"] == 1 and model.elements == (1, 6, 8)
    frame = np.load(ETHANOL)
    system = [System(atomic_numbers=frame["z"].astype(np.int32), positions=frame["R"][0])]
    config = make_config(None, 2.0, "float64", model.arch, filters="exact")
    out = evaluate_systems(system, config, model.params)[0]
    assert abs(float(out["energy"]) - float(ref["model/energy"])) < 1e-6  # eV
    np.testing.assert_allclose(out["forces"], ref["model/forces"], atol=1e-6)  # eV/Å
    # written again: the container layout, same parameters bit for bit, same metadata
    new = model.save(tmp_path / "new.npz")
    header = _header(new)
    assert header["kind"] == "so3krates-model" and header["meta"]["version"] == 2 and is_model_file(new)
    back = load_model(new)
    assert back.arch == model.arch and back.elements == model.elements and back.name == model.name
    assert {k: v for k, v in back.meta.items() if k != "version"} == {
        k: v for k, v in model.meta.items() if k != "version"
    }
    a, b = flatten(model.params), flatten(back.params)
    assert a.keys() == b.keys() and all(_same_bits(a[k], b[k]) for k in a)


def test_legacy_gdml_model(tmp_path, ref):
    from biomlff.gdml import GDMLModel
    from biomlff.so3lr.modelfile import is_model_file

    old = GDMLModel.load(LEGACY / "gdml_model_v1.npz")
    frame = np.load(ETHANOL)
    e, f = old.predict(frame["R"][:3])
    np.testing.assert_allclose(e, ref["gdml/energy"], rtol=1e-12)
    np.testing.assert_allclose(f, ref["gdml/forces"], rtol=1e-9, atol=1e-9)
    new = old.save(tmp_path / "new")  # suffix added
    assert new.name == "new.npz" and _header(new)["kind"] == "gdml-model" and not is_model_file(new)
    back = GDMLModel.load(new)
    for name in ("z", "R_desc", "R_d_desc_alpha", "perms", "alphas", "sigma", "std", "c", "lam"):
        assert _same_bits(getattr(back, name), getattr(old, name)), name
    assert back.lattice is None and back.alphas_E is None and back.info == old.info
    assert all(_same_bits(p, q) for p, q in zip(back.pairs, old.pairs, strict=True))
    e2, f2 = back.predict(frame["R"][:3])
    assert _same_bits(e2, e) and _same_bits(f2, f)
