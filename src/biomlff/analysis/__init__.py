"""biomlff.analysis — observables and plots from MD trajectories (see docs/analysis.md).

Pure functions on NumPy arrays (positions Å, times fs, cells Å, velocities Å/fs) plus thin readers
(:func:`read_trajectory`) and plotting helpers (:mod:`biomlff.analysis.plots`). Importing this
package imports NumPy only; MDAnalysis/MDTraj/matplotlib load inside the functions that need them.
"""

from .dynamics import (
    DiffusionFit,
    Spectrum,
    diffusion_coefficient,
    msd,
    power_spectrum,
    spectrum_peaks,
    unwrap,
    vacf,
    velocities_from_positions,
)
from .energetics import cumulative_average, interaction_energy, potential_energy
from .membrane import (
    area_per_lipid,
    bilayer_center_atoms,
    bilayer_thickness,
    chain_order_parameters,
    density_profile,
    order_parameters,
)
from .molecules import MoleculeAssignment, assign_molecules, molecules_from_topology
from .observables import resolve_observable
from .peptide import phi_psi, ramachandran_free_energy, secondary_structure, ss_fractions
from .safety import AnalysisWarning
from .structure import (
    angle_series,
    dihedral_series,
    dihedrals,
    distance_series,
    gas_histogram,
    kabsch,
    radius_of_gyration,
    rdf,
    relative_rotation,
    rmsd,
    rmsd_lag,
    superpose,
)
from .topology import backbone_from_positions, bonds_from_positions, find_acyl_chains, find_backbone
from .trajectory import Trajectory, read_h5md, read_trajectory, select_atoms, write_h5md

__all__ = [
    "AnalysisWarning",
    "DiffusionFit",
    "MoleculeAssignment",
    "Spectrum",
    "Trajectory",
    "angle_series",
    "assign_molecules",
    "area_per_lipid",
    "backbone_from_positions",
    "bilayer_center_atoms",
    "bilayer_thickness",
    "bonds_from_positions",
    "chain_order_parameters",
    "cumulative_average",
    "density_profile",
    "diffusion_coefficient",
    "dihedral_series",
    "dihedrals",
    "distance_series",
    "find_acyl_chains",
    "find_backbone",
    "gas_histogram",
    "interaction_energy",
    "kabsch",
    "molecules_from_topology",
    "msd",
    "order_parameters",
    "phi_psi",
    "potential_energy",
    "power_spectrum",
    "radius_of_gyration",
    "ramachandran_free_energy",
    "rdf",
    "relative_rotation",
    "read_h5md",
    "read_trajectory",
    "resolve_observable",
    "rmsd",
    "rmsd_lag",
    "secondary_structure",
    "select_atoms",
    "spectrum_peaks",
    "ss_fractions",
    "superpose",
    "unwrap",
    "vacf",
    "velocities_from_positions",
    "write_h5md",
]
