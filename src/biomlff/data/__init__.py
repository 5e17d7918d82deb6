"""biomlff.data: datasets of structures with labels, their file formats and splits.

    from biomlff.data import Dataset, read_dataset, write_dataset
    ds = read_dataset("ethanol.npz")              # sGDML layout; units from e_unit/r_unit
    write_dataset(ds, "ethanol.h5")               # QCell-schema HDF5, lossless

Internal units: positions Å, energies eV, forces eV/Å, charge e, dipole e·Å (docs/data.md).
"""

from .dataset import Dataset
from .io import atomic_path, detect_format, read_dataset, write_dataset
from .splits import Split, make_split, split_from_indices

__all__ = [
    "Dataset",
    "read_dataset",
    "write_dataset",
    "detect_format",
    "atomic_path",
    "Split",
    "make_split",
    "split_from_indices",
    "example_path",
]


def example_path():
    """Path of the small example dataset shipped with the package (50 frames of MD17 ethanol,
    sGDML layout, kcal/mol; MIT licence, see resources/examples/LICENSE.ethanol)."""
    from importlib.resources import files
    from pathlib import Path

    return Path(str(files("biomlff").joinpath("resources", "examples", "ethanol_md17_50.npz")))
