"""Predictions of an SO3krates/SO3LR model on a padded batch, and the training loss.

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

from dataclasses import dataclass, replace

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


def structure_predictions(params, s: dict, config) -> dict:
    """Energy (eV), forces (eV/Å), dipole (e·Å) and Hirshfeld ratios of one padded structure ``s``
    (a row of a batch dict, see :mod:`biomlff.training.batching`) for ``config`` (SO3LRConfig)."""
    import jax

    from ..potential import Pairs
    from ..so3lr.model import SO3LR

    model = SO3LR(config)
    inputs = model.row_inputs(s)  # one fragment per structure: charge conserved over the whole
    pairs = {k: Pairs(*v) for k, v in s["pairs"].items()}
    cell = s.get("cell")

    def energy(x):
        out = model.outputs(params, inputs, x, pairs, cell)
        return out["energy"], out

    (e, out), g = jax.value_and_grad(energy, has_aux=True)(s["positions"])
    return {"energy": e, "forces": -g, "dipole": out["dipole"], "hirshfeld_ratios": out["hirshfeld_ratios"]}


def batch_predictions(params, batch: dict, config) -> dict:
    """:func:`structure_predictions` over the leading (frame) axis of a batch."""
    import jax

    row = {k: v for k, v in batch.items() if k in ("species", "positions", "charge", "spin", "pairs", "cell")}
    return jax.vmap(lambda s: structure_predictions(params, s, config))(row)


def _rho(x, spec: LossSpec):
    import jax.numpy as jnp

    if not spec.robust:
        return x * x
    c = spec.robust_scale
    return 2.0 * c * c * (jnp.sqrt((x / c) ** 2 + 1.0) - 1.0)


def batch_loss(params, batch: dict, config, spec: LossSpec):
    """Scalar loss of a batch (see module docstring) and a dict of its terms."""
    import jax.numpy as jnp

    pred = batch_predictions(params, batch, config)
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
