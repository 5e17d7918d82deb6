"""The one interface every biomlff model implements.

A :class:`Potential` is a pure, jit-compilable JAX function

    energy_fn(positions, pairs, cell) -> energy

* ``positions``: (N, 3) Cartesian positions in Å.
* ``pairs``: a dict ``{name: Pairs}`` with one padded pair list per entry of
  ``Potential.neighbors`` (e.g. ``{"sr": ..., "lr": ...}`` for SO3LR, ``{}`` for sGDML).
* ``cell``: (3, 3) cell in Å with lattice vectors as rows (ASE convention), or ``None`` for free
  space. Models apply the minimum-image convention themselves.
* returns the total potential energy in eV (a scalar).

Everything else (forces, stress, Hessians) follows by autodiff — see :func:`energy_and_forces`,
:func:`stress`. Pair lists are built outside the energy function: on the host by
:mod:`biomlff.neighbors` (calculators, evaluation) or inside a compiled MD step by JAX-MD
(:mod:`biomlff.md`). A model states what lists it needs with :class:`NeighborSpec`.

A :class:`Model` is the unbound form: pure functions of the parameters, evaluated on a *batch* of
structures by :meth:`Model.apply` (training, batched evaluation, committees) and bound to one
system by :func:`bind`, which returns the :class:`Potential` used by MD and the calculators.

The batch layout (the one :func:`biomlff.batching.pad_batch` builds, for batched evaluation and
training alike): a dict of arrays with a leading frame axis B,
every structure padded to the same atom count n (padding atoms have species 0, no pairs, no energy)

* ``species`` (B, n) int32 atomic numbers, 0 = padding atom;
* ``positions`` (B, n, 3) Å;
* ``charge`` (B,) total charge in e; ``spin`` (B,) multiplicity − 1;
* ``pairs`` ``{name: Pairs}`` with (B, capacity) arrays (or ``(i, j, mask)`` tuples), one per entry
  of :attr:`Model.neighbors`;
* ``cell`` (B, 3, 3) Å rows — absent for free space;
* optional ``frag_ids`` (B, n) and ``frag_charges`` (B, F) in e (charge conserved per fragment;
  default: one fragment per structure).

:meth:`Model.apply` returns a dict with ``energy`` (B,) eV and ``forces`` (B, n, 3) eV/Å (zero on
padding atoms) plus the model's extra outputs (e.g. ``charges`` (B, n) e, ``dipole`` (B, 3) e·Å,
``hirshfeld_ratios`` (B, n)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Pairs(NamedTuple):
    """A padded list of directed atom pairs (i, j) — a JAX pytree.

    ``i``, ``j``: int32 arrays of length ``capacity``; ``mask``: bool array, True for real pairs.
    Padded entries point at atom 0 and must be ignored through ``mask`` (never rely on a distance
    of 0 to drop them: erf(r)/r at r = 0 is NaN and poisons gradients).
    """

    i: Any
    j: Any
    mask: Any

    @property
    def capacity(self) -> int:
        return int(self.i.shape[0])


@dataclass(frozen=True)
class NeighborSpec:
    """What pair list a model needs.

    cutoff: Å, or ``None`` for all pairs (gas-phase long-range terms).
    half:   True for each unordered pair once (i < j), False for both directions.
    """

    cutoff: float | None
    half: bool = False


@dataclass(frozen=True)
class Potential:
    """A model bound to one chemical system (species, charge, settings).

    energy_fn: ``(positions [Å], pairs: dict[str, Pairs], cell [Å] | None) -> energy [eV]``; pure
        and jit-compilable.
    neighbors: the pair lists ``energy_fn`` expects, by name.
    outputs_fn: optional ``(positions, pairs, cell) -> dict`` of extra per-structure outputs
        (partial charges in e, dipole in e·Å, per-atom energies in eV, energy terms, ...).
    atomic_numbers: (N,) atomic numbers the potential was built for.
    """

    energy_fn: Callable[..., Any]
    neighbors: Mapping[str, NeighborSpec]
    atomic_numbers: Any
    outputs_fn: Callable[..., dict] | None = None
    name: str = "potential"
    info: Mapping[str, Any] = field(default_factory=dict)
    #: set by :func:`bind`: the unbound model, its parameters and the system's per-structure inputs
    #: (batched evaluation of a bound potential goes through ``model.apply(params, batch)``)
    model: Model | None = None
    params: Any = None
    inputs: Mapping[str, Any] | None = None


class Model:
    """A model whose parameters are passed in: ``apply(params, batch) -> dict`` on a padded batch of
    structures (layout in the module docstring) and :func:`bind` to one system.

    Subclasses are hashable (frozen dataclasses of their static settings, so equal settings share
    compiled programs) and define :attr:`neighbors`, :meth:`energy` and, where the model has them,
    :meth:`outputs`; :meth:`inputs` turns a :class:`ChemicalSystem` into the per-structure arrays
    ``energy`` takes (default: ``species`` only). The default :meth:`apply` vmaps
    ``value_and_grad(energy)`` over the frames; a model with a faster batched path overrides it.
    """

    name: str = "model"

    @property
    def neighbors(self) -> Mapping[str, NeighborSpec]:
        """The pair lists :meth:`energy` expects, by name (none by default: a global model)."""
        return {}

    def inputs(self, system: ChemicalSystem) -> dict:
        """Per-structure constant arrays of ``system`` (the batch keys other than positions, pairs
        and cell, for one structure)."""
        import numpy as np

        return {"species": np.asarray(system.atomic_numbers, np.int32)}

    def row_inputs(self, row: Mapping) -> dict:
        """The per-structure inputs of one frame of a batch (defaults filled in)."""
        return {"species": row["species"]}

    def energy(self, params, inputs: Mapping, positions, pairs, cell=None):
        """Energy (eV, scalar) of one structure: positions (n, 3) Å, pairs ``{name: Pairs}``, cell
        (3, 3) Å rows or None."""
        raise NotImplementedError

    def outputs(self, params, inputs: Mapping, positions, pairs, cell=None) -> dict | None:
        """Extra per-structure outputs (charges e, dipole e·Å, ...), or None for a model without."""
        return None

    @property
    def has_outputs(self) -> bool:
        return type(self).outputs is not Model.outputs

    def apply(self, params, batch: Mapping) -> dict:
        """``energy`` (B,) eV, ``forces`` (B, n, 3) eV/Å and the extra outputs of a padded batch."""
        import jax

        def one(row):
            inputs = self.row_inputs(row)
            pairs = {k: Pairs(*v) for k, v in row.get("pairs", {}).items()}
            cell = row.get("cell")

            def f(x):
                out = self.outputs(params, inputs, x, pairs, cell) if self.has_outputs else {}
                return self.energy(params, inputs, x, pairs, cell), out

            (e, out), g = jax.value_and_grad(f, has_aux=True)(row["positions"])
            return {**out, "forces": -g, "energy": e}

        return jax.vmap(one)(dict(batch))


@dataclass(frozen=True)
class ChemicalSystem:
    """What a model is bound to: atomic numbers (N,), total charge (e), multiplicity (2S + 1),
    optional fragments (per-atom ids (N,), per-fragment charges (F,) in e) and the cell (3, 3) Å
    rows or None (free space; models whose static settings depend on the cell, e.g. lattice sums,
    read it here)."""

    atomic_numbers: Any
    charge: float = 0.0
    multiplicity: int = 1
    fragments: Any = None
    cell: Any = None

    @property
    def periodic(self) -> bool:
        return self.cell is not None


@dataclass(frozen=True)
class _Bound:
    """``model.energy`` (or ``model.outputs``) with params and inputs as leading arguments: the
    function of a :class:`jax.tree_util.Partial`, whose leaves (weights, system arrays) then travel
    into compiled programs as arguments."""

    model: Model
    kind: str = "energy"

    @property
    def config(self):
        """The model's static settings (its ``config``), for inspection."""
        return getattr(self.model, "config", None)

    def __call__(self, params, inputs, positions, pairs, cell=None):
        return getattr(self.model, self.kind)(params, inputs, positions, pairs, cell)


