"""Reading and writing datasets: :func:`read_dataset`, :func:`write_dataset`.

Formats (chosen by ``fmt`` or from the file name / content):

========== ============================ ==============================================================
fmt        files                        notes
========== ============================ ==============================================================
``sgdml``  ``.npz`` with ``R``, ``z``    MD17/MD22 sGDML layout; units from ``e_unit``/``r_unit``
``rmd17``  ``.npz`` with ``coords``      revised MD17; ``energy_key='energies'`` or ``'old_energies'``
``extxyz`` ``.xyz``, ``.extxyz``         extended XYZ through ASE, labels by explicit keys
``qcell``  ``.h5``, ``.hdf5``            QCell property schema, one group per structure (streamed)
``ase:X``  anything ``ase.io`` reads     X is the ASE format name (e.g. ``ase:vasp-out``)
========== ============================ ==============================================================

All readers return a :class:`Dataset` in eV, Å, e; all writers write atomically (temporary file in
the same folder, renamed over the target only when complete). See ``docs/data.md``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import units
from ..errors import DataError
from ..fileio import (
    atomic_path,  # noqa: F401  (re-exported: biomlff.data.io.atomic_path)
    open_npz,
)
from .dataset import Dataset, index_to_selection

NPZ_EXT = (".npz",)
XYZ_EXT = (".xyz", ".extxyz")
H5_EXT = (".h5", ".hdf5")

#: rMD17 units, fixed by the dataset's documentation (the files carry no unit strings)
RMD17_UNITS = {"energy": "kcal/mol", "length": "Ang"}


# ---------------------------------------------------------------------------- helpers
def force_factor(force_unit: str | None, energy_unit: str, length_unit: str) -> float:
    """Factor converting forces to eV/Å: from ``force_unit`` ('kcal/mol/Ang', 'Hartree/Bohr', 'eV/Å')
    if given, else from ``energy_unit``/``length_unit``."""
    if force_unit:
        if "/" not in force_unit:
            raise DataError(f"force unit {force_unit!r} must look like 'ENERGY/LENGTH', e.g. 'kcal/mol/Ang'")
        e, l = force_unit.rsplit("/", 1)
        return units.energy_factor(e) / units.length_factor(l)
    return units.energy_factor(energy_unit) / units.length_factor(length_unit)


def _unit_string(value: Any) -> str:
    return str(np.asarray(value).item() if np.ndim(value) == 0 else value).strip()


def detect_format(path: str | os.PathLike) -> str:
    """Format name for ``path`` from its extension (and, for ``.npz``, its keys)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in NPZ_EXT:
        keys = set(_open_npz(p).files)
        if {"nuclear_charges", "coords"} <= keys:
            return "rmd17"
        if {"R", "z"} <= keys:
            return "sgdml"
        raise DataError(
            f"{p}: .npz with keys {sorted(keys)} is neither the sGDML layout (R, z, E, F) nor rMD17 "
            "(nuclear_charges, coords, energies, forces)"
        )
    if ext in XYZ_EXT:
        return "extxyz"
    if ext in H5_EXT:
        return "qcell"
    return "ase"


class _NpzDataset:
    """Names (``files``) and arrays (``[key]``) of a dataset .npz, each read through the one loader
    (:func:`biomlff.fileio.open_npz`: a corrupt, truncated or foreign file is a DataError naming it;
    no pickles), opening the archive per read so that no file handle stays open."""

    what = "dataset"

    def __init__(self, path: Path):
        self.path = path
        with open_npz(path, self.what) as z:
            self.files = list(z.files)

    def __getitem__(self, key: str) -> np.ndarray:
        with open_npz(self.path, self.what) as z:
            return z[key]


def _open_npz(path: Path) -> _NpzDataset:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return _NpzDataset(path)


def _npz_get(data, path: Path, key: str, required: bool = True):
    if key not in data.files:
        if required:
            raise DataError(f"{path}: field '{key}': missing (keys in file: {sorted(data.files)})")
        return None
    return data[key]


