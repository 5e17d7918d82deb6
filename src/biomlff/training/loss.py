"""Predictions of an SO3krates/SO3LR model on a padded batch (through ``Model.apply``, the one
prediction path of training, validation, replay labelling and batched evaluation), and the loss.

Loss (thesis Eq. 6.7 plus energies), weighted sum of mean squared errors over the labels present:

    L = w_F · Σ|F − F̂|² / (3 N_F) + w_μ · Σ|μ − μ̂|² / (3 M_μ) + w_h · Σ(h − ĥ)² / N_h
        + w_E · Σ((E − Ê)/N_atoms)² / M_E

N_F, N_h: labelled atoms in the batch; M_μ, M_E: labelled frames. Forces are thus normalised per
atom (mean over components), energies per atom. A frame without a label (mask False) or a filler
frame (weight 0) contributes nothing; a batch without any label of a kind gives 0 for that term.
Optionally every residual x is passed through Barron's general robust loss at α = 1,
ρ(x) = 2c²(√((x/c)² + 1) − 1) (≈ x² for |x| ≪ c, ≈ 2c|x| beyond), with scale c (label units).
Units: eV, eV/Å, e·Å.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

#: the labels a loss term can weight, in the order of the loss formula
LABELS = ("forces", "dipole", "hirshfeld_ratios", "energy")
#: default loss weights F : μ : h : E of the thesis's QCell models
DEFAULT_WEIGHTS = {"forces": 100.0, "dipole": 10.0, "hirshfeld_ratios": 10.0, "energy": 1.0}


@dataclass(frozen=True)
class LossSpec:
    """Loss weights per label (no defaults here: :class:`~biomlff.training.config.TrainConfig` holds
    them, :data:`DEFAULT_WEIGHTS`) and the optional robust loss (scale c in label units)."""

    forces: float
    dipole: float
    hirshfeld_ratios: float
    energy: float
    robust: bool = False
    robust_scale: float = 0.1

    def weights(self) -> dict:
        """The weight of each label (forces, dipole, hirshfeld_ratios, energy)."""
        return {k: getattr(self, k) for k in LABELS}

    def scaled(self, factor: float) -> LossSpec:
        """Every label weight times ``factor`` (the robust-loss settings unchanged)."""
        return replace(self, **{k: w * factor for k, w in self.weights().items()})


#: the outputs training compares with labels (energy eV, forces eV/Å, dipole e·Å, Hirshfeld ratios)
PREDICTED = ("energy", "forces", "dipole", "hirshfeld_ratios")


def as_model(model_or_config):
    """The :class:`~biomlff.potential.Model` of a model or an SO3LR config (SO3LRConfig → SO3LR)."""
    from ..potential import Model
    from ..so3lr.model import SO3LR

    return model_or_config if isinstance(model_or_config, Model) else SO3LR(model_or_config)


def training_model(settings, arch):
    """The SO3LR model training, validation and replay labelling evaluate: resolved
    :class:`~biomlff.settings.ModelSettings` (long-range cutoff Å or None for all pairs, dispersion
    damping Å, precision, ...) with exact radial filters (training differentiates through the radial
    networks; tables are for inference), architecture ``arch``; built by the one builder
    :func:`~biomlff.so3lr.model.build_so3lr`."""
    from dataclasses import replace

    from ..so3lr.model import build_so3lr

    return build_so3lr(replace(settings, filters="exact").validate(), arch=arch)


def batch_predictions(params, batch: dict, model) -> dict:
    """Energy (B,) eV, forces (B, n, 3) eV/Å, dipole (B, 3) e·Å and Hirshfeld ratios (B, n) of a
    padded batch (:mod:`biomlff.training.batching`; labels, masks and weights are ignored):
    ``model.apply`` of ``model`` (a Model, or an SO3LRConfig for the SO3LR model of that config)."""
    from ..batching import model_inputs

    out = as_model(model).apply(params, model_inputs(batch))
    return {k: out[k] for k in PREDICTED}


@functools.cache
def _predict_fn(model):
    import jax

    return jax.jit(lambda p, b: batch_predictions(p, b, model))


def predict_groups(params, groups, model, batch_size: int, dtype) -> list[dict]:
    """Predictions (NumPy, :data:`PREDICTED`) of ``model`` (a Model or an SO3LRConfig) for every
    frame of the padded groups (:class:`~biomlff.training.batching.Frames`), per group in frame
    order, ``batch_size`` frames per compiled call."""
    import jax

    from ..batching import model_inputs
    from .batching import all_batches, make_batch

    fn = _predict_fn(as_model(model))
    out = [dict() for _ in groups]
    for g, rows in all_batches(groups, batch_size):
        p = jax.tree_util.tree_map(np.asarray, fn(params, model_inputs(make_batch(groups[g], rows, dtype))))
        keep = rows >= 0
        for k, v in p.items():
            out[g].setdefault(k, []).append(v[keep])
    return [{k: np.concatenate(v) for k, v in o.items()} for o in out]


def _rho(x, spec: LossSpec):
    import jax.numpy as jnp

    if not spec.robust:
        return x * x
    c = spec.robust_scale
    return 2.0 * c * c * (jnp.sqrt((x / c) ** 2 + 1.0) - 1.0)


def batch_loss(params, batch: dict, model, spec: LossSpec):
    """Scalar loss of a batch (see module docstring) and a dict of its terms; ``model``: a Model or
    an SO3LRConfig (:func:`batch_predictions`)."""
    import jax.numpy as jnp

    pred = batch_predictions(params, batch, model)
    lab, msk = batch["labels"], batch["masks"]
    real = (batch["species"] > 0).astype(pred["energy"].dtype)  # (B, n)
    n_atoms = jnp.maximum(real.sum(-1), 1.0)
    terms = {}

    def frame_mask(name):
        return msk[name].astype(real.dtype)

    m = frame_mask("forces")[:, None] * real
    r = _rho(pred["forces"] - lab["forces"], spec).sum(-1)
    terms["forces"] = (r * m).sum() / jnp.maximum(3.0 * m.sum(), 1.0)
    m = frame_mask("hirshfeld_ratios")[:, None] * real
    r = _rho(pred["hirshfeld_ratios"] - lab["hirshfeld_ratios"], spec)
    terms["hirshfeld_ratios"] = (r * m).sum() / jnp.maximum(m.sum(), 1.0)
    m = frame_mask("dipole")
    r = _rho(pred["dipole"] - lab["dipole"], spec).sum(-1)
    terms["dipole"] = (r * m).sum() / jnp.maximum(3.0 * m.sum(), 1.0)
    m = frame_mask("energy")
    r = _rho((pred["energy"] - lab["energy"]) / n_atoms, spec)
    terms["energy"] = (r * m).sum() / jnp.maximum(m.sum(), 1.0)
    w = spec.weights()
    total = sum(w[k] * terms[k] for k in terms if w[k])
    return total, terms
