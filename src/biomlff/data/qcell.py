"""QCell-schema HDF5 files: one group per structure, datasets named by the QCell property keys.

Layout (documented in docs/data.md)::

    /metadata                       group (optional)
        free_atom_energy            (119,) float64, eV, indexed by atomic number (NaN = unknown)
        fhi_aims_settings           string
        attrs: name, theory, source_units (JSON), provenance (JSON), per_atom_fields (JSON), format
    /<structure id>                 one group per structure; read in HDF5 name order
        atomic_numbers (N,) int     positions (N,3) Å
        total_energy () eV          formation_energy () eV          total_forces (N,3) eV/Å
        dipole (3,) e·Å             quadrupole (3,3) e·Å²           charge () e
        hirshfeld_ratios (N,)       c6_ratios (N,)                  a0_ratios (N,)
        homo_energy () eV           lumo_energy () eV               source () string
        <component>_energy () eV    <component>_forces (N,3) eV/Å   (energy and force components)
        biomlff extensions: multiplicity (), partial_charges (N,) e, cell (3,3) Å, pbc (3,) bool

Reading is streamed group by group (:func:`iter_qcell`), so a file of 500k structures is never
loaded at once unless asked for; :func:`read_qcell` builds a :class:`Dataset` from selected frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..fileio import atomic_path, open_h5
from .dataset import ATOM_FIELDS, Dataset, index_to_selection

#: dataset field name -> QCell key (all other names are identical)
TO_QCELL = {"energy": "total_energy", "forces": "total_forces"}
FROM_QCELL = {v: k for k, v in TO_QCELL.items()}
#: keys that are per atom by convention (besides ATOM_FIELDS and the per_atom_fields attribute)
PER_ATOM_SUFFIXES = ("_forces", "_ratios", "_charges")
QCELL_METADATA = ("free_atom_energy", "fhi_aims_settings")
STRUCTURE_NAME_WIDTH = 8


def _is_per_atom(key: str, extra: set[str]) -> bool:
    name = FROM_QCELL.get(key, key)
    return name in ATOM_FIELDS or name in extra or key.endswith(PER_ATOM_SUFFIXES)


def _open(path: Path):
    """The file as a context manager (:func:`biomlff.fileio.open_h5`: an empty, foreign or corrupt
    file is a DataError naming it)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return open_h5(path, "dataset")


def _read_value(ds) -> Any:
    val = ds[()]
    if isinstance(val, bytes):
        return val.decode()
    if isinstance(val, np.ndarray) and val.dtype.kind == "O":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in val.ravel()]).reshape(val.shape)
    return val


def read_qcell_metadata(path) -> dict[str, Any]:
    """Dataset metadata of a QCell-schema file (name, theory, source_units, provenance,
    free_atom_energy (eV, indexed by Z), fhi_aims_settings) without touching the structures."""
    path = Path(path)
    with _open(path) as f:
        return _metadata(f, path)


