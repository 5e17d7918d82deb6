"""NVE: velocity Verlet."""

from __future__ import annotations

from .base import initial_state, register, velocity_verlet


def init(key, positions, momenta, cell, lists, evaluate, ctx):
    """Initial NVE state (the variables of :func:`~biomlff.md.ensembles.base.initial_state`)."""
    return initial_state(key, positions, momenta, cell, lists, evaluate)


def step(state, lists, evaluate, ctx):
    """One velocity-Verlet step of ``ctx.dt``; returns (state, lists)."""
    return velocity_verlet(state, lists, evaluate, ctx)


SPEC = register("nve", init, step)
