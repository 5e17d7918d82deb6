"""What every ensemble shares: the registry, the static step context, the model-call result
(:class:`Forces`) and small pure helpers (kinetic energy, centre-of-mass momentum, velocity-Verlet
half steps, the state every ensemble starts from).

An ensemble is a pair of pure functions in JAX-MD's functional style::

    init(key, positions, momenta, cell, lists, evaluate, ctx) -> (state, lists)
    step(state, lists, evaluate, ctx) -> (state, lists)

``evaluate(positions Å, cell Å | None, lists) -> (lists, Forces)`` is the model call (it refreshes
the pair lists first); ``ctx`` is the :class:`Context` of static settings (masses, timestep, kT, the
user's :class:`~biomlff.md.integrators.Ensemble`). The state is a flat dict of arrays (trivial,
exact checkpoints). The shared loop (:class:`~biomlff.md.integrators.Integrator`) removes the
centre-of-mass momentum and counts the step after ``step``. Optional ``conserved(total, state, ctx)``
adds the ensemble's extra terms (thermostat / barostat energy, −heat) to the conserved energy and
``validate(ensemble)`` checks its settings. :func:`register` makes a name available to
:class:`~biomlff.md.Simulation`; a new ensemble is one new file.

Units inside: positions Å, energy eV, mass amu, time in ASE units (Å·√(amu/eV), 1 fs =
``units.ase_time_per_fs``), momenta amu·Å/ASE-time, kT in eV, pressure eV/Å³.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ... import units


def fs_to_time(t_fs):
    """Convert a time (or timestep) in fs to ASE time units."""
    return t_fs * units.ase_time_per_fs


class Forces(NamedTuple):
    """What one model evaluation returns (eV, eV/Å; ``dedeps`` (3,) = dE/dε_kk for a diagonal strain, eV)."""

    e_model: object
    e_ext: object
    forces: object
    f_ext: object
    dedeps: object


@dataclass(frozen=True, eq=False)
class Context:
    """Static settings of one system in one ensemble (closed over by the compiled step).

    ens: the user's Ensemble; masses (N,) amu; n atoms; dof thermal degrees of freedom; dt (ASE
    time); kT (eV)."""

    ens: object
    masses: np.ndarray
    n: int
    dof: int
    dt: float
    kT: float

    @classmethod
    def make(cls, ensemble, masses) -> Context:
        m = np.asarray(masses, dtype=float)
        return cls(ensemble, m, len(m), ensemble.dof(len(m)), fs_to_time(ensemble.dt_fs), ensemble.kT)

    def m(self, dtype):
        """Masses (N,) as a JAX array of ``dtype``."""
        import jax.numpy as jnp

        return jnp.asarray(self.masses, dtype)


@dataclass(frozen=True)
class EnsembleSpec:
    """A registered ensemble: its pure ``init`` / ``step`` and optional ``conserved`` / ``validate``.
    ``variable_cell``: the ensemble changes the cell (needs a periodic orthorhombic cell)."""

    name: str
    init: Callable
    step: Callable
    conserved: Callable | None = None
    validate: Callable | None = None
    variable_cell: bool = False


#: name → EnsembleSpec (filled by the ensemble modules and by :func:`register`)
REGISTRY: dict[str, EnsembleSpec] = {}


def register(name: str, init, step, conserved=None, validate=None, variable_cell: bool = False):
    """Make the ensemble ``name`` available to ``Ensemble(kind=name)``; returns its spec."""
    spec = EnsembleSpec(name, init, step, conserved, validate, variable_cell)
    REGISTRY[name] = spec
    return spec


def get(name: str) -> EnsembleSpec:
    """The spec registered as ``name`` (ConfigError naming the known ones otherwise)."""
    if name not in REGISTRY:
        from ...errors import ConfigError

        raise ConfigError(f"unknown ensemble {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ---------------------------------------------------------------------------------------------
# small pure helpers
def kinetic2(p, m):
    """Σ p²/m (= 2 × kinetic energy, eV) for momenta (N, 3) and masses (N,)."""
    import jax.numpy as jnp

    return jnp.sum(p * p / m[:, None])


def remove_com_momentum(p, m):
    """Momenta with the total momentum removed (every atom loses the COM velocity)."""
    import jax.numpy as jnp

    v_com = jnp.sum(p, axis=0) / jnp.sum(m)
    return p - m[:, None] * v_com[None, :]


def maxwell_boltzmann(key, masses, kT: float, remove_com: bool = True, dtype=None):
    """Momenta (N, 3) drawn from the Maxwell–Boltzmann distribution at k_B·T = kT (eV) with zero total
    momentum when ``remove_com``; then scaled so that the instantaneous temperature is exactly T."""
    import jax
    import jax.numpy as jnp

    m = jnp.asarray(masses, dtype=dtype)
    p = jnp.sqrt(m * kT)[:, None] * jax.random.normal(key, (m.shape[0], 3), dtype=m.dtype)
    if remove_com:
        p = remove_com_momentum(p, m)
    n = m.shape[0]
    dof = 3 * n - (3 if remove_com and n > 1 else 0)
    k2 = kinetic2(p, m)
    return jnp.where(k2 > 0, p * jnp.sqrt(dof * kT / jnp.maximum(k2, 1e-300)), p)


def initial_state(key, positions, momenta, cell, lists, evaluate):
    """The variables every ensemble carries: R, P (amu·Å/ASE-time), F, F_ext (eV/Å), e_model,
    e_ext, work (eV), step, key, and cell (Å) / dedeps (eV) for a periodic system. Evaluates the
    model once; returns (state, lists)."""
    import jax.numpy as jnp

    lists, f = evaluate(positions, cell, lists)
    dtype = positions.dtype
    st = {
        "R": positions,
        "P": momenta,
        "F": f.forces,
        "F_ext": f.f_ext,
        "e_model": f.e_model,
        "e_ext": f.e_ext,
        "work": jnp.zeros((), dtype),
        "step": jnp.zeros((), jnp.int32),
        "key": jnp.asarray(key),
    }
    if cell is not None:
        st["cell"] = cell
        st["dedeps"] = f.dedeps
    return st, lists


def store(st, R, P, f, cell=None):
    """State after a move to R with momenta P and the model result ``f`` (external work by the
    trapezoidal rule; the cell replaced when given)."""
    import jax.numpy as jnp

    work = st["work"] + 0.5 * jnp.sum((st["F_ext"] + f.f_ext) * (R - st["R"]))
    new = dict(st, R=R, P=P, F=f.forces, F_ext=f.f_ext, e_model=f.e_model, e_ext=f.e_ext, work=work)
    if "cell" in st:
        new["cell"] = st["cell"] if cell is None else cell
        new["dedeps"] = f.dedeps
    return new


def velocity_verlet(st, lists, evaluate, ctx):
    """One velocity-Verlet step (kick dt/2, drift dt, model call, kick dt/2); returns (state, lists)."""
    m = ctx.m(st["R"].dtype)[:, None]
    h = 0.5 * ctx.dt
    P = st["P"] + h * st["F"]
    R = st["R"] + ctx.dt * P / m
    lists, f = evaluate(R, st.get("cell"), lists)
    P = P + h * f.forces
    return store(st, R, P, f), lists


def finish_step(st, ctx):
    """After any ensemble's step: remove the centre-of-mass momentum (if asked) and count the step."""
    if ctx.ens.remove_com and ctx.n > 1:
        st = dict(st, P=remove_com_momentum(st["P"], ctx.m(st["P"].dtype)))
    return dict(st, step=st["step"] + 1)
