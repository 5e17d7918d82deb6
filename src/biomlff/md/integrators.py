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

So the step functions below own the whole update in the working dtype, take the model as an
``evaluate(positions, cell, lists) -> (lists, Forces)`` callable that refreshes the pair lists
first, and keep every dynamical variable in a flat dict (trivial, exact checkpoints).

Units inside: positions Å, energy eV, mass amu, time in ASE units (Å·√(amu/eV), 1 fs =
``units.ase_time_per_fs``), momenta amu·Å/ASE-time, kT in eV, pressure eV/Å³.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import units

#: Suzuki–Yoshida weights for the Nosé–Hoover chain sub-steps (orders 1, 3, 5, 7)
SY_WEIGHTS = {
    1: (1.0,),
    3: (
        1.0 / (2.0 - 2.0 ** (1.0 / 3.0)),
        -(2.0 ** (1.0 / 3.0)) / (2.0 - 2.0 ** (1.0 / 3.0)),
        1.0 / (2.0 - 2.0 ** (1.0 / 3.0)),
    ),
    5: tuple(
        [1.0 / (4.0 - 4.0 ** (1.0 / 3.0))] * 2
        + [1.0 - 4.0 / (4.0 - 4.0 ** (1.0 / 3.0))]
        + [1.0 / (4.0 - 4.0 ** (1.0 / 3.0))] * 2
    ),
    7: (
        0.784513610477560,
        0.235573213359357,
        -1.17767998417887,
        1.31518632068391,
        -1.17767998417887,
        0.235573213359357,
        0.784513610477560,
    ),
}

ENSEMBLES = ("nve", "nvt", "langevin", "npt")

#: barostat degrees of freedom ("modes") → the Cartesian cell axes each one scales
BAROSTAT_MODES = {
    "isotropic": ((1.0, 1.0, 1.0),),
    "semi-isotropic": ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}


def fs_to_time(t_fs):
    """Convert a time (or timestep) in fs to ASE time units."""
    return t_fs * units.ase_time_per_fs


@dataclass(frozen=True)
class Ensemble:
    """Integrator settings (all user units).

    kind: 'nve' | 'nvt' (Nosé–Hoover chain) | 'langevin' | 'npt' (MTK barostat + NHC).
    coupling: NPT cell coupling, 'isotropic' or 'semi-isotropic' (x and y scaled together, z
    separately; membranes). Orthorhombic cells.
    dt_fs: timestep (fs). temperature_K (K). pressure_eV_A3: target pressure (eV/Å³).
    tau_t_fs / tau_p_fs: thermostat / barostat time constants (fs).
    chain_length, chain_steps, sy_order: Nosé–Hoover chain length, outer sub-steps n_c and
    Suzuki–Yoshida order (1, 3, 5, 7). friction_per_fs: Langevin friction γ (1/fs).
    remove_com: keep the total momentum at zero (then 3N − 3 degrees of freedom are thermal).
    """

    kind: str = "nvt"
    dt_fs: float = 0.5
    temperature_K: float = 300.0
    pressure_eV_A3: float = units.atm
    tau_t_fs: float = 50.0
    tau_p_fs: float = 500.0
    chain_length: int = 3
    chain_steps: int = 2
    sy_order: int = 3
    friction_per_fs: float = 0.01
    remove_com: bool = True
    coupling: str = "isotropic"

    def validate(self):
        from ..errors import ConfigError

        if self.kind not in ENSEMBLES:
            raise ConfigError(f"unknown ensemble {self.kind!r}; choose one of {', '.join(ENSEMBLES)}")
        if not self.dt_fs > 0:
            raise ConfigError(f"timestep must be positive, got dt = {self.dt_fs} fs")
        if self.kind != "nve" and not self.temperature_K > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature_K} K")
        if self.temperature_K < 0:
            raise ConfigError(f"temperature must not be negative, got {self.temperature_K} K")
        if self.kind in ("nvt", "npt"):
            if self.chain_length < 1 or self.chain_steps < 1:
                raise ConfigError("Nosé–Hoover chain length and chain steps must be ≥ 1")
            if self.sy_order not in SY_WEIGHTS:
                raise ConfigError(f"Suzuki–Yoshida order must be one of 1, 3, 5, 7; got {self.sy_order}")
            if not self.tau_t_fs > 0:
                raise ConfigError(f"thermostat time constant must be positive, got {self.tau_t_fs} fs")
        if self.coupling not in BAROSTAT_MODES:
            raise ConfigError(f"unknown NPT coupling {self.coupling!r}; choose {', '.join(BAROSTAT_MODES)}")
        if self.kind == "npt" and not self.tau_p_fs > 0:
            raise ConfigError(f"barostat time constant must be positive, got {self.tau_p_fs} fs")
        if self.kind == "langevin" and not self.friction_per_fs > 0:
            raise ConfigError(f"Langevin friction must be positive, got {self.friction_per_fs} 1/fs")
        return self

    def dof(self, n_atoms: int) -> int:
        """Thermal degrees of freedom: 3N, minus 3 when the centre-of-mass momentum is held at zero."""
        return 3 * n_atoms - (3 if (self.remove_com and n_atoms > 1) else 0)

    @property
    def kT(self) -> float:
        """Target k_B·T in eV."""
        return units.kB * self.temperature_K


