"""Pair and atom contributions of a global (s)GDML model to its energy and forces.

The prediction (spec §4, :mod:`biomlff.gdml.predict`) is a sum over descriptor components k, i.e.
over atom pairs (a_k, b_k). With d = x − P_π x_j, u = P_π u_j, r = ‖d‖ and
c2(r) = (5/(3σ³))(σ + √5 r) e^{−√5 r/σ} over all training rows (j, π):

    (A1)  E = c + Σ_k ε_k,             ε_k = s Σ_{j,π} c2(r) d_k u_k                (eV)
    (A2)  F = Σ_k φ_k,                 φ_k = s g_k c_k on atom b_k, −s g_k c_k on atom a_k (eV/Å)
          with g = Σ_{j,π} (5/(3σ⁴)) e^{−√5 r/σ} [5 (d·u) d − (σ² + √5 σ r) u] the descriptor gradient
    (A3)  E = c + Σ_i E_i,             E_i = ½ Σ_{k ∋ i} ε_k                        (eV)

(A1) holds because d·u = Σ_k d_k u_k; (A2) because F = J(x)ᵀ g and row k of J touches only a_k
and b_k; (A3) splits each pair's energy equally between its two atoms. These are the exact additive
decompositions of the trained model written from the prediction formula — the thesis's appendix
(Eq. A1–A3) was not available when this was written, so the equation labels follow our own
numbering. The pair contributions are ‖φ_k‖ (the force pair k carries, equal on both atoms) and
ε_k; averaged over a dataset they rank the pairs a model relies on. Energy-constrained models
(α_E ≠ 0) add Σ α_E κ(d), which is not a sum over pairs: they are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, ModelError
from ..precision import precision_context
from .descriptor import descriptor_and_jacobian
from .model import GDMLModel


def _pair_terms(x, xpc, up, xpu, sigma, std):
    """ε (B, D), g·s (B, D) and total kernel energy (B,) for centred queries x (B, D)."""
    import jax.numpy as jnp

    from .predict import SQRT5, _sums

    x2p = jnp.sum(xpc * xpc, axis=1)
    xup = jnp.sum(xpu, axis=1)
    energy, g = _sums(x, xpc, up, x2p, xup, sigma)
    x2 = jnp.sum(x * x, axis=-1)
    r = jnp.sqrt(jnp.maximum(x2[:, None] + x2p[None, :] - 2.0 * (x @ xpc.T), 0.0))
    c2 = (5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * jnp.exp(-SQRT5 * r / sigma)
    # ε_k = s Σ_r c2_r (x_k − x̃_rk) u_rk = s [x_k (c2 u)_k − (c2 (x̃∘u))_k]: two GEMMs
    eps = std * (x * (c2 @ up) - c2 @ xpu)
    return eps, std * g, std * energy


@dataclass
class Contributions:
    """Per-frame contributions: ``pair_energy`` ε (B, D) eV, ``pair_force`` φ (B, D, 3) eV/Å (the
    force on atom b_k; atom a_k gets −φ_k), ``atom_energy`` E_i (B, N) eV, ``energy`` (B,) eV and
    ``forces`` (B, N, 3) eV/Å of the model (E = c + Σ ε = c + Σ E_i; F = Σ_k ±φ_k), pair list a, b."""

    pair_energy: np.ndarray
    pair_force: np.ndarray
    atom_energy: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    const: float
    a: np.ndarray
    b: np.ndarray

    def pair_force_norm(self) -> np.ndarray:
        """‖φ_k‖ (B, D) in eV/Å."""
        return np.linalg.norm(self.pair_force, axis=-1)

    def forces_from_pairs(self) -> np.ndarray:
        """Σ_k ±φ_k assembled on the atoms (B, N, 3) eV/Å (equals ``forces``)."""
        n = self.atom_energy.shape[1]
        out = np.zeros((self.pair_force.shape[0], n, 3))
        np.add.at(out, (slice(None), self.b), self.pair_force)
        np.add.at(out, (slice(None), self.a), -self.pair_force)
        return out


def atom_split(values: np.ndarray, a, b, n_atoms: int) -> np.ndarray:
    """½ Σ_{k ∋ i} v_k for pair values v (..., D) → atom values (..., N)."""
    v = np.asarray(values)
    out = np.zeros(v.shape[:-1] + (n_atoms,))
    out_t = np.moveaxis(out, -1, 0)
    np.add.at(out_t, np.asarray(b), 0.5 * np.moveaxis(v, -1, 0))
    np.add.at(out_t, np.asarray(a), 0.5 * np.moveaxis(v, -1, 0))
    return out


def contributions(model: GDMLModel, positions, batch_size: int = 64) -> Contributions:
    """Pair and atom contributions (A1–A3, module doc) for positions (B, N, 3) or (N, 3) in Å."""
    import jax
    import jax.numpy as jnp

    if model.alphas_E is not None:
        raise ModelError(
            "pair contributions are not defined for energy-constrained models (the α_E κ(d) term is "
            "not a sum over pairs)"
        )
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[1:] != (model.n_atoms, 3):
        raise DataError(f"positions must have shape (B, {model.n_atoms}, 3), got {pos.shape}")
    a, b = model.pairs
    x, c = descriptor_and_jacobian(pos, a, b, model.lattice)
    xp, up = model._permuted()
    xbar = xp.mean(axis=0)
    xpc = xp - xbar
    xpu = xpc * up
    nb, d = x.shape
    eps = np.empty((nb, d))
    gs = np.empty((nb, d))
    etot = np.empty(nb)
    fn = jax.jit(_pair_terms)
    bs = max(1, min(batch_size, nb))
    with precision_context("float64"):
        args = (jnp.asarray(xpc), jnp.asarray(up), jnp.asarray(xpu), float(model.sigma), float(model.std))
        for s in range(0, nb, bs):
            xs = x[s : s + bs] - xbar
            k = len(xs)
            if k < bs:
                xs = np.concatenate([xs, np.repeat(xs[:1], bs - k, axis=0)])
            e_, g_, t_ = fn(jnp.asarray(xs), *args)
            eps[s : s + k] = np.asarray(e_)[:k]
            gs[s : s + k] = np.asarray(g_)[:k]
            etot[s : s + k] = np.asarray(t_)[:k]
    phi = gs[..., None] * c  # (B, D, 3): force on b_k
    out = Contributions(
        pair_energy=eps,
        pair_force=phi,
        atom_energy=atom_split(eps, a, b, model.n_atoms),
        energy=float(model.c) + etot,
        forces=np.zeros((nb, model.n_atoms, 3)),
        const=float(model.c),
        a=np.asarray(a),
        b=np.asarray(b),
    )
    out.forces = out.forces_from_pairs()
    return out


def average_contributions(model: GDMLModel, positions, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Dataset averages over frames (B, N, 3) Å: pair energy mean and mean |ε| (D,) eV, mean ‖φ‖ (D,)
    eV/Å, mean pair distance (D,) Å, and the atom versions (N,) (½ of the pair values per atom)."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    a, b = model.pairs
    n = model.n_atoms
    sums = {"pair_energy_mean": 0.0, "pair_energy_abs": 0.0, "pair_force_norm": 0.0, "pair_distance": 0.0}
    atom_e = 0.0
    for s in range(0, len(pos), 512):
        cb = contributions(model, pos[s : s + 512], batch_size)
        sums["pair_energy_mean"] = sums["pair_energy_mean"] + cb.pair_energy.sum(axis=0)
        sums["pair_energy_abs"] = sums["pair_energy_abs"] + np.abs(cb.pair_energy).sum(axis=0)
        sums["pair_force_norm"] = sums["pair_force_norm"] + cb.pair_force_norm().sum(axis=0)
        dist = np.linalg.norm(pos[s : s + 512][:, a] - pos[s : s + 512][:, b], axis=-1)
        sums["pair_distance"] = sums["pair_distance"] + dist.sum(axis=0)
        atom_e = atom_e + cb.atom_energy.sum(axis=0)
    out = {k: np.asarray(v) / len(pos) for k, v in sums.items()}
    out["atom_energy_mean"] = np.asarray(atom_e) / len(pos)
    out["atom_energy_abs"] = atom_split(out["pair_energy_abs"], a, b, n)
    out["atom_force_norm"] = atom_split(out["pair_force_norm"], a, b, n)
    return out
