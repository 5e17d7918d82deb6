"""The compiled model call used by every integrator and by FIRE.

``make_evaluate`` closes over a :class:`~biomlff.potential.Potential`, the :class:`PairLists` of the
system and an optional external (steering) potential, and returns the pure function

    evaluate(positions Å, cell Å | None, lists) -> (lists, Forces)

which first refreshes the pair lists for the new positions (rebuild only when needed), then
computes the model energy, forces (−∇E, eV/Å), the uniform-strain derivative dE/dε (periodic
systems, eV; gives the virial pressure and drives the barostat) and the external energy/forces.
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


def make_evaluate(potential, pairlists, external_energy=None):
    """Return ``evaluate(positions, cell, lists) -> (lists, Forces)`` (see module docstring)."""
    import jax
    import jax.numpy as jnp

    periodic = pairlists.periodic

    def model_energy(R, eps, pairs, cell):
        if cell is None:
            return potential.energy_fn(R, pairs, None)
        s = 1.0 + eps
        return potential.energy_fn(wrap_positions(R, cell) * s, pairs, cell * s)

    vg = jax.value_and_grad(model_energy, argnums=(0, 1))

    def evaluate(R, cell, lists):
        lists = pairlists.update(lists, R, cell)
        pairs = pairlists.pairs(lists, R, cell)
        zero = jnp.zeros((), R.dtype)
        e_model, (g, dedeps) = vg(R, zero, pairs, cell if periodic else None)
        if external_energy is not None:
            e_ext, g_ext = jax.value_and_grad(external_energy)(R, cell if periodic else None)
        else:
            e_ext, g_ext = zero, jnp.zeros_like(R)
        f_ext = -g_ext
        return lists, Forces(e_model, e_ext, -g + f_ext, f_ext, dedeps)

    return evaluate


def make_outputs(potential, pairlists):
    """``outputs(positions, cell, lists) -> dict`` of the model's extra outputs (or None)."""
    if potential.outputs_fn is None:
        return None

    def outputs(R, cell, lists):
        pairs = pairlists.pairs(lists, R, cell)
        if cell is None:
            return potential.outputs_fn(R, pairs, None)
        return potential.outputs_fn(wrap_positions(R, cell), pairs, cell)

    return outputs
