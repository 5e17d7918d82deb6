"""biomlff.labels: reference data from quantum chemistry (docs/data-generation.md).

    from biomlff.labels import make_labeller, label_dataset, langevin_sample, labeller_calculator
    lab = make_labeller("xtb")                       # GFN2-xTB (tblite)
    lab = make_labeller("dft", functional="PBE0")    # PySCF, def2-SVP, RI, Hirshfeld ratios
    res = lab.label(numbers, positions_A, charge=0, multiplicity=1)   # eV, eV/Å, e·Å, e

Engines (tblite, pyscf, dftd4) are optional (``pip install 'biomlff[labels]'``) and imported only
when a labeller is built.
"""

from .base import (
    ElectronCountError,
    LabelError,
    Labeller,
    LabelResult,
    SCFConvergenceError,
    UnsupportedElementError,
    check_electrons,
    make_labeller,
)
from .fragments import Fragment, extract_fragment, extract_fragments, fragments_to_dataset
from .jobs import Frame, LabelRun, frames_from_dataset, label_task, run_labelling
from .relabel import journal_path, label_dataset, results_to_dataset
from .sampling import labeller_calculator, langevin_sample

__all__ = [
    "ElectronCountError",
    "Fragment",
    "Frame",
    "LabelError",
    "LabelResult",
    "LabelRun",
    "Labeller",
    "SCFConvergenceError",
    "UnsupportedElementError",
    "check_electrons",
    "extract_fragment",
    "extract_fragments",
    "fragments_to_dataset",
    "frames_from_dataset",
    "journal_path",
    "label_dataset",
    "label_task",
    "labeller_calculator",
    "langevin_sample",
    "make_labeller",
    "results_to_dataset",
    "run_labelling",
]
