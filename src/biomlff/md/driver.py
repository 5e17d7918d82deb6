"""The run loop shared by classical MD (:class:`~biomlff.md.simulation.Simulation`) and path-integral
MD (:class:`~biomlff.md.pimd.PIMDSimulation`): compiled blocks of steps, pair-list overflow
handling, checkpoints, the log table, trajectory frames, per-step model outputs and the progress bar.

One block = ``lax.while_loop`` over up to ``n`` steps of (integrator + pair-list refresh + model),
compiled once. The loop stops early at the first step whose pair list overflowed: that step's
result is discarded (the carry keeps the last good state), the lists are re-allocated on the host
from the last good state with more room, and the block continues from there — only the step that
overflowed is recomputed and a step computed with an overflowed list is never kept. Re-allocations
are counted in the log.

With ``MDSettings.log_outputs`` (keys of ``Potential.outputs_fn``, e.g. ``("dipole",)``) the block
also evaluates those outputs after every step and returns them stacked (one row per step); they are
written to ``<output stem>.outputs.dat`` (one line per step) and added as columns to the log. Without
it the block is exactly the plain loop.

A subclass provides the integrator (``self.integrator`` with ``step(state, lists, evaluate)`` and
``observables(state)``), the pair-list hooks (:meth:`_overflowed`, :meth:`_allocate`,
:meth:`_capacities`), the log columns (:meth:`_value_columns`, :meth:`_row`), the trajectory
writers (:meth:`_open_writers`, :meth:`_write_frames`) and the checkpoint metadata (:meth:`_meta`).

Units: time fs in the settings (log in ps), energies eV, lengths Å.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .. import units
from ..errors import ConfigError, DataError, ModelError
from ..fileio import open_npz, read_tree, save_tree, tree_header
from ..geometry import cell_heights
from ..precision import precision_context

#: version of the MD/PIMD checkpoint content; 1: the layout before the one container (``meta`` entry,
#: read by :func:`read_checkpoint` still), 2: :func:`biomlff.fileio.save_tree` of kind CHECKPOINT_KIND
CHECKPOINT_VERSION = 2
CHECKPOINT_KIND = "md-checkpoint"


def grown_capacities(new: dict, old: dict, grow: float) -> dict:
    """Pair-list buffer sizes {name: (occupancy | pair capacity, cell-list capacity | None, compact
    capacity, *grid)}: at least what ``new`` (a fresh allocation) needs and ``grow`` × the ``old``
    ones; a blocked list's grid (cells per axis, origin) is the fresh one."""
    caps = {}
    for k, (occ, clc, comp, *grid) in new.items():
        o_occ, o_clc, o_comp = tuple(old.get(k, (0, None, 0)))[:3]
        occ = max(occ, int(math.ceil(o_occ * grow)))
        if clc is not None and o_clc is not None:
            clc = max(clc, int(math.ceil(o_clc * grow)))
        caps[k] = (occ, clc, max(comp, int(math.ceil(o_comp * grow))), *grid)
    return caps


def keep_unless(overflowed, old, new):
    """``old`` where ``overflowed`` (a traced bool) else ``new``, leaf by leaf: a step computed with an
    overflowed pair list is never kept."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a, b: jnp.where(overflowed, a, b), old, new)


def ns_per_day(nsteps: int, dt_fs: float, seconds: float) -> float:
    """Simulated ns per wall-clock day of ``nsteps`` steps of ``dt_fs`` fs done in ``seconds``."""
    if not (seconds > 0 and nsteps):
        return 0.0
    return (nsteps * dt_fs / units.to_fs["ns"]) / (seconds / 86400.0)


def output_columns(outputs: dict) -> dict:
    """Flat log columns of model outputs: a scalar keeps its name, a (3,) vector gets _x, _y, _z,
    anything else _0, _1, … (row-major)."""
    cols = {}
    for key, v in outputs.items():
        a = np.asarray(v, float)
        if a.ndim == 0:
            cols[key] = float(a)
        elif a.shape == (3,):
            cols.update({f"{key}_{c}": float(x) for c, x in zip("xyz", a, strict=True)})
        else:
            cols.update({f"{key}_{i}": float(x) for i, x in enumerate(a.reshape(-1))})
    return cols


def truncate_table(path: Path, step: int) -> None:
    """Drop the lines of a text table whose first number (the step) is after ``step`` (on resume)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines(keepends=True):
        head = line.split(None, 1)
        if line.startswith("#") or not head or (head[0].isdigit() and int(head[0]) <= step):
            keep.append(line)
        elif not head[0].isdigit():
            break
    path.write_text("".join(keep))


