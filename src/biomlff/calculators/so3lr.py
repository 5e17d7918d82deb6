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

from ..defaults import DEFAULT_DISPERSION_DAMPING, DEFAULT_EWALD_ACCURACY, DEFAULT_LR_CUTOFF
from .base import DEFAULT_SKIN, PotentialCalculator, cell_of


class SO3LRCalculator(PotentialCalculator):
    """SO3LR as an ASE calculator.

    Args:
        lr_cutoff: long-range cutoff in Å (default 12; periodic systems need every box edge
            ≥ 2 × lr_cutoff), or None for all pairs (gas phase only; the training setting).
        dispersion_damping: width in Å of the dispersion switch before the cutoff (default 2).
        precision: "float32" (default) or "float64" (evaluated in a local ``jax.enable_x64`` context).
        params: parameter tree (default: the installed weights, :func:`biomlff.so3lr.load_params`).
        weights: path to a weights file (canonical npz, params.pkl or so3krates-torch model) instead.
        capacity_margin: head-room factor of the pair-list capacities.
        skin: Verlet skin (Å, default 0.5) of the long-range pair list, which is reused between calls
            until an atom has moved by half of it (limited by the minimum image in small cells; 0
            rebuilds it every call). The 4.5 Å list is rebuilt every call.
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

    def __init__(
        self,
        lr_cutoff: float | None = DEFAULT_LR_CUTOFF,
        dispersion_damping: float | None = DEFAULT_DISPERSION_DAMPING,
        precision: str = "float32",
        *,
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
        super().__init__(None, precision=precision, capacity_margin=capacity_margin, skin=skin, **kwargs)
        self.lr_cutoff = None if lr_cutoff is None else float(lr_cutoff)
        self.dispersion_damping = dispersion_damping
        self._params = params
        self._weights = weights
        self.default_charge = float(charge)
        self.default_multiplicity = int(multiplicity)
        from ..so3lr.lattice import ELECTROSTATICS

        if electrostatics not in ELECTROSTATICS:
            from ..errors import ConfigError

            raise ConfigError(f"electrostatics must be one of {ELECTROSTATICS}, got {electrostatics!r}")
        self.electrostatics = electrostatics
        self.ewald_accuracy = float(ewald_accuracy)
        self.pme_order = int(pme_order)
        from ..so3lr.model import FILTERS, default_filters

        self.filters = default_filters(self.precision) if filters is None else filters
        if self.filters not in FILTERS:
            from ..errors import ConfigError

            raise ConfigError(f"filters must be one of {FILTERS}, got {filters!r}")

    @property
    def params(self):
        """The SO3LR parameter tree (loaded on first use)."""
        if self._params is None:
            from ..so3lr import load_params

            self._params = load_params(self._weights)
        return self._params

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
        key = (tuple(int(z) for z in atoms.numbers), charge, mult, frag)
        if self.electrostatics != "cutoff":  # lattice sums: the tuned static settings depend on the cell
            from ..so3lr import check_cell
            from ..so3lr.lattice import lattice_settings
            from ..so3lr.physics import ELECTROSTATIC_SIGMA

            cell = cell_of(atoms)
            check_cell(cell, self.lr_cutoff)
            key += (
                lattice_settings(
                    self.electrostatics,
                    cell,
                    self.lr_cutoff,
                    ELECTROSTATIC_SIGMA,
                    self.ewald_accuracy,
                    self.pme_order,
                ),
            )
        return key

    def make_potential(self, atoms):
        from ..checks import check_electrons
        from ..so3lr import so3lr_potential

        _, charge, mult, frag = self.system_key(atoms)[:4]
        check_electrons(atoms.numbers, charge, mult)  # before the weights are loaded
        lattice = self.electrostatics != "cutoff"
        settings = {k: getattr(self, k) for k in ("lr_cutoff", "dispersion_damping", "precision", "filters")}
        return so3lr_potential(
            atoms.numbers,
            charge=charge,
            multiplicity=mult,
            params=self.params,
            fragments=None if frag is None else (np.asarray(frag[0]), np.asarray(frag[1])),
            electrostatics=self.electrostatics,
            cell=cell_of(atoms) if lattice else None,
            ewald_accuracy=self.ewald_accuracy,
            pme_order=self.pme_order,
            **settings,
        )

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        from ..so3lr import check_cell

        check_cell(cell_of(atoms if atoms is not None else self.atoms), self.lr_cutoff)
        super().calculate(atoms, properties, all_changes if system_changes is None else system_changes)
        if "dipole" in self.results:
            self.results["dipole"] = np.asarray(self.results["dipole"], dtype=float)
