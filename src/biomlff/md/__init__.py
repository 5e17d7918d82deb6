"""biomlff.md — geometry optimisation and molecular dynamics for any biomlff Potential.

Geometry optimisation with L-BFGS or FIRE (:func:`optimize`, in the module ``minimize``: a module
named ``optimize`` would shadow the function, issue 25), NVE / Nosé–Hoover-chain NVT / Langevin NVT /
MTK NPT (:class:`Simulation` with an :class:`Ensemble`), path-integral (ring-polymer) MD
(:class:`PIMDSimulation` with :class:`PIMD`), an i-PI socket client (:class:`IPIClient`), steered MD
(:class:`Steering`), pair lists inside the compiled step (JAX-MD), extxyz / H5MD trajectories,
checkpoints and exact restarts. See ``docs/md.md``.

Importing this package is cheap: JAX and JAX-MD are imported when a function needs them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Simulation": "simulation",
    "MDSettings": "simulation",
    "Ensemble": "integrators",
    "Steering": "steering",
    "System": "structure",
    "read_structure": "structure",
    "shipped_structure": "structure",
    "optimize": "minimize",
    "OptResult": "minimize",
    "PairLists": "neighborlist",
    "PIMD": "pimd",
    "PIMDSimulation": "pimd",
    "IPIClient": "ipi",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
