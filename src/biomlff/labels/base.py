"""The labeller interface: one structure in, quantum-chemical labels out (eV, Å, e).

Every labeller (GFN2-xTB via tblite, DFT via PySCF, ...) is a small object built from plain,
picklable settings, so that the job layer can rebuild it inside worker processes::

    lab = make_labeller("xtb")                      # or "dft", functional="PBE0", basis="def2-TZVP"
    res = lab.label(atomic_numbers, positions_A, charge=0, multiplicity=1)
    res.energy      # eV
    res.forces      # (N,3) eV/Å
    res.dipole      # (3,) e·Å (origin at the coordinate origin)
    res.charges     # (N,) e  (xTB: Mulliken charges; DFT: Hirshfeld charges)
    res.hirshfeld_ratios  # (N,) V_eff/V_free or None

Failures of one structure (SCF not converged, element not supported, inconsistent
charge/multiplicity) raise :class:`LabelError`; the job layer records them per frame and goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import checks as _checks
from ..errors import BiomlffError, ConfigError, MissingDependencyError


class LabelError(BiomlffError):
    """A structure could not be labelled (the message names the reason); other frames go on."""


class SCFConvergenceError(LabelError):
    """The self-consistent field did not converge for this structure."""


class UnsupportedElementError(LabelError):
    """The method (or basis set) has no parameters for an element of the structure."""


class ElectronCountError(LabelError, _checks.ElectronCountError):
    """Total charge and spin multiplicity do not fit the number of electrons (the one rule of
    :func:`biomlff.checks.check_electrons`)."""


@dataclass
class LabelResult:
    """Labels of one structure in biomlff units.

    energy: eV; forces: (N,3) eV/Å; dipole: (3,) e·Å or None; charges: (N,) e or None;
    hirshfeld_ratios: (N,) dimensionless V_eff/V_free or None; info: method details (SCF cycles,
    wall time in s, ...) that are JSON-serialisable.
    """

    energy: float
    forces: np.ndarray
    dipole: np.ndarray | None = None
    charges: np.ndarray | None = None
    hirshfeld_ratios: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain-Python dict (exact float round trip through JSON)."""
        out: dict[str, Any] = {"energy": float(self.energy), "forces": np.asarray(self.forces).tolist()}
        for k in ("dipole", "charges", "hirshfeld_ratios"):
            v = getattr(self, k)
            out[k] = None if v is None else np.asarray(v, dtype=float).tolist()
        out["info"] = self.info
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LabelResult:
        def arr(x):
            return None if x is None else np.asarray(x, dtype=np.float64)

        return cls(
            energy=float(d["energy"]),
            forces=np.asarray(d["forces"], dtype=np.float64).reshape(-1, 3),
            dipole=arr(d.get("dipole")),
            charges=arr(d.get("charges")),
            hirshfeld_ratios=arr(d.get("hirshfeld_ratios")),
            info=dict(d.get("info") or {}),
        )


def require(module: str, extra: str | None = "labels", package: str | None = None):
    """Import an optional dependency or raise MissingDependencyError naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        how = f"`pip install 'biomlff[{extra}]'` or `pip install {pkg}`" if extra else f"`pip install {pkg}`"
        raise MissingDependencyError(
            f"this feature needs the optional package '{pkg}' ({exc}); install it with {how}"
        ) from exc


def check_electrons(atomic_numbers, charge: int, multiplicity: int, core_electrons: int = 0) -> int:
    """Number of electrons for total ``charge`` (e); ElectronCountError if ``multiplicity`` (2S+1)
    cannot be realised (wrong parity, more unpaired electrons than electrons, multiplicity < 1).
    The one rule of :func:`biomlff.checks.check_electrons`, raised as a labelling error."""
    from .. import checks

    try:
        return checks.check_electrons(atomic_numbers, charge, multiplicity, core_electrons)
    except checks.ElectronCountError as exc:
        raise ElectronCountError(str(exc)) from None


def validate_structure(atomic_numbers, positions) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers (N,) int and positions (N,3) Å as arrays; LabelError for bad shapes/NaN."""
    z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    r = np.asarray(positions, dtype=np.float64)
    if r.shape != (z.shape[0], 3):
        raise LabelError(f"positions have shape {r.shape}, expected ({z.shape[0]}, 3)")
    if not np.all(np.isfinite(r)):
        raise LabelError("positions contain NaN or inf")
    if z.size == 0:
        raise LabelError("structure has no atoms")
    if np.any(z < 1):
        raise UnsupportedElementError(f"atomic numbers must be >= 1, got {sorted(set(z[z < 1].tolist()))}")
    return z, r


