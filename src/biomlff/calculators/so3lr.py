"""ASE calculator for SO3LR (see docs/so3lr.md).

Charge from ``atoms.info["charge"]`` (e), multiplicity from ``atoms.info["multiplicity"]`` (defaults:
the calculator's ``charge=0`` and ``multiplicity=1``). Optional per-fragment charge conservation (dimer
binding energies): per-atom fragment indices in ``atoms.arrays["fragment_ids"]`` and the fragment
charges (e) in ``atoms.info["fragment_charges"]``.

Results: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, periodic cells
only), ``charges`` (e), ``dipole`` (e·Å, Σ q_i R_i), ``energies`` (per atom, eV),
``hirshfeld_ratios`` and ``energy_terms`` (dict so3krates / zbl / electrostatics / dispersion, eV).
"""

from __future__ import annotations

import numpy as np

from ..defaults import DEFAULT_EWALD_ACCURACY
from .base import DEFAULT_SKIN, PotentialCalculator, cell_of


class SO3LRCalculator(PotentialCalculator):
    """SO3LR (or any SO3krates/SO3LR model file) as an ASE calculator: the generic calculator on top of
    the front door :func:`biomlff.models.build_potential`, so it resolves its settings exactly as
    ``biomlff md``, eval and training do (:class:`biomlff.models.ModelSettings`).

    Args:
        lr_cutoff: long-range cutoff in Å; "auto" (default): the model file's, else none (all pairs,
            the training setting) in free space and 12 Å for periodic cells (every cell height must
            be ≥ 2 × lr_cutoff); None: all pairs (free space only).
        dispersion_damping: width in Å of the dispersion switch before the cutoff (default: the
            model file's, else 2).
        precision: "float32" (default) or "float64" (evaluated in a local ``jax.enable_x64`` context).
        model: "so3lr" (default), a model file path or an :class:`~biomlff.so3lr.modelfile.SO3LRModel`.
        params: parameter tree (default: the model's; for SO3LR the installed weights,
            :func:`biomlff.so3lr.load_params`). weights: path to a weights file (canonical npz,
            params.pkl or so3krates-torch model) instead.
        capacity_margin: head-room factor of the pair-list capacities.
        skin: Verlet skin (Å, default 0.5) of the pair lists, which are reused between calls until an
            atom has moved by half of it (limited by the minimum image in small cells; 0 searches
            them every call); the 4.5 Å list is cut from its candidates to the pairs within 4.5 Å on
            every call (the list of a fresh search).
        charge, multiplicity: defaults for atoms without ``info["charge"]`` / ``info["multiplicity"]``.
        filters: radial filters "exact" or "tabulated" (tables built once per calculator from the
            weights, :mod:`biomlff.so3lr.tabulate`); None: tabulated in float32, exact in float64.
        electrostatics: "cutoff" (default, SO3LR's shifted cutoff) or "ewald" / "pme" (periodic
            cells: the damped Coulomb interaction summed over the lattice, :mod:`biomlff.so3lr.lattice`),
            tuned for the atoms' cell to the relative force accuracy ``ewald_accuracy``; a cell that
            needs a different wave-vector set or mesh rebuilds the model. pme_order: B-spline order.
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energies",
        "charges",
        "dipole",
        "hirshfeld_ratios",
        "energy_terms",
    ]
    #: what system_key reads (it is recomputed only when these, the numbers, cell or pbc change)
    key_info = ("charge", "multiplicity", "fragment_charges")
    key_arrays = ("fragment_ids",)
    key_attributes = ("default_charge", "default_multiplicity", "settings", "electrostatics")

    def __init__(
        self,
        lr_cutoff: float | str | None = "auto",
        dispersion_damping: float | None = None,
        precision: str = "float32",
        *,
        model="so3lr",
        params=None,
        weights=None,
        capacity_margin: float = 1.25,
        skin: float = DEFAULT_SKIN,
        charge: float = 0.0,
        multiplicity: int = 1,
        filters: str | None = None,
        electrostatics: str = "cutoff",
        ewald_accuracy: float = DEFAULT_EWALD_ACCURACY,
        pme_order: int = 6,
        **kwargs,
    ):
        from ..models import _model_object
        from ..settings import SETTING_HELP, ModelSettings

        self.settings = ModelSettings.of(
            lr_cutoff="none" if lr_cutoff is None else lr_cutoff,
            dispersion_damping=dispersion_damping,
            precision=precision,
            filters=filters,
            electrostatics=electrostatics,
            ewald_accuracy=ewald_accuracy,
            pme_order=pme_order,
            # any other ModelSettings field given as a keyword (a setting added there reaches here)
            **{k: kwargs.pop(k) for k in list(kwargs) if k in SETTING_HELP},
        )
        super().__init__(None, precision=precision, capacity_margin=capacity_margin, skin=skin, **kwargs)
        self.model = _model_object(model)
        if self.model is None:
            from ..errors import ConfigError

            raise ConfigError(f"SO3LRCalculator needs an SO3LR/SO3krates model, got {model!r}")
        self._params = params
        self._weights = weights
        self.default_charge = float(charge)
        self.default_multiplicity = int(multiplicity)
        self.filters = self.settings.resolve().filters
        self.electrostatics = self.settings.electrostatics

    @property
    def params(self):
        """The parameter tree (loaded on first use)."""
        if self._params is None:
            if self.model.params is not None and self._weights is None:
                self._params = self.model.params
            else:
                from ..so3lr import load_params

                self._params = load_params(self._weights)
        return self._params

    def resolved(self, atoms):
        """The :class:`~biomlff.models.ModelSettings` for ``atoms`` (their cell decides "auto")."""
        from ..settings import system_of

        return self.settings.resolve(system_of(atoms), self.model.meta.get("inference"))

    @property
    def lr_cutoff(self):
        """The long-range cutoff (Å) of the current potential (before the first call: the setting)."""
        pot = self.potential
        return self.settings.lr_cutoff if pot is None else pot.info.get("lr_cutoff")

    def system_key(self, atoms):
        charge = float(atoms.info.get("charge", self.default_charge))
        mult = int(atoms.info.get("multiplicity", self.default_multiplicity))
        frag = None
        if "fragment_ids" in atoms.arrays:
            if "fragment_charges" not in atoms.info:
                from ..errors import ConfigError

                raise ConfigError(
                    'atoms.arrays["fragment_ids"] is set but atoms.info["fragment_charges"] is missing'
                )
            ids = tuple(int(v) for v in atoms.arrays["fragment_ids"])
            frag = (ids, tuple(float(v) for v in np.atleast_1d(atoms.info["fragment_charges"])))
        cell = cell_of(atoms)
        settings = self.resolved(atoms)
        key = (tuple(int(z) for z in atoms.numbers), charge, mult, frag, cell is None, settings)
        if self.electrostatics != "cutoff":  # lattice sums: the tuned static settings depend on the cell
            from ..so3lr import check_cell
            from ..so3lr.lattice import lattice_settings
            from ..so3lr.physics import ELECTROSTATIC_SIGMA

            check_cell(cell, settings.lr_cutoff)
            key += (
                lattice_settings(
                    self.electrostatics,
                    cell,
                    settings.lr_cutoff,
                    ELECTROSTATIC_SIGMA,
                    settings.ewald_accuracy,
                    settings.pme_order,
                ),
            )
        return key

    def make_potential(self, atoms):
        from ..checks import check_electrons
        from ..models import build_potential
        from ..potential import ChemicalSystem

        _, charge, mult, frag = self.system_key(atoms)[:4]
        check_electrons(atoms.numbers, charge, mult)  # before the weights are loaded
        lattice = self.electrostatics != "cutoff"
        system = ChemicalSystem(
            np.asarray(atoms.numbers),
            charge,
            mult,
            None if frag is None else (np.asarray(frag[0]), np.asarray(frag[1])),
            cell=cell_of(atoms) if lattice else None,
        )
        # "auto" follows the atoms' own periodicity even where the lattice cell is not passed on
        settings = self.resolved(atoms)
        return build_potential(self.model, system, settings, params=self.params)

    def check_system(self, key, cell):
        """The cell against the resolved long-range cutoff (every height ≥ 2 × lr cutoff)."""
        from ..so3lr import check_cell

        check_cell(cell, key[5].lr_cutoff)  # key[5]: the resolved ModelSettings of system_key

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, all_changes if system_changes is None else system_changes)
        if "dipole" in self.results:
            self.results["dipole"] = np.asarray(self.results["dipole"], dtype=float)
