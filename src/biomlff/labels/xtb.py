"""GFN2-xTB (and GFN1-xTB) labels through ``tblite``.

tblite works in atomic units (Hartree, Bohr); results are converted to eV, eV/Å, e·Å here.
The calculator is kept between calls while the composition, charge and spin stay the same, and
the previous wavefunction is the SCF guess of the next call (warm start along trajectories).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import units
from ..errors import ConfigError
from .base import (
    LabelError,
    Labeller,
    LabelResult,
    SCFConvergenceError,
    require,
)

#: GFN1/GFN2-xTB are parametrised for H–Rn
MAX_Z_XTB = 86


class XTBLabeller(Labeller):
    """Extended tight binding via tblite.

    method: 'GFN2-xTB' (default) or 'GFN1-xTB'; accuracy: tblite accuracy factor (lower = tighter
    SCF; default 0.1: SCF force noise ~2e-5 eV/Å at the cost of tblite's 1.0); max_iter: SCF
    iterations before the frame fails; electronic_temperature: Fermi smearing in K (tblite default
    300 K); threads: OpenMP/BLAS threads.
    """

    def __init__(
        self,
        method: str = "GFN2-xTB",
        accuracy: float = 0.1,
        max_iter: int = 250,
        electronic_temperature: float = 300.0,
        threads: int = 1,
    ):
        super().__init__(threads=threads)
        name = str(method).upper().replace("XTB", "xTB")
        if name not in ("GFN2-xTB", "GFN1-xTB"):
            raise ConfigError(f"xtb method must be 'GFN2-xTB' or 'GFN1-xTB', got {method!r}")
        if accuracy <= 0 or max_iter < 1:
            raise ConfigError(f"accuracy must be > 0 and max_iter >= 1 (got {accuracy}, {max_iter})")
        self.xtb_method = name
        self.accuracy = float(accuracy)
        self.max_iter = int(max_iter)
        self.electronic_temperature = float(electronic_temperature)
        self._interface = require("tblite.interface", package="tblite")
        self._calc = None
        self._key = None
        self._last = None
        self.method = name.lower()

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.xtb_method,
            "accuracy": self.accuracy,
            "max_iter": self.max_iter,
            "electronic_temperature": self.electronic_temperature,
            "threads": self.threads,
        }

    @property
    def theory(self) -> str:
        return f"{self.xtb_method} (tblite)"

    def unsupported(self, z) -> str | None:
        bad = sorted(set(z[z > MAX_Z_XTB].tolist()))
        if bad:
            return (
                f"{self.xtb_method} has no parameters for atomic number(s) {bad} (supported: 1-{MAX_Z_XTB})"
            )
        return None

    def _calculator(self, z, r_bohr, charge, multiplicity):
        key = (tuple(z.tolist()), charge, multiplicity)
        if self._calc is not None and key == self._key:
            self._calc.update(r_bohr)
            return self._calc, self._last
        calc = self._interface.Calculator(
            self.xtb_method, z, r_bohr, charge=float(charge), uhf=multiplicity - 1
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", self.accuracy)
        calc.set("max-iter", self.max_iter)
        # tblite expects the electronic temperature in Hartree
        calc.set("temperature", self.electronic_temperature * units.kB / units.Hartree)
        self._calc, self._key, self._last = calc, key, None
        return calc, None

    def _label(self, z, r, charge, multiplicity) -> LabelResult:
        calc, guess = self._calculator(z, r / units.Bohr, charge, multiplicity)
        try:
            res = calc.singlepoint(guess) if guess is not None else calc.singlepoint()
        except Exception as exc:  # tblite raises TBLiteRuntimeError for SCF failures
            self._calc = self._key = self._last = None
            msg = str(exc)
            if "converge" in msg.lower():
                raise SCFConvergenceError(f"{self.xtb_method}: {msg}") from exc
            raise LabelError(f"{self.xtb_method}: {msg}") from exc
        self._last = res
        energy = float(res.get("energy")) * units.Hartree
        forces = -np.asarray(res.get("gradient"), dtype=np.float64) * (units.Hartree / units.Bohr)
        dipole = np.asarray(res.get("dipole"), dtype=np.float64) * units.Bohr
        charges = np.asarray(res.get("charges"), dtype=np.float64)
        return LabelResult(energy=energy, forces=forces, dipole=dipole, charges=charges, info={})
