"""NPT: the Martyna–Tobias–Klein barostat (Martyna, Tobias, Klein 1994) restricted to a diagonal
cell, with modes that tie axes together (isotropic: one mode on x, y, z; semi-isotropic: xy and z),
integrated with the Tuckerman et al. (2006) factorisation; Nosé–Hoover chains on the particles and
on the barostat modes.

Written here rather than taken from ``jax_md.simulate.npt_nose_hoover`` (jax-md 0.2.29): with
fractional coordinates that one applies the Cartesian position-scaling term ``R (e^x − 1)`` to
fractional positions, and it does not let the pair lists be refreshed before the force call.
"""

from __future__ import annotations

import numpy as np

from .base import fs_to_time, initial_state, kinetic2, register, store
from .nose_hoover import chain_state, nhc_energy, nhc_half_step, nhc_masses, particle_chain_masses
from .nose_hoover import validate as validate_chain

#: barostat degrees of freedom ("modes") → the Cartesian cell axes each one scales
BAROSTAT_MODES = {
    "isotropic": ((1.0, 1.0, 1.0),),
    "semi-isotropic": ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}


def _sinhc(x):
    """sinh(x)/x with its Taylor series near 0 (x small; exact to O(x¹⁰))."""
    return 1 + x**2 / 6 + x**4 / 120 + x**6 / 5040 + x**8 / 362880 + x**10 / 39916800


def baro_mass(ctx, dtype):
    """Barostat masses (n_modes,): (N_f + 3)/3 · kT τ_P² per cell axis a mode scales (MTK;
    isotropic: (N_f + 3) kT τ_P²)."""
    import jax.numpy as jnp

    modes = np.asarray(BAROSTAT_MODES[ctx.ens.coupling])
    w_axis = (ctx.dof + 3) * ctx.kT * fs_to_time(ctx.ens.tau_p_fs) ** 2 / 3.0
    return jnp.asarray(modes.sum(axis=1) * w_axis, dtype)


def _baro_chain_masses(ctx, nb, dtype):
    return nhc_masses(ctx.ens.chain_length, nb, ctx.kT, fs_to_time(ctx.ens.tau_p_fs), dtype)


def validate(ens):
    """The chain settings and τ_P > 0 (fs)."""
    validate_chain(ens)
    if not ens.tau_p_fs > 0:
        from ...errors import ConfigError

        raise ConfigError(f"barostat time constant must be positive, got {ens.tau_p_fs} fs")


def init(key, positions, momenta, cell, lists, evaluate, ctx):
    """Initial state: the common variables, the particle chain, the barostat velocities veps
    (n_modes,), the barostat chain xi_b, vxi_b and the reference cell cell0."""
    import jax.numpy as jnp

    dtype = positions.dtype
    st, lists = initial_state(key, positions, momenta, cell, lists, evaluate)
    st.update(chain_state(ctx, dtype))
    st["veps"] = jnp.zeros((len(BAROSTAT_MODES[ctx.ens.coupling]),), dtype)
    st.update(chain_state(ctx, dtype, suffix="_b"))
    st["cell0"] = cell
    return st, lists


def step(st, lists, evaluate, ctx):
    """One MTK step; returns (state, lists)."""
    import jax.numpy as jnp

    dt, h = ctx.dt, 0.5 * ctx.dt
    dtype = st["R"].dtype
    m = ctx.m(dtype)
    ens = ctx.ens
    modes = jnp.asarray(BAROSTAT_MODES[ens.coupling], dtype)  # (n_modes, 3)
    nb = modes.shape[0]
    W = baro_mass(ctx, dtype)
    Pext = ens.pressure_eV_A3
    Qb = _baro_chain_masses(ctx, nb, dtype)
    Qt = particle_chain_masses(ctx, dtype)

    def thermostats(st):
        sb, xib, vxib = nhc_half_step(
            jnp.sum(W * st["veps"] ** 2),
            st["xi_b"],
            st["vxi_b"],
            Qb,
            ctx.kT,
            nb,
            h,
            ens.chain_steps,
            ens.sy_order,
        )
        k2 = kinetic2(st["P"], m)
        sp, xi, vxi = nhc_half_step(
            k2, st["xi"], st["vxi"], Qt, ctx.kT, ctx.dof, h, ens.chain_steps, ens.sy_order
        )
        return dict(st, veps=st["veps"] * sb, xi_b=xib, vxi_b=vxib, P=st["P"] * sp, xi=xi, vxi=vxi)

    def g_modes(P, dedeps, vol):
        # per axis: Σ p_k²/m − dE/dε_kk − V·P_ext + Σp²/m / N_f ; summed over each mode's axes
        k2_axis = jnp.sum(P * P / m[:, None], axis=0)
        g_axis = k2_axis - dedeps - vol * Pext + jnp.sum(k2_axis) / ctx.dof
        return modes @ g_axis

    def kick(P, F, v_axis):
        x = (v_axis + jnp.sum(v_axis) / ctx.dof) * h  # (3,)
        return P * jnp.exp(-x) + h * F * jnp.exp(-0.5 * x) * _sinhc(0.5 * x)

    st = thermostats(st)
    vol = jnp.abs(jnp.linalg.det(st["cell"]))
    veps = st["veps"] + h * g_modes(st["P"], st["dedeps"], vol) / W
    v_axis = modes.T @ veps
    P = kick(st["P"], st["F"], v_axis)
    x = v_axis * dt
    R = st["R"] * jnp.exp(x) + dt * (P / m[:, None]) * jnp.exp(0.5 * x) * _sinhc(0.5 * x)
    cell = st["cell"] * jnp.exp(x)  # column k (Cartesian axis k) scales by e^{x_k}
    lists, f = evaluate(R, cell, lists)
    P = kick(P, f.forces, v_axis)
    vol = jnp.abs(jnp.linalg.det(cell))
    veps = veps + h * g_modes(P, f.dedeps, vol) / W
    new = store(st, R, P, f, cell=cell)
    new = dict(new, veps=veps)
    return thermostats(new), lists


def conserved(total, st, ctx):
    """``total`` plus the particle chain, the barostat kinetic energy, P_ext·V and the barostat
    chain (eV)."""
    import jax.numpy as jnp

    dtype = st["R"].dtype
    total = total + nhc_energy(st["xi"], st["vxi"], particle_chain_masses(ctx, dtype), ctx.kT, ctx.dof)
    vol = jnp.abs(jnp.linalg.det(st["cell"]))
    W = baro_mass(ctx, dtype)
    nb = W.shape[0]
    total = total + 0.5 * jnp.sum(W * st["veps"] ** 2) + ctx.ens.pressure_eV_A3 * vol
    return total + nhc_energy(st["xi_b"], st["vxi_b"], _baro_chain_masses(ctx, nb, dtype), ctx.kT, nb)


SPEC = register("npt", init, step, conserved=conserved, validate=validate, variable_cell=True)