def bind(
    model: Model, params, system: ChemicalSystem, *, name: str | None = None, info: Mapping | None = None
) -> Potential:
    """``model`` with ``params`` bound to one ``system``: a :class:`Potential` whose
    ``energy_fn(positions Å, pairs, cell Å | None) -> eV`` (and ``outputs_fn``) are
    :class:`jax.tree_util.Partial` objects over (params, the system's inputs)."""
    import jax
    import numpy as np

    inputs = model.inputs(system)
    energy_fn = jax.tree_util.Partial(_Bound(model), params, inputs)
    outputs_fn = (
        jax.tree_util.Partial(_Bound(model, "outputs"), params, inputs) if model.has_outputs else None
    )
    return Potential(
        energy_fn=energy_fn,
        neighbors=dict(model.neighbors),
        atomic_numbers=np.asarray(inputs["species"]),
        outputs_fn=outputs_fn,
        name=model.name if name is None else name,
        info={} if info is None else dict(info),
        model=model,
        params=params,
        inputs=inputs,
    )


def batch_of(potential: Potential, positions, pairs, cell=None) -> dict:
    """The one-frame batch (B = 1, see module docstring) of a bound ``potential`` at positions
    (N, 3) Å with pair lists ``{name: Pairs}`` and cell (3, 3) Å or None."""
    import numpy as np

    batch = {k: np.asarray(v)[None] for k, v in potential.inputs.items()}
    batch["positions"] = np.asarray(positions)[None]
    batch["pairs"] = {k: Pairs(*(np.asarray(a)[None] for a in p)) for k, p in pairs.items()}
    if cell is not None:
        batch["cell"] = np.asarray(cell)[None]
    return batch