def _metadata(f, path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": path.stem, "theory": "", "source_units": {}, "provenance": []}
    if "metadata" not in f:
        return meta
    g = f["metadata"]
    for key in ("name", "theory"):
        if key in g.attrs:
            meta[key] = str(g.attrs[key])
    for key in ("source_units", "provenance", "per_atom_fields"):
        if key in g.attrs:
            try:
                meta[key] = json.loads(g.attrs[key])
            except (TypeError, ValueError):
                raise DataError(f"{path}: field 'metadata/{key}': not valid JSON") from None
    for key in g:
        meta[key] = _read_value(g[key])
    return meta


def _read_group(f, name: str) -> dict[str, Any]:
    """All datasets of group ``name`` as numpy values (scalars as numpy scalars, strings as str).

    Uses h5py's low-level API for numeric datasets: the high-level ``Group``/``Dataset`` objects cost
    about twice as much per access, which dominates when streaming hundreds of thousands of small
    structures. Raises KeyError if the group does not exist, TypeError if it holds a non-dataset."""
    import h5py

    if name not in f:
        raise KeyError(name)
    gid = h5py.h5g.open(f.id, name.encode())
    out: dict[str, Any] = {}
    for i in range(gid.get_num_objs()):
        key_b = gid.get_objname_by_idx(i)
        key = key_b.decode()
        if gid.get_objtype_by_idx(i) != h5py.h5g.DATASET:
            raise TypeError(key)
        d = h5py.h5d.open(gid, key_b)
        if d.dtype.kind in "OSUV":  # strings and other special types: the high-level reader decodes them
            out[key] = _read_value(f[name][key])
            continue
        arr = np.empty(d.shape, dtype=d.dtype)
        d.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
        out[key] = arr if arr.ndim else arr[()]
    return out


def structure_names(path) -> list[str]:
    """Names of the structure groups in file order (every top-level group except ``metadata``)."""
    with _open(Path(path)) as f:
        return [k for k in f if k != "metadata"]


def iter_qcell(path, names: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the structures one at a time as dicts of numpy values with biomlff field names
    (``atomic_numbers``, ``positions`` Å, ``energy`` eV, ``forces`` eV/Å, ``dipole`` …; other QCell
    keys unchanged) plus ``_name`` (the group name) and ``_per_atom`` (names of per-atom fields).
    Only one structure is in memory at a time."""
    path = Path(path)
    with _open(path) as f:
        meta = _metadata(f, path)
        extra_atom = set(meta.get("per_atom_fields", []))
        it = names if names is not None else (k for k in f if k != "metadata")
        for frame, name in enumerate(it):
            try:
                raw = _read_group(f, name)
            except KeyError:
                raise DataError(f"{path}: frame {frame}: no structure group {name!r}") from None
            except TypeError:
                raise DataError(f"{path}: frame {frame} ({name!r}): expected a group of datasets") from None
            except (OSError, RuntimeError, ValueError) as exc:
                raise DataError(f"{path}: frame {frame} ({name!r}): corrupt data ({exc})") from None
            for key in ("atomic_numbers", "positions"):
                if key not in raw:
                    raise DataError(
                        f"{path}: frame {frame} ({name!r}), field '{key}': missing (keys: {sorted(raw)})"
                    )
            out: dict[str, Any] = {"_name": name, "_per_atom": []}
            for key, val in raw.items():
                field = FROM_QCELL.get(key, key)
                out[field] = val
                if key not in ("atomic_numbers", "positions") and _is_per_atom(key, extra_atom):
                    out["_per_atom"].append(field)
            yield out


def check_record(rec: dict[str, Any], source: str, frame: int, min_distance: float = 0.1) -> None:
    """Validate one streamed structure (as :func:`iter_qcell` yields it) with the Dataset checks;
    messages name ``frame`` (its position in the file)."""
    from .validate import validate_dataset

    z = np.asarray(rec["atomic_numbers"])
    pos = np.asarray(rec["positions"], dtype=np.float64)
    if z.ndim != 1 or pos.shape != (z.shape[0], 3):
        raise DataError(
            f"{source}: frame {frame} ({rec['_name']!r}), field 'positions': shape {pos.shape} "
            f"for {z.shape} atomic numbers"
        )
    per_atom = set(rec["_per_atom"])
    fd = {
        k: np.asarray(v)[None]
        for k, v in rec.items()
        if not k.startswith("_") and k not in per_atom and k not in ("atomic_numbers", "positions")
    }
    ad = {k: np.asarray(rec[k]) for k in per_atom}
    ds = Dataset(z, pos, np.array([0, z.shape[0]]), fd, ad, validate=False)
    validate_dataset(ds, source=source, min_distance=min_distance, frame_offset=frame)


def read_qcell(path, *, index: Any = None, validate: bool = True, min_distance: float = 0.1) -> Dataset:
    """Read a QCell-schema HDF5 file into a :class:`Dataset` (eV, Å, e), streaming group by group.

    ``index``: None for all structures, an int, a slice, or a list of frame numbers (file order) to
    read only those. Every structure must have the same set of keys."""
    path = Path(path)
    names = None
    if index is not None:
        all_names = structure_names(path)
        if isinstance(index, (int, np.integer)):
            sel = [all_names[int(index)]]
        elif isinstance(index, slice):
            sel = all_names[index]
        elif isinstance(index, str):
            s = index_to_selection(index, len(all_names))
            sel = all_names[s] if isinstance(s, slice) else [all_names[i] for i in s]
        else:
            sel = [all_names[int(i)] for i in index]
        names = sel
    meta = read_qcell_metadata(path)
    zs, pos = [], []
    frame_vals: dict[str, list] = {}
    atom_vals: dict[str, list] = {}
    keys0: set[str] | None = None
    per_atom: set[str] = set()
    for frame, rec in enumerate(iter_qcell(path, names)):
        keys = set(rec) - {"_name", "_per_atom"}
        if keys0 is None:
            keys0 = keys
            per_atom = set(rec["_per_atom"])
        elif keys != keys0:
            diff = sorted(keys ^ keys0)
            raise DataError(f"{path}: frame {frame} ({rec['_name']!r}): fields {diff} differ from frame 0")
        z = np.asarray(rec["atomic_numbers"])
        p = np.asarray(rec["positions"], dtype=np.float64)
        if z.ndim != 1 or p.shape != (z.shape[0], 3):
            raise DataError(
                f"{path}: frame {frame} ({rec['_name']!r}), field 'positions': shape {p.shape} "
                f"for {z.shape[0] if z.ndim == 1 else z.shape} atoms"
            )
        zs.append(z)
        pos.append(p)
        for k in keys - {"atomic_numbers", "positions"}:
            v = np.asarray(rec[k])
            if k in per_atom:
                if v.shape[:1] != (z.shape[0],):
                    raise DataError(
                        f"{path}: frame {frame} ({rec['_name']!r}), field '{k}': shape {v.shape} "
                        f"for {z.shape[0]} atoms"
                    )
                atom_vals.setdefault(k, []).append(v)
            else:
                frame_vals.setdefault(k, []).append(v)
    if keys0 is None:
        raise DataError(f"{path}: no structures found")
    frame_data = {}
    for k, vals in frame_vals.items():
        shapes = {v.shape for v in vals}
        if len(shapes) != 1:
            raise DataError(f"{path}: field '{k}': shapes differ between frames {sorted(shapes)}")
        frame_data[k] = np.stack(vals)
    meta = dict(meta)
    meta.pop("per_atom_fields", None)
    meta["provenance"] = list(meta.get("provenance", [])) + [f"read {path.name} (QCell HDF5)"]
    meta.setdefault("source_units", {})
    if len({len(z) for z in zs}) == 1:  # one composition: stacked arrays (the fixed-size layout)
        zs, pos = np.stack(zs), np.stack(pos)
        atom_vals = {k: np.stack(v) for k, v in atom_vals.items()}
    return Dataset.from_arrays(
        zs,
        pos,
        frame_data=frame_data,
        atom_data=atom_vals,
        metadata=meta,
        validate=validate,
        source=str(path),
        min_distance=min_distance,
    )


def write_qcell(ds: Dataset, path) -> None:
    """Write ``ds`` as a QCell-schema HDF5 file (eV, Å, e; one group per structure, zero-padded
    names so that HDF5 name order is frame order). Lossless for every field of the dataset;
    metadata (name, theory, source units, provenance, ``free_atom_energy``, ``fhi_aims_settings``)
    goes to ``/metadata``. Written atomically."""
    import h5py

    path = Path(path)
    width = max(STRUCTURE_NAME_WIDTH, len(str(max(len(ds) - 1, 0))))
    str_dt = h5py.string_dtype()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        g = f.create_group("metadata")
        g.attrs["format"] = "biomlff-qcell"
        g.attrs["version"] = 1
        g.attrs["name"] = ds.name
        g.attrs["theory"] = ds.theory
        g.attrs["source_units"] = json.dumps(ds.metadata.get("source_units", {}))
        prov = list(ds.metadata.get("provenance", []))
        g.attrs["provenance"] = json.dumps([str(p) for p in prov])
        nonstandard = [k for k in ds.atom_data if k not in ATOM_FIELDS and not k.endswith(PER_ATOM_SUFFIXES)]
        g.attrs["per_atom_fields"] = json.dumps(nonstandard)
        for key in QCELL_METADATA:
            if key in ds.metadata and ds.metadata[key] is not None:
                val = ds.metadata[key]
                if isinstance(val, str):
                    g.create_dataset(key, data=val, dtype=str_dt)
                else:
                    g.create_dataset(key, data=np.asarray(val))
        for i in range(len(ds)):
            s = ds.atoms_slice(i)
            grp = f.create_group(f"{i:0{width}d}")
            grp.create_dataset("atomic_numbers", data=ds.atomic_numbers[s])
            grp.create_dataset("positions", data=ds.positions[s])
            for k, v in ds.frame_data.items():
                _write_value(grp, TO_QCELL.get(k, k), v[i], str_dt)
            for k, v in ds.atom_data.items():
                _write_value(grp, TO_QCELL.get(k, k), v[s], str_dt)


def _write_value(grp, key: str, value, str_dt) -> None:
    a = np.asarray(value)
    if a.dtype.kind in "UO":
        grp.create_dataset(key, data=a.astype(object) if a.ndim else str(a), dtype=str_dt)
    else:
        grp.create_dataset(key, data=a)
