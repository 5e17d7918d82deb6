"""Hyperparameters of an SO3krates / SO3LR network, its parameter tree and its initialisation.

:class:`Architecture` is a frozen (hashable) dataclass: it is part of the static configuration of a
compiled energy function, so equal architectures share compiled programs. ``Architecture()`` is the
published SO3LR checkpoint (spec §1.2); with it, :func:`param_shapes` is exactly the 131-leaf,
530,238-parameter tree of ``params.pkl`` and the energy function is bit for bit the pretrained model.

Other settings give smaller or larger SO3krates models: feature dimension ``num_features`` (F),
invariant attention ``num_heads`` (F/heads features per head), maximal degree ``max_degree`` (L; the
equivariant features hold degrees 1..L, one degree head of F/L features each), ``num_layers`` (T),
``num_rbf`` Bernstein functions, the short-range cutoff (Å), the electrostatic width σ (Å), the
dispersion damping-radius factor β and switches for each physical term. A pure short-range
SO3krates is ``Architecture(zbl=False, electrostatics=False, dispersion=False)``; it then needs no
long-range pair list.

Initialisation (:func:`init_params`, seeded, float32), our own scheme following the usual flax
defaults: Dense kernels truncated-normal with variance 1/fan_in (LeCun), biases 0; embedding tables
N(0, 1) (charge/spin key and value tables N(0, 1) too); per-head attention matrices LeCun over the
head dimension; LayerNorm scale 1, bias 0; energy scales 1 and offsets 0 per element (the per-element
reference energies of a dataset are fitted separately, see :mod:`biomlff.training`); partial-charge
offsets 0; Hirshfeld offsets v0 = 1 and u ~ N(0, 0.01²); ZBL raw constants are the inverse
softplus of the universal ZBL screening (a = 3.2, 0.9423, 0.4028, 0.2016; c = 0.1818, 0.5099,
0.2802, 0.02817; p = 0.23; d = 1/(0.8854 a0)), as in the original training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import units
from ..errors import ConfigError

#: rows of the per-element tables (Z = 0..118) and of the charge/Hirshfeld tables (Z = 0..99)
NUM_ELEMENTS = 119
NUM_ELEMENTS_HEADS = 100
#: Bohr radius (Å) used by the ZBL initialisation
_A0 = units.Bohr_so3lr


@dataclass(frozen=True)
class Architecture:
    """Hyperparameters of an SO3krates/SO3LR model (defaults: the published SO3LR).

    num_features (F), num_heads (invariant attention heads; F % num_heads == 0), max_degree (L ≤ 4;
    F % L == 0), num_layers (T), num_rbf (Bernstein basis size), sr_cutoff (Å), avg_num_neighbors
    (message normalisation), energy_regression_dim, hirshfeld_dim, electrostatic_sigma (σ of
    erf(r/σ)/r, Å), dispersion_beta (damping-radius factor), zbl / electrostatics / dispersion
    (physical terms on or off), charge_embedding / spin_embedding (total charge and spin inputs)."""

    num_features: int = 128
    num_heads: int = 4
    max_degree: int = 4
    num_layers: int = 3
    num_rbf: int = 32
    sr_cutoff: float = 4.5
    avg_num_neighbors: float = 13.168995780096482
    energy_regression_dim: int = 128
    hirshfeld_dim: int = 64
    electrostatic_sigma: float = 4.0
    dispersion_beta: float = 1.2
    zbl: bool = True
    electrostatics: bool = True
    dispersion: bool = True
    charge_embedding: bool = True
    spin_embedding: bool = True

    # ----------------------------------------------------------------- derived sizes
    @property
    def degrees(self) -> tuple[int, ...]:
        return tuple(range(1, self.max_degree + 1))

    @property
    def degree_sizes(self) -> tuple[int, ...]:
        return tuple(2 * l + 1 for l in self.degrees)

    @property
    def num_components(self) -> int:
        """Spherical-harmonic components of the equivariant features (24 for L = 4)."""
        return sum(self.degree_sizes)

    @property
    def head_dim(self) -> int:
        return self.num_features // self.num_heads

    @property
    def degree_head_dim(self) -> int:
        return self.num_features // self.max_degree

    @property
    def spherical_hidden(self) -> int:
        """Hidden width of the spherical filter networks (F/4: 32 in SO3LR)."""
        return max(1, self.num_features // 4)

    @property
    def long_range(self) -> bool:
        """True when a long-range pair list is needed (electrostatics or dispersion on)."""
        return self.electrostatics or self.dispersion

    @property
    def num_embeddings(self) -> int:
        return 1 + int(self.charge_embedding) + int(self.spin_embedding)

    def validate(self) -> Architecture:
        """ConfigError naming the first inconsistent hyperparameter; returns self."""
        ints = (
            "num_features",
            "num_heads",
            "max_degree",
            "num_layers",
            "num_rbf",
            "energy_regression_dim",
            "hirshfeld_dim",
        )
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"architecture: {name} must be a positive integer, got {v!r}")
        if not 1 <= self.max_degree <= 4:
            raise ConfigError(f"architecture: max_degree must be in 1..4, got {self.max_degree}")
        if self.num_features % self.num_heads:
            raise ConfigError(
                f"architecture: num_features={self.num_features} is not divisible by "
                f"num_heads={self.num_heads}"
            )
        if self.num_features % self.max_degree:
            raise ConfigError(
                f"architecture: num_features={self.num_features} is not divisible by "
                f"max_degree={self.max_degree}"
            )
        if self.num_rbf < 2:
            raise ConfigError(f"architecture: num_rbf must be ≥ 2, got {self.num_rbf}")
        for name in ("sr_cutoff", "avg_num_neighbors", "electrostatic_sigma", "dispersion_beta"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"architecture: {name} must be a positive number, got {v!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        """Architecture from a dict (e.g. a model file or config); ConfigError for unknown keys."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"architecture: unknown key(s) {unknown}; known: {sorted(known)}")
        kw = {}
        for k, v in d.items():
            t = known[k].type
            if t == "bool":
                kw[k] = bool(v)
            elif t == "int":
                kw[k] = int(v)
            else:
                kw[k] = float(v)
        return cls(**kw).validate()