class Forces(NamedTuple):
    """What one model evaluation returns (eV, eV/Å; ``dedeps`` (3,) = dE/dε_kk for a diagonal strain, eV)."""

    e_model: object
    e_ext: object
    forces: object
    f_ext: object
    dedeps: object


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


def _sinhc(x):
    """sinh(x)/x with its Taylor series near 0 (x small; exact to O(x¹⁰))."""
    return 1 + x**2 / 6 + x**4 / 120 + x**6 / 5040 + x**8 / 362880 + x**10 / 39916800


def nhc_half_step(k2, xi, vxi, Q, kT, dof, h, chain_steps: int, sy_order: int):
    """One half-step (duration h, ASE time) of a Nosé–Hoover chain (Martyna–Tuckerman–Klein 1996
    factorisation) coupled to a system whose Σp²/m is ``k2`` (eV) with ``dof`` degrees of freedom.

    xi, vxi, Q: chain positions, velocities and masses (L,). Returns (scale, xi, vxi): the factor
    the coupled momenta must be multiplied by, and the new chain. Works for any chain length ≥ 1."""
    import jax.numpy as jnp
    from jax import lax

    L = xi.shape[0]
    weights = jnp.asarray(SY_WEIGHTS[sy_order], dtype=k2.dtype)

    def g(j, v, k2_now):
        if j == 0:
            return (k2_now - dof * kT) / Q[0]
        return (Q[j - 1] * v[j - 1] ** 2 - kT) / Q[j]

    def substep(c, w):
        scale, xi, v, k2c = c
        d = w * h / chain_steps
        v = list(v[i] for i in range(L))
        # backward sweep: last thermostat first
        v[L - 1] = v[L - 1] + 0.5 * d * g(L - 1, v, k2c)
        for j in range(L - 2, -1, -1):
            s = jnp.exp(-0.25 * d * v[j + 1])
            v[j] = s * (s * v[j] + 0.5 * d * g(j, v, k2c))
        # scale the particles
        a = jnp.exp(-d * v[0])
        scale = scale * a
        k2c = k2c * a * a
        vv = jnp.stack(v)
        xi = xi + d * vv
        # forward sweep
        for j in range(0, L - 1):
            s = jnp.exp(-0.25 * d * v[j + 1])
            v[j] = s * (s * v[j] + 0.5 * d * g(j, v, k2c))
        v[L - 1] = v[L - 1] + 0.5 * d * g(L - 1, v, k2c)
        return (scale, xi, jnp.stack(v), k2c), None

    ws = jnp.tile(weights, chain_steps)
    (scale, xi, vxi, _), _ = lax.scan(substep, (jnp.ones((), k2.dtype), xi, vxi, k2), ws)
    return scale, xi, vxi


