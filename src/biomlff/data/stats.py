"""Dataset summaries for ``biomlff data info``: counts, elements, atom counts, label statistics.

:class:`Summary` accumulates frame by frame (so QCell files are summarised while streaming) or a
whole :class:`Dataset` at once; energies/forces are reported in a chosen unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import units


@dataclass
class _Moments:
    """Running count, sum, sum of squares, min and max (float64 sums; fine for eV-sized values
    over millions of entries, and exact enough for a summary)."""

    n: int = 0
    s: float = 0.0
    s2: float = 0.0
    lo: float = np.inf
    hi: float = -np.inf

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size == 0:
            return
        self.n += x.size
        self.s += float(x.sum())
        self.s2 += float(np.dot(x, x))
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    @property
    def mean(self) -> float:
        return self.s / self.n if self.n else float("nan")

    @property
    def std(self) -> float:
        if not self.n:
            return float("nan")
        return float(np.sqrt(max(self.s2 / self.n - self.mean**2, 0.0)))

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.s2 / self.n)) if self.n else float("nan")


@dataclass
class Summary:
    """Statistics of a dataset; energies in eV, forces in eV/Å (converted when printed)."""

    frames: int = 0
    atoms: int = 0
    n_min: int = 0
    n_max: int = 0
    elements: dict[int, int] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    energy: _Moments = field(default_factory=_Moments)
    energy_per_atom: _Moments = field(default_factory=_Moments)
    force_comp: _Moments = field(default_factory=_Moments)
    force_norm: _Moments = field(default_factory=_Moments)
    charges: set = field(default_factory=set)
    multiplicities: set = field(default_factory=set)
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str | None = None

    def _counts(self, n: np.ndarray, z: np.ndarray) -> None:
        self.n_min = int(n.min()) if not self.frames else min(self.n_min, int(n.min()))
        self.n_max = max(self.n_max, int(n.max()))
        self.frames += int(n.size)
        self.atoms += int(n.sum())
        zz, cc = np.unique(z, return_counts=True)
        for a, b in zip(zz, cc, strict=True):
            self.elements[int(a)] = self.elements.get(int(a), 0) + int(b)

    def add_dataset(self, ds) -> Summary:
        """Add all frames of a Dataset (vectorised)."""
        if len(ds) == 0:
            return self
        n = ds.n_atoms
        self._counts(n, ds.atomic_numbers)
        self.fields = list(dict.fromkeys(self.fields + ds.fields))
        if ds.energy is not None:
            self.energy.add(ds.energy)
            self.energy_per_atom.add(ds.energy / n)
        if ds.forces is not None:
            self.force_comp.add(ds.forces)
            self.force_norm.add(np.linalg.norm(ds.forces, axis=1))
        if ds.charge is not None:
            self.charges.update(np.unique(ds.charge).tolist())
        if ds.multiplicity is not None:
            self.multiplicities.update(np.unique(ds.multiplicity).tolist())
        self.metadata = dict(ds.metadata)
        self.content_hash = ds.content_hash()
        return self

    def add_frame(self, rec: dict[str, Any]) -> Summary:
        """Add one frame given as a dict (``atomic_numbers``, optional ``energy`` eV, ``forces`` eV/Å,
        ``charge``, ``multiplicity``)."""
        z = np.asarray(rec["atomic_numbers"])
        self._counts(np.array([z.size]), z)
        for k in rec:
            if not k.startswith("_") and k not in ("atomic_numbers", "positions") and k not in self.fields:
                self.fields.append(k)
        if rec.get("energy") is not None:
            self.energy.add(rec["energy"])
            self.energy_per_atom.add(np.asarray(rec["energy"]) / z.size)
        if rec.get("forces") is not None:
            f = np.asarray(rec["forces"]).reshape(-1, 3)
            self.force_comp.add(f)
            self.force_norm.add(np.linalg.norm(f, axis=1))
        if rec.get("charge") is not None:
            self.charges.add(np.asarray(rec["charge"]).item())
        if rec.get("multiplicity") is not None:
            self.multiplicities.add(np.asarray(rec["multiplicity"]).item())
        return self

    def format(self, energy_unit: str = "eV", length_unit: str = "Ang", source: str = "") -> str:
        """Human-readable report; energies in ``energy_unit``, forces in ``energy_unit``/Å."""
        from ase.data import chemical_symbols

        e_fac = units.energy_factor(energy_unit)
        f_fac = e_fac / units.length_factor(length_unit)
        lu = "Å" if units.length_factor(length_unit) == 1.0 else length_unit
        lines = []
        if source:
            lines.append(f"file:          {source}")
        m = self.metadata
        if m.get("name"):
            lines.append(f"name:          {m['name']}")
        if m.get("theory"):
            lines.append(f"theory:        {m['theory']}")
        su = m.get("source_units") or {}
        if su:
            lines.append("source units:  " + ", ".join(f"{k} {v}" for k, v in su.items()))
        lines.append(f"frames:        {self.frames}")
        lines.append(f"atoms:         {self.atoms} in total, {self.n_min}..{self.n_max} per frame")
        els = sorted(self.elements)
        lines.append(
            "elements:      " + ", ".join(f"{chemical_symbols[z]} ({self.elements[z]})" for z in els)
        )
        lines.append("fields:        " + (", ".join(self.fields) if self.fields else "(none: unlabelled)"))
        if self.energy.n:
            e = self.energy
            lines.append(
                f"energy [{energy_unit}]: mean {e.mean / e_fac:.6f}, std {e.std / e_fac:.6f}, "
                f"min {e.lo / e_fac:.6f}, max {e.hi / e_fac:.6f}"
            )
            ea = self.energy_per_atom
            lines.append(f"energy/atom [{energy_unit}]: mean {ea.mean / e_fac:.6f}, std {ea.std / e_fac:.6f}")
        if self.force_comp.n:
            fc, fn = self.force_comp, self.force_norm
            lines.append(
                f"forces [{energy_unit}/{lu}]: component mean {fc.mean / f_fac:.6f}, component RMS "
                f"{fc.rms / f_fac:.6f}, max |F| {fn.hi / f_fac:.6f}"
            )
        if self.charges:
            lines.append("total charge:  " + ", ".join(f"{c:g}" for c in sorted(self.charges)))
        if self.multiplicities:
            lines.append("multiplicity:  " + ", ".join(f"{c:g}" for c in sorted(self.multiplicities)))
        if self.content_hash:
            lines.append(f"content hash:  {self.content_hash}")
        prov = m.get("provenance") or []
        if prov:
            lines.append("provenance:    " + "; ".join(str(p) for p in prov))
        return "\n".join(lines)


def summarize(ds) -> Summary:
    """Summary of a whole Dataset."""
    return Summary().add_dataset(ds)
