"""Training and fine-tuning of SO3krates/SO3LR models: loss (finite differences, masks), overfitting,
the published architecture, model files, bitwise resume (also after SIGKILL), data parallelism and
input errors. Tiny models on a few ethanol frames keep this affordable on one core."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from biomlff.data.dataset import Dataset
from biomlff.errors import BiomlffError, ConfigError, DataError, ModelError
from biomlff.so3lr.architecture import PUBLISHED, Architecture, count_parameters, init_params, param_shapes
from biomlff.training import TrainConfig, train
from biomlff.training.batching import build_frames, make_batch
from biomlff.training.loss import LossSpec, batch_loss

ROOT = Path(__file__).resolve().parents[2]
ETHANOL = ROOT / "src" / "biomlff" / "resources" / "examples" / "ethanol_md17_50.npz"
TINY = dict(
    num_features=8,
    num_heads=2,
    max_degree=2,
    num_layers=1,
    num_rbf=6,
    energy_regression_dim=8,
    hirshfeld_dim=4,
)


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    d = dict(
        data=str(ETHANOL),
        n_train=20,
        n_valid=4,
        architecture=TINY,
        lr=3e-3,
        batch_size=4,
        epochs=2,
        output=str(tmp_path / "m.npz"),
        progress=False,
        checkpoint_every=5,
        dipole_weight=0.0,
        hirshfeld_weight=0.0,
    )
    d.update(kw)
    return TrainConfig.from_dict(d)


def labelled_dataset(n=6, seed=0):
    """Ethanol frames with synthetic dipoles and Hirshfeld ratios (labels of every kind)."""
    from biomlff.data.io import read_dataset

    ds = read_dataset(ETHANOL).subset(np.arange(n))
    rng = np.random.default_rng(seed)
    return Dataset.from_arrays(
        [ds.frame(k)["atomic_numbers"] for k in range(n)],
        [ds.frame(k)["positions"] for k in range(n)],
        frame_data={"energy": ds.frame_data["energy"], "dipole": rng.normal(size=(n, 3))},
        atom_data={
            "forces": [ds.frame(k)["forces"] for k in range(n)],
            "hirshfeld_ratios": [rng.uniform(0.6, 1.0, size=9) for _ in range(n)],
        },
    )


def _setup(precision="float64"):
    from biomlff.so3lr.model import make_config, neighbor_specs

    arch = Architecture(**TINY)
    config = make_config(None, 2.0, precision, arch, filters="exact")
    groups = build_frames(labelled_dataset(), neighbor_specs(None, arch))
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), init_params(arch, 3))
    return arch, config, groups, params


def test_published_architecture_is_the_checkpoint(shared):
    from biomlff.so3lr.architecture import tree_mismatches
    from biomlff.so3lr.weights import read_params_pickle

    params = read_params_pickle(shared / "so3lr" / "params.pkl")
    assert count_parameters(PUBLISHED) == (131, 530_238)
    assert tree_mismatches(params, PUBLISHED) == []
    assert set(param_shapes(PUBLISHED)) == set(params)


def test_published_model_file_equals_so3lr_float64(shared, tmp_path):
    from ase.io import read

    from biomlff.neighbors import build_pairs
    from biomlff.so3lr import so3lr_potential
    from biomlff.so3lr.modelfile import SO3LRModel, load_model
    from biomlff.so3lr.weights import read_params_pickle

    params = read_params_pickle(shared / "so3lr" / "params.pkl")
    at = read(shared / "so3lr" / "reference" / "dha.xyz")
    path = SO3LRModel(Architecture(), params, (1, 6, 7, 8, 9, 15, 16, 17), {}, "so3lr").save(
        tmp_path / "pub.npz"
    )
    model = load_model(path)
    ref = np.load(shared / "so3lr" / "reference" / "dha_jaxmd.npz")
    with jax.enable_x64(True):
        energies = []
        for pot in (
            so3lr_potential(at.numbers, lr_cutoff=12.0, precision="float64", params=params),
            model.potential(at.numbers, lr_cutoff=12.0, precision="float64"),
        ):
            pairs = {k: build_pairs(at.positions, s.cutoff, half=s.half) for k, s in pot.neighbors.items()}
            energies.append(float(pot.energy_fn(np.asarray(at.positions), pairs, None)))
    assert abs(energies[0] - energies[1]) <= 1e-12
    assert abs(energies[1] - float(ref["energy"])) < 1e-6


def test_loss_gradient_matches_finite_differences():
    _, config, groups, params = _setup()
    spec = LossSpec(forces=1.0, dipole=0.5, hirshfeld_ratios=2.0, energy=0.1)
    with jax.enable_x64(True):
        batch = make_batch(groups[0], np.arange(4), np.float64)
        batch.pop("weight")

        def f(p):
            return batch_loss(p, batch, config, spec)[0]

        g = jax.grad(f)(params)
        rng = np.random.default_rng(1)
        d = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape), params)
        h = 1e-5
        plus = jax.tree_util.tree_map(lambda a, b: a + h * b, params, d)
        minus = jax.tree_util.tree_map(lambda a, b: a - h * b, params, d)
        fd = (float(f(plus)) - float(f(minus))) / (2 * h)
        ad = sum(
            float(np.sum(np.asarray(a) * b))
            for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(d), strict=True)
        )
    assert abs(fd - ad) <= 1e-6 * max(1.0, abs(ad)), (fd, ad)


def test_masked_labels_add_nothing():
    _, config, groups, params = _setup()
    spec = LossSpec(forces=1.0, dipole=1.0, hirshfeld_ratios=1.0, energy=1.0)
    with jax.enable_x64(True):
        batch = make_batch(groups[0], np.arange(4), np.float64)
        batch.pop("weight")
        batch["masks"]["dipole"] = np.array([False, True, True, True])
        ref, terms = batch_loss(params, batch, config, spec)
        batch["labels"]["dipole"][0] = 1e6  # a masked label may hold anything
        again, _ = batch_loss(params, batch, config, spec)
        batch["masks"]["dipole"][:] = False
        _, none = batch_loss(params, batch, config, spec)
        # a filler row (weight 0) is masked for every label
        filler = make_batch(groups[0], np.array([0, 1, 2, -1]), np.float64)
        assert not any(m[3] for m in filler["masks"].values())
    assert float(ref) == float(again)
    assert float(none["dipole"]) == 0.0 and float(terms["dipole"]) > 0


def test_tiny_model_overfits(tmp_path):
    cfg = tiny_cfg(
        tmp_path,
        n_train=20,
        n_valid=2,
        batch_size=20,
        epochs=100,
        lr=1e-2,
        energy_weight=0.0,
        checkpoint_every=1000,
    )
    res = train(cfg, log=lambda *a: None)
    losses = [h["train_loss"] for h in res.history]
    assert losses[0] / min(losses[-10:]) >= 10.0, losses[::10]


def test_non_finite_steps_are_skipped_then_stop(tmp_path, monkeypatch):
    """A batch with a NaN gradient must not poison the parameters: its update is skipped, and
    training stops with a clear error after MAX_BAD_STEPS such steps in a row."""
    import jax.numpy as jnp

    import biomlff.training.loss as loss_mod
    import biomlff.training.trainer as trainer

    real = loss_mod.batch_loss

    def poisoned(params, batch, config, spec):
        total, terms = real(params, batch, config, spec)
        return total * jnp.nan, terms  # NaN loss and gradient on every batch

    seen = {}
    real_make = trainer._make_step

    def spy(*a, **k):
        f = real_make(*a, **k)

        def g(state, batch, rbatch):
            seen.setdefault("first", state["params"])
            out = f(state, batch, rbatch)
            seen["last"] = out[0]["params"]
            return out

        return g

    monkeypatch.setattr(loss_mod, "batch_loss", poisoned)
    monkeypatch.setattr(trainer, "_make_step", spy)
    cfg = tiny_cfg(tmp_path, n_train=4, n_valid=2, batch_size=2, epochs=20, checkpoint_every=1000)
    with pytest.raises(FloatingPointError, match=f"{trainer.MAX_BAD_STEPS} steps in a row") as err:
        train(cfg, log=lambda *a: None)
    assert isinstance(err.value, BiomlffError)  # the CLI prints it as one line
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(seen["first"]), leaves(seen["last"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # every update skipped


def test_replay_frames_are_padded_once(tmp_path, monkeypatch):
    """The replay set is padded once: its labelling (by the initial model) and its training batches
    use the same padded frames. Counted on the host pair lists (scipy's cKDTree, which every padding
    path builds for the 4.5 Å list): once per replay structure besides reading the file (before:
    twice, evaluate_systems for the labels and build_frames for training)."""
    from collections import Counter

    import scipy.spatial
    from ase.build import molecule

    import biomlff.training.trainer as trainer
    from biomlff.data.io import read_dataset, write_dataset

    mols = [molecule(name) for name in ("H2O", "CH4", "CH3OH")]
    write_dataset(
        Dataset.from_arrays([m.numbers for m in mols], [m.positions + 0.01 for m in mols]),
        tmp_path / "replay.extxyz",
    )
    replay = read_dataset(tmp_path / "replay.extxyz")
    built = Counter()
    tree = scipy.spatial.cKDTree

    def counting(data, *a, **k):
        built[tuple(np.ravel(data).tolist())] += 1
        return tree(data, *a, **k)

    steps = []

    def no_compile(*a, **k):  # the optimiser step is not under test: skip its compilation
        def step(state, batch, rbatch):
            steps.append(rbatch)
            return state, 0.0, {}, True

        return step

    from biomlff.so3lr.modelfile import SO3LRModel

    arch = Architecture(**TINY)
    base = SO3LRModel(arch, init_params(arch, 5), (1, 6, 8), {}, "tiny").save(tmp_path / "base.npz")
    monkeypatch.setattr(scipy.spatial, "cKDTree", counting)
    monkeypatch.setattr(trainer, "_make_step", no_compile)
    cfg = tiny_cfg(
        tmp_path,
        model=str(base),
        strategy="full",
        architecture={},
        n_train=4,
        n_valid=2,
        batch_size=16,  # validation batches then share the replay labelling's compiled program
        epochs=1,
        max_steps=1,
        fit_reference_energies=False,
        replay_weight=1.0,
        replay_batch_size=3,
        replay_data=str(tmp_path / "replay.extxyz"),
    )
    read_dataset(tmp_path / "replay.extxyz")  # reading the file checks the structures (with lists)
    reading = Counter(built)
    built.clear()
    train(cfg, log=lambda *a: None)
    for k in range(len(replay)):
        key = tuple(np.ravel(replay.frame(k)["positions"]).tolist())
        assert built[key] == reading[key] + 1, k
    (rbatch,) = steps  # one step, with a replay batch labelled by the model: forces, no energies
    assert rbatch["masks"]["forces"].all() and not rbatch["masks"]["energy"].any()
    assert np.abs(rbatch["labels"]["forces"]).max() > 0


@pytest.mark.slow
def test_resume_is_bitwise_identical_float64(tmp_path):
    # 40 frames in batches of 2: 20 steps per epoch, so that validations and epoch checkpoints stay rare
    common = dict(
        precision="float64",
        epochs=200,
        checkpoint_every=1000,
        decay_steps=500,
        n_train=40,
        n_valid=2,
        batch_size=2,
    )
    a = tiny_cfg(tmp_path, output=str(tmp_path / "a.npz"), max_steps=2000, **common)
    train(a, log=lambda *x: None)
    b = tiny_cfg(tmp_path, output=str(tmp_path / "b.npz"), max_steps=1000, **common)
    train(b, log=lambda *x: None)
    b2 = tiny_cfg(tmp_path, output=str(tmp_path / "b.npz"), max_steps=2000, **common)
    train(b2, resume=True, log=lambda *x: None)
    za = np.load(tmp_path / "a.train" / "checkpoint.npz")
    zb = np.load(tmp_path / "b.train" / "checkpoint.npz")
    keys = [k for k in za.files if k.startswith("s")]
    assert keys and keys == [k for k in zb.files if k.startswith("s")]
    for k in keys:
        assert np.array_equal(za[k], zb[k]), k
    from biomlff.training.trainer import read_training_checkpoint

    assert read_training_checkpoint(tmp_path / "b.train" / "checkpoint.npz")[0]["step"] == 2000


def test_model_file_round_trip_and_unknown_elements(tmp_path):
    from biomlff.so3lr.evaluate import System, evaluate_systems
    from biomlff.so3lr.model import make_config
    from biomlff.so3lr.modelfile import SO3LRModel, load_model

    arch = Architecture(**TINY)
    model = SO3LRModel(arch, init_params(arch, 5), (1, 6, 8), {"training": {"note": "test"}}, "tiny")
    back = load_model(model.save(tmp_path / "tiny.npz"))
    assert back.arch == arch and back.elements == (1, 6, 8) and back.meta["training"]["note"] == "test"
    ds = labelled_dataset(2)
    f0 = ds.frame(0)
    s = [System(atomic_numbers=f0["atomic_numbers"].astype(np.int32), positions=f0["positions"])]
    cfg = make_config(None, 2.0, "float32", arch, filters="exact")
    p1 = evaluate_systems(s, cfg, model.params)[0]
    p2 = evaluate_systems(s, cfg, back.params)[0]
    assert np.array_equal(p1["forces"], p2["forces"]) and p1["energy"] == p2["energy"]
    with pytest.raises(ModelError, match=r"N \(Z=7\)"):
        back.potential(np.array([1, 7, 8]))
    # corrupt file
    raw = dict(np.load(tmp_path / "tiny.npz"))
    k = next(k for k in raw if k.startswith("params/"))
    raw[k] = raw[k] + 1
    np.savez(tmp_path / "bad.npz", **raw)
    with pytest.raises(ModelError, match="checksum"):
        load_model(tmp_path / "bad.npz")


def test_two_devices_equal_one(tmp_path):
    script = f"""
