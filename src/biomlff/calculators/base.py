"""A generic ASE calculator for any :class:`biomlff.potential.Potential`.

The calculator

* builds host-side pair lists with :func:`biomlff.neighbors.build_pairs` for every entry of
  ``potential.neighbors`` (minimum image in orthorhombic periodic cells, free space otherwise),
* reuses pair lists between calls (Verlet lists): every list is searched with a ``skin`` and kept
  as long as no atom has moved by more than half the skin and the cell is unchanged. A list whose
  cutoff is ≥ :data:`REUSE_MIN_CUTOFF` (SO3LR's 12 Å long-range list) goes to the model as it is;
  the models mask pairs beyond their cutoff, so the result is the same as with a fresh list (up to
  the order of float additions). A short list (message passing within 4.5 Å), whose extra skin pairs
  would cost the model more than a search, is cut on every call to the pairs within its cutoff:
  the same pairs in the same order as a fresh search, so the same result bit for bit, for the
  price of one distance per candidate pair instead of a k-d tree,
* pads them to a capacity that only ever grows (:func:`capacity_for`: 10 % to ``capacity_margin``
  head-room, never more than the batcher's bucket), so that moving atoms does not recompile the
  energy function as long as the pairs fit; when a structure needs more room the capacity grows
  automatically (one recompilation) — a list is never truncated,
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

Per-call cost (issue 26): a call costs the compiled function plus a fraction of a millisecond. The
state check that ASE runs before every property (:meth:`PotentialCalculator.check_state`) compares
arrays without ``np.allclose``; the system key (settings resolution, electron count, ...) is
recomputed only when the atomic numbers, cell, pbc or the ``info``/``arrays`` entries it reads change;
the structure check runs every call, its overlap part on the distances measured while cutting the
shortest pair list instead of a k-d tree of its own; and reused pair lists stay on the device.

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


#: the least capacity head-room (factor) of a grown pair list: atoms that move rarely outgrow it
MIN_HEADROOM = 1.1


def capacity_for(count: int, margin: float = 1.25) -> int:
    """The capacity (pair slots) the calculators give a list of ``count`` pairs: the batcher's bucket
    (:func:`biomlff.neighbors.bucket`, the capacity of the jitted model's own lists) or ``margin`` ×
    count (rounded up to 64), whichever is smaller, but at least :data:`MIN_HEADROOM` × count (or
    ``margin`` × count if smaller), rounded up to 64. Padded slots cost the model work (geometry of
    every slot, message blocks of 1024 pairs for the exact filters), and a list that outgrows its
    capacity recompiles: head-room between 10 % and 25 %, never more padding than the bucket. E.g.
    dha's 607 short-range pairs get 736 slots, water 1536's 29,640 get 32,768."""
    from ..neighbors import bucket

    def up64(x):
        return max(64, 64 * int(math.ceil(x / 64)))

    floor = up64(count * min(MIN_HEADROOM, margin))
    return max(floor, min(up64(count * margin), bucket(count)))


@dataclass
class _ReusedList:
    """The pairs (i, j) within cutoff + skin of the positions (Å) and cell it was built for, its skin
    (Å) and, for a list handed to the model as it is, its padded form."""

    i: np.ndarray
    j: np.ndarray
    positions: np.ndarray
    cell: np.ndarray | None
    skin: float  # inf for all-pairs lists
    pairs: Pairs | None = None

    def valid_for(self, positions, cell, moved: dict | None = None) -> bool:
        """True while no atom has moved by ≥ skin/2 since the build and the cell is the same: every
        pair within the cutoff now was within cutoff + skin then (Verlet's criterion). ``moved``:
        largest squared displacements (Å²) already computed this call, by build positions."""
        if positions.shape != self.positions.shape:
            return False
        if (cell is None) != (self.cell is None):
            return False
        if cell is not None and not np.array_equal(cell, self.cell):
            return False
        if math.isinf(self.skin):
            return True
        moved = {} if moved is None else moved
        key = id(self.positions)  # lists searched in the same call share their positions array
        if key not in moved:
            d = positions - self.positions
            moved[key] = float(np.einsum("ij,ij->i", d, d).max(initial=0.0))
        return moved[key] < 0.25 * self.skin * self.skin


def _squared_distances(i, j, positions, cell) -> np.ndarray:
    """|r_j − r_i|² (Å²) of pairs (i, j), minimum image under ``cell`` (rows Å) or free space."""
    d = positions.take(j, axis=0) - positions.take(i, axis=0)  # take: a third of fancy indexing's time
    if cell is not None:
        from ..geometry import minimum_image_np

        d = minimum_image_np(d, cell)
    return np.einsum("ij,ij->i", d, d)


def _within(kept: _ReusedList, cutoff: float, positions, cell):
    """(i, j, min r²) of the pairs of a candidate list within ``cutoff`` Å now: every such pair is a
    candidate while ``kept`` is valid (Verlet), and cutting keeps the sorted order, so this is the
    list of :func:`biomlff.neighbors.pair_indices` (which also keeps pairs at exactly the cutoff).
    min r² (Å²) over all candidates is the closest approach of any two atoms within the cutoff."""
    r2 = _squared_distances(kept.i, kept.j, positions, cell)
    keep = r2 <= cutoff * cutoff
    return kept.i[keep], kept.j[keep], float(r2.min(initial=math.inf))


def same_array(a, b, tol: float = 1e-15) -> bool:
    """ASE's ``equal(a, b, atol=tol)`` (``np.allclose`` with rtol 0: same shape, |a − b| ≤ tol) at a
    fraction of its cost: bitwise-equal arrays first, then the tolerance for floating arrays. (Written
    here because ``np.allclose`` costs ~0.1 ms per array and ASE checks five arrays before every
    property. It differs only for arrays holding NaN, the same here, or ±inf at the same places,
    different here: structures that the structure check refuses before they have results.)"""
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    b = b if isinstance(b, np.ndarray) else np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():  # (the same NaN is "same" here: a structure
        return True  # with NaN is refused before it has results, so no result is ever reused for it)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        with np.errstate(invalid="ignore"):
            return bool((np.abs(a - b) <= tol).all())
    return bool((a == b).all())


def compare_atoms(atoms1, atoms2, tol: float = 1e-15, excluded_properties=()) -> list[str]:
    """The system changes between two Atoms that :func:`ase.calculators.calculator.compare_atoms`
    reports (cell, pbc and the per-atom arrays of ``all_changes``; an array present in only one of
    them counts as changed), through :func:`same_array`."""
    if atoms1 is None:
        return list(all_changes)
    check = [p for p in all_changes if p not in excluded_properties]
    old, new = {"cell": atoms1.cell.array, "pbc": atoms1.pbc}, {"cell": atoms2.cell.array, "pbc": atoms2.pbc}
    changes = [p for p in ("cell", "pbc") if p in check and not same_array(old[p], new[p], tol)]
    a1, a2 = atoms1.arrays, atoms2.arrays
    for p in check:
        if p in ("cell", "pbc") or (p not in a1 and p not in a2):
            continue
        if p not in a1 or p not in a2 or not same_array(a1[p], a2[p], tol):
            changes.append(p)
    return changes


def _frozen(value):
    """A value of ``atoms.info`` / ``atoms.arrays`` as something ``==`` compares exactly (arrays by
    dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (str, int, float, np.generic, type(None))) or _frozen_dataclass(value):
        return value  # immutable: compared as it is
    return repr(value)


def _frozen_dataclass(value) -> bool:
    params = getattr(type(value), "__dataclass_params__", None)
    return params is not None and params.frozen


_ABSENT = ("absent",)


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
    import jax.numpy as jnp

    from ..potential import energy_and_forces, stress

    def kernel(dyn, positions, pairs, cell):
        _TRACES[0] += 1  # trace-time side effect: counts compilations
        fns = {"energy_fn": None, **static, **dyn}
        p = Potential(neighbors=neighbors, atomic_numbers=None, **fns)
        if kind == "outputs":
            return p.outputs_fn(positions, pairs, cell)
        e, f = energy_and_forces(p)(positions, pairs, cell)
        if kind == "efs":
            return e, f, stress(p)(positions, pairs, cell)
        if e.dtype == f.dtype:  # one array: one device-to-host copy instead of two
            return jnp.concatenate([jnp.reshape(e, (1,)), jnp.ravel(f)])
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
        skin: Verlet skin (Å) of the reused pair lists: searched again once an atom has moved by half
            of it; 0 searches every list on every call. In a periodic cell the skin is limited to
            (smallest cell height / 2 − cutoff).

    Attributes:
        n_traces: how many times a compiled function was traced (for checking that moving atoms
            does not recompile).
        capacities: current pair-list capacity per neighbour-list name.
        list_builds: how many times each pair list was searched (the rest of the calls reused it).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]
    default_parameters: dict = {}
    #: output keys of outputs_fn that are renamed when stored in ``results``
    output_names: dict = {}
    #: what :meth:`system_key` reads besides the atomic numbers, cell and pbc: entries of
    #: ``atoms.info`` and ``atoms.arrays`` and attributes of the calculator. The key is recomputed only
    #: when one of these changes; a subclass whose key reads anything else names it here.
    key_info: tuple = ("charge", "multiplicity")
    key_arrays: tuple = ()
    key_attributes: tuple = ()
    _stated = None  # the atoms whose state check_state has just put into _memo (within get_property)

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
        self._device_fns: dict = {}  # the potential's Partial functions with their leaves on the device
        self.capacities: dict[str, int] = {}
        self._memo: tuple | None = None  # (fingerprint, system key, cell) of the last atoms seen
        self._checked: tuple | None = None  # the _memo whose atoms passed check_structure
        self._system_memo: tuple | None = None  # the _memo the current potential was built for
        self._current: dict[str, tuple] = {}  # (i, j, min r² Å² or None) of the lists of the last call
        self._device: dict[str, tuple] = {}  # name -> (NumPy Pairs, their device copy)

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
        """ASE's state check (run before every property) through the cheap :func:`compare_atoms`,
        plus "info" when the system key changed."""
        changes = compare_atoms(self.atoms, atoms, tol, set(self.ignored_changes))
        if self._system is not None:
            if self._key(atoms) != self._system:
                changes.append("info")
            self._stated = atoms  # _memo is the state of these atoms (see get_property)
        return changes

    def _fingerprint(self, atoms) -> tuple:
        """Everything :meth:`system_key` and :func:`cell_of` read, in a form that compares exactly."""
        info, arrays = atoms.info, atoms.arrays
        return (
            atoms.numbers.tobytes(),
            np.asarray(atoms.pbc).tobytes(),
            atoms.cell.array.tobytes(),
            tuple(_frozen(info[k]) if k in info else _ABSENT for k in self.key_info),
            tuple(_frozen(arrays[k]) if k in arrays else _ABSENT for k in self.key_arrays),
            tuple(getattr(self, k, None) for k in self.key_attributes),  # immutable values
        )

    def _key(self, atoms):
        """:meth:`system_key` of ``atoms`` through :meth:`_state`: the key of the current potential
        itself (compared by identity, not element by element) while nothing it reads changed."""
        self._state(atoms)
        return self._memo_key()

    def _memo_key(self):
        """The system key of the atoms in ``_memo``: the current potential's own key object while
        it was built for that state (compared by identity, not element by element)."""
        return self._system if self._system_memo is self._memo else self._memo[1]

    def _state(self, atoms) -> tuple:
        """(:meth:`system_key`, :func:`cell_of`) of ``atoms``, recomputed only when their fingerprint
        changes: resolving the key (settings, electron count, fragments) costs ~0.1–0.3 ms, and ASE asks
        for it before every property."""
        fp = self._fingerprint(atoms)
        if self._memo is None or self._memo[0] != fp:
            key = self.system_key(atoms)
            cell = cell_of(atoms)
            self.check_system(key, cell)
            if cell is not None:
                cell.flags.writeable = False  # shared by the calls until the fingerprint changes
            self._memo = (fp, key, cell)
        return self._memo[1], self._memo[2]

    def check_system(self, key, cell) -> None:
        """Checks of a new system key or cell (Å rows, None in free space) that raise a
        :class:`~biomlff.errors.BiomlffError`; run once per change, not per call. Default: none."""

    def reset(self):
        super().reset()

    @property
    def potential(self) -> Potential | None:
        """The Potential of the last calculation (None before the first)."""
        return self._potential

    def _ensure_potential(self, atoms) -> Potential:
        """The potential for ``atoms``, whose state :meth:`_state` has just computed (``_memo``)."""
        key = self._memo_key()
        if self._potential is None or key != self._system:
            self._potential = self.make_potential(atoms)
            self._system = key
            self._compiled = {}
            self._device_fns = {}
            self.capacities = {}
            self._lists = {}
            self._device = {}
        self._system_memo = self._memo  # the key of these atoms is the potential's
        return self._potential

    def pairs_for(self, positions, cell) -> dict[str, Pairs]:
        """Padded pair lists (NumPy) for every neighbour list of the current potential, growing the
        capacity (with ``capacity_margin`` head-room) when needed. Positions Å, cell rows Å.

        A list with a skin is searched (k-d tree, ``list_builds``) only when an atom has moved by half
        the skin or the cell changed; a long list (cutoff ≥ :data:`REUSE_MIN_CUTOFF`) then goes to the
        model as it is, a short one is cut to the pairs within its cutoff on every call, which is the
        list a fresh search returns (same pairs, same order) at a fraction of its cost."""
        out = {}
        self._current = {}
        moved: dict = {}  # see _ReusedList.valid_for
        snapshot: list = []  # the positions (and cell) of the lists searched in this call, shared
        for name, spec in self._potential.neighbors.items():
            kept = self._lists.get(name)
            if kept is None or not kept.valid_for(positions, cell, moved):
                kept = self._search(name, spec, positions, cell, snapshot)
            if kept.pairs is None:  # a short list: cut from its candidates
                i, j, r2min = _within(kept, spec.cutoff, positions, cell)
                out[name] = self._padded(name, i, j)
                self._current[name] = (i, j, r2min)
            else:
                out[name] = kept.pairs
                self._current[name] = (kept.i, kept.j, None)
        return out

    def _search(self, name, spec, positions, cell, snapshot: list) -> _ReusedList:
        """Search list ``spec`` at its cutoff + skin (kept for the next calls when the skin is > 0).
        ``snapshot``: [positions, cell] copies shared by the lists searched in the same call."""
        from ..neighbors import pair_indices

        skin = self._skin(spec, cell)
        cutoff = None if spec.cutoff is None else spec.cutoff + (0.0 if math.isinf(skin) else skin)
        i, j = pair_indices(positions, cutoff, cell=cell, half=spec.half)
        self.list_builds[name] = self.list_builds.get(name, 0) + 1
        if not snapshot:
            c = None if cell is None else np.array(cell, dtype=float)
            snapshot += [np.array(positions, dtype=float), c]
        kept = _ReusedList(i, j, snapshot[0], snapshot[1], skin)
        short = spec.cutoff is not None and spec.cutoff < REUSE_MIN_CUTOFF and skin > 0.0
        if not short:
            kept.pairs = self._padded(name, i, j)
        if skin > 0.0:
            self._lists[name] = kept
        else:
            self._lists.pop(name, None)
        return kept

    def _padded(self, name, i, j) -> Pairs:
        """Pairs (i, j) padded to the capacity of list ``name``, grown first when they do not fit."""
        from ..neighbors import padded_pairs

        cap = self.capacities.get(name, 0)
        if len(i) > cap:
            cap = capacity_for(len(i), self.capacity_margin)
            self.capacities[name] = cap
        return padded_pairs(i, j, cap)

    def _on_device(self, pairs: dict[str, Pairs]) -> dict[str, Pairs]:
        """The pair lists for the compiled function: a list reused from the last call goes to the device
        once and stays there (SO3LR's 12 Å list of water 1536 holds 770k slots, 7 MB); a list seen
        for the first time goes as NumPy arrays (jax.device_put costs more than the jit call's own
        copy of a fresh list: 0.5 ms per call for dha's 4.5 Å list)."""
        import jax

        out = {}
        for name, p in pairs.items():
            kept = self._device.get(name)
            if kept is None or kept[0] is not p:
                self._device[name] = (p, None)
                out[name] = p
                continue
            if kept[1] is None:
                kept = (p, jax.device_put(p))
                self._device[name] = kept
            out[name] = kept[1]
        return out

    def check_overlaps(self, numbers, positions, cell) -> None:
        """:func:`biomlff.checks.check_structure`'s overlap rule (DataError for two atoms closer than
        ``checks.MIN_DISTANCE`` Å) on the pairs of the shortest pair list of this call (complete within
        its cutoff, also when reused), which costs a fraction of the k-d tree of check_structure's own;
        only when an atom pair is that close (or the potential has no list with a cutoff) does
        check_structure run, and it names the atoms. Positions Å, cell rows Å or None."""
        from ..checks import MIN_DISTANCE

        cutoffs = {n: s.cutoff for n, s in self._potential.neighbors.items() if n in self._current}
        cutoffs = {n: c for n, c in cutoffs.items() if c is not None and c >= MIN_DISTANCE}
        if not cutoffs:
            check_structure(numbers, positions, cell, name="atoms")
            return
        i, j, r2min = self._current[min(cutoffs, key=cutoffs.get)]
        if r2min is None:  # not measured while cutting the list
            r2min = float(_squared_distances(i, j, positions, cell).min(initial=math.inf))
        # a hair above the limit: the rounding of this distance and of the k-d tree's may differ
        if r2min <= (MIN_DISTANCE * (1 + 1e-6)) ** 2:
            check_structure(numbers, positions, cell, name="atoms")

    def _skin(self, spec, cell) -> float:
        """Skin (Å) for building list ``spec``: 0 when reuse is off (``skin=0``), inf for an all-pairs
        list (built once per system), else the calculator's skin limited by the minimum image."""
        if self.skin <= 0.0:
            return 0.0
        if spec.cutoff is None:
            return math.inf
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
        # only the function the kernel calls: every leaf passed costs the call (dispatch)
        fns = {"outputs_fn": pot.outputs_fn} if kind == "outputs" else {"energy_fn": pot.energy_fn}
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
        # put the weights on the device once (one copy per function, shared by "ef" and "efs"):
        # passing NumPy leaves would copy them on every call (≈ 7 ms per call for SO3LR's 131
        # arrays); inside the precision context so that float64 system arrays (charges) keep their dtype
        for name, f in dynamic.items():
            if name not in self._device_fns:
                with precision_context(self.precision):
                    self._device_fns[name] = jax.device_put(f)
            dynamic[name] = self._device_fns[name]
        fn = lambda positions, pairs, cell: compiled(dynamic, positions, pairs, cell)
        self._compiled[kind] = fn
        return fn

    @property
    def n_traces(self) -> int:
        """Number of kernel traces (compilations) so far, process-wide."""
        return _TRACES[0]

    def get_property(self, name, atoms=None, allow_calculation=True):
        # ASE calls calculate(atoms) right after check_state(atoms), which left the state of the same
        # atoms in _memo: calculate uses it instead of computing it again (see calculate)
        self._stated = None
        try:
            return super().get_property(name, atoms, allow_calculation)
        finally:
            self._stated = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        fresh = atoms is not None and atoms is self._stated  # _memo holds their state (get_property)
        # Calculator.calculate keeps a copy of the atoms (and creates the directory of calculators
        # that write files, which these do not)
        if atoms is not None:
            self.atoms = atoms.copy()
        atoms = self.atoms
        _, cell = self._memo[1:] if fresh else self._state(atoms)
        positions = np.asarray(atoms.positions, dtype=float)
        # the one structure check of every command: all of it (shapes, elements, NaN) when the system
        # changed, one sum for NaN/inf on the other calls; overlapping atoms on the pair lists below
        if self._checked is not self._memo or not np.isfinite(positions.sum()):
            check_structure(atoms.numbers, positions, cell, name="atoms", min_distance=0)
            self._checked = self._memo
        pot = self._ensure_potential(atoms)
        dtype = dtype_of(self.precision)
        pairs = self.pairs_for(positions, cell)
        self.check_overlaps(atoms.numbers, positions, cell)
        pairs = self._on_device(pairs)
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
                    out = self._function("ef")(x, pairs, c)
                    if isinstance(out, tuple):
                        e, f = out
                    else:  # energy and forces in one array (_make_kernel)
                        out = np.asarray(out)
                        e, f = out[0], out[1:].reshape(-1, 3)
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

    key_attributes = ("default_charge", "default_multiplicity")

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
