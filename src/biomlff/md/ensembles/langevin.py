"""NVT with BAOAB Langevin dynamics (Leimkuhler–Matthews): kick, drift, Ornstein–Uhlenbeck,
drift, model call, kick. The heat exchanged with the bath is accumulated so that
E_tot − heat is conserved."""

from __future__ import annotations

from ... import units
from .base import initial_state, kinetic2, register, remove_com_momentum, store


def validate(ens):
    """Friction γ > 0 (1/fs)."""
    if not ens.friction_per_fs > 0:
        from ...errors import ConfigError

        raise ConfigError(f"Langevin friction must be positive, got {ens.friction_per_fs} 1/fs")


def init(key, positions, momenta, cell, lists, evaluate, ctx):
    """Initial state: the common variables plus ``heat`` (eV)."""
    import jax.numpy as jnp

    st, lists = initial_state(key, positions, momenta, cell, lists, evaluate)
    return dict(st, heat=jnp.zeros((), positions.dtype)), lists


def step(st, lists, evaluate, ctx):
    """One BAOAB step (noise from the state's PRNG key); returns (state, lists)."""
    import jax
    import jax.numpy as jnp

    m = ctx.m(st["R"].dtype)
    h = 0.5 * ctx.dt
    gamma = ctx.ens.friction_per_fs / units.ase_time_per_fs  # 1/ASE-time
    c1 = jnp.exp(-gamma * ctx.dt)
    c2 = jnp.sqrt(ctx.kT * (1.0 - c1**2))
    P = st["P"] + h * st["F"]
    R = st["R"] + h * P / m[:, None]
    key, sub = jax.random.split(st["key"])
    k2_before = kinetic2(P, m)
    noise = jax.random.normal(sub, P.shape, dtype=P.dtype)
    P = c1 * P + c2 * jnp.sqrt(m)[:, None] * noise
    if ctx.ens.remove_com and ctx.n > 1:
        P = remove_com_momentum(P, m)
    heat = st["heat"] + 0.5 * (kinetic2(P, m) - k2_before)
    R = R + h * P / m[:, None]
    lists, f = evaluate(R, st.get("cell"), lists)
    P = P + h * f.forces
    new = store(st, R, P, f)
    return dict(new, key=key, heat=heat), lists


def conserved(total, st, ctx):
    """``total`` minus the heat given to the bath (eV)."""
    return total - st["heat"]


SPEC = register("langevin", init, step, conserved=conserved, validate=validate)
