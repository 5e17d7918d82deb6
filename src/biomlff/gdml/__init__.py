"""sGDML / GDML: global symmetric gradient-domain kernel force fields (see docs/gdml.md).

Public API::

    from biomlff.gdml import GDMLModel, TrainConfig, train, evaluate, load_frames
    frames = load_frames("ethanol.npz")                   # eV, Å
    model, report = train(frames, TrainConfig(n_train=1000, n_valid=1000, sigmas=[5, 10, 20]))
    model.save("ethanol.model.npz")                       # biomlff format; model.save_sgdml(...) for sgdml
    energies, forces = model.predict(positions)           # (B,) eV, (B, N, 3) eV/Å
    pot = model.potential()                               # biomlff.potential.Potential (neighbors = {})

rGDML (descriptor reduction, :mod:`biomlff.gdml.reduce`) and pair/atom contributions
(:mod:`biomlff.gdml.contributions`)::

    imp = feature_importance(model, held_out_positions)   # masking losses (sGDML: whole orbits)
    kept = select_features(imp, 0.4)                       # keep 40 % of the pairs
    reduced, report = retrain(model, frames, kept)         # σ search on the reduced descriptor
    con = contributions(model, positions)                  # E = c + Σ_k ε_k, F = Σ_k ±φ_k
"""

from .contributions import contributions
from .data import Frames, from_dataset, load_frames
from .model import GDMLModel, from_sgdml_arrays
from .perms import find_perms
from .reduce import feature_importance, reduce_model, retrain, select_features
from .train import TrainConfig, TrainReport, evaluate, train

__all__ = [
    "Frames",
    "GDMLModel",
    "TrainConfig",
    "TrainReport",
    "contributions",
    "evaluate",
    "feature_importance",
    "find_perms",
    "from_dataset",
    "from_sgdml_arrays",
    "load_frames",
    "reduce_model",
    "retrain",
    "select_features",
    "train",
]