import numpy as np, jax
from biomlff.training import TrainConfig, train
assert len(jax.devices()) == 2
out = []
for dev in (1, 2):
    cfg = TrainConfig.from_dict(dict(data={str(ETHANOL)!r}, n_train=8, n_valid=2, architecture={TINY!r},
        lr=3e-3, batch_size=4, epochs=2, max_steps=3, precision="float64", devices=dev, progress=False,
        output={str(tmp_path)!r} + f"/d{{dev}}.npz", checkpoint_every=1, dipole_weight=0, hirshfeld_weight=0))
    train(cfg, log=lambda *a: None)
    z = np.load({str(tmp_path)!r} + f"/d{{dev}}.train/checkpoint.npz")
    out.append([z[k] for k in sorted(z.files) if k.startswith("s")])
err = max(float(np.max(np.abs(a - b))) for a, b in zip(*out))
print("maxdiff", err)
assert err < 1e-10, err
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {ETHANOL}\nn_train: 8\nn_valid: 2\narchitecture: {json.dumps(TINY)}\nbatch_size: 4\n"
        f"epochs: 5000\nmax_steps: 4000\ncheckpoint_every: 20\ndipole_weight: 0\nhirshfeld_weight: 0\n"
        f"output: {tmp_path / 'k.npz'}\nprogress: false\n"
    )
    cmd = [sys.executable, "-m", "biomlff", "train", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "k.train" / "checkpoint.npz"
    t0 = time.time()
    while not ckpt.exists() and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    from biomlff.training.trainer import read_training_checkpoint

    step = read_training_checkpoint(ckpt)[0]["step"]
    assert 0 < step < 4000
    r = subprocess.run(
        cmd + ["--resume", "--max-steps", str(step + 20)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "k.npz").exists()
    assert read_training_checkpoint(ckpt)[0]["step"] == step + 20


def test_bad_input_errors(tmp_path):
    from biomlff.data.io import read_dataset, write_dataset

    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"data": "x", "learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="lr must be a positive"):
        TrainConfig.from_dict({"data": "x", "lr": 0.0})
    with pytest.raises(ConfigError, match="lr must be a positive"):
        TrainConfig.from_dict({"data": "x", "lr": -1e-3})
    with pytest.raises(DataError, match="validation split is empty"):
        train(tiny_cfg(tmp_path, n_valid=0), log=lambda *a: None)
    # no forces
    ds = read_dataset(ETHANOL).subset(np.arange(6))
    nof = Dataset(ds.atomic_numbers, ds.positions, ds.offsets, frame_data={"energy": ds.frame_data["energy"]})
    write_dataset(nof, tmp_path / "noforces.extxyz")
    with pytest.raises(DataError, match="no forces"):
        train(
            tiny_cfg(tmp_path, data=str(tmp_path / "noforces.extxyz"), n_train=4, n_valid=2),
            log=lambda *a: None,
        )
    # NaN labels are refused when the data are read
    bad = dict(np.load(ETHANOL))
    bad["F"] = bad["F"].copy()
    bad["F"][0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(BiomlffError, match="(?i)nan"):
        train(tiny_cfg(tmp_path, data=str(tmp_path / "nan.npz")), log=lambda *a: None)
    # fine-tuning SO3LR on an element it does not know (Si)
    si = Dataset.from_arrays(
        [np.array([14, 1, 1, 1, 1])] * 3,
        [np.array([[0, 0, 0], [1.5, 0, 0], [-1.5, 0, 0], [0, 1.5, 0], [0, -1.5, 0.0]])] * 3,
        atom_data={"forces": [np.zeros((5, 3))] * 3},
    )
    write_dataset(si, tmp_path / "si.extxyz")
    with pytest.raises(ModelError, match=r"Si \(Z=14\)"):
        from biomlff.training.trainer import initial_model

        initial_model(TrainConfig(data=str(tmp_path / "si.extxyz"), model="so3lr", strategy="full"), (1, 14))


def test_trained_model_in_eval_and_md_cli(tmp_path):
    """A model file works wherever a model is named: biomlff eval and biomlff md (--model PATH)."""
    from ase.io import write

    from biomlff.cli.main import main
    from biomlff.data.io import read_dataset
    from biomlff.so3lr.modelfile import SO3LRModel

    arch = Architecture(**TINY)
    path = SO3LRModel(arch, init_params(arch, 7), (1, 6, 8), {}, "tiny").save(tmp_path / "tiny.npz")
    assert (
        main(
            [
                "eval",
                "--model",
                str(path),
                "--data",
                str(ETHANOL),
                "--index",
                ":4",
                "--out",
                str(tmp_path / "pred.extxyz"),
                "--filters",
                "exact",
            ]
        )
        == 0
    )
    pred = read_dataset(tmp_path / "pred.extxyz")
    assert len(pred) == 4 and np.all(np.isfinite(pred.atom_data["forces"]))
    write(tmp_path / "eth.xyz", read_dataset(ETHANOL).to_atoms(0))
    rc = main(
        [
            "md",
            "nve",
            str(tmp_path / "eth.xyz"),
            "--model",
            str(path),
            "--steps",
            "20",
            "--dt",
            "0.25",
            "--log-every",
            "10",
            "--output",
            str(tmp_path / "nve.h5"),
            "--precision",
            "float64",
        ]
    )
    assert rc == 0 and (tmp_path / "nve.h5").exists()