#: the published SO3LR checkpoint
PUBLISHED = Architecture()


# ---------------------------------------------------------------------- parameter tree
def _dense(n_in: int, n_out: int, bias: bool = True) -> dict:
    d = {"kernel": (n_in, n_out)}
    if bias:
        d["bias"] = (n_out,)
    return d


def _charge_spin(a: Architecture) -> dict:
    f = a.num_features
    return {
        "ChargeSpinEmbedSparse_0": {
            "Embed_0": {"embedding": (NUM_ELEMENTS, f)},
            "Embed_1": {"embedding": (2, f)},
            "Embed_2": {"embedding": (2, f)},
            "Residual_0": {"layers_0": {"kernel": (f, f)}, "layers_1": {"kernel": (f, f)}},
        }
    }


def _layer(a: Architecture) -> dict:
    f, k, sh = a.num_features, a.num_rbf, a.spherical_hidden
    att = {
        **{w: (a.num_heads, a.head_dim, a.head_dim) for w in ("Wq1", "Wk1", "Wv1")},
        **{w: (a.max_degree, a.degree_head_dim, a.degree_head_dim) for w in ("Wq2", "Wk2")},
    }
    for w in (1, 2):
        att[f"radial_filter{w}_layer_1"] = _dense(k, f)
        att[f"radial_filter{w}_layer_2"] = _dense(f, f)
        att[f"spherical_filter{w}_layer_1"] = _dense(a.max_degree, sh)
        att[f"spherical_filter{w}_layer_2"] = _dense(sh, f)
    return {
        "attention_block": att,
        "exchange_block": {"mlp_layer_2": _dense(f + a.max_degree, f + a.max_degree)},
        "layer_normalization_1": {"scale": (f,), "bias": (f,)},
        "layer_normalization_2": {"scale": (f,), "bias": (f,)},
        "res_mlp_1_layer_1": _dense(f, f),
        "res_mlp_1_layer_2": _dense(f, f),
    }


