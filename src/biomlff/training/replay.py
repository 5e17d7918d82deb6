"""Replay frames against forgetting: generic structures labelled by the model being fine-tuned.

The structures ship with biomlff's dependencies, so no QCell data is needed: the small molecules of
ASE's G2 collection made of the model's elements (H, C, N, O, F, P, S, Cl for SO3LR; 3–20 atoms),
the shipped peptide Ac-Ala3-NHMe and water clusters (2–8 molecules on a jittered grid). Each is
copied ``replay_copies`` times with Gaussian displacements of ``replay_rattle`` Å (seeded) and
labelled with the *initial* model: forces, dipole and Hirshfeld ratios (no energies: SO3LR's absolute
energies are arbitrary). ``replay_data`` replaces the generated structures by a dataset file.
"""

from __future__ import annotations

import numpy as np


def generic_structures(elements, seed: int = 0) -> list:
    """ASE Atoms of the generic replay set restricted to ``elements`` (atomic numbers)."""
    from ase import Atoms
    from ase.build import molecule
    from ase.collections import g2
    from ase.io import read

    from ..md.structure import shipped_structure

    allowed = set(int(z) for z in elements)
    out = []
    for name in sorted(g2.names):
        at = molecule(name)
        if 3 <= len(at) <= 20 and set(at.numbers) <= allowed and at.get_initial_magnetic_moments().sum() == 0:
            out.append(at)
    if {1, 6, 7, 8} <= allowed:
        out.append(read(shipped_structure("ac_ala3_nhme")))
    if {1, 8} <= allowed:
        rng = np.random.default_rng(seed)
        w = molecule("H2O")
        for n in (2, 3, 4, 6, 8):
            atoms = Atoms()
            grid = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)][:n]
            for g in grid:
                m = w.copy()
                m.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-3)
                m.translate(2.9 * np.asarray(g, float) + rng.normal(scale=0.15, size=3))
                atoms += m
            out.append(atoms)
    return out


def replay_dataset(model, cfg, log=print):
    """A :class:`biomlff.data.Dataset` of rattled generic structures (or ``cfg.replay_data``) with
    forces (eV/Å), dipoles (e·Å) and Hirshfeld ratios from ``model`` (an SO3LRModel)."""
    from ..data.dataset import Dataset
    from ..so3lr.evaluate import System, evaluate_systems
    from ..so3lr.model import make_config

    rng = np.random.default_rng(cfg.seed + 12345)
    if cfg.replay_data:
        from ..data.io import read_dataset

        src = read_dataset(cfg.replay_data)
        base = [(src.frame(k)["atomic_numbers"], src.frame(k)["positions"]) for k in range(len(src))]
        copies = 1
    else:
        base = [(a.numbers, a.positions) for a in generic_structures(model.elements, cfg.seed)]
        copies = int(cfg.replay_copies)
    zs, xs = [], []
    for z, x in base:
        for _ in range(copies):
            zs.append(np.asarray(z, np.int32))
            rattle = rng.normal(scale=cfg.replay_rattle, size=np.shape(x)) if not cfg.replay_data else 0.0
            xs.append(np.asarray(x, float) + rattle)
    systems = [System(species=z, positions=x) for z, x in zip(zs, xs, strict=True)]
    config = make_config(None, 2.0, cfg.precision, model.arch, filters="exact")
    preds = evaluate_systems(systems, config, model.params, batch_size=16)
    log(f"replay set: {len(systems)} frames of {len(base)} structures labelled by the initial model")
    return Dataset.from_arrays(
        zs,
        xs,
        frame_data={"dipole": np.stack([p["dipole"] for p in preds])},
        atom_data={
            "forces": [p["forces"] for p in preds],
            "hirshfeld_ratios": [p["hirshfeld_ratios"] for p in preds],
        },
        metadata={"name": "replay", "provenance": ["generic structures labelled by the pretrained model"]},
    )
