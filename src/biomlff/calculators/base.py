"""A generic ASE calculator for any :class:`biomlff.potential.Potential`.

The calculator

* builds host-side pair lists with :func:`biomlff.neighbors.build_pairs` for every entry of
  ``potential.neighbors`` (minimum image in orthorhombic periodic cells, free space otherwise),
* reuses long pair lists between calls (Verlet lists): a list whose cutoff is ≥
  :data:`REUSE_MIN_CUTOFF` (SO3LR's 12 Å long-range list) is built with a ``skin`` and kept as long
  as no atom has moved by more than half the skin and the cell is unchanged; the models mask pairs
  beyond their cutoff, so the result is the same as with a fresh list (up to the order of float
  additions). Short lists (message passing within 4.5 Å) are rebuilt every call: their extra skin
  pairs would cost the model more than the build,
* pads them to a capacity bucket that only ever grows (``capacity_margin`` head-room), so that moving
  atoms does not recompile the energy function as long as the pairs fit; when a structure needs more
  room the capacity grows automatically (one recompilation) — a list is never truncated,
* evaluates a jit-compiled energy + forces (+ stress for periodic cells) function, and
* adds every extra output of ``potential.outputs_fn`` (partial charges, dipole, per-atom energies, ...)
  to ``results`` when such a property is requested.

Units: positions Å, energy eV, forces eV/Å, stress eV/Å³ (ASE Voigt order xx, yy, zz, yz, xz, xy,
σ = (1/V) ∂E/∂ε, ASE sign convention).

Subclasses that bind a model to the atoms (species, total charge, ...) override
:meth:`PotentialCalculator.make_potential` and :meth:`PotentialCalculator.system_key`; a fixed potential
can be passed directly.

Jit and parameters: when ``potential.energy_fn`` is a :class:`jax.tree_util.Partial` its array leaves
(e.g. network weights) are passed to the compiled function as *arguments* rather than embedded as
constants, which avoids XLA constant folding of the weights (tens of seconds of compile time on CPU).

Precision: ``precision="float64"`` evaluates inside the thread-local ``jax.enable_x64(True)`` context,
so it does not flip the global ``jax_enable_x64`` flag for the rest of the program.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..checks import check_structure
from ..errors import ConfigError, ModelError
from ..potential import Pairs, Potential
from ..precision import PRECISIONS, check_precision, dtype_of, precision_context  # noqa: F401  (re-exported)

#: the properties computed by the energy/forces/stress kernel; everything else comes from outputs_fn
_CORE = ("energy", "free_energy", "forces", "stress")
#: pair lists with a cutoff of at least this (Å) are built with the calculator's skin and reused
#: (all-pairs lists, cutoff None, are built once per system): building SO3LR's 12 Å list of water
#: 1536 (557k pairs) takes ~56 ms; reusing it saved 12–18 ms per call net of the ~10 % more pairs
#: the skin adds (benchmarks/so3lr_profile.py)
REUSE_MIN_CUTOFF = 6.0
#: default Verlet skin (Å) of the reused lists; limited per cell to what the minimum image allows
DEFAULT_SKIN = 0.5
#: a skin thinner than this (Å) after the cell limit is not worth keeping a list for
MIN_SKIN = 0.05


@dataclass
class _ReusedList:
    """A padded pair list with the positions (Å) and cell it was built for and its skin (Å)."""

    pairs: Pairs
    positions: np.ndarray
    cell: np.ndarray | None
    skin: float  # inf for all-pairs lists

    def valid_for(self, positions, cell) -> bool:
        """True while no atom has moved by ≥ skin/2 since the build and the cell is the same: every
        pair within the cutoff now was within cutoff + skin then (Verlet's criterion)."""
        if positions.shape != self.positions.shape:
            return False
        if (cell is None) != (self.cell is None):
            return False
        if cell is not None and not np.array_equal(cell, self.cell):
            return False
        if math.isinf(self.skin):
            return True
        d = positions - self.positions
        return bool(np.einsum("ij,ij->i", d, d).max(initial=0.0) < 0.25 * self.skin * self.skin)


def cell_of(atoms) -> np.ndarray | None:
    """The (3, 3) cell in Å (rows = lattice vectors) of fully periodic atoms, None for free space
    (the one rule, :func:`biomlff.geometry.cell_from_pbc`: PeriodicityError for mixed pbc or a
    periodic system without a valid cell)."""
    from ..geometry import cell_from_pbc

    return cell_from_pbc(atoms.cell.array, atoms.pbc, name="atoms")


_KERNELS: dict = {}
_TRACES = [0]


def _make_kernel(kind: str, neighbors: dict, static: dict):
    """jax.jit of energy+forces ("ef"), +stress ("efs") or the outputs ("outputs") of a potential
    assembled from ``static`` functions and the ``dyn`` Partial functions passed at call time."""
    import jax

    from ..potential import energy_and_forces, stress

    def kernel(dyn, positions, pairs, cell):
        _TRACES[0] += 1  # trace-time side effect: counts compilations
        p = Potential(neighbors=neighbors, atomic_numbers=None, **static, **dyn)
        if kind == "outputs":
            return p.outputs_fn(positions, pairs, cell)
        e, f = energy_and_forces(p)(positions, pairs, cell)
        if kind == "efs":
            return e, f, stress(p)(positions, pairs, cell)
        return e, f

    return jax.jit(kernel)


class PotentialCalculator(Calculator):
    """ASE calculator evaluating a :class:`~biomlff.potential.Potential` (energy eV, forces eV/Å,
    stress eV/Å³ for periodic cells, plus the potential's extra outputs).

    Args:
        potential: a fixed Potential (atoms must have its atomic numbers). Subclasses may instead
            override :meth:`make_potential`.
        precision: "float32" (default) or "float64".
        capacity_margin: pair-list capacity head-room factor (≥ 1) used whenever a list grows.
        skin: Verlet skin (Å) of the reused long pair lists (cutoff ≥ :data:`REUSE_MIN_CUTOFF`):
            rebuilt once an atom has moved by half of it; 0 rebuilds every list on every call. In a
            periodic cell the skin is limited to (smallest cell height / 2 − cutoff).

    Attributes:
        n_traces: how many times a compiled function was traced (for checking that moving atoms
            does not recompile).
        capacities: current pair-list capacity per neighbour-list name.
        list_builds: how many times each pair list was built (the rest of the calls reused it).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]
    default_parameters: dict = {}
    #: output keys of outputs_fn that are renamed when stored in ``results``
    output_names: dict = {}

    def __init__(
        self,
        potential: Potential | None = None,
        *,
        precision: str = "float32",
        capacity_margin: float = 1.25,
        skin: float = DEFAULT_SKIN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.precision = check_precision(precision)
        if capacity_margin < 1.0:
            raise ConfigError(f"capacity_margin must be ≥ 1, got {capacity_margin}")
        self.capacity_margin = float(capacity_margin)
        if not (math.isfinite(skin) and skin >= 0.0):
            raise ConfigError(f"skin must be a finite length ≥ 0 Å, got {skin}")
        self.skin = float(skin)
        self._lists: dict[str, _ReusedList] = {}
        self.list_builds: dict[str, int] = {}
        self._fixed_potential = potential
        self._potential: Potential | None = None
        self._system: Hashable | None = None
        self._compiled: dict[str, Callable] = {}
        self.capacities: dict[str, int] = {}

    # ---- hooks for subclasses -------------------------------------------------------------
    def system_key(self, atoms) -> Hashable:
        """Everything besides positions and cell that the potential depends on (rebuilt when it
        changes). Default: the atomic numbers."""
        return tuple(int(z) for z in atoms.numbers)

    def make_potential(self, atoms) -> Potential:
        """Build the Potential for ``atoms`` (default: the fixed potential given at construction)."""
        pot = self._fixed_potential
        if pot is None:
            raise ConfigError(
                "PotentialCalculator needs a potential (or a subclass overriding make_potential)"
            )
        z = np.asarray(pot.atomic_numbers)
        if z.shape != atoms.numbers.shape or np.any(z != atoms.numbers):
            raise ModelError(
                f"the potential was built for atomic numbers {z.tolist()[:10]}... (N={len(z)}) but the "
                f"atoms have {atoms.numbers.tolist()[:10]}... (N={len(atoms)})"
            )
        return pot

    # ---- ASE plumbing ------------------------------------------------------------------------
    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol=tol)
        if self._system is not None and self.system_key(atoms) != self._system:
            changes = list(changes) + ["info"]
        return changes

    def reset(self):
        super().reset()

    @property
    def potential(self) -> Potential | None:
        """The Potential of the last calculation (None before the first)."""
        return self._potential

    def _ensure_potential(self, atoms) -> Potential:
        key = self.system_key(atoms)
        if self._potential is None or key != self._system:
            self._potential = self.make_potential(atoms)
            self._system = key
            self._compiled = {}
            self.capacities = {}
            self._lists = {}
        return self._potential

    def pairs_for(self, positions, cell) -> dict[str, Pairs]:
        """Padded pair lists (NumPy) for every neighbour list of the current potential, growing the
        capacity (with ``capacity_margin`` head-room) when needed. Positions Å, cell rows Å."""
        from ..neighbors import padded_pairs, pair_indices

        out = {}
        for name, spec in self._potential.neighbors.items():
            kept = self._lists.get(name)
            if kept is not None and kept.valid_for(positions, cell):
                out[name] = kept.pairs
                continue
            skin = self._skin(spec, cell)
            cutoff = None if spec.cutoff is None else spec.cutoff + (0.0 if math.isinf(skin) else skin)
            i, j = pair_indices(positions, cutoff, cell=cell, half=spec.half)
            self.list_builds[name] = self.list_builds.get(name, 0) + 1
            cap = self.capacities.get(name, 0)
            if len(i) > cap:
                # head-room only, rounded to 64: the calculator compiles per composition anyway, so
                # geometric buckets would only add padded pairs (which cost as much as real ones)
                cap = max(64, 64 * int(math.ceil(len(i) * self.capacity_margin / 64)))
                self.capacities[name] = cap
            out[name] = padded_pairs(i, j, cap)
            if skin > 0.0:
                c = None if cell is None else np.array(cell, dtype=float)
                self._lists[name] = _ReusedList(out[name], np.array(positions, dtype=float), c, skin)
            else:
                self._lists.pop(name, None)
        return out

    def _skin(self, spec, cell) -> float:
        """Skin (Å) for building list ``spec``: 0 when reuse is off (``skin=0``) or for short lists, inf
        for an all-pairs list (built once per system), else the calculator's skin limited by the
        minimum image."""
        if self.skin <= 0.0:
            return 0.0
        if spec.cutoff is None:
            return math.inf
        if spec.cutoff < REUSE_MIN_CUTOFF:
            return 0.0
        skin = self.skin
        if cell is not None:
            from ..geometry import cell_heights

            skin = min(skin, 0.5 * float(cell_heights(np.asarray(cell, dtype=float)).min()) - spec.cutoff)
        # a little below the limit, so that cutoff + skin passes the cell check after rounding
        skin *= 1.0 - 1e-9
        return skin if skin >= MIN_SKIN else 0.0

    def _function(self, kind: str) -> Callable:
        """Jit-compiled kernel ``kind`` in {"ef", "efs", "outputs"} for the current potential.

        Kernels of potentials whose functions are all :class:`jax.tree_util.Partial` objects are shared
        (module-level cache keyed by kind and neighbour specs): jax.jit then retraces only for a new
        function structure (settings) or new shapes, so rebuilding a model for a new charge, or a new
        calculator with the same settings and sizes, reuses the compiled program."""
        if kind in self._compiled:
            return self._compiled[kind]
        import jax

        pot = self._potential
        fns = {"energy_fn": pot.energy_fn, "outputs_fn": pot.outputs_fn}
        # Partial functions travel as jit arguments (their array leaves are traced, not constants)
        dynamic = {k: v for k, v in fns.items() if isinstance(v, jax.tree_util.Partial)}
        static = {k: v for k, v in fns.items() if k not in dynamic}
        key = (
            kind,
            tuple(sorted(pot.neighbors.items())),
            tuple(sorted((k, id(v)) for k, v in static.items())),
        )
        entry = _KERNELS.get(key)
        if entry is None:
            entry = (
                _make_kernel(kind, dict(pot.neighbors), static),
                static,
            )  # keep `static` alive with its id
            _KERNELS[key] = entry
        compiled = entry[0]
        # put the weights on the device once: passing NumPy leaves would copy them on every call
        # (≈ 7 ms per call for SO3LR's 131 arrays); inside the precision context so that float64
        # system arrays (charges) keep their dtype
        with precision_context(self.precision):
            dynamic = jax.device_put(dynamic)
        fn = lambda positions, pairs, cell: compiled(dynamic, positions, pairs, cell)
        self._compiled[kind] = fn
        return fn

    @property
    def n_traces(self) -> int:
        """Number of kernel traces (compilations) so far, process-wide."""
        return _TRACES[0]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        cell = cell_of(atoms)
        positions = np.asarray(atoms.positions, dtype=float)
        # the one structure check of every command (NaN, overlapping atoms, unknown elements)
        check_structure(atoms.numbers, positions, cell, name="atoms")
        pot = self._ensure_potential(atoms)
        dtype = dtype_of(self.precision)
        pairs = self.pairs_for(positions, cell)
        x = positions.astype(dtype)
        c = None if cell is None else cell.astype(dtype)
        want_core = any(p in _CORE for p in properties)
        want_stress = "stress" in properties and cell is not None
        want_outputs = any(p not in _CORE for p in properties) and pot.outputs_fn is not None
        if "stress" in properties and cell is None:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress is only defined for periodic systems (pbc=True)")
        with precision_context(self.precision):
            if want_core or want_stress:
                if want_stress:
                    e, f, s = self._function("efs")(x, pairs, c)
                    s = np.asarray(s, dtype=float)
                    s = 0.5 * (s + s.T)
                    self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
                else:
                    e, f = self._function("ef")(x, pairs, c)
                self.results["energy"] = float(e)
                self.results["free_energy"] = float(e)
                self.results["forces"] = np.asarray(f, dtype=float)
            if want_outputs:
                outs = self._function("outputs")(x, pairs, c)
                for key, val in outs.items():
                    name = self.output_names.get(key, key)
                    if name in _CORE and name in self.results:
                        continue  # keep the energy of the energy/forces kernel (same state)
                    if isinstance(val, dict):
                        self.results[name] = {k: float(v) for k, v in val.items()}
                    else:
                        arr = np.asarray(val, dtype=float)
                        self.results[name] = float(arr) if arr.ndim == 0 else arr


class ModelCalculator(PotentialCalculator):
    """ASE calculator of a model built per system by ``build(system, precision) -> Potential``
    (``system``: a :class:`~biomlff.potential.ChemicalSystem` with the atomic numbers,
    ``info["charge"]`` in e, ``info["multiplicity"]`` and the cell of fully periodic atoms); rebuilt
    whenever these change. :func:`biomlff.calculators.calculator` makes one for any registered model.

    Args: build; charge, multiplicity: defaults for atoms without them in ``info``; precision,
    capacity_margin, skin: as :class:`PotentialCalculator`."""

    def __init__(
        self,
        build: Callable,
        *,
        charge: float = 0.0,
        multiplicity: int = 1,
        precision: str = "float32",
        capacity_margin: float = 1.25,
        skin: float = DEFAULT_SKIN,
    ):
        super().__init__(None, precision=precision, capacity_margin=capacity_margin, skin=skin)
        self.build = build
        self.default_charge = float(charge)
        self.default_multiplicity = int(multiplicity)

    def system_key(self, atoms):
        charge = float(atoms.info.get("charge", self.default_charge))
        mult = int(atoms.info.get("multiplicity", self.default_multiplicity))
        return (tuple(int(z) for z in atoms.numbers), charge, mult, cell_of(atoms) is not None)

    def make_potential(self, atoms) -> Potential:
        from ..potential import ChemicalSystem

        _, charge, mult, _ = self.system_key(atoms)
        return self.build(ChemicalSystem(atoms.numbers, charge, mult, cell=cell_of(atoms)), self.precision)