def nhc_masses(length: int, dof: float, kT: float, tau, dtype):
    """Chain masses Q (L,): Q₁ = dof·kT·τ², Q_j = kT·τ² (τ in ASE time)."""
    import jax.numpy as jnp

    q = jnp.full((length,), kT * tau**2, dtype=dtype)
    return q.at[0].multiply(dof)


def nhc_energy(xi, vxi, Q, kT, dof):
    """Energy stored in a chain (eV): Σ Q v²/2 + dof·kT·ξ₁ + kT Σ_{j>1} ξ_j."""
    import jax.numpy as jnp

    return 0.5 * jnp.sum(Q * vxi**2) + dof * kT * xi[0] + kT * jnp.sum(xi[1:])


# ---------------------------------------------------------------------------------------------
class Integrator:
    """Initial state and step function of one ensemble for a system of ``masses`` (amu).

    ``evaluate(positions, cell, lists) -> (lists, Forces)`` is the model call (it refreshes the pair
    lists for the new positions first); it is passed to :meth:`init` and :meth:`step` so that the
    model's parameters can be arguments of the compiled program. The state is a flat dict of arrays.
    """

    def __init__(self, ensemble: Ensemble, masses, periodic: bool):
        self.ens = ensemble.validate()
        self.masses = np.asarray(masses, dtype=float)
        self.n = len(self.masses)
        self.periodic = periodic
        self.dof = ensemble.dof(self.n)
        self.dt = fs_to_time(ensemble.dt_fs)
        self.kT = ensemble.kT
        if ensemble.kind == "npt" and not periodic:
            from ..errors import ConfigError

            raise ConfigError("NPT needs a periodic cell: the structure has none (give a cell in the file)")

    # --- state -------------------------------------------------------------------------------
    def init(self, evaluate, positions, momenta, cell, lists, key, dtype):
        """Initial state from positions (Å), momenta (amu·Å/ASE-time), cell (Å or None), pair-list
        state and a PRNG key; evaluates the model once."""
        import jax.numpy as jnp

        R = jnp.asarray(positions, dtype)
        P = jnp.asarray(momenta, dtype)
        c = None if cell is None else jnp.asarray(cell, dtype)
        lists, f = evaluate(R, c, lists)
        st = {
            "R": R,
            "P": P,
            "F": f.forces,
            "F_ext": f.f_ext,
            "e_model": f.e_model,
            "e_ext": f.e_ext,
            "work": jnp.zeros((), dtype),
            "step": jnp.zeros((), jnp.int32),
        }
        if c is not None:
            st["cell"] = c
            st["dedeps"] = f.dedeps
        kind = self.ens.kind
        if kind in ("nvt", "npt"):
            L = self.ens.chain_length
            st["xi"] = jnp.zeros((L,), dtype)
            st["vxi"] = jnp.zeros((L,), dtype)
        if kind == "npt":
            L = self.ens.chain_length
            st["veps"] = jnp.zeros((len(BAROSTAT_MODES[self.ens.coupling]),), dtype)
            st["xi_b"] = jnp.zeros((L,), dtype)
            st["vxi_b"] = jnp.zeros((L,), dtype)
            st["cell0"] = c
        if kind == "langevin":
            st["heat"] = jnp.zeros((), dtype)
        st["key"] = jnp.asarray(key)
        return st, lists

    # --- observables ---------------------------------------------------------------------------
    def observables(self, st):
        """Dict of scalars (eV, K, eV/Å³, Å³) for the log: e_pot (model), e_ext, e_kin, e_tot,
        conserved, temperature, and for periodic systems volume and pressure."""
        import jax.numpy as jnp

        m = jnp.asarray(self.masses, st["R"].dtype)
        k2 = kinetic2(st["P"], m)
        ekin = 0.5 * k2
        etot = st["e_model"] + st["e_ext"] + ekin
        cons = etot
        kind = self.ens.kind
        if kind in ("nvt", "npt"):
            Q = nhc_masses(self.ens.chain_length, self.dof, self.kT, fs_to_time(self.ens.tau_t_fs), k2.dtype)
            cons = cons + nhc_energy(st["xi"], st["vxi"], Q, self.kT, self.dof)
        if kind == "langevin":
            cons = cons - st["heat"]
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
        if kind == "npt":
            vol = out["volume"]
            W = self._baro_mass(k2.dtype)
            nb = W.shape[0]
            Qb = nhc_masses(self.ens.chain_length, nb, self.kT, fs_to_time(self.ens.tau_p_fs), k2.dtype)
            cons = cons + 0.5 * jnp.sum(W * st["veps"] ** 2) + self.ens.pressure_eV_A3 * vol
            cons = cons + nhc_energy(st["xi_b"], st["vxi_b"], Qb, self.kT, nb)
        out["conserved"] = cons
        return out

    def _baro_mass(self, dtype):
        """Barostat masses (n_modes,): (N_f + 3)/3 · kT τ_P² per cell axis a mode scales (MTK;
        isotropic: (N_f + 3) kT τ_P²)."""
        import jax.numpy as jnp

        modes = np.asarray(BAROSTAT_MODES[self.ens.coupling])
        w_axis = (self.dof + 3) * self.kT * fs_to_time(self.ens.tau_p_fs) ** 2 / 3.0
        return jnp.asarray(modes.sum(axis=1) * w_axis, dtype)

    # --- steps -----------------------------------------------------------------------------------
    def step(self, st, lists, evaluate):
        """Advance one timestep; returns (state, lists)."""
        self.evaluate = evaluate  # used by the step helpers below during this trace
        kind = self.ens.kind
        if kind == "nve":
            st, lists = self._verlet(st, lists)
        elif kind == "nvt":
            st = self._thermostat(st)
            st, lists = self._verlet(st, lists)
            st = self._thermostat(st)
        elif kind == "langevin":
            st, lists = self._baoab(st, lists)
        else:
            st, lists = self._npt(st, lists)
        if self.ens.remove_com and self.n > 1:
            import jax.numpy as jnp

            st = dict(st, P=remove_com_momentum(st["P"], jnp.asarray(self.masses, st["P"].dtype)))
        return dict(st, step=st["step"] + 1), lists

    def _work(self, st, R_new, f_ext_new):
        import jax.numpy as jnp

        return st["work"] + 0.5 * jnp.sum((st["F_ext"] + f_ext_new) * (R_new - st["R"]))

    def _store(self, st, R, P, f, cell=None):
        new = dict(
            st,
            R=R,
            P=P,
            F=f.forces,
            F_ext=f.f_ext,
            e_model=f.e_model,
            e_ext=f.e_ext,
            work=self._work(st, R, f.f_ext),
        )
        if "cell" in st:
            new["cell"] = st["cell"] if cell is None else cell
            new["dedeps"] = f.dedeps
        return new

    def _verlet(self, st, lists):
        import jax.numpy as jnp

        m = jnp.asarray(self.masses, st["R"].dtype)[:, None]
        h = 0.5 * self.dt
        P = st["P"] + h * st["F"]
        R = st["R"] + self.dt * P / m
        lists, f = self.evaluate(R, st.get("cell"), lists)
        P = P + h * f.forces
        return self._store(st, R, P, f), lists

    def _thermostat(self, st):
        import jax.numpy as jnp

        m = jnp.asarray(self.masses, st["R"].dtype)
        k2 = kinetic2(st["P"], m)
        Q = nhc_masses(self.ens.chain_length, self.dof, self.kT, fs_to_time(self.ens.tau_t_fs), k2.dtype)
        scale, xi, vxi = nhc_half_step(
            k2,
            st["xi"],
            st["vxi"],
            Q,
            self.kT,
            self.dof,
            0.5 * self.dt,
            self.ens.chain_steps,
            self.ens.sy_order,
        )
        return dict(st, P=st["P"] * scale, xi=xi, vxi=vxi)

    def _baoab(self, st, lists):
        import jax
        import jax.numpy as jnp

        m = jnp.asarray(self.masses, st["R"].dtype)
        h = 0.5 * self.dt
        gamma = self.ens.friction_per_fs / units.ase_time_per_fs  # 1/ASE-time
        c1 = jnp.exp(-gamma * self.dt)
        c2 = jnp.sqrt(self.kT * (1.0 - c1**2))
        P = st["P"] + h * st["F"]
        R = st["R"] + h * P / m[:, None]
        key, sub = jax.random.split(st["key"])
        k2_before = kinetic2(P, m)
        noise = jax.random.normal(sub, P.shape, dtype=P.dtype)
        P = c1 * P + c2 * jnp.sqrt(m)[:, None] * noise
        if self.ens.remove_com and self.n > 1:
            P = remove_com_momentum(P, m)
        heat = st["heat"] + 0.5 * (kinetic2(P, m) - k2_before)
        R = R + h * P / m[:, None]
        lists, f = self.evaluate(R, st.get("cell"), lists)
        P = P + h * f.forces
        new = self._store(st, R, P, f)
        return dict(new, key=key, heat=heat), lists

    def _npt(self, st, lists):
        """MTK barostat (Martyna, Tobias, Klein 1994) restricted to a diagonal cell, with modes that
        tie axes together (isotropic: one mode on x, y, z; semi-isotropic: xy and z), integrated
        with the Tuckerman et al. (2006) factorisation; Nosé–Hoover chains on particles and modes."""
        import jax.numpy as jnp

        dt, h = self.dt, 0.5 * self.dt
        m = jnp.asarray(self.masses, st["R"].dtype)
        dtype = st["R"].dtype
        ens = self.ens
        modes = jnp.asarray(BAROSTAT_MODES[ens.coupling], dtype)  # (n_modes, 3)
        nb = modes.shape[0]
        W = self._baro_mass(dtype)
        Pext = ens.pressure_eV_A3
        Qb = nhc_masses(ens.chain_length, nb, self.kT, fs_to_time(ens.tau_p_fs), dtype)
        Qt = nhc_masses(ens.chain_length, self.dof, self.kT, fs_to_time(ens.tau_t_fs), dtype)

        def thermostats(st):
            sb, xib, vxib = nhc_half_step(
                jnp.sum(W * st["veps"] ** 2),
                st["xi_b"],
                st["vxi_b"],
                Qb,
                self.kT,
                nb,
                h,
                ens.chain_steps,
                ens.sy_order,
            )
            k2 = kinetic2(st["P"], m)
            sp, xi, vxi = nhc_half_step(
                k2, st["xi"], st["vxi"], Qt, self.kT, self.dof, h, ens.chain_steps, ens.sy_order
            )
            return dict(st, veps=st["veps"] * sb, xi_b=xib, vxi_b=vxib, P=st["P"] * sp, xi=xi, vxi=vxi)

        def g_modes(P, dedeps, vol):
            # per axis: Σ p_k²/m − dE/dε_kk − V·P_ext + Σp²/m / N_f ; summed over each mode's axes
            k2_axis = jnp.sum(P * P / m[:, None], axis=0)
            g_axis = k2_axis - dedeps - vol * Pext + jnp.sum(k2_axis) / self.dof
            return modes @ g_axis

        def kick(P, F, v_axis):
            x = (v_axis + jnp.sum(v_axis) / self.dof) * h  # (3,)
            return P * jnp.exp(-x) + h * F * jnp.exp(-0.5 * x) * _sinhc(0.5 * x)

        st = thermostats(st)
        vol = jnp.abs(jnp.linalg.det(st["cell"]))
        veps = st["veps"] + h * g_modes(st["P"], st["dedeps"], vol) / W
        v_axis = modes.T @ veps
        P = kick(st["P"], st["F"], v_axis)
        x = v_axis * dt
        R = st["R"] * jnp.exp(x) + dt * (P / m[:, None]) * jnp.exp(0.5 * x) * _sinhc(0.5 * x)
        cell = st["cell"] * jnp.exp(x)  # column k (Cartesian axis k) scales by e^{x_k}
        lists, f = self.evaluate(R, cell, lists)
        P = kick(P, f.forces, v_axis)
        vol = jnp.abs(jnp.linalg.det(cell))
        veps = veps + h * g_modes(P, f.dedeps, vol) / W
        new = self._store(st, R, P, f, cell=cell)
        new = dict(new, veps=veps)
        new = thermostats(new)
        return new, lists
