"""Names and units of the per-frame observables stored in trajectories.

``biomlff md`` stores ``e_pot``, ``e_kin``, ``e_tot``, ``temperature``, ... (H5MD ``/observables``
or extxyz header keys), its log table says ``E_pot`` and ``T_K``, ASE files say ``energy``, other
writers ``potential_energy``. :func:`resolve_observable` accepts any of these names for any of them;
files store no units for observables, so the unit comes from the table below (the units
:mod:`biomlff.md` writes: eV, K, eV/Å³, Å³, Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class ObservableName:
    """One physical observable: a description, its unit and every name it is stored or asked for
    under (the first is biomlff's own)."""

    description: str
    unit: str
    names: tuple[str, ...]


OBSERVABLES = (
    ObservableName("potential energy", "eV", ("e_pot", "potential_energy", "energy")),
    ObservableName("kinetic energy", "eV", ("e_kin", "kinetic_energy")),
    ObservableName("total energy", "eV", ("e_tot", "total_energy")),
    ObservableName("conserved energy", "eV", ("conserved", "conserved_energy", "e_conserved")),
    ObservableName("temperature", "K", ("temperature", "T_K", "T", "temp")),
    ObservableName("pressure", "eV/Å³", ("pressure", "P")),
    ObservableName("volume", "Å³", ("volume", "V_A3", "V")),
    ObservableName("external (steering) energy", "eV", ("e_ext", "external_energy")),
    ObservableName("steering work", "eV", ("work", "W_ext")),
    ObservableName("centroid-virial kinetic energy", "eV", ("k_cv", "kinetic_energy_virial")),
    ObservableName("primitive kinetic energy", "eV", ("k_prim", "kinetic_energy_primitive")),
    ObservableName("ring-polymer spring energy", "eV", ("e_spring", "spring_energy")),
    ObservableName("cell length x", "Å", ("cell_x",)),
    ObservableName("cell length y", "Å", ("cell_y",)),
    ObservableName("cell length z", "Å", ("cell_z",)),
)


def _key(name: str) -> str:
    """Case, spaces, hyphens and underscores ignored: 'Potential energy' == 'potential_energy',
    'E_pot' == 'e_pot' == 'epot'."""
    return "".join(ch for ch in str(name).lower() if ch not in " _-")


_BY_KEY = {_key(n): obs for obs in OBSERVABLES for n in obs.names}


def describe(name: str) -> ObservableName | None:
    """The table entry that ``name`` is one of the names of, or None."""
    return _BY_KEY.get(_key(name))


def observable_unit(name: str) -> str:
    """Unit of a stored observable from its name ('' when unknown)."""
    obs = describe(name)
    return obs.unit if obs is not None else ""


@dataclass
class ResolvedObservable:
    """A stored per-frame observable: the name it is stored under, a label (with description),
    its unit ('' if unknown) and the values (T,)."""

    stored: str
    label: str
    unit: str
    values: np.ndarray


def resolve_observable(name: str, stored: dict, source: str = "trajectory") -> ResolvedObservable:
    """The per-frame observable ``name`` from ``stored`` (name → (T,) values), by its exact stored
    name or any alias in :data:`OBSERVABLES` ('potential_energy' finds 'e_pot' and vice versa).
    DataError listing the stored names and their aliases when there is none."""
    obs = describe(name)
    if name in stored:
        key = name
    else:
        keys = [k for k in stored if _key(k) == _key(name)]
        if not keys and obs is not None:
            keys = [k for k in stored if describe(k) is obs]
        if not keys:
            raise DataError(f"{source}: no per-frame observable {name!r}; {available(stored)}")
        key = keys[0]
    entry = describe(key)
    label = entry.description if entry is not None else key.replace("_", " ")
    return ResolvedObservable(
        stored=key, label=label, unit=entry.unit if entry else "", values=np.asarray(stored[key], float)
    )


def available(stored: dict) -> str:
    """'stored: e_pot (potential energy, eV; also potential_energy, energy), ...' for messages."""
    if not stored:
        return "the file stores none"
    parts = []
    for k in sorted(stored):
        obs = describe(k)
        if obs is None:
            parts.append(k)
            continue
        others = [n for n in obs.names if n != k]
        parts.append(f"{k} ({obs.description}, {obs.unit}; also {', '.join(others)})")
    return "stored: " + "; ".join(parts)
