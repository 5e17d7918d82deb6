"""NVT with a Nosé–Hoover chain (Martyna–Tuckerman–Klein 1996 factorisation, Suzuki–Yoshida
sub-steps): chain half step, velocity Verlet, chain half step. The chain helpers are also used by
the NPT ensemble (:mod:`.npt`).

Written here rather than taken from ``jax_md.simulate.nvt_nose_hoover`` (jax-md 0.2.29): that one
rounds ``dt``, ``τ`` and the chain masses to float32 even with ``jax_enable_x64``, is wrong for a
chain of length 1 and always couples 3N degrees of freedom (see :mod:`biomlff.md.integrators`).
"""

from __future__ import annotations

from .base import fs_to_time, initial_state, kinetic2, register, velocity_verlet

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


def particle_chain_masses(ctx, dtype):
    """Masses Q (L,) of the chain on the particles (τ = tau_t_fs)."""
    return nhc_masses(ctx.ens.chain_length, ctx.dof, ctx.kT, fs_to_time(ctx.ens.tau_t_fs), dtype)


def chain_state(ctx, dtype, suffix: str = ""):
    """Zero chain positions and velocities: {'xi' + suffix, 'vxi' + suffix} (L,)."""
    import jax.numpy as jnp

    L = ctx.ens.chain_length
    return {"xi" + suffix: jnp.zeros((L,), dtype), "vxi" + suffix: jnp.zeros((L,), dtype)}


def validate(ens):
    """Chain length and steps ≥ 1, a Suzuki–Yoshida order of 1, 3, 5, 7 and τ_T > 0."""
    from ...errors import ConfigError

    if ens.chain_length < 1 or ens.chain_steps < 1:
        raise ConfigError("Nosé–Hoover chain length and chain steps must be ≥ 1")
    if ens.sy_order not in SY_WEIGHTS:
        raise ConfigError(f"Suzuki–Yoshida order must be one of 1, 3, 5, 7; got {ens.sy_order}")
    if not ens.tau_t_fs > 0:
        raise ConfigError(f"thermostat time constant must be positive, got {ens.tau_t_fs} fs")


def thermostat(st, ctx):
    """Half a timestep of the particle chain: momenta scaled, chain advanced."""
    k2 = kinetic2(st["P"], ctx.m(st["R"].dtype))
    ens = ctx.ens
    scale, xi, vxi = nhc_half_step(
        k2,
        st["xi"],
        st["vxi"],
        particle_chain_masses(ctx, k2.dtype),
        ctx.kT,
        ctx.dof,
        0.5 * ctx.dt,
        ens.chain_steps,
        ens.sy_order,
    )
    return dict(st, P=st["P"] * scale, xi=xi, vxi=vxi)


def init(key, positions, momenta, cell, lists, evaluate, ctx):
    """Initial NVT state: the common variables plus the chain xi, vxi (L,) at rest."""
    st, lists = initial_state(key, positions, momenta, cell, lists, evaluate)
    return dict(st, **chain_state(ctx, positions.dtype)), lists


def step(state, lists, evaluate, ctx):
    """Chain half step, velocity Verlet, chain half step; returns (state, lists)."""
    st = thermostat(state, ctx)
    st, lists = velocity_verlet(st, lists, evaluate, ctx)
    return thermostat(st, ctx), lists


def conserved(total, st, ctx):
    """``total`` plus the energy stored in the particle chain (eV)."""
    dtype = st["R"].dtype
    return total + nhc_energy(st["xi"], st["vxi"], particle_chain_masses(ctx, dtype), ctx.kT, ctx.dof)


SPEC = register("nvt", init, step, conserved=conserved, validate=validate)
