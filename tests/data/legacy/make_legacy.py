"""Write the legacy container files of tests/data/legacy/ (run once, at commit 5832179, the code
before the one container helper of issue 26; kept to show how they were made, not to be re-run:
today's code writes the new layout).

    git archive 5832179 src | tar -x -C /tmp/legacy_src
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/legacy_src/src .venv/bin/python tests/data/legacy/make_legacy.py

Files (all written by that commit's own writers):

* ``md_checkpoint_v1.npz``: classical MD checkpoint (``Driver.save_checkpoint``), Lennard-Jones argon
  (32 atoms, fcc 2×2×2, a = 5.4 Å, cutoff 5 Å), Langevin 80 K, 5 fs, float64, step 20, seed 5;
* ``pimd_checkpoint_v1.npz``: PIMD checkpoint, the same argon, 2 beads, 40 K, 4 fs, step 10;
* ``training_checkpoint_v1.npz``: training checkpoint (leaves keyed by flatten order) of a tiny
  SO3krates (:data:`ARCH`) trained 2 steps from scratch on 8 ethanol frames (float64, adam, clip);
* ``so3krates_model_v1.npz``: the model file of that run (``SO3LRModel.save``);
* ``gdml_model_v1.npz``: a GDML model (``GDMLModel.save``) trained on 5 ethanol frames, σ = 10;
* ``reference.npz``: what that code computed from these files: the MD state 10 steps after the
  checkpoint; the training configuration; energy and forces of the model file on ethanol
  frame 0 and of the GDML model on frames 0-2 (eV, eV/Å).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ETHANOL = ROOT / "src" / "biomlff" / "resources" / "examples" / "ethanol_md17_50.npz"
ARCH = dict(
    num_features=4,
    num_heads=2,
    max_degree=2,
    num_layers=1,
    num_rbf=4,
    energy_regression_dim=4,
    hirshfeld_dim=2,
)


def md(ref: dict, tmp: Path) -> None:
    from biomlff.md.integrators import Ensemble
    from biomlff.md.pimd import PIMD, PIMDSimulation
    from biomlff.md.simulation import MDSettings, Simulation
    from biomlff.md.structure import System
    from biomlff.md.testing import fcc_lattice, lennard_jones

    pos, cell = fcc_lattice(2, 5.40)
    z = np.full(len(pos), 18)
    sysm = System(z, pos, np.full(len(pos), 39.948), cell, name="argon")
    pot = lennard_jones(z, cutoff=5.0)
    kw = dict(log_every=10, traj_every=10, precision="float64", echo=False, progress=False, seed=5)
    ens = Ensemble(kind="langevin", dt_fs=5.0, temperature_K=80.0, tau_t_fs=200.0)
    settings = MDSettings(steps=30, checkpoint_every=20, output=str(tmp / "md.h5"), **kw)
    sim = Simulation(pot, sysm, ens, settings)
    sim.run(20)
    shutil.copy(tmp / "md.chk.npz", HERE / "md_checkpoint_v1.npz")
    sim.run(30)
    ref.update({f"md/{k}": np.asarray(v) for k, v in sim.state.items()})

    pimd = PIMD(beads=2, temperature_K=40.0, dt_fs=4.0, tau_centroid_fs=200.0)
    with jax.enable_x64(True):
        sim = PIMDSimulation(
            pot, sysm, pimd, MDSettings(steps=20, checkpoint_every=10, output=str(tmp / "pimd.h5"), **kw)
        )
        sim.run(10)
        shutil.copy(tmp / "pimd.chk.npz", HERE / "pimd_checkpoint_v1.npz")


def training(ref: dict, tmp: Path) -> None:
    from biomlff.so3lr.evaluate import System, evaluate_systems
    from biomlff.so3lr.model import make_config
    from biomlff.so3lr.modelfile import load_model
    from biomlff.training import TrainConfig, train

    cfg = TrainConfig.from_dict(
        dict(
            data=str(ETHANOL), n_train=8, n_valid=2, architecture=ARCH, lr=3e-3, batch_size=4, epochs=2,
            max_steps=2, output=str(tmp / "m.npz"), progress=False, checkpoint_every=1,
            dipole_weight=0.0, hirshfeld_weight=0.0, precision="float64",
        )
    )
    train(cfg, log=lambda *a: None)
    ckpt = tmp / "m.train" / "checkpoint.npz"
    shutil.copy(ckpt, HERE / "training_checkpoint_v1.npz")
    shutil.copy(tmp / "m.npz", HERE / "so3krates_model_v1.npz")
    ref["training/config"] = _json(cfg.to_dict())

    frame = np.load(ETHANOL)
    model = load_model(HERE / "so3krates_model_v1.npz")
    s = [System(species=frame["z"].astype(np.int32), positions=frame["R"][0])]
    out = evaluate_systems(s, make_config(None, 2.0, "float64", model.arch, filters="exact"), model.params)[0]
    ref["model/energy"] = np.asarray(out["energy"])
    ref["model/forces"] = np.asarray(out["forces"])


def _json(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def gdml(ref: dict) -> None:
    from biomlff.gdml import GDMLModel, TrainConfig, load_frames, train

    frames = load_frames(ETHANOL)
    cfg = TrainConfig(n_train=5, sigmas=[10.0], solver="closed", idx_train=np.arange(0, 50, 10))
    model, _ = train(frames, cfg)
    path = model.save(HERE / "gdml_model_v1.npz")
    e, f = GDMLModel.load(path).predict(frames.R[:3])
    ref["gdml/energy"], ref["gdml/forces"] = e, f


def main() -> None:
    ref: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        md(ref, Path(tmp))
        training(ref, Path(tmp))
    gdml(ref)
    np.savez_compressed(HERE / "reference.npz", **ref)
    for p in sorted(HERE.glob("*.npz")):
        print(p.name, os.path.getsize(p))


if __name__ == "__main__":
    main()
