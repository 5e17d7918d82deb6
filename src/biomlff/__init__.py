"""biomlff — machine-learned force fields with long-range physics for (bio)molecules.

Pillars (one subpackage each): ``data`` (datasets and formats), ``labels`` (reference data
generation), ``gdml`` (global kernel models), ``so3lr`` (the pretrained SO3LR model), ``md``
(optimisation and molecular dynamics), ``analysis`` (observables and plots). ``calculators`` and
``cli`` are thin layers on top.

Every model implements :class:`biomlff.potential.Potential` — a pure, jit-compilable JAX energy
function of positions (Å), pair lists and cell; forces, stress and Hessians follow by autodiff.

Importing ``biomlff`` is cheap: JAX, JAX-MD and the models are imported by the subpackages that
need them.
"""

__version__ = "0.1.0"