def param_shapes(arch: Architecture = PUBLISHED) -> dict:
    """Nested dict of leaf shapes of the parameter tree of ``arch`` (flax layout, spec §2)."""
    f, e, hd = arch.num_features, arch.energy_regression_dim, arch.hirshfeld_dim
    tree: dict = {"feature_embeddings_0": {"Embed_0": {"embedding": (NUM_ELEMENTS, f)}}}
    if arch.charge_embedding:
        tree["feature_embeddings_1"] = _charge_spin(arch)
    if arch.spin_embedding:
        tree["feature_embeddings_2"] = _charge_spin(arch)
    for t in range(arch.num_layers):
        tree[f"layers_{t}"] = _layer(arch)
    obs0: dict = {
        "energy_dense_regression": _dense(f, e),
        "energy_dense_final": _dense(e, 1),
        "atomic_scales": (NUM_ELEMENTS,),
        "energy_offset": (NUM_ELEMENTS,),
        "electrostatic_energy": {
            "partial_charges": {
                "Embed_0": {"embedding": (NUM_ELEMENTS_HEADS, 1)},
                "charge_dense_regression_vec": _dense(f, f),
                "charge_dense_final_vec": _dense(f, 1),
            }
        },
    }
    if arch.zbl:
        obs0["zbl_repulsion"] = {k: (1,) for k in ("a1", "a2", "a3", "a4", "c1", "c2", "c3", "c4", "p", "d")}
    tree["observables_0"] = obs0
    tree["observables_2"] = {
        "Embed_0": {"embedding": (NUM_ELEMENTS_HEADS, 1)},
        "Embed_1": {"embedding": (NUM_ELEMENTS_HEADS, hd)},
        "hirshfeld_ratios_dense_regression": _dense(f, hd),
        "hirshfeld_ratios_dense_final": _dense(hd, hd),
    }
    return tree


def _flat_shapes(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat_shapes(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = tuple(v)
    return out


def count_parameters(arch: Architecture = PUBLISHED) -> tuple[int, int]:
    """(number of leaves, number of parameters) of the tree of ``arch``."""
    flat = _flat_shapes(param_shapes(arch))
    return len(flat), int(sum(math.prod(s) for s in flat.values()))


def tree_mismatches(params, arch: Architecture = PUBLISHED) -> list[str]:
    """Human-readable differences between a parameter tree and the shapes of ``arch`` (empty if equal)."""
    want = _flat_shapes(param_shapes(arch))
    have = _flat_shapes(_shape_tree(params))
    out = [f"missing leaf {k} {want[k]}" for k in sorted(set(want) - set(have))]
    out += [f"unexpected leaf {k} {have[k]}" for k in sorted(set(have) - set(want))]
    out += [
        f"leaf {k} has shape {have[k]}, expected {want[k]}"
        for k in sorted(set(want) & set(have))
        if have[k] != want[k]
    ]
    return out


def _shape_tree(params):
    return {k: _shape_tree(v) if isinstance(v, dict) else tuple(np.shape(v)) for k, v in params.items()}


# ---------------------------------------------------------------------- initialisation
_ZBL_A = (3.2, 0.9423, 0.4028, 0.2016)
_ZBL_C = (0.1818, 0.5099, 0.2802, 0.02817)
_ZBL_P = 0.23
_ZBL_D = 1.0 / (0.8854 * _A0)


def _inverse_softplus(y: float) -> float:
    return float(y + math.log(-math.expm1(-y)))


def init_params(arch: Architecture, seed: int | np.random.Generator = 0) -> dict:
    """Seeded random parameters for ``arch`` (float32 NumPy leaves; scheme in the module docstring)."""
    arch.validate()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))

    def lecun(shape):
        fan_in = shape[-2] if len(shape) >= 2 else shape[0]
        # truncated normal at ±2σ, rescaled so that the variance is 1/fan_in
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        x = rng.standard_normal(shape)
        while np.any(bad := np.abs(x) > 2.0):
            x[bad] = rng.standard_normal(int(bad.sum()))
        return x * std

    def build(path: str, shape):
        leaf = path.rsplit("/", 1)[-1]
        if leaf == "bias":
            return np.zeros(shape)
        if leaf == "scale":
            return np.ones(shape)
        if leaf == "atomic_scales":
            return np.ones(shape)
        if leaf == "energy_offset":
            return np.zeros(shape)
        if "zbl_repulsion" in path:
            vals = dict(zip(("a1", "a2", "a3", "a4"), _ZBL_A, strict=True))
            vals.update(zip(("c1", "c2", "c3", "c4"), _ZBL_C, strict=True))
            vals.update(p=_ZBL_P, d=_ZBL_D)
            return np.full(shape, _inverse_softplus(vals[leaf]))
        if path == "observables_2/Embed_0/embedding":
            return np.ones(shape)
        if path == "observables_2/Embed_1/embedding":
            return 0.01 * rng.standard_normal(shape)
        if path == "observables_0/electrostatic_energy/partial_charges/Embed_0/embedding":
            return np.zeros(shape)
        if leaf == "embedding":
            return rng.standard_normal(shape)
        return lecun(shape)  # Dense kernels and per-head attention matrices

    def walk(tree, prefix=""):
        return {
            k: walk(v, f"{prefix}{k}/")
            if isinstance(v, dict)
            else build(f"{prefix}{k}", v).astype(np.float32)
            for k, v in tree.items()
        }

    return walk(param_shapes(arch))