def energy_and_forces(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> (energy [eV], forces [eV/Å])`` with F = −∇E."""
    import jax

    vg = jax.value_and_grad(potential.energy_fn, argnums=0)

    def fn(positions, pairs, cell=None):
        e, g = vg(positions, pairs, cell)
        return e, -g

    return fn


def strain_energy(energy_fn: Callable, strain, positions, pairs, cell):
    """Energy (eV) with positions (N, 3) Å and cell (3, 3) Å rows deformed by (I + sym(strain));
    its gradient at strain = 0 is V σ (eV). The one definition of the strain derivative: the
    calculators' stress and MD's barostat (diagonal strain) both use it."""
    import jax.numpy as jnp

    sym = 0.5 * (strain + strain.T)
    deform = jnp.eye(3, dtype=positions.dtype) + sym
    return energy_fn(positions @ deform, pairs, cell @ deform)


def strained_energy(potential: Potential) -> Callable:
    """``f(strain (3,3), positions, pairs, cell) -> energy`` with positions and cell deformed by
    (I + strain); its gradient at strain = 0 divided by the volume is the stress (eV/Å³)."""

    def fn(strain, positions, pairs, cell):
        return strain_energy(potential.energy_fn, strain, positions, pairs, cell)

    return fn


def stress(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> stress (3,3)`` in eV/Å³ (ASE sign convention:
    σ = (1/V) ∂E/∂ε; positive = tensile)."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(strained_energy(potential), argnums=0)

    def fn(positions, pairs, cell):
        z = jnp.zeros((3, 3), dtype=positions.dtype)
        volume = jnp.abs(jnp.linalg.det(cell))
        return grad(z, positions, pairs, cell) / volume

    return fn


def hessian(potential: Potential) -> Callable:
    """Return ``f(positions, pairs, cell) -> (N, 3, N, 3)`` Hessian in eV/Å² (pairs held fixed).

    Reverse over reverse mode (``jacrev`` of ``grad``): models with hand-written reverse passes
    (:mod:`biomlff.pairsum`, SO3LR's tabulated fast path) support no forward mode."""
    import jax

    return jax.jacrev(jax.grad(potential.energy_fn, argnums=0), argnums=0)
