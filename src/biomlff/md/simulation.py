"""Classical MD: :class:`Simulation` runs any registered ensemble (:mod:`biomlff.md.ensembles`) in the
shared run loop of :mod:`biomlff.md.driver` (compiled blocks of steps, neighbour-list overflow
handling, logging, trajectories, per-step model outputs, checkpoints and exact restarts).

Checkpoints (``.npz``, written atomically) hold every dynamical variable (positions, momenta,
forces, energies, cell, thermostat/barostat chains, barostat velocity, RNG key, accumulated work
and heat), the step, the pair-list reference state and buffer sizes. Resuming restores all of it,
so that a float64 run on CPU continues bitwise identically to an uninterrupted one, and truncates
the trajectory to the checkpoint's step before appending. Resuming into another ensemble keeps
positions, velocities and cell and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..errors import ConfigError
from .driver import (  # noqa: F401
    CHECKPOINT_VERSION,
    Driver,
    check_checkpoint,
    precision_context,
    read_checkpoint,
    system_from_checkpoint,
)
from .integrators import Ensemble, Integrator, maxwell_boltzmann
from .steering import Steering
from .structure import System


@dataclass
class MDSettings:
    """Run settings. steps: total step count of the run (a resumed run continues up to it);
    log_every / traj_every / checkpoint_every: intervals in steps (0 = never); output: trajectory
    path (.h5/.hdf5 → H5MD, else extxyz; None = no trajectory); log_file / checkpoint: default
    ``<output stem>.log`` / ``<output stem>.chk.npz``; seed: RNG seed (velocities, Langevin);
    precision: 'float32' | 'float64' | None (default: the potential's own, see
    :func:`biomlff.precision.resolve_precision`; a value that differs from it is refused);
    skin (Å) and capacity_multiplier: pair-list head-room;
    pair_lists: pair-list builder, 'auto' | 'blocked' | 'jax_md' (see
    :class:`~biomlff.md.neighborlist.PairLists`);
    write_forces: add forces to the trajectory; observables: model outputs (keys of
    ``Potential.outputs_fn``) to write with each frame; log_outputs: model outputs computed inside
    the compiled block after every step, written to ``<output stem>.outputs.dat`` (one line per step)
    and added as log columns (e.g. ``("dipole",)``, e·Å); progress: tqdm bar (None = if a
    terminal); echo: print the log table to stdout; guard_temperature_factor / guard_max_force
    (eV/Å): the run stops with a ModelError, before writing the step, when the instantaneous
    temperature exceeds the factor × max(target, starting temperature, 300 K) or a force exceeds the
    bound, or anything becomes NaN (0 disables a limit)."""

    steps: int = 1000
    log_every: int = 100
    traj_every: int = 100
    checkpoint_every: int = 1000
    output: str | None = None
    log_file: str | None = None
    checkpoint: str | None = None
    seed: int = 0
    precision: str | None = None
    skin: float = 0.5
    capacity_multiplier: float = 1.25
    pair_lists: str = "auto"
    write_forces: bool = False
    observables: tuple = field(default_factory=tuple)
    log_outputs: tuple = field(default_factory=tuple)
    progress: bool | None = None
    echo: bool = True
    guard_temperature_factor: float = 10.0
    guard_max_force: float = 100.0

    def validate(self):
        if self.precision not in (None, "float32", "float64"):
            raise ConfigError(f"precision must be float32 or float64, got {self.precision!r}")
        if self.steps < 0:
            raise ConfigError(f"steps must be ≥ 0, got {self.steps}")
        for name in ("log_every", "traj_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.skin < 0 or self.capacity_multiplier < 1.0:
            raise ConfigError("skin must be ≥ 0 Å and capacity_multiplier ≥ 1")
        if self.guard_temperature_factor < 0 or self.guard_max_force < 0:
            raise ConfigError("guard_temperature_factor and guard_max_force must be ≥ 0 (0 disables)")
        if self.pair_lists not in ("auto", "blocked", "jax_md"):
            raise ConfigError(f"pair_lists must be 'auto', 'blocked' or 'jax_md', got {self.pair_lists!r}")
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
class Simulation(Driver):
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
        self.ensemble = ensemble.validate()
        self.steering = (steering or Steering()).validate(system.n_atoms)
        if ensemble.variable_cell and system.cell is not None:
            c = np.asarray(system.cell)
            if np.any(np.abs(c - np.diag(np.diag(c))) > 1e-8):
                raise ConfigError("NPT needs an orthorhombic cell (off-diagonal cell entries are non-zero)")
        if ensemble.variable_cell and system.cell is None:
            raise ConfigError(
                f"{ensemble.kind.upper()} needs a periodic cell, but {system.name} has none "
                "(set the cell and pbc in the structure file)"
            )
        super().__init__(potential, system, settings or MDSettings(), _restart)

    @property
    def dt_fs(self) -> float:
        return self.ensemble.dt_fs

    # --- construction ----------------------------------------------------------------------------
    def _build(self):
        import jax
        import jax.numpy as jnp

        from .engine import as_pytree_fn, make_evaluate, make_outputs

        s, sysm = self.settings, self.system
        steer = self.steering.energy_fn()
        cell = self._bind_model(lambda pl: make_evaluate(pl, steer), self.ensemble.variable_cell)
        outputs_fn = as_pytree_fn(self.potential.outputs_fn)
        self.integrator = Integrator(self.ensemble, sysm.masses, self.periodic)
        outputs = make_outputs(self.pairlists)
        self._outputs = jax.jit(outputs) if s.observables else None
        if s.observables and outputs_fn is None:
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
            c = None if cell is None else jnp.asarray(cell, dt)
            lists = self.pairlists.allocate(jnp.asarray(sysm.positions, dt), c)
            init = jax.jit(self._init)
            self.state, self.lists = init(self._energy_fn, jnp.asarray(sysm.positions, dt), p, c, lists, key)
            self.start_step = 0
        else:
            self._restore(rs)

        def step_outputs(ofn, st, ls):
            return outputs(ofn, st["R"], st.get("cell"), ls)

        self._compile(outputs_fn, step_outputs)

    def _init(self, energy_fn, r, p, c, lists, key):
        return self.integrator.init(self._bound_evaluate(energy_fn), r, p, c, lists, key, self.dtype)

    def _restore(self, rs: dict):
        import jax
        import jax.numpy as jnp

        dt = self.dtype
        meta, saved = rs["meta"], rs["state"]
        lref = rs["lists"]
        lists = self._restored_lists(rs, None if "ref_cell" not in lref else jnp.asarray(lref["ref_cell"]))
        cell = saved.get("cell")
        # the state a fresh start of this ensemble would have: same keys and shapes → exact resume
        args = (
            self._energy_fn,
            jnp.asarray(saved["R"], dt),
            jnp.asarray(saved["P"], dt),
            None if cell is None else jnp.asarray(cell, dt),
            lists,
            jnp.asarray(saved["key"]),
        )
        fresh, _ = jax.eval_shape(self._init, *args)  # shapes only: no model evaluation
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
            fresh, lists2 = jax.jit(self._init)(*args)
            fresh["step"] = jnp.asarray(saved["step"], fresh["step"].dtype)
            fresh["work"] = jnp.asarray(saved["work"], fresh["work"].dtype)
            self.state, self.lists = fresh, lists2
        self.start_step = int(meta["step"])

    def _bound_evaluate(self, energy_fn=None):
        from functools import partial

        return partial(self._evaluate, self._energy_fn if energy_fn is None else energy_fn)

    # --- hooks of the shared loop -------------------------------------------------------------------
    def _overflowed(self, lists):
        return self.pairlists.overflowed(lists)

    def _allocate(self, positions, cell, capacities=None):
        return self.pairlists.allocate(positions, cell, capacities=capacities)

    def _capacities(self, lists):
        return self.pairlists.capacities(lists)

    def _meta(self) -> dict:
        return {
            "ensemble": self.ensemble.kind,
            "dt_fs": self.ensemble.dt_fs,
            "ensemble_settings": asdict(self.ensemble),
        }

    # --- observables / output ------------------------------------------------------------------
    def observables(self) -> dict:
        """Current scalars: e_pot, e_ext, e_kin, e_tot, conserved (eV), temperature (K), work (eV),
        and for periodic systems volume (Å³), pressure (eV/Å³)."""
        with self._ctx():
            return {k: float(v) for k, v in self._observe(self.state).items()}

    def positions(self) -> np.ndarray:
        """Current (unwrapped) positions, Å."""
        return np.asarray(self.state["R"], float)

    def velocities(self) -> np.ndarray:
        """Current velocities, Å/fs."""
        m = np.asarray(self.system.masses)[:, None]
        return np.asarray(self.state["P"], float) / m * units.ase_time_per_fs

    def _open_writers(self, resumed: bool) -> list:
        from ..data.trajectory import open_trajectory

        traj = self.settings.paths()[0]
        truncate = self.step if resumed else None
        return [open_trajectory(traj, self.system.atomic_numbers, self.periodic, resumed, truncate)]

    def _write_frames(self, writers, obs):
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
        writers[0].write(
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
        settings = settings or MDSettings()
        check_checkpoint(rs, checkpoint, potential, settings, system)
        sysm = system_from_checkpoint(rs, rs["state"]["R"], checkpoint, system)
        return cls(potential, sysm, ensemble, settings, steering, _restart=rs)

    # --- log table ------------------------------------------------------------------------------
    def _value_columns(self):
        cols = [
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
        return cols

    def _row(self, obs) -> dict:
        row = {
            "E_pot": obs["e_pot"],
            "E_kin": obs["e_kin"],
            "E_tot": obs["e_tot"],
            "conserved": obs["conserved"],
            "T_K": obs["temperature"],
        }
        if self.periodic:
            row["P_bar"] = obs["pressure"] / units.bar
            row["V_A3"] = obs["volume"]
        if self.steering.active:
            row["E_ext"] = obs["e_ext"]
            row["W_ext"] = obs["work"]
        return row
