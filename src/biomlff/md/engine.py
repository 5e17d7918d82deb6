"""The compiled model call used by every integrator and by FIRE.

``make_evaluate`` closes over a :class:`~biomlff.potential.Potential`, the :class:`PairLists` of the
system and an optional external (steering) potential, and returns the pure function

    evaluate(positions Å, cell Å | None, lists) -> (lists, Forces)

which first refreshes the pair lists for the new positions (rebuild only when needed), then
computes the model energy, forces (−∇E, eV/Å), the uniform-diagonal strain derivative dE/dε_kk
(periodic systems, (3,) eV; gives the virial pressure and drives the barostat) and the external energy/forces.
Positions handed to the model are wrapped into the cell (periodic systems); the integrators keep
unwrapped positions.
"""

from __future__ import annotations

from .integrators import Forces


def wrap_positions(positions, cell):
    """Positions folded into the cell [0, 1)³ in fractional coordinates (gradient passes unchanged)."""
    import jax.numpy as jnp

    s = positions @ jnp.linalg.inv(cell)
    return positions - jnp.floor(jax_stop(s)) @ cell


def jax_stop(x):
    import jax

    return jax.lax.stop_gradient(x)


def as_pytree_fn(fn):
    """A model function as a pytree (``jax.tree_util.Partial``) so that it can be passed *into* a
    jitted program: its parameters then are arguments, not constants folded at compile time (which
    costs tens of seconds of XLA compilation for SO3LR on CPU)."""
    import jax

    if fn is None or isinstance(fn, jax.tree_util.Partial):
        return fn
    return jax.tree_util.Partial(fn)


def make_evaluate(pairlists, external_energy=None):
    """Return ``evaluate(energy_fn, positions, cell, lists) -> (lists, Forces)`` (see module
    docstring); ``energy_fn`` is the model's (pytree) energy function."""
    import jax
    import jax.numpy as jnp

    from ..potential import strain_energy

    periodic = pairlists.periodic

    def model_energy(R, eps, energy_fn, pairs, cell):
        # eps (3,): diagonal strain (biomlff.potential.strain_energy, the calculators' stress too);
        # dE/deps_k = V σ_kk (eV) drives the (semi-)isotropic barostat
        if cell is None:
            return energy_fn(R, pairs, None)
        return strain_energy(energy_fn, jnp.diag(eps), wrap_positions(R, cell), pairs, cell)

    vg = jax.value_and_grad(model_energy, argnums=(0, 1))

    def evaluate(energy_fn, R, cell, lists):
        lists = pairlists.update(lists, R, cell)
        pairs, overflow = pairlists.pairs_checked(lists, R, cell)
        lists = dict(lists, pair_overflow=lists["pair_overflow"] | overflow)
        zero = jnp.zeros((), R.dtype)
        e_model, (g, dedeps) = vg(R, jnp.zeros((3,), R.dtype), energy_fn, pairs, cell if periodic else None)
        if external_energy is not None:
            e_ext, g_ext = jax.value_and_grad(external_energy)(R, cell if periodic else None)
        else:
            e_ext, g_ext = zero, jnp.zeros_like(R)
        f_ext = -g_ext
        return lists, Forces(e_model, e_ext, -g + f_ext, f_ext, dedeps)

    return evaluate


def make_outputs(pairlists):
    """``outputs(outputs_fn, positions, cell, lists) -> dict`` of the model's extra outputs."""

    def outputs(outputs_fn, R, cell, lists):
        pairs = pairlists.pairs(lists, R, cell)
        if cell is None:
            return outputs_fn(R, pairs, None)
        return outputs_fn(wrap_positions(R, cell), pairs, cell)

    return outputs
