"""Replay frames against forgetting: generic structures labelled by the model being fine-tuned.

The structures ship with biomlff's dependencies, so no QCell data is needed: the small molecules of
ASE's G2 collection made of the model's elements (H, C, N, O, F, P, S, Cl for SO3LR; 3–20 atoms),
the shipped peptide Ac-Ala3-NHMe and water clusters (2–8 molecules on a jittered grid). Each is
copied ``replay_copies`` times with Gaussian displacements of ``replay_rattle`` Å (seeded) and
labelled with the *initial* model: forces, dipole and Hirshfeld ratios (no energies: SO3LR's absolute
energies are arbitrary). ``replay_data`` replaces the generated structures by a dataset file.

The set is padded once (:func:`biomlff.batching.pad_batch`, one atom bucket for all structures, so
that replay batches compile one program): the labelling evaluates the padded batch, and training
adds the labels to that same batch.
"""

from __future__ import annotations

import numpy as np


def generic_structures(elements, seed: int = 0) -> list:
    """ASE Atoms of the generic replay set restricted to ``elements`` (atomic numbers)."""
    from ase import Atoms
    from ase.build import molecule
    from ase.collections import g2
    from ase.io import read

    allowed = set(int(z) for z in elements)
    out = []
    for name in sorted(g2.names):
        at = molecule(name)
        if 3 <= len(at) <= 20 and set(at.numbers) <= allowed and at.get_initial_magnetic_moments().sum() == 0:
            out.append(at)
    if {1, 6, 7, 8} <= allowed:
        out.append(read(_shipped("ac_ala3_nhme")))
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


def _shipped(name: str):
    """Path of a structure shipped with biomlff (``biomlff/resources/structures/<name>.xyz``)."""
    from importlib.resources import files

    return str(files("biomlff").joinpath("resources", "structures", f"{name}.xyz"))


def replay_structures(model, cfg) -> list[tuple[np.ndarray, np.ndarray]]:
    """(atomic numbers (N,), positions (N, 3) Å) of the replay set: ``replay_copies`` rattled copies
    (Gaussian, ``replay_rattle`` Å, seeded) of each generic structure, or the frames of
    ``cfg.replay_data`` as they are."""
    rng = np.random.default_rng(cfg.seed + 12345)
    if cfg.replay_data:
        from ..data.io import read_dataset

        src = read_dataset(cfg.replay_data)
        frames = [src.frame(k) for k in range(len(src))]
        return [(np.asarray(f["atomic_numbers"], np.int32), np.asarray(f["positions"])) for f in frames]
    out = []
    for at in generic_structures(model.elements, cfg.seed):
        for _ in range(int(cfg.replay_copies)):
            rattle = rng.normal(scale=cfg.replay_rattle, size=np.shape(at.positions))
            out.append((np.asarray(at.numbers, np.int32), np.asarray(at.positions, float) + rattle))
    return out


def replay_frames(model, cfg, log=print) -> list:
    """The replay set as padded training frames (:class:`~biomlff.training.batching.Frames`, one
    atom bucket) with forces (eV/Å), dipoles (e·Å) and Hirshfeld ratios from ``model`` (an
    SO3LRModel, evaluated in ``cfg.precision`` with exact filters and all pairs for the long-range
    list). The frames are padded once: the labelling evaluates the same padded arrays that training
    uses (an all-pairs list holds every pair of any shorter training cutoff; the model masks pairs
    by distance)."""
    from ..batching import pad_batch
    from ..potential import ChemicalSystem
    from ..precision import dtype_of, precision_context
    from .batching import LABELS, Frames, bucket_groups
    from .loss import predict_groups, training_model

    structures = replay_structures(model, cfg)
    systems = [ChemicalSystem(z) for z, _ in structures]
    from ..settings import ModelSettings

    # all pairs (free-space replay structures, the SO3LR training setting)
    so3 = training_model(ModelSettings(lr_cutoff=None, precision=cfg.precision), model.arch)
    out = []
    for (npad, _), members in bucket_groups(systems, single_bucket=True):
        batch = pad_batch(
            [systems[k] for k in members], [structures[k][1] for k in members], so3.neighbors, n_atoms=npad
        )
        none = {k: np.zeros(len(members), bool) for k in LABELS}
        out.append(Frames(np.asarray(members), batch, {}, none))
    with precision_context(cfg.precision):
        preds = predict_groups(model.params, out, so3, 16, dtype_of(cfg.precision))
    for fr, p in zip(out, preds, strict=True):
        real = fr.species > 0
        p = {
            "forces": np.where(real[..., None], p["forces"], 0.0),
            "dipole": np.asarray(p["dipole"], float),
            "hirshfeld_ratios": np.where(real, p["hirshfeld_ratios"], 0.0),
        }
        ok = {k: np.isfinite(v).reshape(len(fr), -1).all(axis=1) for k, v in p.items()}  # NaN: masked
        fr.labels = {k: np.where(ok[k].reshape((-1,) + (1,) * (v.ndim - 1)), v, 0.0) for k, v in p.items()}
        # no energies: the pretrained model's absolute energies are arbitrary
        fr.labels["energy"] = np.zeros(len(fr))
        fr.masks = {k: ok.get(k, np.zeros(len(fr), bool)) for k in LABELS}
    n_base = len(structures) if cfg.replay_data else len(structures) // max(1, int(cfg.replay_copies))
    log(f"replay set: {len(structures)} frames of {n_base} structures labelled by the initial model")
    return out
