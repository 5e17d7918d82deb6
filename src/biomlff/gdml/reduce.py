"""rGDML: descriptor reduction of trained (s)GDML models (spec §13; Kabylda, Vassilev-Galindo et
al., Nat. Commun. 14, 3562, 2023).

Procedure:

1. **Importance by masking.** Feature n (the inverse distance of one atom pair) is masked by
   removing it from every kernel difference d = x − P_π x_j and every coefficient u = P_π u_j of the
   prediction (α is not refitted). The loss of feature n is L_n = RMSE over N_s held-out
   configurations and all force components of (F_masked,n − F), F being the unmasked model's own
   forces (eV/Å); the energy RMSE (eV) is kept too.

   *Vectorised update.* Masking only changes d_n and u_n, so with ‖d‖² and d·u of the full model
   ‖d‖²₍ₙ₎ = ‖d‖² − d_n² and (d·u)₍ₙ₎ = d·u − d_n u_n for every n at once; the masked descriptor
   gradients of all n then come from one GEMM per query, g₍ₙ₎ = (Σ_rows c1₍ₙ₎ d − c2₍ₙ₎ u) with
   component n zeroed. Groups of features (orbits of the symmetry group) are masked jointly through
   a (D × G) indicator matrix O: ‖d‖²₍g₎ = ‖d‖² − (d∘d) O.

   *Masking under symmetries.* The mask acts on the query's descriptor slots, i.e. on column n of
   every permuted training row P_π x_j (and P_π u_j). The public rGDML script zeroes x_{j,n}
   *before* permuting, which puts the zero at slot q_π⁻¹(n) of P_π x_j while the query is masked at
   n — consistent only for P = 1 (spec §13). For a union of orbits S both agree (q_π(S) = S).

2. **Selection.** Keep the features (or, with symmetries, the orbits) of largest loss: a fraction
   ``keep`` of D (0 < keep < 1) or a number of features; the reference rule "remove the features with
   L_n below the q-th percentile" is :func:`percentile_selection`.

3. **Reduced model.** :func:`reduce_model` drops the removed columns (identical to the masked model,
   no retraining); :func:`retrain` trains again on the reduced pair list (σ search, closed form or
   CG), reusing the model's permutations and training indices.

Units: positions Å, energies eV, forces eV/Å, descriptor 1/Å.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..precision import precision_context
from .descriptor import descriptor_and_jacobian
from .model import GDMLModel
from .perms import check_orbit_closed, pair_orbits  # noqa: F401  (public here too)

SQRT5 = math.sqrt(5.0)


# ------------------------------------------------------------------------------ masking
def _rows(model: GDMLModel):
    """Permuted training rows (R, D), centred on their mean, and per-row α_E (or None)."""
    xp, up = model._permuted()
    xbar = xp.mean(axis=0)
    return xbar, xp - xbar, up, model._ae_rows()


def masked_predict(model: GDMLModel, positions, mask) -> tuple[np.ndarray, np.ndarray]:
    """Energies (B,) eV and forces (B, N, 3) eV/Å of the *explicitly* masked model: the features with
    ``mask`` (D,) = 0 are zeroed in the query descriptor and Jacobian and in every permuted training
    row P_π x_j, P_π u_j; then the ordinary batched prediction formula runs (the reference for the
    vectorised update of :func:`feature_importance`)."""
    import jax.numpy as jnp

    from .predict import batch_energy_forces, prepare_rows

    pos = np.asarray(positions, dtype=np.float64).reshape(-1, model.n_atoms, 3)
    mask = np.asarray(mask, dtype=np.float64).reshape(-1)
    if mask.shape != (model.n_features,):
        raise ModelError(f"mask must have {model.n_features} entries, got {mask.shape}")
    a, b = model.pairs
    x, c = descriptor_and_jacobian(pos, a, b, model.lattice)
    x = x * mask
    c = c * mask[:, None]
    xp, up = model._permuted()
    ae = model._ae_rows()
    rows = prepare_rows(xp * mask, up * mask, len(xp), ae)
    with precision_context("float64"):
        e, f = batch_energy_forces(
            jnp.asarray(x),
            jnp.asarray(c),
            *rows[:5],
            float(model.sigma),
            float(model.std),
            float(model.c),
            a,
            b,
            model.n_atoms,
            None,
            rows[5] if len(rows) > 5 else None,
        )
        return np.asarray(e), np.asarray(f)


def _masked_sums_one(x, xpc, up, ind, sigma, ae):
    """For one centred query x (D,): energy sums (G,) and descriptor gradients (G, D) of the model
    with each group of features (columns of the 0/1 indicator ``ind`` (D, G)) masked, and of the
    unmasked model ((), (D,)); direct differences d = x − x̃_r, updated per group (module doc)."""
    import jax.numpy as jnp

    d = x[None, :] - xpc  # (R, D)
    dd = d * d
    dv = d * up
    r2 = jnp.sum(dd, axis=1)
    du = jnp.sum(dv, axis=1)

    def coeffs(r2_, du_):
        r = jnp.sqrt(jnp.maximum(r2_, 0.0))
        e = jnp.exp(-SQRT5 * r / sigma)
        c2 = (5.0 / (3.0 * sigma**3)) * (sigma + SQRT5 * r) * e
        c1 = (25.0 / (3.0 * sigma**4)) * e * du_
        en = c2 * du_
        if ae is not None:
            aex = ae.reshape(ae.shape + (1,) * (r2_.ndim - 1))
            en = en + (1.0 + SQRT5 * r / sigma + (5.0 / (3.0 * sigma**2)) * r * r) * e * aex
            c1 = c1 + c2 * aex
        return c1, c2, en

    c1, c2, en = coeffs(r2, du)
    e0 = jnp.sum(en)
    g0 = c1 @ d - c2 @ up  # (D,)
    r2g = r2[:, None] - dd @ ind  # (R, G)
    dug = du[:, None] - dv @ ind
    c1g, c2g, eng = coeffs(r2g, dug)
    eg = jnp.sum(eng, axis=0)  # (G,)
    gg = (c1g.T @ d - c2g.T @ up) * (1.0 - ind.T)  # (G, D), masked slots zeroed
    return eg, gg, e0, g0


def _importance_batch(xq, cq, weight, xpc, up, ind, sigma, std, a, b, n_atoms, ae=None):
    """Σ over the queries (weighted; padding has weight 0) of the squared energy and force errors of
    every masked group against the unmasked model: (G,) eV², (G,) (eV/Å)² summed over components."""
    import jax
    import jax.numpy as jnp

    from .descriptor import vjp

    eg, gg, e0, g0 = jax.vmap(lambda x: _masked_sums_one(x, xpc, up, ind, sigma, ae))(xq)
    dg = std * (gg - g0[:, None, :])  # (B, G, D): force change = Jᵀ(g_masked − g)
    df = vjp(cq[:, None], dg, a, b, n_atoms)  # (B, G, N, 3)
    sq_f = jnp.sum(df * df, axis=(2, 3))  # (B, G)
    sq_e = (std * (eg - e0[:, None])) ** 2
    return weight @ sq_e, weight @ sq_f


def masked_predictions(model: GDMLModel, positions, groups: list[np.ndarray]):
    """Energies (B, G) eV and forces (B, G, N, 3) eV/Å of the model with each group of features
    masked, by the vectorised update (module doc) — the per-group predictions behind
    :func:`feature_importance`, for checks and small cases (memory grows as B·G·N)."""
    import jax
    import jax.numpy as jnp

    from .descriptor import vjp

    pos = np.asarray(positions, dtype=np.float64).reshape(-1, model.n_atoms, 3)
    a, b = model.pairs
    x, c = descriptor_and_jacobian(pos, a, b, model.lattice)
    xbar, xpc, up, ae = _rows(model)
    ind = np.zeros((model.n_features, len(groups)))
    for col, g in enumerate(groups):
        ind[np.asarray(g, dtype=np.int64), col] = 1.0
    std, sigma, n = float(model.std), float(model.sigma), model.n_atoms

    def fn(xq, cq, xpc_, up_, ind_, ae_):
        eg, gg, _, _ = jax.vmap(lambda v: _masked_sums_one(v, xpc_, up_, ind_, sigma, ae_))(xq)
        return float(model.c) + std * eg, vjp(cq[:, None], std * gg, a, b, n)

    with precision_context("float64"):
        e, f = jax.jit(fn)(x - xbar, c, xpc, up, ind, None if ae is None else jnp.asarray(ae))
        return np.asarray(e), np.asarray(f)


@dataclass
class Importance:
    """Masking losses of feature groups (orbits or single features) of a model.

    groups: feature indices (into the model's pair list) per group; loss_F (G,) force RMSE in eV/Å
    and loss_E (G,) energy RMSE in eV of the masked model against the unmasked one on
    ``n_configs`` configurations."""

    groups: list[np.ndarray]
    loss_F: np.ndarray
    loss_E: np.ndarray
    n_configs: int
    n_features: int

    def per_feature(self, which: str = "F") -> np.ndarray:
        """Loss (D,) of the group each feature belongs to (``which`` = 'F' or 'E')."""
        src = self.loss_F if which == "F" else self.loss_E
        out = np.empty(self.n_features)
        for g, members in enumerate(self.groups):
            out[members] = src[g]
        return out


def feature_groups(model: GDMLModel, orbits: bool | None = None) -> list[np.ndarray]:
    """Single features (GDML, or ``orbits=False``) or the symmetry orbits of the pair list (sGDML,
    the default when the model has more than one permutation)."""
    if orbits is None:
        orbits = model.n_perms > 1
    if not orbits:
        return [np.array([k]) for k in range(model.n_features)]
    a, b = model.pairs
    return pair_orbits(model.perms, a, b, model.n_atoms)


def feature_importance(
    model: GDMLModel,
    positions,
    groups: list[np.ndarray] | None = None,
    orbits: bool | None = None,
    memory_mb: float = 256.0,
    progress: bool = False,
) -> Importance:
    """Masking losses (vectorised, module doc) of every feature group on ``positions`` (N_s, N, 3) Å.

    ``groups``: explicit lists of feature indices masked jointly (default :func:`feature_groups` with
    ``orbits``). ``memory_mb`` bounds the per-call temporaries (queries × training rows × groups).
    """
    import jax
    import jax.numpy as jnp

    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (model.n_atoms, 3):
        raise DataError(f"positions must have shape (N_s, {model.n_atoms}, 3), got {pos.shape}")
    if len(pos) == 0:
        raise DataError("feature importance needs at least one configuration")
    if groups is None:
        groups = feature_groups(model, orbits)
    groups = [np.asarray(g, dtype=np.int64).reshape(-1) for g in groups]
    dim = model.n_features
    for g in groups:
        if g.size == 0 or g.min() < 0 or g.max() >= dim:
            raise ModelError(f"feature group {g.tolist()} out of range for D = {dim}")
    a, b = model.pairs
    x, c = descriptor_and_jacobian(pos, a, b, model.lattice)
    xbar, xpc, up, ae = _rows(model)
    xq = x - xbar
    n_rows = xpc.shape[0]
    n_groups = len(groups)
    # per query: ~8 (R × D) arrays + ~8 (R × G_chunk) + (G_chunk × (D + 3N)); choose G_chunk, then B
    budget = memory_mb * 1e6 / 8.0
    gc = int(
        max(1, min(n_groups, (budget / 2 - 8 * n_rows * dim) / (8 * n_rows + 2 * dim + 6 * model.n_atoms)))
    )
    per_query = 8 * n_rows * dim + gc * (8 * n_rows + 2 * dim + 6 * model.n_atoms)
    bq = int(max(1, min(len(pos), 64, budget // max(per_query, 1))))
    n_atoms = model.n_atoms

    def batch(xq_, cq_, w_, xpc_, up_, ind_, sig_, std_, ae_):
        return _importance_batch(xq_, cq_, w_, xpc_, up_, ind_, sig_, std_, a, b, n_atoms, ae_)

    fn = jax.jit(batch)
    sq_e = np.zeros(n_groups)
    sq_f = np.zeros(n_groups)
    chunks = [(s, min(s + gc, n_groups)) for s in range(0, n_groups, gc)]
    it = chunks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(chunks, desc="feature importance", unit="chunk", leave=False)
    with precision_context("float64"):
        xpc_j = jnp.asarray(xpc)
        up_j = jnp.asarray(up)
        ae_j = None if ae is None else jnp.asarray(ae)
        for g0, g1 in it:
            ind = np.zeros((dim, gc))
            for col, g in enumerate(groups[g0:g1]):
                ind[g, col] = 1.0
            for s in range(0, len(pos), bq):
                k = min(bq, len(pos) - s)
                sel = np.arange(s, s + bq) % len(pos)
                w = np.zeros(bq)
                w[:k] = 1.0
                e_sq, f_sq = fn(
                    xq[sel], c[sel], w, xpc_j, up_j, ind, float(model.sigma), float(model.std), ae_j
                )
                sq_e[g0:g1] += np.asarray(e_sq)[: g1 - g0]
                sq_f[g0:g1] += np.asarray(f_sq)[: g1 - g0]
    n_s = len(pos)
    return Importance(
        groups=groups,
        loss_F=np.sqrt(sq_f / (n_s * 3 * model.n_atoms)),
        loss_E=np.sqrt(sq_e / n_s),
        n_configs=n_s,
        n_features=dim,
    )


def contribution_importance(
    model: GDMLModel, positions, groups: list[np.ndarray] | None = None, orbits: bool | None = None
) -> Importance:
    """Alternative ranking (not the rGDML masking rule): the mean pair force contribution ‖φ_k‖
    (eV/Å) and mean |ε_k| (eV) of :mod:`biomlff.gdml.contributions` over ``positions``, summed over
    each group, in the fields ``loss_F`` / ``loss_E`` so that :func:`select_features` applies.
    Measured on rMD17 aspirin (docs/benchmarks.md) it keeps better pairs than masking does."""
    from .contributions import average_contributions

    if groups is None:
        groups = feature_groups(model, orbits)
    groups = [np.asarray(g, dtype=np.int64).reshape(-1) for g in groups]
    pos = np.asarray(positions, dtype=np.float64)
    avg = average_contributions(model, pos)
    return Importance(
        groups=groups,
        loss_F=np.array([avg["pair_force_norm"][g].sum() for g in groups]),
        loss_E=np.array([avg["pair_energy_abs"][g].sum() for g in groups]),
        n_configs=len(pos),
        n_features=model.n_features,
    )


def rank_features(model: GDMLModel, positions, rank: str = "mask", orbits: bool | None = None, **kw):
    """Importance by ``rank`` = 'mask' (:func:`feature_importance`, the rGDML rule) or 'force'
    (:func:`contribution_importance`)."""
    if rank == "mask":
        return feature_importance(model, positions, orbits=orbits, **kw)
    if rank == "force":
        return contribution_importance(model, positions, orbits=orbits)
    raise ConfigError(f"rank must be 'mask' or 'force', got {rank!r}")


# ------------------------------------------------------------------------------ selection
def parse_keep(text) -> float | int:
    """'40%' or '0.4' → fraction 0.4; '120' → 120 features. Raises ConfigError outside (0, 100 %)."""
    s = str(text).strip()
    try:
        if s.endswith("%"):
            val: float | int = float(s[:-1]) / 100.0
        elif "." in s or "e" in s.lower():
            val = float(s)
        else:
            val = int(s)
    except ValueError as exc:
        raise ConfigError(
            f"--keep: cannot read {text!r} (a percentage '40%', a fraction 0.4 or a count)"
        ) from exc
    check_keep(val)
    return val


def check_keep(keep, n_features: int | None = None) -> None:
    """Raise ConfigError unless ``keep`` is a fraction strictly between 0 and 1 or a feature count
    1 ≤ keep < D."""
    if isinstance(keep, bool):
        raise ConfigError(f"keep must be a fraction or a count, got {keep!r}")
    if isinstance(keep, int | np.integer):
        if keep < 1:
            raise ConfigError(f"keep = {keep} features: at least one feature must be kept")
        if n_features is not None and keep >= n_features:
            raise ConfigError(f"keep = {keep} features of D = {n_features}: that is no reduction (keep < D)")
        return
    keep = float(keep)
    if not math.isfinite(keep) or keep <= 0.0:
        raise ConfigError(
            f"keep = {keep:.0%} of the descriptor: at least one feature must be kept (0 < keep < 100 %)"
        )
    if keep >= 1.0:
        raise ConfigError(f"keep = {keep:.0%} of the descriptor is no reduction (0 < keep < 100 %)")


def select_features(importance: Importance, keep) -> np.ndarray:
    """Sorted indices of the kept features: the groups of smallest force loss are removed (least
    important first) until removing the next one would leave fewer than the target — ``keep`` a
    fraction (0, 1) of D (target ⌈keep·D⌉) or a count. Whole groups are kept or removed, so the result
    is a union of orbits when the groups are orbits (it may then keep a few features more than asked),
    and no removed group has a larger loss than a kept one."""
    dim = importance.n_features
    check_keep(keep, dim)
    target = int(keep) if isinstance(keep, int | np.integer) else max(1, math.ceil(float(keep) * dim - 1e-9))
    order = np.argsort(importance.loss_F, kind="stable")  # least important first
    removed = np.zeros(dim, dtype=bool)
    n_kept = dim
    for g in order:  # stop at the first group that does not fit: nothing removed outranks a kept one
        size = len(importance.groups[g])
        if n_kept - size < target:
            break
        removed[importance.groups[g]] = True
        n_kept -= size
    if n_kept == dim:
        raise ConfigError(
            f"no feature group can be removed while keeping {target} of {dim} features "
            "(the orbits are too large for this target)"
        )
    return np.nonzero(~removed)[0]


def percentile_selection(importance: Importance, q: float) -> np.ndarray:
    """The reference rule (spec §13 step 4): remove the features whose loss lies below the q-th
    percentile (0 < q < 100) of the per-feature losses; returns the sorted kept indices."""
    if not 0.0 < float(q) < 100.0:
        raise ConfigError(f"percentile q must be in (0, 100), got {q}")
    lf = importance.per_feature("F")
    kept = np.nonzero(lf >= np.percentile(lf, q))[0]
    if len(kept) == 0 or len(kept) == len(lf):
        raise ConfigError(f"percentile {q} removes {'all' if len(kept) == 0 else 'no'} features")
    return kept


# ------------------------------------------------------------------------------ reduced models
def reduce_model(model: GDMLModel, kept) -> GDMLModel:
    """The model restricted to the features ``kept`` (indices into its pair list), α unchanged: it
    predicts exactly what the masked full model predicts (no retraining). With symmetries the kept
    set must be a union of orbits."""
    kept = np.unique(np.asarray(kept, dtype=np.int64))
    if kept.size == 0 or kept.min() < 0 or kept.max() >= model.n_features:
        raise ModelError(f"kept feature indices must lie in 0..{model.n_features - 1}")
    if len(kept) == model.n_features:
        raise ConfigError("all features kept: nothing to reduce")
    a, b = model.pairs
    ka, kb = a[kept], b[kept]
    check_orbit_closed(model.perms, ka, kb, model.n_atoms)
    info = dict(model.info)
    info.update(_reduction_info(model, ka, kb, retrained=False))
    return dataclasses.replace(
        model,
        R_desc=model.R_desc[:, kept],
        R_d_desc_alpha=model.R_d_desc_alpha[:, kept],
        pairs=(ka, kb),
        info=info,
    )


def _reduction_info(model: GDMLModel, ka, kb, retrained: bool) -> dict:
    from .descriptor import tril_index

    n = model.n_atoms
    d_full = n * (n - 1) // 2
    kept_full = tril_index(ka, kb)
    return {
        "rgdml": {
            "n_features": int(len(ka)),
            "n_features_full": int(d_full),
            "kept_fraction": float(len(ka) / d_full),
            "retrained": bool(retrained),
            "parent_sigma": float(model.sigma),
        },
        "rm_arr": np.setdiff1d(np.arange(d_full), kept_full).tolist(),
    }


def retrain(
    model: GDMLModel,
    frames,
    kept,
    sigmas=None,
    *,
    idx_train=None,
    idx_valid=None,
    valid=None,
    n_valid: int = 0,
    solver: str = "auto",
    max_memory_gb: float | None = None,
    seed: int = 0,
    perms: np.ndarray | None = None,
    progress: bool = False,
):
    """Train a new model on the reduced pair list (``kept``: indices into ``model``'s pair list) with
    the model's permutations, λ, energy settings and — unless ``idx_train`` is given — its training
    indices (``frames`` must then be the dataset the model was trained on: the content hash is
    checked). σ search over ``sigmas`` (default: the model's σ × 0.5, 0.7, 1, 1.4) on the model's
    validation indices or ``valid``/``n_valid``. ``perms``: permutations of the new model (default
    the model's; the identity trains a GDML model on any pair list). Returns (model,
    :class:`TrainReport`)."""
    from .train import TrainConfig, train

    kept = np.unique(np.asarray(kept, dtype=np.int64))
    if kept.size == 0 or kept.min() < 0 or kept.max() >= model.n_features:
        raise ModelError(f"kept feature indices must lie in 0..{model.n_features - 1}")
    if np.any(frames.z != model.z):
        raise DataError(
            f"{frames.source}: atoms {frames.z.tolist()} differ from the model's {model.z.tolist()}"
        )
    a, b = model.pairs
    ka, kb = a[kept], b[kept]
    perms = model.perms if perms is None else np.asarray(perms)
    check_orbit_closed(perms, ka, kb, model.n_atoms)
    same_data = (
        bool(model.info.get("dataset_hash")) and model.info.get("dataset_hash") == frames.content_hash()
    )
    if idx_train is None:
        if not same_data or not model.info.get("idxs_train"):
            raise ConfigError(
                f"{frames.source} is not the dataset this model was trained on (content hash differs or "
                "the model records no training indices): give the training indices (idx_train / --n-train)"
            )
        idx_train = np.asarray(model.info["idxs_train"], dtype=np.int64)
        if idx_valid is None and valid is None and n_valid == 0:
            idx_valid = np.asarray(model.info.get("idxs_valid", []), dtype=np.int64)
    if sigmas is None:
        sigmas = [model.sigma * f for f in (0.5, 0.7, 1.0, 1.4)]
    if len(sigmas) > 1 and valid is None and (idx_valid is None or len(idx_valid) == 0) and n_valid == 0:
        raise ConfigError("a σ search needs validation data (the model records none): give n_valid or valid")
    cfg = TrainConfig(
        n_train=len(idx_train),
        n_valid=n_valid,
        sigmas=sigmas,
        perms=perms,
        solver=solver,
        lam=model.lam,
        max_memory_gb=max_memory_gb,
        seed=seed,
        use_E=bool(model.info.get("use_E", True)) and frames.E is not None,
        energy_constraints=model.alphas_E is not None,
        idx_train=np.asarray(idx_train),
        idx_valid=None if idx_valid is None else np.asarray(idx_valid),
        progress=progress,
        pairs=(ka, kb),
    )
    new, report = train(frames, cfg, valid=valid)
    new.info.update(_reduction_info(model, ka, kb, retrained=True))
    return new, report


# ------------------------------------------------------------------------------ index files
def save_index_file(path, n_atoms: int, a, b):
    """Write an rGDML index file (``idxs`` = removed pair indices in the full tril order, the format
    of the public rGDML scripts and of ``--DOFs_file``) for the pair list (a, b)."""
    from .descriptor import removed_from_pairs
    from .model import _atomic_savez

    return _atomic_savez(path, {"idxs": removed_from_pairs(n_atoms, a, b)})


def load_index_file(path, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair list (a, b) from an rGDML index file (key ``idxs`` = removed pair indices, or ``rm_arr``
    of a task/model file) for a molecule of ``n_atoms`` atoms; DataError if it does not fit."""
    from ..fileio import open_npz
    from .descriptor import pairs_from_removed

    with open_npz(path, "rGDML index file", object_arrays=True) as f:
        key = "idxs" if "idxs" in f.files else "rm_arr" if "rm_arr" in f.files else None
        if key is None:
            raise DataError(f"{path}: no 'idxs' (rGDML index file) or 'rm_arr' array")
        rm = np.asarray(f[key])
    try:
        return pairs_from_removed(n_atoms, rm)
    except ModelError as exc:
        raise DataError(
            f"{path}: the removed pair indices do not match a molecule of {n_atoms} atoms: {exc}"
        ) from exc


def throughput(models, positions, repeats: int = 5, batch_size: int = 1024) -> list[dict]:
    """Prediction throughput of one or more models on ``positions`` (geometries/s): after one warm-up
    call each (compilation excluded), ``repeats`` rounds in which every model predicts all positions
    once, interleaved so that a changing machine load hits all models alike. Returns per model the
    medians ``cpu_gps`` (per process CPU second, all threads: robust on a shared machine) and
    ``wall_gps``, and ``ratio_cpu`` / ``ratio_wall`` (median per-round ratio to the first model)."""
    import time

    models = list(models) if isinstance(models, list | tuple) else [models]
    for mod in models:
        mod.predict(positions, batch_size=batch_size)
    n = len(positions)
    cpu = np.empty((max(1, repeats), len(models)))
    wall = np.empty_like(cpu)
    for r in range(cpu.shape[0]):
        for k, mod in enumerate(models):
            c0, w0 = time.process_time(), time.perf_counter()
            mod.predict(positions, batch_size=batch_size)
            cpu[r, k] = max(time.process_time() - c0, 1e-9)
            wall[r, k] = time.perf_counter() - w0
    return [
        {
            "cpu_gps": float(n / np.median(cpu[:, k])),
            "wall_gps": float(n / np.median(wall[:, k])),
            "ratio_cpu": float(np.median(cpu[:, 0] / cpu[:, k])),
            "ratio_wall": float(np.median(wall[:, 0] / wall[:, k])),
        }
        for k in range(len(models))
    ]