def write_checkpoint(path, meta: dict, state: dict, lists: dict) -> None:
    """Write a checkpoint (.npz) atomically (temporary file + fsync + rename) as one container
    (:func:`biomlff.fileio.save_tree`, kind "md-checkpoint"): the JSON ``meta``, every state array
    (``state/<name>``) and the pair-list reference (``lists/``: positions, cell, rebuild count)."""
    keep = ("ref_positions", "rebuilds", "ref_cell")
    tree = {
        "state": {k: np.asarray(v) for k, v in state.items()},
        "lists": {k: np.asarray(lists[k]) for k in keep if k in lists},
    }
    save_tree(path, tree, meta, kind=CHECKPOINT_KIND, fsync=True)


def _read_checkpoint_v1(z) -> tuple[dict, dict, dict]:
    """(meta, state, lists) of a checkpoint of the layout before the one container (version 1)."""
    meta = json.loads(str(z["meta"]))
    if not isinstance(meta, dict):
        raise DataError(f"{z.what} {z.path}: its 'meta' entry is not checkpoint metadata")
    state = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("state/")}
    lists = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("lists/")}
    return meta, state, lists


def read_checkpoint(path, what: str = "MD checkpoint") -> dict:
    """Read a checkpoint written by :func:`write_checkpoint` (or by biomlff before the one container,
    version 1) → {'meta', 'state', 'lists'}. An empty, truncated, corrupt or foreign file is a
    DataError naming it and ``what`` (through the one loader, :func:`biomlff.fileio.open_npz`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {path} does not exist")
    with open_npz(path, what) as z:
        if tree_header(z) is None:
            (meta, state, lists), expected = _read_checkpoint_v1(z), 1
        else:
            (tree, meta), expected = read_tree(z, kind=CHECKPOINT_KIND), CHECKPOINT_VERSION
            state, lists = tree.get("state", {}), tree.get("lists", {})
        for key in ("step", "R"):
            if key not in state:
                raise z.missing(f"state/{key}")
    if meta.get("version") != expected:
        raise DataError(f"checkpoint {path} has version {meta.get('version')}, expected {expected}")
    return {"meta": meta, "state": state, "lists": lists}


def check_checkpoint(rs: dict, checkpoint, potential, settings, system) -> None:
    """Refuse to resume a checkpoint of other atoms (than ``potential`` and ``system``) or of another
    precision (ConfigError naming the problem)."""
    meta = rs["meta"]
    z = np.asarray(meta["atomic_numbers"])
    zp = np.asarray(potential.atomic_numbers)
    if (
        len(z) != len(zp)
        or np.any(z != zp)
        or (system is not None and (system.n_atoms != len(z) or np.any(system.atomic_numbers != z)))
    ):
        raise ConfigError(
            f"checkpoint {checkpoint} is for a different system ({len(z)} atoms) than the "
            f"structure/model given ({len(zp)} atoms); refusing to resume"
        )
    from ..precision import resolve_precision

    if resolve_precision(settings.precision, potential, "MD") != meta["precision"]:
        raise ConfigError(
            f"checkpoint {checkpoint} was written in {meta['precision']}; resume with "
            f"--precision {meta['precision']}"
        )


def system_from_checkpoint(rs: dict, positions, checkpoint, system):
    """The :class:`~biomlff.md.structure.System` a resumed run continues (positions Å from the
    checkpoint, elements and masses from its metadata)."""
    from .structure import System

    meta, cell = rs["meta"], rs["state"].get("cell")
    return System(
        atomic_numbers=np.asarray(meta["atomic_numbers"]).astype(np.int32),
        positions=np.asarray(positions, float),
        masses=np.asarray(meta["masses"], float),
        cell=None if cell is None else np.asarray(cell, float),
        name=system.name if system is not None else Path(checkpoint).name,
    )


# ---------------------------------------------------------------------------------------------
class Driver:
    """The shared run loop (see module docstring). Subclasses call ``Driver.__init__`` after setting
    their own settings; it checks the potential against the system and calls ``self._build()``."""

    #: what the messages call the run
    what = "the simulation"
    #: the ``kind`` its checkpoints carry (None: classical MD) and the error for one of another kind
    checkpoint_kind: str | None = None
    wrong_checkpoint = "{path} is a PIMD checkpoint; resume it with 'biomlff md pimd'"

    @classmethod
    def load_checkpoint(cls, path) -> dict:
        """Read a checkpoint written by :meth:`save_checkpoint` → {'meta', 'state', 'lists'}."""
        rs = read_checkpoint(path, "PIMD checkpoint" if cls.checkpoint_kind == "pimd" else "MD checkpoint")
        if rs["meta"].get("kind") != cls.checkpoint_kind:
            raise DataError(cls.wrong_checkpoint.format(path=path))
        return rs

    def __init__(self, potential, system, settings, _restart: dict | None = None):
        from dataclasses import replace

        from ..precision import resolve_precision

        settings = settings.validate()
        # one owner of precision: the potential's, unless the settings ask for it explicitly (then they
        # must agree)
        self.settings = replace(settings, precision=resolve_precision(settings.precision, potential, "MD"))
        self.system = system
        self.potential = potential
        z = np.asarray(potential.atomic_numbers)
        if len(z) != system.n_atoms or np.any(z != system.atomic_numbers):
            raise ConfigError(
                f"the potential was built for {len(z)} atoms with different elements than "
                f"the structure {system.name} ({system.n_atoms} atoms)"
            )
        self.periodic = system.cell is not None
        self.history: list[dict] = []
        self.reallocations = 0
        self.messages: list[str] = []
        self._restart = _restart
        self._ran = False
        self._step_outputs = None  # (outputs_fn, pairlists) → dict, traced, when log_outputs is set
        self._last_outputs: dict = {}
        with self._ctx():
            self._build()
            # the starting temperature sets the guard's limit (a file's hot velocities are not a fault)
            self._t_start = 0.0
            self._t_start = float(np.asarray(self._guard_values(self.state))[0])

    def _ctx(self):
        return precision_context(self.settings.precision)

    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.settings.precision == "float64" else jnp.float32

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def cell(self):
        """Current cell (3, 3) Å, or None in free space."""
        return None if "cell" not in self.state else np.asarray(self.state["cell"], float)

    def _make_pairlists(self, variable_cell: bool = False):
        """The system's :class:`~biomlff.md.neighborlist.PairLists` for the potential's neighbour specs
        (skin Å and capacity head-room from the settings)."""
        from .neighborlist import PairLists

        cell = None if self.system.cell is None else np.asarray(self.system.cell, float)
        return PairLists(
            self.potential.neighbors,
            self.system.n_atoms,
            cell=cell,
            skin=self.settings.skin,
            capacity_multiplier=self.settings.capacity_multiplier,
            variable_cell=variable_cell,
            builder=self.settings.pair_lists,
        )

    def _bind_model(self, make_evaluate, variable_cell: bool = False):
        """Set ``self.pairlists``, the model call ``self._evaluate = make_evaluate(pairlists)`` and the
        pytree energy function; returns the starting cell (Å, None in free space)."""
        from .engine import as_pytree_fn

        self.pairlists = self._make_pairlists(variable_cell=variable_cell)
        self._evaluate = make_evaluate(self.pairlists)
        self._energy_fn = as_pytree_fn(self.potential.energy_fn)
        return None if self.system.cell is None else np.asarray(self.system.cell, float)

    def _compile(self, outputs_fn=None, step_outputs=None):
        """Compile the block (and the per-step outputs when ``settings.log_outputs`` asks for them)."""
        import jax

        keys = tuple(self.settings.log_outputs)
        if keys and step_outputs is None:
            raise ConfigError(f"per-step model outputs (log_outputs) are not available in {self.what}")
        if keys and outputs_fn is None:
            raise ConfigError(f"model outputs {list(keys)} requested for the log, but the model has none")
        self._outputs_fn = outputs_fn
        self._step_outputs = step_outputs if keys else None
        self._outputs_once = jax.jit(step_outputs) if keys else None
        self._block = jax.jit(self._block_fn, static_argnames=("rows",))
        self._observe = jax.jit(self.integrator.observables)

    # --- the compiled block ----------------------------------------------------------------------
    def _block_fn(self, energy_fn, state, lists, n, outputs_fn=None, rows: int = 0):
        """Up to ``n`` steps; stops at the first overflow or unphysical step. Returns (state, lists,
        steps done, stop code (0 none, 1 pair-list overflow, 2 guard), guard values of the rejected
        step, per-step outputs {key: (rows, …)} or None)."""
        import jax
        import jax.numpy as jnp
        from jax import lax

        integ = self.integrator
        evaluate = self._bound_evaluate(energy_fn)
        keys = tuple(self.settings.log_outputs)

        def advance(st, ls):
            st2, ls2 = integ.step(st, ls, evaluate)
            # an overflowed list (code 1), or a step the guard calls unphysical (code 2), is not kept:
            # the loop stops with the last good state; the host then re-allocates, or stops the run
            ovf = self._overflowed(ls2)
            vals = self._guard_values(st2)
            code = jnp.where(ovf, 1, jnp.where(self._guard_tripped(vals), 2, 0)).astype(jnp.int32)
            st, ls = keep_unless(code > 0, (st, ls), (st2, ls2))
            return st, ls, code, vals

        def cond(c):
            return (c[0] < n) & (c[3] == 0)

        zero = jnp.zeros((), jnp.int32)
        vals0 = jax.eval_shape(self._guard_values, state)
        vals0 = jnp.zeros(vals0.shape, vals0.dtype)
        if not rows:

            def body(c):
                i, st, ls, _, _ = c
                st, ls, code, vals = advance(st, ls)
                return i + jnp.where(code > 0, 0, 1), st, ls, code, vals

            i, state, lists, code, vals = lax.while_loop(cond, body, (zero, state, lists, zero, vals0))
            return state, lists, i, code, vals, None

        def pick(st, ls):
            out = self._step_outputs(outputs_fn, st, ls)
            return {k: out[k] for k in keys if k in out}

        def body_out(c):
            i, st, ls, _, _, buf = c
            st, ls, code, vals = advance(st, ls)
            # a row written for an overflowed step is overwritten by the recomputed one
            buf = jax.tree_util.tree_map(
                lambda b, v: lax.dynamic_update_index_in_dim(b, v, i, 0), buf, pick(st, ls)
            )
            return i + jnp.where(code > 0, 0, 1), st, ls, code, vals, buf

        shapes = jax.eval_shape(pick, state, lists)
        buf = jax.tree_util.tree_map(lambda s: jnp.zeros((rows,) + s.shape, s.dtype), shapes)
        i, state, lists, code, vals, buf = lax.while_loop(
            cond, body_out, (zero, state, lists, zero, vals0, buf)
        )
        return state, lists, i, code, vals, buf

    # --- the guard against unphysical dynamics ---------------------------------------------------
    def _guard_values(self, st):
        """(2,) traced [instantaneous temperature K, max_i |F_i| eV/Å] of a state; NaN/inf stay so.
        The temperature is Σ p²/m over all momentum components by equipartition (ring-polymer
        beads included, so it is the bead temperature of PIMD)."""
        import jax.numpy as jnp

        p, f = st["P"], st["F"]
        m = jnp.asarray(self.system.masses, p.dtype)[:, None]
        t = jnp.sum(p * p / m) / (p.size * units.kB)
        fmax = jnp.sqrt(jnp.max(jnp.sum(f * f, axis=-1)))
        return jnp.stack([t, fmax])

    def _guard_limits(self) -> tuple[float, float]:
        """(temperature K, force eV/Å) above which a step is unphysical (inf: no limit): the
        temperature factor × max(target, starting temperature, 300 K), and the force bound."""
        s = self.settings
        t_lim = math.inf
        if s.guard_temperature_factor > 0:
            t_lim = s.guard_temperature_factor * max(300.0, self._target_temperature(), self._t_start)
        return t_lim, (s.guard_max_force if s.guard_max_force > 0 else math.inf)

    def _target_temperature(self) -> float:
        """The run's target temperature in K (0 when it has none)."""
        spec = getattr(self, "ensemble", None) or getattr(self, "pimd", None)
        return float(getattr(spec, "temperature_K", 0.0))

    def _guard_tripped(self, vals):
        """Traced bool: the values of :meth:`_guard_values` are non-finite or above the limits."""
        import jax.numpy as jnp

        t_lim, f_lim = self._guard_limits()
        bad = ~jnp.all(jnp.isfinite(vals))
        return bad | (vals[0] > t_lim) | (vals[1] > f_lim)

    def _guard_message(self, vals, step: int) -> str:
        """Why the run stopped at ``step`` (the values of the rejected step)."""
        t, f = (float(v) for v in np.asarray(vals, float))
        t_lim, f_lim = self._guard_limits()
        if not (math.isfinite(t) and math.isfinite(f)):
            why = "the energy or forces became NaN/inf"
        elif t > t_lim:
            why = (
                f"the temperature reached {t:.4g} K, more than {self.settings.guard_temperature_factor:g} × "
                f"{t_lim / self.settings.guard_temperature_factor:g} K"
            )
        else:
            why = f"a force reached {f:.4g} eV/Å, more than the bound of {f_lim:g} eV/Å"
        return (
            f"{self.what} became unphysical at step {step}: {why}. Stopped there; nothing after step "
            f"{step - 1} was written. Reduce --dt, relax the structure first (biomlff opt, or --relax), "
            "or check the model and the structure (the guard's limits: --guard-temperature-factor, "
            "--guard-max-force; 0 disables)"
        )

    def _output_rows(self) -> int:
        """Static length of the per-step output buffer: the shortest output interval (≤ 1000)."""
        s = self.settings
        every = [e for e in (s.log_every, s.traj_every, s.checkpoint_every) if e]
        return min(every + [1000])

    def advance(self, n: int) -> int:
        """Run exactly ``n`` steps without any output (no log, trajectory or checkpoint); returns n."""
        with self._ctx():
            return self._advance(int(n))

    def _advance(self, n: int, sink=None) -> int:
        """Run exactly n steps, re-allocating pair lists on overflow; per-step outputs (if any) go to
        ``sink(first_step, {key: (k, …)})``."""
        import jax.numpy as jnp

        rows = self._output_rows() if self._step_outputs is not None else 0
        done = 0
        stuck = 0
        while done < n:
            todo = n - done if not rows else min(n - done, rows)
            first = self.step + 1
            self.state, self.lists, k, code, vals, out = self._block(
                self._energy_fn,
                self.state,
                self.lists,
                jnp.asarray(todo, jnp.int32),
                self._outputs_fn if rows else None,
                rows=rows,
            )
            k = int(k)
            done += k
            if out is not None and k:
                block = {key: np.asarray(v[:k]) for key, v in out.items()}
                self._last_outputs = {key: v[-1] for key, v in block.items()}
                if sink is not None:
                    sink(first, block)
            code = int(code)
            if code == 2:
                raise ModelError(self._guard_message(vals, self.step + 1))
            if code == 1:
                stuck = stuck + 1 if k == 0 else 1
                self._reallocate(grow=1.5**stuck)
        return done

    def _reallocate(self, grow: float = 1.0):
        """Re-allocate the pair lists at the current (good) state with ``grow`` × extra room."""
        old = self._capacities(self.lists)
        cell = self.state.get("cell")
        caps = grown_capacities(self._capacities(self._allocate(self.state["R"], cell)), old, grow)
        lists = self._allocate(self.state["R"], cell, capacities=caps)
        lists["rebuilds"] = self.lists["rebuilds"] + 1
        self.lists = lists
        self.reallocations += 1
        if self.settings.echo:
            print(
                f"# step {self.step}: pair list overflow, re-allocated "
                f"({', '.join(f'{k}: {v[0]}' for k, v in caps.items())} pairs); the step is recomputed",
                file=sys.stderr,
            )

    # --- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, path):
        """Write a checkpoint (.npz) atomically (temporary file + fsync + rename)."""
        meta = {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "atomic_numbers": [int(z) for z in self.system.atomic_numbers],
            "masses": [float(m) for m in self.system.masses],
            "precision": self.settings.precision,
            "periodic": self.periodic,
            "capacities": self._capacities(self.lists),
            "reallocations": self.reallocations,
            **self._meta(),
        }
        write_checkpoint(path, meta, self.state, self.lists)

    def _restored_lists(self, rs: dict, ref_cell=None):
        """Pair lists re-allocated from a checkpoint's reference positions and buffer sizes."""
        import jax.numpy as jnp

        meta, lref = rs["meta"], rs["lists"]
        caps = {k: tuple(v) for k, v in meta.get("capacities", {}).items()}
        lists = self._allocate(jnp.asarray(lref["ref_positions"]), ref_cell, capacities=caps or None)
        lists["rebuilds"] = jnp.asarray(lref["rebuilds"])
        self.reallocations = int(meta.get("reallocations", 0))
        return lists

    # --- the run ----------------------------------------------------------------------------------
    def outputs_path(self) -> Path | None:
        """``<output stem>.outputs.dat``: the per-step model outputs (None without output or
        ``log_outputs``)."""
        traj = self.settings.paths()[0]
        if traj is None or not self.settings.log_outputs:
            return None
        return traj.with_name(traj.stem + ".outputs.dat")

    def run(self, steps: int | None = None):
        """Run until step ``steps`` (default: settings.steps; absolute, so a resumed run continues to the
        same end), writing the log, trajectory, per-step outputs and checkpoints. Returns ``history``.
        A resumed run, or a second ``run`` of this object, appends to the existing outputs."""
        s = self.settings
        target = s.steps if steps is None else int(steps)
        traj_path, log_path, chk_path = s.paths()
        out_path = self.outputs_path()
        resumed = self._restart is not None or self._ran
        self._ran = True
        for m in self.messages:
            print(f"# {m}", file=sys.stderr)
        for path in (traj_path, log_path, chk_path):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        writers, logf, outf, bar = [], None, None, None
        with self._ctx():
            # a start the guard refuses (NaN, forces beyond the bound) opens no output file
            self._check_finite(self.observables())
            try:
                if traj_path is not None:
                    writers = self._open_writers(resumed)
                if resumed:  # stale temporaries of a killed checkpoint write; log rows after the checkpoint
                    from ..fileio import remove_stale_temporaries, truncate_rows

                    for p in remove_stale_temporaries(chk_path):
                        print(f"# removed {p}, left by an interrupted checkpoint write", file=sys.stderr)
                    if log_path is not None:
                        truncate_rows(log_path, self.step)
                if log_path is not None:
                    logf = open(log_path, "a" if resumed else "w")
                if out_path is not None:
                    if resumed:
                        truncate_table(out_path, self.step)
                    outf = open(out_path, "a" if resumed else "w")
                show_bar = s.progress if s.progress is not None else sys.stderr.isatty()
                if show_bar and target > self.step:
                    from tqdm import tqdm

                    bar = tqdm(total=target, initial=self.step, unit="step", dynamic_ncols=True)
                sink = (
                    None if outf is None else (lambda first, block: self._write_outputs(outf, first, block))
                )
                obs = self.observables()
                self._check_finite(obs)
                if not resumed:
                    if self._step_outputs is not None:
                        self._last_outputs = self._outputs_now()
                        if outf is not None:
                            outf.write(self._outputs_header() + "\n")
                            self._write_outputs(
                                outf,
                                self.step,
                                {k: np.asarray(v)[None] for k, v in self._last_outputs.items()},
                            )
                    self._emit(logf, self._header())
                    self._log_row(logf, obs, 0.0, 0)
                    if writers and s.traj_every:
                        self._write_frames(writers, obs)
                else:
                    if self._step_outputs is not None:
                        self._last_outputs = self._outputs_now()
                    self._emit(logf, f"# resumed at step {self.step}")
                last_t, last_step = time.perf_counter(), self.step
                while self.step < target:
                    n = self._next_event(target) - self.step
                    self._advance(n, sink)
                    if bar is not None:
                        bar.update(n)
                    step = self.step
                    need_log = s.log_every and step % s.log_every == 0 or step == target
                    need_traj = writers and s.traj_every and step % s.traj_every == 0
                    if need_log or need_traj:
                        obs = self.observables()
                        self._check_finite(obs)
                        if need_log:
                            now = time.perf_counter()
                            self._log_row(logf, obs, now - last_t, step - last_step)
                            last_t, last_step = now, step
                            if bar is not None:
                                bar.set_postfix(T=f"{obs['temperature']:.0f}K", E=f"{obs['e_tot']:.3f}")
                        if need_traj:
                            self._write_frames(writers, obs)
                    if (
                        chk_path is not None
                        and s.checkpoint_every
                        and (step % s.checkpoint_every == 0 or step == target)
                    ):
                        self.save_checkpoint(chk_path)
            finally:
                if bar is not None:
                    bar.close()
                for w in writers:
                    w.close()
                for fh in (logf, outf):
                    if fh is not None:
                        fh.close()
        return self.history

    def _next_event(self, target: int) -> int:
        nxt = target
        for every in (self.settings.log_every, self.settings.traj_every, self.settings.checkpoint_every):
            if every:
                nxt = min(nxt, (self.step // every + 1) * every)
        return nxt

    def _check_finite(self, obs):
        vals = np.asarray(self._guard_values(self.state), float)
        if not np.all(np.isfinite(vals)) or vals[1] > self._guard_limits()[1]:
            raise ModelError(self._guard_message(vals, self.step))
        cutoffs = [sp.cutoff for sp in self.potential.neighbors.values() if sp.cutoff is not None]
        if "cell" in self.state and cutoffs:
            hmin = float(cell_heights(np.asarray(self.state["cell"], float)).min())
            if hmin < 2 * max(cutoffs):
                raise ModelError(
                    f"at step {self.step} the box (height {hmin:.3f} Å) became smaller than "
                    f"2 × cutoff = {2 * max(cutoffs):g} Å; use a larger box or a smaller cutoff"
                )
        if not all(math.isfinite(v) for v in obs.values()):
            raise ModelError(
                f"{self.what} became unstable at step {self.step} (non-finite energy); "
                "reduce the timestep or check the starting structure (run 'biomlff opt' first)"
            )

    # --- per-step model outputs -------------------------------------------------------------------
    def _outputs_now(self) -> dict:
        """The log_outputs of the current state (host call of the same traced function as the block)."""
        out = self._outputs_once(self._outputs_fn, self.state, self.lists)
        missing = [k for k in self.settings.log_outputs if k not in out]
        if missing:
            raise ConfigError(f"model outputs {missing} are not available; the model provides {sorted(out)}")
        return {k: np.asarray(out[k]) for k in self.settings.log_outputs}

    def _outputs_header(self) -> str:
        return "# step time_ps " + " ".join(output_columns(self._last_outputs))

    def _write_outputs(self, fh, first: int, block: dict):
        """One line per step: step, time (ps), the flattened outputs."""
        k = len(next(iter(block.values())))
        for j in range(k):
            step = first + j
            cols = output_columns({key: v[j] for key, v in block.items()})
            vals = " ".join(f"{v:.10g}" for v in cols.values())
            fh.write(f"{step} {step * self.dt_fs / units.ps:.6f} {vals}\n")
        fh.flush()

    # --- log table ------------------------------------------------------------------------------
    def _columns(self):
        cols = [("step", "{:>10d}", 10), ("time_ps", "{:>10.4f}", 10)] + self._value_columns()
        cols += [(name, "{:>12.6f}", 12) for name in output_columns(self._last_outputs)]
        return cols + [("ns_day", "{:>9.3f}", 9), ("realloc", "{:>7d}", 7)]

    def _header(self):
        return " ".join(f"{name:>{w}}" for name, _, w in self._columns())

    def _emit(self, logf, line):
        if logf is not None:
            logf.write(line + "\n")
            logf.flush()
        if self.settings.echo:
            print(line, flush=True)

    def _log_row(self, logf, obs, seconds, nsteps):
        row = {"step": self.step, "time_ps": self.step * self.dt_fs * units.ps_per_fs, **self._row(obs)}
        row.update(output_columns(self._last_outputs))
        row["ns_day"] = ns_per_day(nsteps, self.dt_fs, seconds)
        row["realloc"] = self.reallocations
        self.history.append(dict(row, **{k: v for k, v in obs.items() if k not in row}))
        self._emit(logf, " ".join(fmt.format(row[name]) for name, fmt, _ in self._columns()))