def _check_shape(path: Path, key: str, arr: np.ndarray, shape: tuple) -> None:
    """``shape`` may contain None for any size."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=False))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise DataError(f"{path}: field '{key}': shape {arr.shape}, expected {want}")


def _resolve_unit(path: Path, kind: str, in_file: str | None, given: str | None, file_key: str) -> str:
    if given and in_file and given.strip().lower() != in_file.strip().lower():
        raise DataError(
            f"{path}: field '{file_key}': the file says {kind} unit {in_file!r} but {given!r} was requested; "
            "drop the option or fix the file"
        )
    unit = given or in_file
    if not unit:
        raise DataError(
            f"{path}: field '{file_key}': missing, so the {kind} unit is unknown; pass it explicitly "
            f"(--{kind}-unit / {kind}_unit=..., e.g. 'kcal/mol' for MD17/MD22)"
        )
    return unit


# ---------------------------------------------------------------------------- sGDML
def read_sgdml(
    path,
    *,
    energy_unit: str | None = None,
    length_unit: str | None = None,
    force_unit: str | None = None,
    validate: bool = True,
    min_distance: float = 0.1,
) -> Dataset:
    """Read an sGDML dataset ``.npz`` (``R`` (M,N,3), ``z`` (N,), ``E`` (M,)|(M,1), ``F`` (M,N,3),
    optional ``lattice`` (3,3) with lattice vectors as columns, ``name``, ``theory``, ``md5``,
    ``r_unit``, ``e_unit``). Energies/forces are converted from ``e_unit`` (forces e_unit/r_unit) to
    eV and eV/Å; without ``e_unit`` in the file, ``energy_unit`` must be given. A missing ``r_unit``
    means Å (the sGDML convention; recorded in ``metadata['source_units']``)."""
    path = Path(path)
    d = _open_npz(path)
    R = _npz_get(d, path, "R")
    z = _npz_get(d, path, "z")
    E = _npz_get(d, path, "E", required=False)
    F = _npz_get(d, path, "F", required=False)
    _check_shape(path, "R", R, (None, None, 3))
    M, N = R.shape[:2]
    _check_shape(path, "z", z, (N,))
    if E is not None:
        if E.shape == (M, 1):
            E = E[:, 0]
        _check_shape(path, "E", E, (M,))
    if F is not None:
        _check_shape(path, "F", F, (M, N, 3))
    e_file = _unit_string(d["e_unit"]) if "e_unit" in d.files else None
    r_file = _unit_string(d["r_unit"]) if "r_unit" in d.files else None
    source_units: dict[str, str] = {}
    e_fac = f_fac = 1.0
    if E is not None or F is not None:
        e_unit = _resolve_unit(path, "energy", e_file, energy_unit, "e_unit")
        source_units["energy"] = e_unit
    if r_file is None and length_unit is None:
        r_unit = "Ang"
        source_units["length"] = "Ang (assumed: no r_unit in file)"
    else:
        r_unit = _resolve_unit(path, "length", r_file, length_unit, "r_unit")
        source_units["length"] = r_unit
    l_fac = units.length_factor(r_unit)
    if E is not None or F is not None:
        e_fac = units.energy_factor(e_unit)
        f_fac = force_factor(force_unit, e_unit, r_unit)
        source_units["forces"] = force_unit or f"{e_unit}/{r_unit}"
    cell = pbc = None
    if "lattice" in d.files:
        lat = _npz_get(d, path, "lattice")
        _check_shape(path, "lattice", lat, (3, 3))
        cell = np.asarray(lat, dtype=np.float64).T * l_fac  # sGDML: columns are lattice vectors
        pbc = True
    meta = {
        "name": _unit_string(d["name"]) if "name" in d.files else path.stem,
        "theory": _unit_string(d["theory"]) if "theory" in d.files else "",
        "source_units": source_units,
        "provenance": [f"read {path.name} (sGDML npz)"],
    }
    if "md5" in d.files:
        meta["sgdml_md5"] = _unit_string(d["md5"])
    return Dataset.from_arrays(
        z,
        np.asarray(R, dtype=np.float64) * l_fac,
        energy=None if E is None else np.asarray(E, dtype=np.float64) * e_fac,
        forces=None if F is None else np.asarray(F, dtype=np.float64) * f_fac,
        cell=cell,
        pbc=pbc,
        metadata=meta,
        validate=validate,
        source=str(path),
        min_distance=min_distance,
    )


def sgdml_md5(z: np.ndarray, R: np.ndarray, E: np.ndarray | None, F: np.ndarray | None) -> str:
    """The sGDML dataset fingerprint: MD5 over the MD5 digests of the raw bytes of z, R, [E], F
    (as the arrays are stored, so it depends on dtype and layout)."""
    h = hashlib.md5()
    for arr in (z, R, E, F):
        if arr is not None:
            h.update(hashlib.md5(np.ascontiguousarray(arr).tobytes()).digest())
    return h.hexdigest()


def write_sgdml(ds: Dataset, path, *, energy_unit: str = "eV", length_unit: str = "Ang") -> list[str]:
    """Write ``ds`` as an sGDML dataset ``.npz`` (needs one fixed composition). Energies and forces
    are written in ``energy_unit`` and ``energy_unit``/``length_unit`` (e.g. 'kcal/mol' for the
    MD17 convention), with ``e_unit``/``r_unit`` strings, ``name``, ``theory``, ``type='d'`` and the
    sGDML ``md5``. A fixed periodic cell becomes ``lattice`` (columns = lattice vectors).
    Returns the names of the fields the format cannot hold (not written)."""
    path = Path(path)
    if len(ds) == 0:
        raise DataError(f"{path}: cannot write an empty dataset")
    if not ds.is_fixed_composition:
        raise DataError(
            f"{path}: the sGDML format needs the same atoms in every frame; this dataset has "
            f"{ds.n_atoms_range[0]}..{ds.n_atoms_range[1]} atoms/different elements: "
            "write .h5 or .xyz instead"
        )
    e_fac = units.energy_factor(energy_unit)
    l_fac = units.length_factor(length_unit)
    n = int(ds.n_atoms[0])
    out: dict[str, Any] = {
        "type": np.array("d"),
        "name": np.array(ds.name or path.stem),
        "theory": np.array(ds.theory or "unknown"),
        "r_unit": np.array(length_unit),
        "e_unit": np.array(energy_unit),
        "z": ds.atomic_numbers[:n].astype(np.uint8),
        "R": ds.stacked("positions") / l_fac,
    }
    E = F = None
    if ds.energy is not None:
        E = (ds.energy / e_fac).reshape(-1, 1)
        out["E"] = E
    if ds.forces is not None:
        F = ds.stacked("forces") / (e_fac / l_fac)
        out["F"] = F
    if ds.cell is not None and ds.pbc is not None and np.any(ds.pbc):
        if not (np.all(ds.pbc) and np.allclose(ds.cell, ds.cell[0])):
            raise DataError(f"{path}: the sGDML format supports one fully periodic cell for all frames")
        out["lattice"] = ds.cell[0].T / l_fac
    out["md5"] = np.array(sgdml_md5(out["z"], out["R"], E, F))
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **out)
    return [k for k in ds.fields if k not in ("energy", "forces", "cell", "pbc")]


# ---------------------------------------------------------------------------- rMD17
def read_rmd17(
    path,
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    energy_unit: str | None = None,
    length_unit: str | None = None,
    force_unit: str | None = None,
    validate: bool = True,
    min_distance: float = 0.1,
) -> Dataset:
    """Read a revised-MD17 ``.npz`` (``nuclear_charges``, ``coords`` Å, ``energies``/``forces`` in
    kcal/mol and kcal/mol/Å, and the original MD17 labels ``old_energies``/``old_forces``).

    The label set must be chosen: ``energy_key='energies'`` (revised, PBE/def2-SVP) or
    ``'old_energies'`` (original MD17, different level of theory); ``forces_key`` defaults to the
    matching forces and may not mix the two sets. ``old_indices`` is kept as ``md17_index``."""
    path = Path(path)
    d = _open_npz(path)
    if energy_key is None:
        raise DataError(
            f"{path}: rMD17 holds two label sets; choose one: energy_key='energies' (revised labels) or "
            "'old_energies' (original MD17 labels) — CLI: --energy-key energies"
        )
    pairs = {"energies": "forces", "old_energies": "old_forces"}
    if energy_key not in pairs:
        raise DataError(f"{path}: energy key {energy_key!r} is not one of {sorted(pairs)}")
    forces_key = forces_key or pairs[energy_key]
    if forces_key != pairs[energy_key]:
        raise DataError(
            f"{path}: energy key {energy_key!r} with forces key {forces_key!r} would mix the revised and "
            "the original MD17 labels (different levels of theory)"
        )
    z = _npz_get(d, path, "nuclear_charges")
    R = _npz_get(d, path, "coords")
    E = _npz_get(d, path, energy_key)
    F = _npz_get(d, path, forces_key)
    _check_shape(path, "coords", R, (None, None, 3))
    M, N = R.shape[:2]
    _check_shape(path, "nuclear_charges", z, (N,))
    _check_shape(path, energy_key, E, (M,))
    _check_shape(path, forces_key, F, (M, N, 3))
    e_unit = energy_unit or RMD17_UNITS["energy"]
    r_unit = length_unit or RMD17_UNITS["length"]
    frame_data = {}
    if "old_indices" in d.files:
        idx = _npz_get(d, path, "old_indices")
        _check_shape(path, "old_indices", idx, (M,))
        frame_data["md17_index"] = idx.astype(np.int64)
    theory = "PBE/def2-SVP (rMD17)" if energy_key == "energies" else "PBE+vdW-TS (original MD17 labels)"
    return Dataset.from_arrays(
        z,
        np.asarray(R, np.float64) * units.length_factor(r_unit),
        energy=np.asarray(E, np.float64) * units.energy_factor(e_unit),
        forces=np.asarray(F, np.float64) * force_factor(force_unit, e_unit, r_unit),
        frame_data=frame_data,
        metadata={
            "name": path.stem,
            "theory": theory,
            "source_units": {
                "energy": e_unit,
                "length": r_unit,
                "forces": force_unit or f"{e_unit}/{r_unit}",
            },
            "provenance": [f"read {path.name} (rMD17 npz, labels {energy_key}/{forces_key})"],
        },
        validate=validate,
        source=str(path),
        min_distance=min_distance,
    )


# ---------------------------------------------------------------------------- ASE formats
#: default label keys for ASE-read files; a key given explicitly must exist in every frame
ASE_DEFAULT_KEYS = {
    "energy": "energy",
    "forces": "forces",
    "charge": "charge",
    "multiplicity": "multiplicity",
    "dipole": "dipole",
    "hirshfeld_ratios": "hirshfeld_ratios",
    "partial_charges": "partial_charges",
}
_PER_ATOM = {"forces", "hirshfeld_ratios", "partial_charges"}


def _ase_lookup(atoms, key: str, per_atom: bool):
    """The value stored in the file under ``key``: ``atoms.arrays``/``atoms.info`` first; then ASE's
    SinglePointCalculator, because ASE's extxyz reader moves exactly the keys named like calculator
    properties ('energy', 'forces', 'dipole', 'charges', …) there. Only the exact key is looked up:
    a label never falls back to another name or to a computed result."""
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key]
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    if key in results:
        return results[key]
    return None


def _available_keys(atoms) -> list[str]:
    calc = getattr(atoms.calc, "results", None) or {}
    return sorted(set(atoms.info) | (set(atoms.arrays) - {"numbers", "positions"}) | set(calc))


def read_ase(
    path,
    *,
    fmt: str | None = None,
    index: str | int | slice = ":",
    energy_key: str | None = None,
    forces_key: str | None = None,
    charge_key: str | None = None,
    multiplicity_key: str | None = None,
    dipole_key: str | None = None,
    hirshfeld_key: str | None = None,
    partial_charges_key: str | None = None,
    energy_unit: str | None = None,
    length_unit: str | None = None,
    force_unit: str | None = None,
    extras: bool = True,
    validate: bool = True,
    min_distance: float = 0.1,
) -> Dataset:
    """Read extended XYZ or any ``ase.io`` format (``fmt`` = ASE format name) with explicit label keys.

    Labels come from the key given for each field (defaults: ``energy``, ``forces``, ``charge``,
    ``multiplicity``, ``dipole``, ``hirshfeld_ratios``, ``partial_charges``); a key given explicitly
    must exist in every frame, a default key in all frames or none. Units: positions ``length_unit``
    (default Å), energies ``energy_unit`` (default eV, the ASE convention; MD22 xyz files use
    kcal/mol), forces ``force_unit`` (default energy/length). ``charge`` and ``multiplicity`` come
    from ``atoms.info``. With ``extras``, other numeric per-frame ``info`` and per-atom ``arrays``
    entries present in every frame are kept unchanged (no unit conversion).
    """
    import ase.io

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    given = {
        "energy": energy_key,
        "forces": forces_key,
        "charge": charge_key,
        "multiplicity": multiplicity_key,
        "dipole": dipole_key,
        "hirshfeld_ratios": hirshfeld_key,
        "partial_charges": partial_charges_key,
    }
    keys = {k: (v if v else ASE_DEFAULT_KEYS[k]) for k, v in given.items()}
    used_keys = set(keys.values())
    ase_fmt = fmt
    if ase_fmt is None and path.suffix.lower() in XYZ_EXT:
        ase_fmt = "extxyz"
    declared = None if energy_unit else _declared_energy_unit(path, ase_fmt)
    used_keys.add("energy_unit")
    e_unit = energy_unit or declared or "eV"
    r_unit = length_unit or "Ang"
    l_fac = units.length_factor(r_unit)
    e_fac = units.energy_factor(e_unit)
    f_fac = force_factor(force_unit, e_unit, r_unit)
    try:
        images = ase.io.iread(str(path), index=index, format=ase_fmt)
        zs, pos, cells, pbcs = [], [], [], []
        values: dict[str, list] = {k: [] for k in keys}
        extra_f: dict[str, list] = {}
        extra_a: dict[str, list] = {}
        frame = -1
        for frame, atoms in enumerate(images):
            zs.append(atoms.numbers.copy())
            pos.append(np.asarray(atoms.positions, np.float64) * l_fac)
            cells.append(np.asarray(atoms.cell.array, np.float64) * l_fac)
            pbcs.append(np.asarray(atoms.pbc, bool))
            for field, key in keys.items():
                v = _ase_lookup(atoms, key, field in _PER_ATOM)
                if v is None:
                    if given[field] is not None:
                        raise DataError(
                            f"{path}: frame {frame}, field '{field}': key {key!r} not found; keys in this "
                            f"frame: {_available_keys(atoms)}"
                        )
                    if values[field] and values[field][-1] is not None:
                        raise DataError(
                            f"{path}: frame {frame}, field '{field}': key {key!r} missing "
                            "but present in earlier frames"
                        )
                elif values[field] and values[field][-1] is None:
                    raise DataError(
                        f"{path}: frame {frame}, field '{field}': key {key!r} present "
                        "but missing in earlier frames"
                    )
                values[field].append(v)
            if extras:
                _collect_extras(atoms, frame, used_keys, extra_f, extra_a)
    except DataError:
        raise
    except (FileNotFoundError, PermissionError):
        raise
    except KeyError as exc:  # ASE raises KeyError for unknown element symbols
        raise DataError(f"{path}: frame {frame + 1}, field 'species': unknown element symbol {exc}") from None
    except Exception as exc:  # ASE parsers raise many types on corrupt files
        raise DataError(f"{path}: frame {frame + 1}: cannot parse ({type(exc).__name__}: {exc})") from None
    if frame < 0:
        raise DataError(f"{path}: no frames found")
    n_frames = frame + 1
    kw: dict[str, Any] = {}
    for field, vals in values.items():
        if not vals or vals[0] is None:
            continue
        try:
            if field in _PER_ATOM:
                kw[field] = [np.asarray(v, np.float64) for v in vals]
            else:
                kw[field] = np.array([np.asarray(v, np.float64) for v in vals])
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{path}: field '{field}' (key {keys[field]!r}): not numeric or inconsistent shapes ({exc})"
            ) from None
    if "energy" in kw:
        kw["energy"] = kw["energy"].reshape(n_frames, -1)
        if kw["energy"].shape[1] != 1:
            raise DataError(f"{path}: field 'energy' (key {keys['energy']!r}): not one number per frame")
        kw["energy"] = kw["energy"][:, 0] * e_fac
    if "forces" in kw:
        kw["forces"] = [f * f_fac for f in kw["forces"]]
    if "dipole" in kw:
        kw["dipole"] = kw["dipole"] * l_fac
    cells_a = np.array(cells)
    pbcs_a = np.array(pbcs)
    if np.any(pbcs_a) or np.any(cells_a != 0):
        kw["cell"] = cells_a
        kw["pbc"] = pbcs_a
    atom_extra = {}
    frame_extra = {}
    # extras named like energies/forces follow the energy unit too (as write_extxyz writes them)
    for k, vals in extra_f.items():
        if len(vals) == n_frames and len({np.shape(v) for v in vals}) == 1:
            frame_extra[k] = np.array(vals)
            if is_energy_field(k) and frame_extra[k].dtype.kind in "iuf":
                frame_extra[k] = frame_extra[k] * e_fac
    for k, vals in extra_a.items():
        if len(vals) == n_frames:
            atom_extra[k] = [v * f_fac for v in vals] if is_force_field(k) else vals
    ragged = len({len(z) for z in zs}) > 1
    if ragged:
        positions: Any = pos
        per_atom_in = {k: kw.pop(k) for k in list(kw) if k in _PER_ATOM}
    else:
        positions = np.array(pos)
        per_atom_in = {k: np.array(kw.pop(k)) for k in list(kw) if k in _PER_ATOM}
        atom_extra = {k: np.array(v) for k, v in atom_extra.items()}
        zs = np.array(zs)
    src_units = {"length": r_unit}
    if "energy" in kw or "forces" in per_atom_in:
        src_units["energy"] = (
            e_unit if energy_unit or declared else "eV (assumed: ASE convention, no unit in file)"
        )
        src_units["forces"] = force_unit or f"{e_unit}/{r_unit}"
    return Dataset.from_arrays(
        zs,
        positions,
        **kw,
        **per_atom_in,
        frame_data=frame_extra,
        atom_data=atom_extra,
        metadata={
            "name": path.stem,
            "source_units": src_units,
            "provenance": [
                f"read {path.name} ({ase_fmt or 'ase'}; keys "
                + ", ".join(f"{f}={k}" for f, k in keys.items())
                + ")"
            ],
        },
        validate=validate,
        source=str(path),
        min_distance=min_distance,
    )


def _declared_energy_unit(path, ase_fmt) -> str | None:
    """The ``energy_unit`` a file written by :func:`write_extxyz` names in its first frame's
    comment line (None if it names none or cannot be read here; the main read reports errors)."""
    import ase.io

    try:
        unit = ase.io.read(str(path), index=0, format=ase_fmt).info.get("energy_unit")
    except Exception:  # noqa: BLE001 - the full read below gives the error naming the frame
        return None
    return str(unit) if unit else None


def _collect_extras(atoms, frame, used_keys, extra_f, extra_a) -> None:
    """Keep other numeric (and per-frame string) info/arrays entries, stored as they are: their
    units are not known, so they are never converted."""
    for entries, skip, kinds, store in (
        (atoms.info, ("cell", "pbc"), "biufU", extra_f),
        (atoms.arrays, ("numbers", "positions"), "biuf", extra_a),
    ):
        for k, v in entries.items():
            if k in used_keys or k in skip:
                continue
            a = np.asarray(v)
            if a.dtype.kind in kinds and (frame == 0 or k in store):
                store.setdefault(k, []).append(a)
    for store in (extra_f, extra_a):
        for k in list(store):
            if len(store[k]) != frame + 1:  # missing in some frame: drop the extra entirely
                del store[k]


def is_energy_field(name: str) -> bool:
    """Fields in energy units (converted with the energy unit): energy, formation/HOMO/LUMO energies
    and every ``*_energy`` component."""
    return name == "energy" or name.endswith("_energy")


def is_force_field(name: str) -> bool:
    """Fields in force units: forces and every ``*_forces`` component."""
    return name == "forces" or name.endswith("_forces")


def write_extxyz(ds: Dataset, path, *, energy_unit: str = "eV", fmt: str = "extxyz") -> list[str]:
    """Write ``ds`` as extended XYZ (or another ASE format ``fmt``): positions Å, ``energy`` and every
    ``*_energy`` field in ``energy_unit`` (default eV) in the comment line, ``forces`` and ``*_forces``
    in energy_unit/Å per atom, and every other field under its own name (``charge``,
    ``multiplicity``, ``dipole`` e·Å, ``hirshfeld_ratios``, …). Labels are plain info/arrays
    entries, never a calculator. Returns the fields that could not be stored (none)."""
    import ase.io

    path = Path(path)
    e_fac = units.energy_factor(energy_unit)
    images = []
    for i in range(len(ds)):
        atoms = ds.to_atoms(i)
        if e_fac != 1.0:
            for k in list(atoms.info):
                if is_energy_field(k) and k in ds.frame_data:
                    v = np.asarray(atoms.info[k]) / e_fac
                    atoms.info[k] = v.item() if v.ndim == 0 else v
            for k in list(atoms.arrays):
                if is_force_field(k) and k in ds.atom_data:
                    atoms.arrays[k] = atoms.arrays[k] / e_fac
        atoms.info["energy_unit"] = energy_unit  # read back without an assumed unit
        images.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(str(tmp), images, format=fmt)
    return []


# ---------------------------------------------------------------------------- front door
#: unit and label-key keywords that :func:`read_dataset` passes on to the format readers
UNIT_KEYS = ("energy_unit", "length_unit", "force_unit")
LABEL_KEYS = (
    "energy_key",
    "forces_key",
    "charge_key",
    "multiplicity_key",
    "dipole_key",
    "hirshfeld_key",
    "partial_charges_key",
)


def _read_dataset(
    path,
    fmt: str | None = None,
    *,
    index: Any = None,
    validate: bool = True,
    min_distance: float = 0.1,
    **options: str | None,
) -> Dataset:
    """Read a dataset file into a :class:`Dataset` (positions Å, energy eV, forces eV/Å, charge e).

    ``fmt``: 'sgdml', 'rmd17', 'extxyz', 'qcell', or 'ase:NAME' (any ``ase.io`` format); guessed from
    the extension (and npz keys) when None. Units of the file: ``energy_unit`` ('kcal/mol', 'eV',
    'Hartree', …), ``length_unit`` ('Ang', 'Bohr'), ``force_unit`` ('kcal/mol/Ang'); required where
    the file does not say (sGDML without ``e_unit``). Label keys (``energy_key``, ``forces_key``,
    ``charge_key``, …) select what is read in rMD17 (``'energies'``/``'old_energies'``) and ASE
    formats (the keyword arguments of :func:`read_ase`: ``energy_key``, ``forces_key``,
    ``charge_key``, ``multiplicity_key``, ``dipole_key``, ``hirshfeld_key``,
    ``partial_charges_key``). ``index``: frames to read (int, slice, or ASE index string; QCell: list
    of ints too). ``validate`` checks shapes, NaN/inf, elements and atoms closer than
    ``min_distance`` Å.
    """
    unknown = sorted(set(options) - set(UNIT_KEYS) - set(LABEL_KEYS))
    if unknown:
        raise TypeError(
            f"read_dataset: unknown keyword(s) {', '.join(unknown)}; it takes "
            f"{', '.join(UNIT_KEYS + LABEL_KEYS)}"
        )
    units_ = {k: options.get(k) for k in UNIT_KEYS}
    label_keys = {k: v for k, v in options.items() if k in LABEL_KEYS}
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a dataset file")
    fmt = fmt or detect_format(path)
    common = dict(validate=validate, min_distance=min_distance)
    if fmt == "sgdml":
        ds = read_sgdml(path, **units_, **common)
    elif fmt == "rmd17":
        keys = {k: label_keys.get(k) for k in ("energy_key", "forces_key")}
        ds = read_rmd17(path, **keys, **units_, **common)
    elif fmt == "qcell":
        from .qcell import read_qcell

        return read_qcell(path, index=index, **common)
    elif fmt == "extxyz" or fmt == "ase" or fmt.startswith("ase:"):
        ase_fmt = "extxyz" if fmt == "extxyz" else (fmt[4:] if fmt.startswith("ase:") else None)
        ase_index = index if isinstance(index, (str, int, np.integer, slice)) else ":"
        ds = read_ase(
            path,
            fmt=ase_fmt,
            index=ase_index,
            **units_,
            **label_keys,
            **common,
        )
        if index is None or index is ase_index:
            return ds
    else:
        raise DataError(f"{path}: unknown format {fmt!r}; use sgdml, rmd17, extxyz, qcell or ase:NAME")
    if index is not None:
        ds = ds.subset(index_to_selection(index, len(ds)))
    return ds


def shipped_dataset(name: str) -> Path:
    """Path of a dataset shipped with biomlff (``resources/examples/<name>.npz``; ``shipped:NAME`` in
    any dataset argument), e.g. ``ethanol_md17_50``: 50 frames of MD17 ethanol (kcal/mol, MIT)."""
    from importlib.resources import files

    folder = Path(str(files("biomlff").joinpath("resources", "examples")))
    p = folder / f"{name}.npz"
    if not p.exists():
        known = ", ".join(sorted(q.stem for q in folder.glob("*.npz")))
        raise DataError(f"no shipped dataset named {name!r}; shipped: {known}")
    return p


def read_dataset(path, fmt: str | None = None, **kwargs) -> Dataset:
    """Read a dataset file into a :class:`Dataset` (positions Å, energy eV, forces eV/Å, charge e),
    warning (:mod:`biomlff.data.plausibility`) when the energy unit was assumed or the forces are
    implausibly large for eV/Å. Arguments as :func:`_read_dataset`, whose docstring follows.

    """
    if str(path).startswith("shipped:"):
        path = shipped_dataset(str(path).split(":", 1)[1])
    ds = _read_dataset(path, fmt, **kwargs)
    from .plausibility import warn_labels

    warn_labels(ds, str(path))
    return ds


read_dataset.__doc__ += _read_dataset.__doc__ or ""


def write_dataset(ds: Dataset, path, fmt: str | None = None, *, energy_unit: str = "eV") -> list[str]:
    """Write ``ds`` to ``path`` atomically; format from ``fmt`` or the extension: ``.npz`` sGDML layout
    (fixed composition), ``.xyz``/``.extxyz`` extended XYZ, ``.h5``/``.hdf5`` QCell schema (lossless,
    ragged), or 'ase:NAME'. ``energy_unit`` (npz, xyz only): unit of the written energies and forces
    (eV and eV/Å by default; 'kcal/mol' gives the MD17 convention). QCell files are always eV, Å.
    Returns the names of fields the format could not store (sGDML keeps only energy, forces, cell)."""
    path = Path(path)
    if fmt is None:
        ext = path.suffix.lower()
        by_ext = {
            **dict.fromkeys(NPZ_EXT, "sgdml"),
            **dict.fromkeys(XYZ_EXT, "extxyz"),
            **dict.fromkeys(H5_EXT, "qcell"),
        }
        fmt = by_ext.get(ext)
        if fmt is None:
            raise DataError(
                f"{path}: cannot tell the format from the extension; use .npz, .xyz, .extxyz, .h5"
            )
    if fmt == "sgdml":
        return write_sgdml(ds, path, energy_unit=energy_unit)
    elif fmt == "extxyz":
        return write_extxyz(ds, path, energy_unit=energy_unit)
    elif fmt.startswith("ase:"):
        return write_extxyz(ds, path, energy_unit=energy_unit, fmt=fmt[4:])
    elif fmt == "qcell":
        if units.energy_factor(energy_unit) != 1.0:
            raise DataError(f"{path}: QCell HDF5 files are always in eV; drop energy_unit={energy_unit!r}")
        from .qcell import write_qcell

        write_qcell(ds, path)
        return []
    elif fmt == "rmd17":
        raise DataError(f"{path}: writing rMD17 is not supported (write the sGDML .npz layout instead)")
    else:
        raise DataError(f"{path}: unknown format {fmt!r}; use sgdml, extxyz, qcell or ase:NAME")
