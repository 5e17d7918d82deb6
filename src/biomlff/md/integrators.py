"""Integrators: velocity Verlet (NVE), Nosé–Hoover chains (NVT), BAOAB Langevin (NVT) and the
Martyna–Tobias–Klein barostat (isotropic or semi-isotropic) with Nosé–Hoover chains (NPT).

Why these are written here rather than taken from ``jax_md.simulate`` (checked against jax-md
0.2.29's source):

* ``nvt_nose_hoover`` does accept chain length / chain steps / Suzuki–Yoshida order / τ when they are
  passed as its own arguments (the original so3lr tool passed them in a ``thermostat_kwargs`` dict,
  where they are silently swallowed by ``**sim_kwargs``), but it rounds ``dt``, ``τ`` and the chain
  masses to float32 even with ``jax_enable_x64`` (``f32(...)``), its chain update indexes
  ``p_xi[M-1]`` and ``p_xi[1]`` and is wrong for a chain of length 1, and it always couples 3N
  degrees of freedom (the centre-of-mass momentum we keep at zero is not thermal: ⟨T⟩ comes out
  biased by 3N/(3N−3), 1.6 % for 64 atoms).
* ``npt_nose_hoover`` with fractional coordinates (needed by its neighbour lists) applies the
  Cartesian position-scaling term ``R (e^x − 1)`` to fractional positions.
* Neither lets the neighbour list be refreshed between the position update and the force call.

So the step functions own the whole update in the working dtype, take the model as an
``evaluate(positions, cell, lists) -> (lists, Forces)`` callable that refreshes the pair lists
first, and keep every dynamical variable in a flat dict (trivial, exact checkpoints). Each ensemble
is a pure ``init`` / ``step`` pair in its own file under :mod:`biomlff.md.ensembles`, found by
name in a registry; this module holds the user settings (:class:`Ensemble`) and the
:class:`Integrator` that runs any registered ensemble (and re-exports the helpers under their
old names).

Units inside: positions Å, energy eV, mass amu, time in ASE units (Å·√(amu/eV), 1 fs =
``units.ase_time_per_fs``), momenta amu·Å/ASE-time, kT in eV, pressure eV/Å³.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import units
from .ensembles import REGISTRY, Context, get
from .ensembles.base import (  # noqa: F401  (re-exported: the names of the former single module)
    Forces,
    finish_step,
    fs_to_time,
    kinetic2,
    maxwell_boltzmann,
    remove_com_momentum,
)
from .ensembles.nose_hoover import SY_WEIGHTS, nhc_energy, nhc_half_step, nhc_masses  # noqa: F401
from .ensembles.npt import BAROSTAT_MODES, _sinhc  # noqa: F401

#: the built-in ensembles (every registered name is accepted: ``ensembles.REGISTRY``)
ENSEMBLES = ("nve", "nvt", "langevin", "npt")


#: default thermostat / barostat time constants in units of the timestep (τ_T = 100 dt, τ_P = 1000 dt)
TAU_T_PER_DT = 100.0
TAU_P_PER_DT = 1000.0


@dataclass(frozen=True)
class Ensemble:
    """Integrator settings (all user units).

    kind: a registered ensemble: 'nve' | 'nvt' (Nosé–Hoover chain) | 'langevin' | 'npt' (MTK
    barostat + NHC) | any name given to :func:`biomlff.md.ensembles.register`.
    coupling: NPT cell coupling, 'isotropic' or 'semi-isotropic' (x and y scaled together, z
    separately; membranes). Orthorhombic cells.
    dt_fs: timestep (fs). temperature_K (K). pressure_eV_A3: target pressure (eV/Å³).
    tau_t_fs / tau_p_fs: thermostat / barostat time constants (fs); None (default) = 100 · dt_fs and
    1000 · dt_fs (the thesis settings; the command line gives the same), resolved on construction.
    chain_length, chain_steps, sy_order: Nosé–Hoover chain length, outer sub-steps n_c and
    Suzuki–Yoshida order (1, 3, 5, 7). friction_per_fs: Langevin friction γ (1/fs).
    remove_com: keep the total momentum at zero (then 3N − 3 degrees of freedom are thermal).
    """

    kind: str = "nvt"
    dt_fs: float = 0.5
    temperature_K: float = 300.0
    pressure_eV_A3: float = units.atm
    tau_t_fs: float | None = None
    tau_p_fs: float | None = None
    chain_length: int = 3
    chain_steps: int = 2
    sy_order: int = 3
    friction_per_fs: float = 0.01
    remove_com: bool = True
    coupling: str = "isotropic"

    def __post_init__(self):
        # the one place of the time-constant defaults (frozen dataclass: set through object)
        if self.tau_t_fs is None:
            object.__setattr__(self, "tau_t_fs", TAU_T_PER_DT * float(self.dt_fs))
        if self.tau_p_fs is None:
            object.__setattr__(self, "tau_p_fs", TAU_P_PER_DT * float(self.dt_fs))

    def validate(self):
        from ..errors import ConfigError

        spec = get(self.kind)
        if not self.dt_fs > 0:
            raise ConfigError(f"timestep must be positive, got dt = {self.dt_fs} fs")
        if self.kind != "nve" and not self.temperature_K > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature_K} K")
        if self.temperature_K < 0:
            raise ConfigError(f"temperature must not be negative, got {self.temperature_K} K")
        if self.coupling not in BAROSTAT_MODES:
            raise ConfigError(f"unknown NPT coupling {self.coupling!r}; choose {', '.join(BAROSTAT_MODES)}")
        if spec.validate is not None:
            spec.validate(self)
        return self

    def dof(self, n_atoms: int) -> int:
        """Thermal degrees of freedom: 3N, minus 3 when the centre-of-mass momentum is held at zero."""
        return 3 * n_atoms - (3 if (self.remove_com and n_atoms > 1) else 0)

    @property
    def kT(self) -> float:
        """Target k_B·T in eV."""
        return units.kB * self.temperature_K

    @property
    def variable_cell(self) -> bool:
        """Whether the ensemble changes the cell (NPT)."""
        return get(self.kind).variable_cell


# ---------------------------------------------------------------------------------------------
class Integrator:
    """Initial state and step function of one registered ensemble for a system of ``masses`` (amu).

    ``evaluate(positions, cell, lists) -> (lists, Forces)`` is the model call (it refreshes the pair
    lists for the new positions first); it is passed to :meth:`init` and :meth:`step` so that the
    model's parameters can be arguments of the compiled program. The state is a flat dict of arrays.
    """

    def __init__(self, ensemble: Ensemble, masses, periodic: bool):
        self.ens = ensemble.validate()
        self.spec = get(ensemble.kind)
        self.ctx = Context.make(ensemble, masses)
        self.masses = self.ctx.masses
        self.n = self.ctx.n
        self.periodic = periodic
        self.dof = self.ctx.dof
        self.dt = self.ctx.dt
        self.kT = self.ctx.kT
        if self.spec.variable_cell and not periodic:
            from ..errors import ConfigError

            raise ConfigError(
                f"{ensemble.kind.upper()} needs a periodic cell: the structure has none "
                "(give a cell in the file)"
            )

    def init(self, evaluate, positions, momenta, cell, lists, key, dtype):
        """Initial state from positions (Å), momenta (amu·Å/ASE-time), cell (Å or None), pair-list
        state and a PRNG key; evaluates the model once. Returns (state, lists)."""
        import jax.numpy as jnp

        R = jnp.asarray(positions, dtype)
        P = jnp.asarray(momenta, dtype)
        c = None if cell is None else jnp.asarray(cell, dtype)
        return self.spec.init(key, R, P, c, lists, evaluate, self.ctx)

    def step(self, st, lists, evaluate):
        """Advance one timestep (the ensemble's step, then COM removal and the step count);
        returns (state, lists)."""
        st, lists = self.spec.step(st, lists, evaluate, self.ctx)
        return finish_step(st, self.ctx), lists

    def observables(self, st):
        """Dict of scalars (eV, K, eV/Å³, Å³) for the log: e_pot (model), e_ext, e_kin, e_tot,
        conserved, temperature, and for periodic systems volume and pressure."""
        import jax.numpy as jnp

        m = jnp.asarray(self.masses, st["R"].dtype)
        k2 = kinetic2(st["P"], m)
        ekin = 0.5 * k2
        etot = st["e_model"] + st["e_ext"] + ekin
        out = {
            "e_pot": st["e_model"],
            "e_ext": st["e_ext"],
            "e_kin": ekin,
            "e_tot": etot,
            "temperature": k2 / (self.dof * units.kB),
            "work": st["work"],
        }
        if "cell" in st:
            vol = jnp.abs(jnp.linalg.det(st["cell"]))
            out["volume"] = vol
            # virial pressure; the kinetic part uses the thermal momenta only (COM momentum is zero)
            out["pressure"] = (k2 - jnp.sum(st["dedeps"])) / (3.0 * vol)
            out["cell_x"], out["cell_y"], out["cell_z"] = (
                jnp.linalg.norm(st["cell"], axis=1)[k] for k in range(3)
            )
        conserved = self.spec.conserved
        out["conserved"] = etot if conserved is None else conserved(etot, st, self.ctx)
        return out


__all__ = ["ENSEMBLES", "REGISTRY", "Ensemble", "Forces", "Integrator", "kinetic2", "maxwell_boltzmann"]
