"""The MD driver: compiled blocks of steps, neighbour-list overflow handling, logging, trajectories,
checkpoints and exact restarts.

One block = ``lax.while_loop`` over up to ``n`` steps of (integrator + pair-list refresh + model),
compiled once. The loop stops early at the first step whose pair list overflowed: that step's
result is discarded (the carry keeps the last good state), the lists are re-allocated on the host
from the last good state with more room, and the block continues from there — only the step that
overflowed is recomputed and a step computed with an overflowed list is never kept. Re-allocations
are counted in the log.

Checkpoints (``.npz``, written atomically) hold every dynamical variable (positions, momenta,
forces, energies, cell, thermostat/barostat chains, barostat velocity, RNG key, accumulated work
and heat), the step, the pair-list reference state and buffer sizes. Resuming restores all of it,
so that a float64 run on CPU continues bitwise identically to an uninterrupted one, and truncates
the trajectory to the checkpoint's step before appending. Resuming into another ensemble keeps
positions, velocities and cell and says so.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..errors import ConfigError, DataError, ModelError
from ..fileio import atomic_savez
from ..geometry import cell_heights
from ..precision import precision_context
from .integrators import Ensemble, Integrator, maxwell_boltzmann
from .neighborlist import PairLists
from .steering import Steering
from .structure import System

CHECKPOINT_VERSION = 1


@dataclass
class MDSettings:
    """Run settings. steps: total step count of the run (a resumed run continues up to it);
    log_every / traj_every / checkpoint_every: intervals in steps (0 = never); output: trajectory
    path (.h5/.hdf5 → H5MD, else extxyz; None = no trajectory); log_file / checkpoint: default
    ``<output stem>.log`` / ``<output stem>.chk.npz``; seed: RNG seed (velocities, Langevin);
    precision: 'float32' | 'float64'; skin (Å) and capacity_multiplier: pair-list head-room;
    write_forces: add forces to the trajectory; observables: model outputs (keys of
    ``Potential.outputs_fn``) to write with each frame; progress: tqdm bar (None = if a terminal);
    echo: print the log table to stdout."""

    steps: int = 1000
    log_every: int = 100
    traj_every: int = 100
    checkpoint_every: int = 1000
    output: str | None = None
    log_file: str | None = None
    checkpoint: str | None = None
    seed: int = 0
    precision: str = "float32"
    skin: float = 0.5
    capacity_multiplier: float = 1.25
    write_forces: bool = False
    observables: tuple = field(default_factory=tuple)
    progress: bool | None = None
    echo: bool = True

    def validate(self):
        if self.precision not in ("float32", "float64"):
            raise ConfigError(f"precision must be float32 or float64, got {self.precision!r}")
        if self.steps < 0:
            raise ConfigError(f"steps must be ≥ 0, got {self.steps}")
        for name in ("log_every", "traj_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.skin < 0 or self.capacity_multiplier < 1.0:
            raise ConfigError("skin must be ≥ 0 Å and capacity_multiplier ≥ 1")
        return self

    def paths(self) -> tuple[Path | None, Path | None, Path | None]:
        """(trajectory, log, checkpoint) paths."""
        traj = Path(self.output) if self.output else None
        stem = None
        if traj is not None:
            stem = traj.with_suffix("")
        log = Path(self.log_file) if self.log_file else (stem.with_suffix(".log") if stem else None)
        chk = Path(self.checkpoint) if self.checkpoint else (Path(str(stem) + ".chk.npz") if stem else None)
        return traj, log, chk


# ---------------------------------------------------------------------------------------------
class Simulation:
    """An MD run of ``potential`` for ``system`` in ``ensemble``.

    Create with :meth:`Simulation(...)` for a fresh start or :meth:`Simulation.resume` from a
    checkpoint; call :meth:`run`. ``history`` holds the logged rows (dicts), ``reallocations`` the
    number of pair-list re-allocations.
    """

    def __init__(
        self,
        potential,
        system: System,
        ensemble: Ensemble,
        settings: MDSettings | None = None,
        steering: Steering | None = None,
        _restart: dict | None = None,
    ):
        self.settings = (settings or MDSettings()).validate()
        self.ensemble = ensemble.validate()
        self.system = system
        self.potential = potential
        self.steering = (steering or Steering()).validate(system.n_atoms)
        z = np.asarray(potential.atomic_numbers)
        if len(z) != system.n_atoms or np.any(z != system.atomic_numbers):
            raise ConfigError(
                f"the potential was built for {len(z)} atoms with different elements than "
                f"the structure {system.name} ({system.n_atoms} atoms)"
            )
        if ensemble.kind == "npt" and system.cell is not None:
            c = np.asarray(system.cell)
            if np.any(np.abs(c - np.diag(np.diag(c))) > 1e-8):
                raise ConfigError("NPT needs an orthorhombic cell (off-diagonal cell entries are non-zero)")
        if ensemble.kind == "npt" and system.cell is None:
            raise ConfigError(
                f"NPT needs a periodic cell, but {system.name} has none "
                "(set the cell and pbc in the structure file)"
            )
        self.periodic = system.cell is not None
        self.history: list[dict] = []
        self.reallocations = 0
        self.messages: list[str] = []
        self._restart = _restart
        with self._ctx():
            self._build()

    def _ctx(self):
        return precision_context(self.settings.precision)

    @property
    def dtype(self):
        import jax.numpy as jnp

        return jnp.float64 if self.settings.precision == "float64" else jnp.float32

    # --- construction ----------------------------------------------------------------------------
    def _build(self):
        import jax
        import jax.numpy as jnp

        from .engine import as_pytree_fn, make_evaluate, make_outputs

        s, sysm = self.settings, self.system
        cell = None if sysm.cell is None else np.asarray(sysm.cell, float)
        self.pairlists = PairLists(
            self.potential.neighbors,
            sysm.n_atoms,
            cell=cell,
            skin=s.skin,
            capacity_multiplier=s.capacity_multiplier,
            variable_cell=self.ensemble.kind == "npt",
        )
        self._evaluate = make_evaluate(self.pairlists, self.steering.energy_fn())
        self._energy_fn = as_pytree_fn(self.potential.energy_fn)
        self._outputs_fn = as_pytree_fn(self.potential.outputs_fn)
        self.integrator = Integrator(self.ensemble, sysm.masses, self.periodic)
        self._outputs = jax.jit(make_outputs(self.pairlists)) if s.observables else None
        if s.observables and self._outputs_fn is None:
            raise ConfigError(f"model outputs {list(s.observables)} requested, but the model has none")
        dt = self.dtype
        rs = self._restart
        if rs is None:
            key = jax.random.PRNGKey(s.seed)
            key, vkey = jax.random.split(key)
            m = np.asarray(sysm.masses)
            if sysm.velocities is not None:
                p = jnp.asarray(sysm.velocities * m[:, None] / units.ase_time_per_fs, dt)
                self.messages.append("velocities taken from the structure file")
            elif self.ensemble.kind == "nve" and self.ensemble.temperature_K == 0:
                p = jnp.zeros((sysm.n_atoms, 3), dt)
            else:
                p = maxwell_boltzmann(vkey, m, self.ensemble.kT, self.ensemble.remove_com, dtype=dt)
            lists = self.pairlists.allocate(
                jnp.asarray(sysm.positions, dt), None if cell is None else jnp.asarray(cell, dt)
            )
            init = jax.jit(
                lambda efn, r, p, c, ls, k: self.integrator.init(
                    self._bound_evaluate(efn), r, p, c, ls, k, dt
                )
            )
            self.state, self.lists = init(
                self._energy_fn,
                jnp.asarray(sysm.positions, dt),
                p,
                None if cell is None else jnp.asarray(cell, dt),
                lists,
                key,
            )
            self.start_step = 0
        else:
            self._restore(rs)
        self._block = jax.jit(self._block_fn)
        self._observe = jax.jit(self.integrator.observables)

    def _restore(self, rs: dict):
        import jax.numpy as jnp

        dt = self.dtype
        meta = rs["meta"]
        saved = rs["state"]
        lists_ref = rs["lists"]
        cell = saved.get("cell")
        caps = {k: tuple(v) for k, v in meta.get("capacities", {}).items()}
        lists = self.pairlists.allocate(
            jnp.asarray(lists_ref["ref_positions"]),
            None if "ref_cell" not in lists_ref else jnp.asarray(lists_ref["ref_cell"]),
            capacities=caps,
        )
        lists["rebuilds"] = jnp.asarray(lists_ref["rebuilds"])
        self.reallocations = int(meta.get("reallocations", 0))
        # the state a fresh start of this ensemble would have: same keys and shapes → exact resume
        import jax

        def init(efn, r, p, c, ls, k):
            return self.integrator.init(self._bound_evaluate(efn), r, p, c, ls, k, dt)

        args = (
            self._energy_fn,
            jnp.asarray(saved["R"], dt),
            jnp.asarray(saved["P"], dt),
            None if cell is None else jnp.asarray(cell, dt),
            lists,
            jnp.asarray(saved["key"]),
        )
        fresh, _ = jax.eval_shape(init, *args)  # shapes only: no model evaluation
        same = (
            meta["ensemble"] == self.ensemble.kind
            and set(fresh) == set(saved)
            and all(np.shape(fresh[k]) == np.shape(saved[k]) for k in fresh)
        )
        if same:
            self.state = {k: jnp.asarray(saved[k], dtype=fresh[k].dtype) for k in fresh}
            self.lists = lists
        else:
            msg = (
                f"resuming a {meta['ensemble'].upper()} checkpoint (step {meta['step']}) as "
                f"{self.ensemble.kind.upper()}: keeping positions, velocities and cell; "
                "thermostat/barostat state starts fresh"
            )
            self.messages.append(msg)
            fresh, lists2 = jax.jit(init)(*args)
            fresh["step"] = jnp.asarray(saved["step"], fresh["step"].dtype)
            fresh["work"] = jnp.asarray(saved["work"], fresh["work"].dtype)
            self.state, self.lists = fresh, lists2
        self.start_step = int(meta["step"])

    def _bound_evaluate(self, energy_fn=None):
        from functools import partial

        return partial(self._evaluate, self._energy_fn if energy_fn is None else energy_fn)

    # --- the compiled block ----------------------------------------------------------------------
    def _block_fn(self, energy_fn, state, lists, n):
        import jax
        import jax.numpy as jnp
        from jax import lax

        integ, pl = self.integrator, self.pairlists
        evaluate = self._bound_evaluate(energy_fn)

        def cond(c):
            i, _, _, ovf = c
            return (i < n) & (~ovf)

        def body(c):
            i, st, ls, _ = c
            st2, ls2 = integ.step(st, ls, evaluate)
            ovf = pl.overflowed(ls2)
            st = jax.tree_util.tree_map(lambda a, b: jnp.where(ovf, a, b), st, st2)
            ls = jax.tree_util.tree_map(lambda a, b: jnp.where(ovf, a, b), ls, ls2)
            return i + jnp.where(ovf, 0, 1), st, ls, ovf

        i, state, lists, ovf = lax.while_loop(
            cond, body, (jnp.zeros((), jnp.int32), state, lists, jnp.zeros((), bool))
        )
        return state, lists, i, ovf

    def advance(self, n: int) -> int:
        """Run exactly ``n`` steps without any output (no log, trajectory or checkpoint); returns n."""
        with self._ctx():
            return self._advance(int(n))

    def _advance(self, n: int):
        """Run exactly n steps, re-allocating pair lists on overflow."""
        import jax.numpy as jnp

        done = 0
        stuck = 0
        while done < n:
            self.state, self.lists, k, ovf = self._block(
                self._energy_fn, self.state, self.lists, jnp.asarray(n - done, jnp.int32)
            )
            k = int(k)
            done += k
            if bool(ovf):
                stuck = stuck + 1 if k == 0 else 1
                self._reallocate(grow=1.5**stuck)
        return done

    def _reallocate(self, grow: float = 1.0):
        """Re-allocate the pair lists at the current (good) state with ``grow`` × extra room."""
        old = self.pairlists.capacities(self.lists)
        cell = self.state.get("cell")
        lists = self.pairlists.allocate(self.state["R"], cell)
        new = self.pairlists.capacities(lists)
        caps = {}
        for k, (occ, clc, comp) in new.items():
            o_occ, o_clc, o_comp = old.get(k, (0, None, 0))
            occ = max(occ, int(math.ceil(o_occ * grow)))
            if clc is not None and o_clc is not None:
                clc = max(clc, int(math.ceil(o_clc * grow)))
            caps[k] = (occ, clc, max(comp, int(math.ceil(o_comp * grow))))
        lists = self.pairlists.allocate(self.state["R"], cell, capacities=caps)
        lists["rebuilds"] = self.lists["rebuilds"] + 1
        self.lists = lists
        self.reallocations += 1
        if self.settings.echo:
            print(
                f"# step {int(self.state['step'])}: pair list overflow, re-allocated "
                f"({', '.join(f'{k}: {v[0]}' for k, v in caps.items())} pairs); the step is recomputed",
                file=sys.stderr,
            )

    # --- observables / output ------------------------------------------------------------------
    def observables(self) -> dict:
        """Current scalars: e_pot, e_ext, e_kin, e_tot, conserved (eV), temperature (K), work (eV),
        and for periodic systems volume (Å³), pressure (eV/Å³)."""
        with self._ctx():
            return {k: float(v) for k, v in self._observe(self.state).items()}

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def positions(self) -> np.ndarray:
        """Current (unwrapped) positions, Å."""
        return np.asarray(self.state["R"], float)

    def velocities(self) -> np.ndarray:
        """Current velocities, Å/fs."""
        m = np.asarray(self.system.masses)[:, None]
        return np.asarray(self.state["P"], float) / m * units.ase_time_per_fs

    def cell(self):
        return None if "cell" not in self.state else np.asarray(self.state["cell"], float)

    def _frame(self, writer, obs):
        per_atom, per_struct = {}, {}
        if self._outputs is not None:
            with self._ctx():
                outs = self._outputs(self._outputs_fn, self.state["R"], self.state.get("cell"), self.lists)
            for key in self.settings.observables:
                if key not in outs:
                    raise ConfigError(
                        f"model output {key!r} is not available; the model provides {sorted(outs)}"
                    )
                v = np.asarray(outs[key])
                (per_atom if v.ndim >= 1 and v.shape[0] == self.system.n_atoms else per_struct)[key] = v
        forces = np.asarray(self.state["F"], float) if self.settings.write_forces else None
        writer.write(
            self.step,
            self.step * self.ensemble.dt_fs,
            self.positions(),
            self.velocities(),
            self.cell(),
            obs,
            forces=forces,
            per_atom=per_atom,
            per_structure=per_struct,
        )

    # --- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, path):
        """Write a checkpoint (.npz) atomically (temporary file + rename)."""
        path = Path(path)
        meta = {
            "version": CHECKPOINT_VERSION,
            "ensemble": self.ensemble.kind,
            "step": self.step,
            "dt_fs": self.ensemble.dt_fs,
            "atomic_numbers": [int(z) for z in self.system.atomic_numbers],
            "masses": [float(m) for m in self.system.masses],
            "precision": self.settings.precision,
            "periodic": self.periodic,
            "capacities": self.pairlists.capacities(self.lists),
            "reallocations": self.reallocations,
            "ensemble_settings": asdict(self.ensemble),
        }
        arrays = {f"state/{k}": np.asarray(v) for k, v in self.state.items()}
        arrays["lists/ref_positions"] = np.asarray(self.lists["ref_positions"])
        arrays["lists/rebuilds"] = np.asarray(self.lists["rebuilds"])
        if "ref_cell" in self.lists:
            arrays["lists/ref_cell"] = np.asarray(self.lists["ref_cell"])
        atomic_savez(path, {"meta": np.array(json.dumps(meta)), **arrays}, fsync=True)

    @staticmethod
    def load_checkpoint(path) -> dict:
        """Read a checkpoint written by :meth:`save_checkpoint` → {'meta', 'state', 'lists'}."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"checkpoint {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                state = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("state/")}
                lists = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("lists/")}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path} is not a biomlff MD checkpoint: {exc}") from exc
        if meta.get("version") != CHECKPOINT_VERSION:
            raise DataError(
                f"checkpoint {path} has version {meta.get('version')}, expected {CHECKPOINT_VERSION}"
            )
        return {"meta": meta, "state": state, "lists": lists}

    @classmethod
    def resume(
        cls,
        checkpoint,
        potential,
        ensemble: Ensemble,
        settings: MDSettings | None = None,
        steering: Steering | None = None,
        system: System | None = None,
    ) -> Simulation:
        """Continue from ``checkpoint``. The checkpoint must be for the same atoms (same elements in the
        same order) as ``potential`` (and ``system`` if given); positions, velocities and cell come
        from the checkpoint."""
        rs = cls.load_checkpoint(checkpoint)
        meta = rs["meta"]
        z = np.asarray(meta["atomic_numbers"])
        zp = np.asarray(potential.atomic_numbers)
        if (
            len(z) != len(zp)
            or np.any(z != zp)
            or (system is not None and (system.n_atoms != len(z) or np.any(system.atomic_numbers != z)))
        ):
            raise ConfigError(
                f"checkpoint {checkpoint} is for a different system ({len(z)} atoms) than "
                f"the structure/model given ({len(zp)} atoms); refusing to resume"
            )
        settings = settings or MDSettings()
        if settings.precision != meta["precision"]:
            raise ConfigError(
                f"checkpoint {checkpoint} was written in {meta['precision']}; resume with "
                f"--precision {meta['precision']}"
            )
        cell = rs["state"].get("cell")
        sysm = System(
            atomic_numbers=z.astype(np.int32),
            positions=np.asarray(rs["state"]["R"], float),
            masses=np.asarray(meta["masses"], float),
            cell=None if cell is None else np.asarray(cell, float),
            name=system.name if system is not None else Path(checkpoint).name,
        )
        return cls(potential, sysm, ensemble, settings, steering, _restart=rs)

    # --- the run ----------------------------------------------------------------------------------
    def run(self, steps: int | None = None):
        """Run until step ``steps`` (default: settings.steps; absolute, so a resumed run continues to the
        same end), writing the log, trajectory and checkpoints. Returns ``history``."""
        s = self.settings
        target = s.steps if steps is None else int(steps)
        traj_path, log_path, chk_path = s.paths()
        resumed = self._restart is not None
        for m in self.messages:
            print(f"# {m}", file=sys.stderr)
        if s.checkpoint_every and chk_path is None:
            chk_path = None  # no output given: checkpoints off
        writer = None
        for path in (traj_path, log_path, chk_path):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        with self._ctx():
            if traj_path is not None:
                from .trajectory import open_trajectory

                writer = open_trajectory(
                    traj_path,
                    self.system.atomic_numbers,
                    self.periodic,
                    append=resumed,
                    truncate_step=self.step if resumed else None,
                )
            logf = None
            if log_path is not None:
                logf = open(log_path, "a" if resumed else "w")
            bar = None
            show_bar = s.progress if s.progress is not None else sys.stderr.isatty()
            if show_bar and target > self.step:
                from tqdm import tqdm

                bar = tqdm(total=target, initial=self.step, unit="step", dynamic_ncols=True)
            try:
                obs = self.observables()
                self._check_finite(obs)
                header = self._header()
                if not resumed:
                    self._emit(logf, header, header=True)
                    self._log_row(logf, obs, 0.0, 0)
                    if writer is not None and s.traj_every:
                        self._frame(writer, obs)
                else:
                    self._emit(logf, f"# resumed at step {self.step}", header=True)
                last_t, last_step = time.perf_counter(), self.step
                while self.step < target:
                    n = self._next_event(target) - self.step
                    self._advance(n)
                    if bar is not None:
                        bar.update(n)
                    step = self.step
                    need_log = s.log_every and step % s.log_every == 0 or step == target
                    need_traj = writer is not None and s.traj_every and step % s.traj_every == 0
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
                            self._frame(writer, obs)
                    if (
                        chk_path is not None
                        and s.checkpoint_every
                        and (step % s.checkpoint_every == 0 or step == target)
                    ):
                        self.save_checkpoint(chk_path)
            finally:
                if bar is not None:
                    bar.close()
                if writer is not None:
                    writer.close()
                if logf is not None:
                    logf.close()
        return self.history

    def _next_event(self, target: int) -> int:
        step = self.step
        nxt = target
        for every in (self.settings.log_every, self.settings.traj_every, self.settings.checkpoint_every):
            if every:
                nxt = min(nxt, (step // every + 1) * every)
        return nxt

    def _check_finite(self, obs):
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
                f"the simulation became unstable at step {self.step} (non-finite energy); "
                "reduce the timestep or check the starting structure (run 'biomlff opt' first)"
            )

    # --- log table ------------------------------------------------------------------------------
    def _columns(self):
        cols = [
            ("step", "{:>10d}", 10),
            ("time_ps", "{:>10.4f}", 10),
            ("E_pot", "{:>14.6f}", 14),
            ("E_kin", "{:>12.6f}", 12),
            ("E_tot", "{:>14.6f}", 14),
            ("conserved", "{:>14.6f}", 14),
            ("T_K", "{:>8.2f}", 8),
        ]
        if self.periodic:
            cols += [("P_bar", "{:>10.1f}", 10), ("V_A3", "{:>11.2f}", 11)]
        if self.steering.active:
            cols += [("E_ext", "{:>11.5f}", 11), ("W_ext", "{:>11.5f}", 11)]
        cols += [("ns_day", "{:>9.3f}", 9), ("realloc", "{:>7d}", 7)]
        return cols

    def _header(self):
        return " ".join(f"{name:>{w}}" for name, _, w in self._columns())

    def _emit(self, logf, line, header=False):
        if logf is not None:
            logf.write(line + "\n")
            logf.flush()
        if self.settings.echo:
            print(line, flush=True)

    def _log_row(self, logf, obs, seconds, nsteps):
        ns_day = (
            (nsteps * self.ensemble.dt_fs * 1e-6) / (seconds / 86400.0) if seconds > 0 and nsteps else 0.0
        )
        row = {
            "step": self.step,
            "time_ps": self.step * self.ensemble.dt_fs * units.ps_per_fs,
            "E_pot": obs["e_pot"],
            "E_kin": obs["e_kin"],
            "E_tot": obs["e_tot"],
            "conserved": obs["conserved"],
            "T_K": obs["temperature"],
            "ns_day": ns_day,
            "realloc": self.reallocations,
        }
        if self.periodic:
            row["P_bar"] = obs["pressure"] / units.bar
            row["V_A3"] = obs["volume"]
        if self.steering.active:
            row["E_ext"] = obs["e_ext"]
            row["W_ext"] = obs["work"]
        self.history.append(dict(row, **{k: v for k, v in obs.items() if k not in row}))
        line = " ".join(fmt.format(row[name]) for name, fmt, _ in self._columns())
        self._emit(logf, line)
