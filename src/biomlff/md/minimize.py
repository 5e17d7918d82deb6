"""Geometry optimisation for any biomlff Potential: FIRE (compiled) and L-BFGS (SciPy).

Both stop when the largest per-atom force max_i |F_i| of the free atoms is below ``fmax`` (eV/Å),
or after ``max_steps``. Fixed atoms get zero force and never move. The cell is kept fixed.

**FIRE** (Bitzek et al., PRL 97, 170201 (2006)), with the parameters of ASE's ``FIRE``: dt 0.1,
dt_max 1.0, N_min 5, f_inc 1.1, f_dec 0.5, α_start 0.1, f_α 0.99, and a step of at most ``max_step``
(0.2 Å) per atom. Written here in JAX (rather than ``jax_md.minimize.fire_descent``) because the step
must be limited in Å: with unit masses, dt is in ASE's time unit Å·√(amu/eV) ≈ 10.18 fs, so every atom
moves like a 1-amu particle and a dt of 0.4–1.0 is far beyond the stability limit of the stiff bonds
(≈ 0.3 for a C–H stretch) — only the cap on the displacement keeps such a step safe. JAX-MD's FIRE has
no cap (its default dt_max 0.4 tore SO3LR peptides apart; issue 25). Unlike ASE, which caps the norm of
the whole 3N-vector of displacements (0.2 Å in total, however many atoms), the cap here is per atom:
the step is scaled down as a whole (direction kept) until no atom moves more than ``max_step``, the
same rule as ASE's (L-)BFGS. Steps run in compiled blocks (``lax.while_loop``) with the pair lists
refreshed inside the step and re-allocated on overflow (the overflowed step is discarded and redone).

**L-BFGS**: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the free coordinates, with the energy
and forces from the same compiled program (pair lists refreshed inside it when an atom has moved
more than skin/2 since the last build, re-allocated on the host on overflow).

**Safety**: the energy (model + external) may never rise far above the starting energy ``E0``: a run
whose energy exceeds ``E0 + max(1 eV, 10 × energy_tol)`` or whose atoms moved more than
``max_displacement`` Å from the start is stopped and raises :class:`~biomlff.errors.ModelError`
(nothing more is written). ``converged`` needs max |F| < fmax *and* E ≤ E0 + ``energy_tol``
(default 1 meV per free atom); reaching max |F| < fmax at a higher energy also raises ModelError.
Covalent bonds (d < 1.2 × the sum of ASE's covalent radii) broken or formed during the run are
reported in :class:`OptResult` and as a warning (a proton transfer can be real chemistry).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import BiomlffWarning, ConfigError, ModelError
from .neighborlist import PairLists
from .steering import Steering
from .structure import System

METHODS = ("fire", "lbfgs")
#: the default method of :func:`optimize`, ``biomlff opt`` and ``md --relax`` (see docs/md.md)
DEFAULT_METHOD = "lbfgs"
#: bonds: d_ij < BOND_SCALE × (r_cov,i + r_cov,j) (ASE covalent radii)
BOND_SCALE = 1.2


@dataclass
class OptResult:
    """positions (N,3) Å, energy eV (model + external), fmax eV/Å, steps taken (FIRE steps or
    L-BFGS iterations), converged flag, reallocations of the pair lists, the method, the starting
    energy eV, the number of energy/force evaluations, and the covalent bonds (i, j) broken and
    formed between the start and the result."""

    positions: np.ndarray
    energy: float
    fmax: float
    steps: int
    converged: bool
    reallocations: int
    method: str = "fire"
    energy_start: float = math.nan
    evaluations: int = 0
    bonds_broken: list = field(default_factory=list)
    bonds_formed: list = field(default_factory=list)


def fixed_mask(fixed, n: int) -> np.ndarray:
    """Boolean (n,) mask of fixed atoms from indices or a mask (None: no atom fixed)."""
    mask = np.zeros(n, bool)
    if fixed is None:
        return mask
    fixed = np.asarray(fixed)
    if fixed.dtype == bool:
        if fixed.shape != (n,):
            raise ConfigError(f"fixed-atom mask must have length {n}")
        return fixed.copy()
    if fixed.size and (fixed.min() < 0 or fixed.max() >= n):
        raise ConfigError(f"fixed atom indices must be in 0..{n - 1}")
    mask[fixed.astype(int)] = True
    return mask


def covalent_bonds(atomic_numbers, positions, cell=None, scale: float = BOND_SCALE) -> set:
    """Covalent bonds {(i, j), i < j}: d_ij < scale × (r_cov,i + r_cov,j) with ASE's covalent radii
    (Å; minimum image for a periodic ``cell`` (3, 3) Å)."""
    from ase.data import covalent_radii
    from ase.neighborlist import primitive_neighbor_list

    z = np.asarray(atomic_numbers, int)
    r = np.asarray(positions, float)
    periodic = cell is not None
    if periodic:
        c = np.asarray(cell, float)
    else:  # ASE needs a cell: a non-periodic box around the atoms
        c = np.eye(3) * (np.ptp(r, axis=0).max() + 4.0 * scale * covalent_radii[z].max() + 1.0)
    i, j = primitive_neighbor_list("ij", [periodic] * 3, c, r, scale * covalent_radii[z])
    keep = i < j
    return set(zip(i[keep].tolist(), j[keep].tolist(), strict=True))


def bond_changes(atomic_numbers, start, end, cell=None) -> tuple[list, list]:
    """(broken, formed): sorted covalent bonds (i, j) present at ``start`` but not at ``end``
    positions (Å), and the reverse."""
    b0 = covalent_bonds(atomic_numbers, start, cell)
    b1 = covalent_bonds(atomic_numbers, end, cell)
    return sorted(b0 - b1), sorted(b1 - b0)


@dataclass(frozen=True)
class FireParams:
    """FIRE settings (ASE's defaults). dt, dt_max in ASE's time unit Å·√(amu/eV) ≈ 10.18 fs
    with unit masses; max_step Å per atom per step."""

    dt_start: float = 0.1
    dt_max: float = 1.0
    max_step: float = 0.2
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99

    def validate(self) -> FireParams:
        for name in ("dt_start", "dt_max", "max_step", "f_inc", "f_dec", "alpha_start", "f_alpha"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"FIRE {name} must be a positive number, got {v!r}")
        if self.dt_start > self.dt_max:
            raise ConfigError(f"FIRE dt_start ({self.dt_start}) must not exceed dt_max ({self.dt_max})")
        if not (self.f_dec < 1 < self.f_inc and self.f_alpha <= 1 and self.alpha_start <= 1):
            raise ConfigError("FIRE needs f_dec < 1 < f_inc, f_alpha ≤ 1 and alpha_start ≤ 1")
        if int(self.n_min) < 0:
            raise ConfigError(f"FIRE n_min must be ≥ 0, got {self.n_min}")
        return self


def fire_move(st: dict, p: dict):
    """One FIRE update of the velocities and the step (pure JAX; forces ``st["F"]`` at ``st["R"]``).

    Returns (displacement (N,3) Å, new velocities, dt, α, steps since the last reset). The first
    move (zero velocity) is a plain Euler step; later ones mix the velocity towards the force when
    the power P = F·v is positive (and after ``n_min`` such steps grow dt, shrink α), else stop
    (v = 0, dt × f_dec, α = α_start). The displacement dt·v is scaled down as a whole so that no
    atom moves more than ``max_step``; the velocity is not (as in ASE)."""
    import jax.numpy as jnp

    F, V, dt, a, n_pos = st["F"], st["V"], st["dt"], st["alpha"], st["n_pos"]
    power = jnp.vdot(F, V)
    moving = jnp.vdot(V, V) > 0  # zero only before the first move
    fnorm, vnorm = jnp.linalg.norm(F), jnp.linalg.norm(V)
    mixed = (1.0 - a) * V + a * F * (vnorm / jnp.where(fnorm > 0, fnorm, 1.0))
    mix = moving & (power > 0)  # going downhill: steer the velocity towards the force
    reset = moving & (power <= 0)  # uphill: stop
    grow = mix & (n_pos > p["n_min"])
    V = jnp.where(mix, mixed, jnp.where(reset, 0.0, V))
    dt = jnp.where(grow, jnp.minimum(dt * p["f_inc"], p["dt_max"]), jnp.where(reset, dt * p["f_dec"], dt))
    a = jnp.where(grow, a * p["f_alpha"], jnp.where(reset, p["alpha_start"], a))
    n_pos = jnp.where(reset, 0, jnp.where(mix, n_pos + 1, n_pos))
    V = V + dt * F
    dR = dt * V
    longest = jnp.sqrt(jnp.max(jnp.sum(dR * dR, axis=-1)))
    dR = dR * jnp.minimum(1.0, p["max_step"] / jnp.where(longest > 0, longest, 1.0))
    return dR, V, dt, a, n_pos


def optimize(
    potential,
    system: System,
    fmax: float = 0.05,
    max_steps: int = 1000,
    fixed=None,
    precision: str | None = None,
    method: str = DEFAULT_METHOD,
    max_step: float = 0.2,
    dt_start: float = 0.1,
    dt_max: float = 1.0,
    n_min: int = 5,
    block: int = 50,
    skin: float = 0.5,
    capacity_multiplier: float = 1.25,
    steering: Steering | None = None,
    trajectory: str | None = None,
    echo: bool = True,
    energy_tol: float | None = None,
    max_displacement: float = 20.0,
    memory: int = 20,
) -> OptResult:
    """Minimise the energy of ``system`` until max_i |F_i| < ``fmax`` eV/Å (see the module docstring).

    method: "fire" or "lbfgs". max_step: FIRE's largest displacement of an atom per step (Å);
    dt_start, dt_max (ASE time units), n_min: FIRE settings. fixed: indices (or boolean mask) of
    atoms held in place. max_steps: FIRE steps or L-BFGS iterations. block: FIRE steps per compiled
    block (one log line and trajectory frame per block; L-BFGS: per ``block`` iterations).
    energy_tol (eV, default 1 meV per free atom): the largest energy rise over the start that still
    counts as converged. max_displacement (Å): an atom moving farther from its start stops the run.
    memory: L-BFGS history length. trajectory: optional extxyz/H5MD path. Returns :class:`OptResult`;
    raises ModelError when the run blows up (energy far above the start, absurd moves, non-finite
    values)."""
    from ..precision import resolve_precision

    if method not in METHODS:
        raise ConfigError(f"unknown optimisation method {method!r}; choose one of {', '.join(METHODS)}")
    precision = resolve_precision(precision, potential, "the optimiser")
    if not (isinstance(fmax, int | float) and fmax > 0):
        raise ConfigError(f"fmax must be positive, got {fmax} eV/Å")
    if max_steps < 0:
        raise ConfigError(f"max_steps must be ≥ 0, got {max_steps}")
    if block < 1:
        raise ConfigError(f"block must be ≥ 1, got {block}")
    if not max_displacement > 0:
        raise ConfigError(f"max_displacement must be positive, got {max_displacement} Å")
    if energy_tol is not None and not energy_tol >= 0:
        raise ConfigError(f"energy_tol must be ≥ 0, got {energy_tol} eV")
    fire = FireParams(dt_start=dt_start, dt_max=dt_max, max_step=max_step, n_min=n_min).validate()
    n = system.n_atoms
    z = np.asarray(potential.atomic_numbers)
    if len(z) != n or np.any(z != system.atomic_numbers):
        raise ConfigError(f"the potential was built for different atoms than the structure {system.name}")
    mask = fixed_mask(fixed, n)
    n_free = int(n - mask.sum())
    tol = 1e-3 * max(n_free, 1) if energy_tol is None else float(energy_tol)
    runner = _Runner(potential, system, mask, precision, steering, skin, capacity_multiplier)
    limits = {"rise": max(1.0, 10.0 * tol), "disp": float(max_displacement)}
    writer = None
    if trajectory:
        from ..data.trajectory import open_trajectory

        writer = open_trajectory(trajectory, system.atomic_numbers, system.cell is not None)
    try:
        with runner.context():
            res = _minimise(method, runner, fmax, max_steps, block, fire, limits, memory, writer, echo)
    finally:
        if writer is not None:
            writer.close()
    method = res.method
    if res.fmax < fmax and not res.energy <= res.energy_start + tol:
        raise ModelError(
            f"{_NAME[method]} reached max|F| = {res.fmax:.4f} eV/Å but at E = {res.energy:.4f} eV, "
            f"{res.energy - res.energy_start:.4f} eV above the start (tolerance {tol:.4f} eV): the "
            "structure left its starting basin (fell apart?); not reporting this as converged"
        )
    res.converged = bool(res.fmax < fmax)
    res.bonds_broken, res.bonds_formed = bond_changes(
        system.atomic_numbers, system.positions, res.positions, system.cell
    )
    if res.bonds_broken or res.bonds_formed:
        msg = (
            f"{_NAME[method]}: covalent bonds changed during the optimisation of {system.name}: "
            f"{len(res.bonds_broken)} broken {res.bonds_broken[:5]}, {len(res.bonds_formed)} formed "
            f"{res.bonds_formed[:5]} (atom pairs, 0-based)"
        )
        warnings.warn(msg, BiomlffWarning, stacklevel=2)
    return res


_NAME = {"fire": "FIRE", "lbfgs": "L-BFGS", "lbfgs+fire": "L-BFGS + FIRE"}


def _minimise(method, runner, fmax, max_steps, block, fire, limits, memory, writer, echo) -> OptResult:
    """Run ``method``; an L-BFGS run whose line search fails before convergence (at the noise floor
    of float32 energies, where the forces are still accurate, or on a rough surface) goes on with
    FIRE, which needs only forces, for the remaining steps (``method`` "lbfgs+fire")."""
    start = runner.system.positions
    if method == "fire":
        res = _run_fire(runner, start, 0, fmax, max_steps, block, fire, limits, writer, echo)
    else:
        res = _run_lbfgs(runner, fmax, max_steps, block, fire, limits, memory, writer, echo)
        if not res.fmax < fmax and res.steps < max_steps:
            if echo:
                print(
                    f"# L-BFGS stalled after {res.steps} iterations at max|F| = {res.fmax:.4f} eV/Å "
                    "(line search failed): continuing with FIRE",
                    flush=True,
                )
            e_start = res.energy_start
            res = _run_fire(
                runner, res.positions, res.steps, fmax, max_steps, block, fire, limits, writer, echo
            )
            res.energy_start, method = e_start, "lbfgs+fire"
    res.method = method
    return res


#: compiled programs of the last systems optimised, so that FIRE and L-BFGS (or a second run) on the
#: same potential and structure compile once: {key: _Program}, oldest first
_PROGRAMS: dict = {}
_PROGRAMS_KEPT = 2


class _Program:
    """The compiled energy/force program of one system, shared by FIRE and L-BFGS: ``block(efn,
    state, lists, nsteps, R0, fmask, params)`` runs up to ``nsteps`` FIRE steps inside one
    ``lax.while_loop``, stopping at convergence, a pair-list overflow or a blow-up; a state with
    ``evaluated`` False is first evaluated where it stands without moving (that is also how L-BFGS
    gets energies and forces at its trial points). Everything that changes between runs (positions,
    fixed atoms, FIRE settings, limits) is an argument, so it is compiled once per shape."""

    def __init__(self, potential, system, precision, steering, skin, capacity_multiplier):
        import jax
        import jax.numpy as jnp
        from jax import lax

        from .driver import keep_unless
        from .engine import as_pytree_fn, make_evaluate

        self.potential = potential  # kept alive: the cache key holds its id
        self.dtype = jnp.float64 if precision == "float64" else jnp.float32
        self.cell = None if system.cell is None else jnp.asarray(system.cell, self.dtype)
        self.pl = pl = PairLists(
            potential.neighbors,
            system.n_atoms,
            cell=system.cell,
            skin=skin,
            capacity_multiplier=capacity_multiplier,
        )
        evaluate = make_evaluate(pl, steering.energy_fn())
        self.efn = as_pytree_fn(potential.energy_fn)
        cell = self.cell

        def block(efn, st, lists, nsteps, R0, fmask, p):
            def cond(c):
                i, s, _, ovf, blown = c
                active = (~s["evaluated"]) | (fmax_of(s["F"]) >= p["fmax"])
                return (i < nsteps) & active & (~ovf) & (~blown)

            def body(c):
                i, s, ls, _, _ = c
                moved = s["evaluated"]  # False: evaluate where the state stands
                dR, V, dt, a, n_pos = fire_move(s, p)
                R = jnp.where(moved, s["R"] + dR, s["R"])
                ls2, f = evaluate(efn, R, cell, ls)
                ovf = pl.overflowed(ls2)
                E = f.e_model + f.e_ext
                e0 = jnp.where(moved, s["e0"], E)
                s2 = dict(
                    R=R,
                    V=jnp.where(moved, V, s["V"]),
                    F=jnp.where(fmask[:, None], 0.0, f.forces),
                    E=E,
                    e0=e0,
                    dt=jnp.where(moved, dt, s["dt"]),
                    alpha=jnp.where(moved, a, s["alpha"]),
                    n_pos=jnp.where(moved, n_pos, s["n_pos"]),
                    steps=s["steps"] + jnp.where(moved, 1, 0),
                    evaluated=jnp.ones((), bool),
                )
                # an atom thrown too far is a blow-up even when the pair lists overflowed (re-allocating
                # them for such a structure would be pointless, and can be huge); the energy and forces
                # count only from a step without overflow
                far = jnp.sqrt(jnp.max(jnp.sum((R - R0) ** 2, axis=-1))) > p["disp"]
                bad = (~jnp.isfinite(E)) | (E > e0 + p["rise"]) | ~jnp.all(jnp.isfinite(s2["F"]))
                ovf = ovf & ~far
                s, ls = keep_unless(ovf, (s, ls), (s2, ls2))
                return i + jnp.where(ovf, 0, 1), s, ls, ovf, far | (bad & ~ovf)

            init = (jnp.zeros((), jnp.int32), st, lists, jnp.zeros((), bool), jnp.zeros((), bool))
            return lax.while_loop(cond, body, init)

        self.block = jax.jit(block)

    @classmethod
    def get(cls, potential, system, precision, steering, skin, capacity_multiplier) -> _Program:
        """The cached program for this potential object and system set-up (built if new)."""
        cell = None if system.cell is None else np.asarray(system.cell, float).tobytes()
        key = (
            id(potential),
            precision,
            system.n_atoms,
            cell,
            float(skin),
            float(capacity_multiplier),
            repr(steering),
        )
        prog = _PROGRAMS.pop(key, None)
        if prog is None or prog.potential is not potential:
            prog = cls(potential, system, precision, steering, skin, capacity_multiplier)
        _PROGRAMS[key] = prog
        while len(_PROGRAMS) > _PROGRAMS_KEPT:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        return prog


class _Runner:
    """One optimisation run on a :class:`_Program`: the host side of its blocks (pair-list
    re-allocation on overflow, counters)."""

    def __init__(self, potential, system, mask, precision, steering, skin, capacity_multiplier):
        self.system, self.mask, self.precision = system, mask, precision
        self.steering = (steering or Steering()).validate(system.n_atoms)
        self.args = (potential, system, precision, self.steering, skin, capacity_multiplier)
        self.realloc = 0
        self.evaluations = 0

    def context(self):
        """Enter the precision context and get the compiled program."""
        from contextlib import contextmanager

        import jax.numpy as jnp

        from ..precision import precision_context

        @contextmanager
        def ctx():
            with precision_context(self.precision):
                self.prog = _Program.get(*self.args)
                self.R0 = jnp.asarray(self.system.positions, self.prog.dtype)
                self.fmask = jnp.asarray(self.mask)
                yield

        return ctx()

    def allocate(self, R, old=None):
        """Pair lists for positions R (Å); after an overflow (``old``: the overflowed lists) with at
        least 1.25 × the old room, so that a shrinking structure does not overflow at every step."""
        pl, cell = self.prog.pl, self.prog.cell
        lists = pl.allocate(R, cell)
        if old is None:
            return lists
        from .driver import grown_capacities

        caps = grown_capacities(pl.capacities(lists), pl.capacities(old), 1.25)
        return pl.allocate(R, cell, capacities=caps)

    def fresh_state(self, R, fire: FireParams):
        """A FIRE state at positions R (Å), not yet evaluated, at rest."""
        import jax.numpy as jnp

        d = self.prog.dtype
        zeros = jnp.zeros(self.R0.shape, d)
        return dict(
            R=jnp.asarray(R, d),
            V=zeros,
            F=zeros,
            E=jnp.zeros((), d),
            e0=jnp.zeros((), d),
            dt=jnp.asarray(fire.dt_start, d),
            alpha=jnp.asarray(fire.alpha_start, d),
            n_pos=jnp.zeros((), jnp.int32),
            steps=jnp.zeros((), jnp.int32),
            evaluated=jnp.zeros((), bool),
        )

    def params(self, fmax, fire: FireParams, limits: dict) -> dict:
        """The traced settings of the block: FIRE parameters, fmax eV/Å, blow-up limits."""
        import jax.numpy as jnp

        d = self.prog.dtype
        names = ("dt_max", "max_step", "f_inc", "f_dec", "alpha_start", "f_alpha")
        p = {k: jnp.asarray(getattr(fire, k), d) for k in names}
        p["n_min"] = jnp.asarray(int(fire.n_min), jnp.int32)
        p["fmax"] = jnp.asarray(fmax, d)
        p["rise"] = jnp.asarray(limits["rise"], d)
        p["disp"] = jnp.asarray(limits["disp"], d)
        return p

    def run_block(self, state, lists, nsteps: int, p):
        """``nsteps`` more FIRE steps (a state not yet evaluated is evaluated first), fewer if the loop
        stops at convergence or a blow-up; on a pair-list overflow the lists are re-allocated on the
        host from the last good state and the block goes on. Returns (state, lists, blown)."""
        import jax.numpy as jnp

        target = int(state["steps"]) + nsteps
        while True:
            todo = target - int(state["steps"]) + (0 if bool(state["evaluated"]) else 1)
            i, state, lists, ovf, blown = self.prog.block(
                self.prog.efn, state, lists, jnp.asarray(todo, jnp.int32), self.R0, self.fmask, p
            )
            self.evaluations += int(i)
            if not bool(ovf):
                return state, lists, bool(blown)
            lists = self.allocate(state["R"], old=lists)
            self.realloc += 1
            print(f"# step {int(state['steps'])}: pair list overflow, re-allocated", file=sys.stderr)


def fmax_of(F):
    """Largest per-atom force norm (eV/Å) of forces (N, 3)."""
    import jax.numpy as jnp

    return jnp.sqrt(jnp.max(jnp.sum(F * F, axis=-1)))


def _blowup_error(name, step, e, e0, disp, limits) -> ModelError:
    return ModelError(
        f"{name} blew up at step {step}: E = {e:.4f} eV (start {e0:.4f} eV), largest displacement "
        f"{disp:.2f} Å (limits: E ≤ start + {limits['rise']:.3g} eV, {limits['disp']:.3g} Å); the "
        "structure or the model is unsuitable (overlapping atoms, a wrong charge, a model that does "
        "not cover this chemistry?) — nothing written"
    )


def _frame(writer, system, step, R, e, fm):
    if writer is not None:
        writer.write(
            step,
            0.0,
            np.asarray(R, float),
            np.zeros((system.n_atoms, 3)),
            system.cell,
            {"e_pot": float(e), "fmax": float(fm)},
        )


def _log(echo, name, step, e, fm):
    if echo:
        print(f"{name} {step:>6d}  E = {e:.6f} eV  max|F| = {fm:.5f} eV/Å", flush=True)


def _run_fire(rn: _Runner, R_start, offset, fmax, max_steps, block, fire, limits, writer, echo) -> OptResult:
    """FIRE from positions R_start (Å) for up to ``max_steps − offset`` steps; steps are counted
    (and logged) from ``offset`` (FIRE after L-BFGS)."""
    state = rn.fresh_state(R_start, fire)
    lists = rn.allocate(state["R"])
    p = rn.params(fmax, fire, limits)
    state, lists, blown = rn.run_block(state, lists, 0, p)  # evaluation at the start only
    e0 = float(state["e0"])
    while True:
        steps = offset + int(state["steps"])
        e, fm = float(state["E"]), float(fmax_of(state["F"]))
        disp = float(np.max(np.linalg.norm(np.asarray(state["R"]) - rn.system.positions, axis=1)))
        if blown or not (math.isfinite(e) and math.isfinite(fm)):
            raise _blowup_error("FIRE", steps, e, e0, disp, limits)
        if offset == 0 or steps > offset:
            _log(echo, "FIRE", steps, e, fm)
            _frame(writer, rn.system, steps, state["R"], e, fm)
        if fm < fmax or steps >= max_steps:
            break
        state, lists, blown = rn.run_block(state, lists, min(block, max_steps - steps), p)
    return OptResult(
        positions=np.asarray(state["R"], float),
        energy=e,
        fmax=fm,
        steps=steps,
        converged=fm < fmax,
        reallocations=rn.realloc,
        energy_start=e0,
        evaluations=rn.evaluations,
    )


def _run_lbfgs(rn: _Runner, fmax, max_steps, block, fire, limits, memory, writer, echo) -> OptResult:
    """scipy's L-BFGS-B on the free coordinates; the compiled program evaluates E and F."""
    from scipy.optimize import minimize

    free = ~rn.mask
    R_start = np.asarray(rn.system.positions, float)
    p = rn.params(fmax, fire, limits)
    cache: dict = {}  # positions bytes -> (E, F (N,3)); the last few evaluations
    holder = {"lists": rn.allocate(rn.R0)}

    def positions(x):
        R = R_start.copy()
        R[free] = x.reshape(-1, 3)
        return R

    def evaluate(x):
        key = x.tobytes()
        if key not in cache:
            R = positions(x)
            disp = float(np.max(np.linalg.norm(R - R_start, axis=1)))
            if disp > limits["disp"]:  # before any pair list is allocated for such a spread-out structure
                raise _blowup_error("L-BFGS", info["it"], math.nan, e0, disp, limits)
            st, holder["lists"], _ = rn.run_block(rn.fresh_state(R, fire), holder["lists"], 0, p)
            e, F = float(st["E"]), np.asarray(st["F"], float)
            if not (math.isfinite(e) and np.all(np.isfinite(F))):
                raise _blowup_error("L-BFGS", info["it"], e, e0, disp, limits)
            if len(cache) > 8:
                cache.pop(next(iter(cache)))
            cache[key] = (e, F)
        return cache[key]

    def fun(x):
        e, F = evaluate(x)
        return e, -F[free].ravel()

    x0 = R_start[free].ravel().copy()
    info = {"it": 0}
    e0 = math.nan
    e0, F0 = evaluate(x0)
    info.update(x=x0, e=e0, fm=_fmax_np(F0))
    _log(echo, "L-BFGS", 0, e0, info["fm"])
    _frame(writer, rn.system, 0, R_start, e0, info["fm"])

    def callback(intermediate_result):
        x = np.asarray(intermediate_result.x, float)
        e, F = evaluate(x)
        info.update(it=info["it"] + 1, x=x.copy(), e=e, fm=_fmax_np(F))
        R = positions(x)
        disp = float(np.max(np.linalg.norm(R - R_start, axis=1)))
        if not e <= e0 + limits["rise"] or disp > limits["disp"]:
            raise _blowup_error("L-BFGS", info["it"], e, e0, disp, limits)
        done = info["fm"] < fmax
        if done or info["it"] % block == 0:
            _log(echo, "L-BFGS", info["it"], e, info["fm"])
            _frame(writer, rn.system, info["it"], R, e, info["fm"])
        if done:
            raise StopIteration

    if info["fm"] >= fmax and max_steps > 0 and free.any():
        res = minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            # convergence is judged by the callback on max_i |F_i|; scipy's own tests are switched off
            options={
                "maxiter": int(max_steps),
                "maxfun": 20 * int(max_steps) + 20,
                "maxcor": int(memory),
                "gtol": 0.0,
                "ftol": 0.0,
            },
        )
        if info["fm"] >= fmax:
            # scipy stopped for another reason (line search failed at the noise floor, iteration limit):
            # report its last accepted point
            x = np.asarray(res.x, float)
            e, F = evaluate(x)
            if e <= info["e"]:
                info.update(x=x, e=e, fm=_fmax_np(F))
            if info["it"] % block:  # the last point was not logged yet
                _log(echo, "L-BFGS", info["it"], info["e"], info["fm"])
                _frame(writer, rn.system, info["it"], positions(info["x"]), info["e"], info["fm"])
    return OptResult(
        positions=positions(info["x"]),
        energy=info["e"],
        fmax=info["fm"],
        steps=info["it"],
        converged=info["fm"] < fmax,
        reallocations=rn.realloc,
        energy_start=e0,
        evaluations=rn.evaluations,
    )


def _fmax_np(F) -> float:
    return float(np.sqrt(np.max(np.sum(np.asarray(F) ** 2, axis=-1)))) if len(F) else 0.0