def thread_controller():
    """A threadpoolctl controller of the native thread pools loaded now (None without
    threadpoolctl). Building one scans the loaded libraries (~2 ms), so labellers keep theirs."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scipy's usual stack
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def thread_limit(threads: int, controller=None):
    """Limit BLAS/OpenMP threads to ``threads`` inside the block (threadpoolctl; no-op without)."""
    controller = controller or thread_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=int(threads)):
        yield


class Labeller:
    """Base class: subclasses implement :meth:`_label` and :meth:`check`.

    ``threads``: BLAS/OpenMP threads used by one labelling call (default 1; use worker
    processes for parallelism over frames). ``settings()`` returns the picklable constructor
    arguments, so that ``make_labeller(lab.method, **lab.settings())`` rebuilds an equal labeller.
    """

    method: str = "base"

    def __init__(self, threads: int = 1):
        if int(threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)

    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads}

    @property
    def theory(self) -> str:
        """Level of theory as a short string (stored in dataset metadata)."""
        return self.method

    def check(self, atomic_numbers: np.ndarray, charge: int, multiplicity: int) -> None:
        """Raise LabelError if the method cannot treat this composition/charge/multiplicity:
        :class:`UnsupportedElementError` saying why (:meth:`unsupported`), or the electron-count
        errors of :func:`check_electrons` (electrons in effective core potentials left out)."""
        z = np.asarray(atomic_numbers)
        why = self.unsupported(z)
        if why:
            raise UnsupportedElementError(why)
        check_electrons(z, charge, multiplicity, core_electrons=self.core_electrons(z))

    def unsupported(self, z: np.ndarray) -> str | None:
        """Why the method cannot treat the elements ``z`` (atomic numbers), or None when it can."""
        return None

    def core_electrons(self, z: np.ndarray) -> int:
        """Electrons replaced by effective core potentials for the elements ``z`` (0: all-electron)."""
        return 0

    def label(self, atomic_numbers, positions, charge: int = 0, multiplicity: int = 1) -> LabelResult:
        """Label one structure: positions (N,3) Å, total charge (e), multiplicity 2S+1.

        Returns a :class:`LabelResult` (energy eV, forces eV/Å, dipole e·Å, charges e). Raises
        :class:`LabelError` for a structure that cannot be labelled.
        """
        z, r = validate_structure(atomic_numbers, positions)
        self.check(z, int(charge), int(multiplicity))
        t0 = time.perf_counter()
        if getattr(self, "_threads_ctl", None) is None:  # after the engine's libraries are loaded
            self._threads_ctl = thread_controller()
        with thread_limit(self.threads, self._threads_ctl):
            res = self._label(z, r, int(charge), int(multiplicity))
        res.info.setdefault("time_s", time.perf_counter() - t0)
        return res

    def _label(self, z: np.ndarray, r: np.ndarray, charge: int, multiplicity: int) -> LabelResult:
        raise NotImplementedError


#: method names accepted by make_labeller (lower case) -> (module, class)
METHODS: dict[str, tuple[str, str]] = {
    "xtb": ("biomlff.labels.xtb", "XTBLabeller"),
    "gfn2": ("biomlff.labels.xtb", "XTBLabeller"),
    "gfn2-xtb": ("biomlff.labels.xtb", "XTBLabeller"),
    "gfn1": ("biomlff.labels.xtb", "XTBLabeller"),
    "gfn1-xtb": ("biomlff.labels.xtb", "XTBLabeller"),
    "dft": ("biomlff.labels.pyscf_dft", "PySCFLabeller"),
    "pyscf": ("biomlff.labels.pyscf_dft", "PySCFLabeller"),
}


def make_labeller(name: str, /, **settings) -> Labeller:
    """Build a labeller by name: 'xtb' / 'gfn2' (GFN2-xTB), 'gfn1' (GFN1-xTB), 'dft' / 'pyscf'.

    ``settings`` go to the labeller's constructor (e.g. ``functional='PBE0', basis='def2-TZVP',
    threads=2``). Unknown names raise ConfigError; missing engines raise MissingDependencyError
    when the labeller is built.
    """
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ConfigError(f"unknown labelling method {name!r}; known: {sorted(METHODS)}")
    module, cls = METHODS[key]
    klass = getattr(importlib.import_module(module), cls)
    if key.startswith("gfn1"):
        settings.setdefault("method", "GFN1-xTB")
    return klass(**settings)
