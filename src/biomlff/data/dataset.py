"""The in-memory dataset type of biomlff: frames of (bio)molecular structures with labels.

Storage is *ragged*: the atoms of all frames are concatenated and ``offsets`` (F+1,) marks where
each frame starts, so frames of different sizes (QCell, dimers) cost no padding and no Python
objects per frame. Frame ``i`` owns atoms ``offsets[i]:offsets[i+1]``.

Internal units: positions Å, energies eV, forces eV/Å, charge e, dipole e·Å, cell Å.
Readers convert from the file's units (see :mod:`biomlff.data.io`), writers convert back.

Fields
------
Per frame (``frame_data``, leading dimension F):
  ``energy`` (F,) eV, ``charge`` (F,) e, ``multiplicity`` (F,) 2S+1, ``dipole`` (F,3) e·Å,
  ``cell`` (F,3,3) Å (rows are lattice vectors, ASE convention), ``pbc`` (F,3) bool, plus any
  other per-frame property (QCell: ``formation_energy``, ``quadrupole``, ``homo_energy``, …).
Per atom (``atom_data``, leading dimension A = total atoms):
  ``forces`` (A,3) eV/Å, ``hirshfeld_ratios`` (A,), ``partial_charges`` (A,) e, plus any other
  per-atom property (QCell: ``c6_ratios``, ``a0_ratios``, force components …).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .fields import ATOM_FIELDS, FIELD_KIND, FRAME_FIELDS, MAX_Z  # noqa: F401  (re-exported)


def index_to_selection(index: Any, n: int):
    """A frame selection for :meth:`Dataset.subset` from an ASE-style ``index``: "a:b[:c]" → slice,
    "k" or an int → [k], anything else (list, slice, array) unchanged (``n``: number of frames)."""
    if isinstance(index, str):
        if ":" in index:
            parts = [int(p) if p.strip() else None for p in index.split(":")]
            return slice(*parts)
        return [int(index)]
    if isinstance(index, (int, np.integer)):
        return [int(index)]
    return index


def _element_numbers(values: Any, source: str, frame: int | None) -> np.ndarray:
    """Atomic numbers from ints or element symbols; DataError names the bad entry."""
    arr = np.asarray(values)
    if arr.dtype.kind in "USO":
        from ase.data import atomic_numbers as _sym2z

        out = np.empty(arr.shape, dtype=np.int64)
        for k, s in enumerate(arr.ravel()):
            key = str(s).strip()
            key = key[:1].upper() + key[1:].lower()
            if key not in _sym2z or _sym2z[key] == 0:
                where = f"frame {frame}, " if frame is not None else ""
                raise DataError(
                    f"{source}: {where}atom {k}, field 'atomic_numbers': unknown element symbol {str(s)!r}"
                )
            out.ravel()[k] = _sym2z[key]
        return out
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{source}: field 'atomic_numbers': non-integer values")
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{source}: field 'atomic_numbers': cannot interpret dtype {arr.dtype}")
    return arr.astype(np.int64)


class Dataset:
    """Frames of atoms with optional labels, stored ragged (concatenated arrays + offsets).

    Construct with :meth:`from_arrays` (convenient) or directly from the ragged arrays::

        Dataset(atomic_numbers (A,), positions (A,3) Å, offsets (F+1,),
                frame_data={name: (F,...)}, atom_data={name: (A,...)}, metadata={...})

    ``metadata`` keys: ``name``, ``theory`` (level of theory), ``source_units`` (dict of the units
    the source file used), ``provenance`` (list of str: where the data came from and what was done
    to it), plus format-specific entries (e.g. QCell ``free_atom_energy`` (eV), ``fhi_aims_settings``).
    The constructor validates everything (shapes, NaN/inf, elements, atoms closer than
    ``min_distance`` Å) unless ``validate=False``; ``source`` names the file in error messages.
    """

    def __init__(
        self,
        atomic_numbers: np.ndarray,
        positions: np.ndarray,
        offsets: np.ndarray,
        frame_data: Mapping[str, np.ndarray] | None = None,
        atom_data: Mapping[str, np.ndarray] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        validate: bool = True,
        source: str = "<dataset>",
        min_distance: float = 0.1,
    ):
        self.atomic_numbers = np.ascontiguousarray(atomic_numbers, dtype=np.int64)
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.frame_data: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in (frame_data or {}).items()}
        self.atom_data: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in (atom_data or {}).items()}
        meta = dict(metadata or {})
        meta.setdefault("name", "")
        meta.setdefault("theory", "")
        meta.setdefault("source_units", {})
        meta.setdefault("provenance", [])
        self.metadata: dict[str, Any] = meta
        if validate:
            from .validate import validate_dataset

            validate_dataset(self, source=source, min_distance=min_distance)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        atomic_numbers,
        positions,
        energy=None,
        forces=None,
        charge=None,
        multiplicity=None,
        dipole=None,
        hirshfeld_ratios=None,
        partial_charges=None,
        cell=None,
        pbc=None,
        *,
        name: str = "",
        theory: str = "",
        metadata: Mapping[str, Any] | None = None,
        frame_data: Mapping[str, Any] | None = None,
        atom_data: Mapping[str, Any] | None = None,
        validate: bool = True,
        source: str = "<arrays>",
        min_distance: float = 0.1,
    ) -> Dataset:
        """Build a dataset from per-frame arrays (internal units: Å, eV, eV/Å, e, e·Å).

        ``atomic_numbers``: (N,) shared by all frames, (F,N), or a list of F arrays (ragged);
        symbols ('C', 'H', …) are accepted. ``positions``: (F,N,3), (N,3) for one frame, or a list of
        (N_i,3). Per-atom labels (``forces``, ``hirshfeld_ratios``, ``partial_charges``) follow the
        layout of ``positions``. Per-frame labels: ``energy`` (F,) or (F,1), ``charge`` (F,) or
        scalar, ``multiplicity`` (F,) or scalar, ``dipole`` (F,3), ``cell`` (F,3,3) or (3,3),
        ``pbc`` (F,3), (3,) or bool. ``frame_data``/``atom_data`` add further named properties.
        """
        ragged = isinstance(positions, (list, tuple)) and not _is_regular(positions)
        if not ragged:
            pos = np.asarray(positions, dtype=np.float64)
            if pos.ndim == 2:
                pos = pos[None]
            if pos.ndim != 3 or pos.shape[-1] != 3:
                raise DataError(f"{source}: field 'positions': expected shape (F,N,3), got {pos.shape}")
            n_frames, n_at = pos.shape[:2]
            zs = np.asarray(atomic_numbers)
            if zs.ndim == 1:
                z = _element_numbers(zs, source, None)
                if z.shape[0] != n_at:
                    raise DataError(
                        f"{source}: field 'atomic_numbers': {z.shape[0]} atoms but positions have {n_at}"
                    )
                z = np.tile(z, n_frames)
            elif zs.ndim == 2:
                if zs.shape != (n_frames, n_at):
                    raise DataError(
                        f"{source}: field 'atomic_numbers': shape {zs.shape} does not match "
                        f"positions {pos.shape[:2]}"
                    )
                z = _element_numbers(zs, source, None).reshape(-1)
            else:
                raise DataError(f"{source}: field 'atomic_numbers': expected (N,) or (F,N), got {zs.shape}")
            counts = np.full(n_frames, n_at, dtype=np.int64)
            flat_pos = pos.reshape(-1, 3)

            def flat_atoms(x, name):
                a = np.asarray(x)
                if a.shape[:2] == (n_frames, n_at):
                    return a.reshape((n_frames * n_at,) + a.shape[2:])
                if n_frames == 1 and a.shape[:1] == (n_at,):
                    return a
                raise DataError(
                    f"{source}: field '{name}': shape {a.shape} does not match positions {pos.shape}"
                )
        else:
            pos_list = [np.asarray(p, dtype=np.float64) for p in positions]
            n_frames = len(pos_list)
            for i, p in enumerate(pos_list):
                if p.ndim != 2 or p.shape[1] != 3:
                    raise DataError(f"{source}: frame {i}, field 'positions': expected (N,3), got {p.shape}")
            counts = np.array([p.shape[0] for p in pos_list], dtype=np.int64)
            if (
                isinstance(atomic_numbers, (list, tuple))
                and len(atomic_numbers) == n_frames
                and all(np.ndim(a) == 1 for a in atomic_numbers)
            ):
                z_list = [_element_numbers(a, source, i) for i, a in enumerate(atomic_numbers)]
            else:
                raise DataError(
                    f"{source}: field 'atomic_numbers': ragged positions need one array per frame"
                )
            for i, (a, c) in enumerate(zip(z_list, counts, strict=True)):
                if a.shape[0] != c:
                    raise DataError(
                        f"{source}: frame {i}, field 'atomic_numbers': {a.shape[0]} atoms but "
                        f"positions have {c}"
                    )
            z = np.concatenate(z_list) if n_frames else np.zeros(0, np.int64)
            flat_pos = np.concatenate(pos_list) if n_frames else np.zeros((0, 3))

            def flat_atoms(x, name):
                parts = [np.asarray(v) for v in x]
                if len(parts) != n_frames:
                    raise DataError(
                        f"{source}: field '{name}': {len(parts)} frames, positions have {n_frames}"
                    )
                for i, (v, c) in enumerate(zip(parts, counts, strict=True)):
                    if v.shape[:1] != (c,):
                        raise DataError(
                            f"{source}: frame {i}, field '{name}': shape {v.shape} but the frame "
                            f"has {c} atoms"
                        )
                return np.concatenate(parts)

        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

        def per_frame(x, name, trailing):
            a = np.asarray(x)
            if name in ("charge", "multiplicity") and a.ndim == 0:
                a = np.full(n_frames, a.item())
            if name == "pbc" and a.ndim == 0:
                a = np.full((n_frames, 3), bool(a))
            if name in ("cell", "pbc") and a.shape == trailing:
                a = np.broadcast_to(a, (n_frames,) + trailing).copy()
            elif n_frames == 1 and a.shape == trailing:  # one frame given without the frame axis
                a = a[None]
            if name == "energy" and a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            if a.shape != (n_frames,) + trailing:
                raise DataError(
                    f"{source}: field '{name}': expected shape {(n_frames,) + trailing}, got {a.shape}"
                )
            return a

        fdata: dict[str, np.ndarray] = {}
        adata: dict[str, np.ndarray] = {}
        for key, val in (
            ("energy", energy),
            ("charge", charge),
            ("multiplicity", multiplicity),
            ("dipole", dipole),
            ("cell", cell),
            ("pbc", pbc),
        ):
            if val is not None:
                fdata[key] = per_frame(val, key, FRAME_FIELDS[key])
        for key, val in (frame_data or {}).items():
            a = np.asarray(val)
            if a.shape[:1] != (n_frames,):
                raise DataError(f"{source}: field '{key}': expected {n_frames} frames, got shape {a.shape}")
            fdata[key] = a
        for key, val in (
            ("forces", forces),
            ("hirshfeld_ratios", hirshfeld_ratios),
            ("partial_charges", partial_charges),
        ):
            if val is not None:
                adata[key] = flat_atoms(val, key)
        for key, val in (atom_data or {}).items():
            adata[key] = flat_atoms(val, key)
        meta = dict(metadata or {})
        if name:
            meta["name"] = name
        if theory:
            meta["theory"] = theory
        return cls(
            z,
            flat_pos,
            offsets,
            fdata,
            adata,
            meta,
            validate=validate,
            source=source,
            min_distance=min_distance,
        )

    @classmethod
    def concatenate(cls, datasets: Sequence[Dataset], metadata: Mapping[str, Any] | None = None) -> Dataset:
        """Frames of several datasets one after another (fields must agree; metadata of the first)."""
        if not datasets:
            raise DataError("concatenate: no datasets given")
        fkeys = set(datasets[0].frame_data)
        akeys = set(datasets[0].atom_data)
        for k, d in enumerate(datasets):
            if set(d.frame_data) != fkeys or set(d.atom_data) != akeys:
                raise DataError(
                    f"concatenate: dataset {k} has fields {sorted(d.frame_data) + sorted(d.atom_data)}, "
                    f"dataset 0 has {sorted(fkeys) + sorted(akeys)}"
                )
        counts = np.concatenate([np.diff(d.offsets) for d in datasets])
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return cls(
            np.concatenate([d.atomic_numbers for d in datasets]),
            np.concatenate([d.positions for d in datasets]),
            offsets,
            {k: np.concatenate([d.frame_data[k] for d in datasets]) for k in fkeys},
            {k: np.concatenate([d.atom_data[k] for d in datasets]) for k in akeys},
            dict(metadata if metadata is not None else datasets[0].metadata),
            validate=False,
        )

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def __repr__(self) -> str:
        fields = sorted(self.frame_data) + sorted(self.atom_data)
        return (
            f"Dataset(name={self.name!r}, frames={len(self)}, atoms/frame={self.n_atoms_range}, "
            f"fields={fields})"
        )

    @property
    def n_atoms(self) -> np.ndarray:
        """(F,) number of atoms of each frame."""
        return np.diff(self.offsets)

    @property
    def n_atoms_range(self) -> tuple[int, int]:
        n = self.n_atoms
        return (int(n.min()), int(n.max())) if n.size else (0, 0)

    @property
    def is_fixed_composition(self) -> bool:
        """True if every frame has the same atoms in the same order (MD17-like)."""
        n = self.n_atoms
        if n.size == 0:
            return True
        if not np.all(n == n[0]):
            return False
        z = self.atomic_numbers.reshape(len(self), int(n[0]))
        return bool(np.all(z == z[0]))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def theory(self) -> str:
        return str(self.metadata.get("theory", ""))

    def _frame_field(self, key: str) -> np.ndarray | None:
        return self.frame_data.get(key)

    def _atom_field(self, key: str) -> np.ndarray | None:
        return self.atom_data.get(key)

    # the named fields of the data API; None when the dataset has no such label
    energy = property(lambda self: self._frame_field("energy"), doc="(F,) energies in eV or None")
    charge = property(lambda self: self._frame_field("charge"), doc="(F,) total charge in e or None")
    multiplicity = property(lambda self: self._frame_field("multiplicity"), doc="(F,) 2S+1 or None")
    dipole = property(lambda self: self._frame_field("dipole"), doc="(F,3) dipole in e·Å or None")
    cell = property(lambda self: self._frame_field("cell"), doc="(F,3,3) cell in Å (rows) or None")
    pbc = property(lambda self: self._frame_field("pbc"), doc="(F,3) periodicity flags or None")
    forces = property(lambda self: self._atom_field("forces"), doc="(A,3) forces in eV/Å or None")
    hirshfeld_ratios = property(lambda self: self._atom_field("hirshfeld_ratios"), doc="(A,) or None")
    partial_charges = property(lambda self: self._atom_field("partial_charges"), doc="(A,) in e or None")

    @property
    def fields(self) -> list[str]:
        """Names of all labels present (per-frame then per-atom)."""
        return list(self.frame_data) + list(self.atom_data)

    def atoms_slice(self, i: int) -> slice:
        """Slice into the concatenated per-atom arrays for frame ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for a dataset of {n} frames")
        i = i % n
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def frame(self, i: int) -> dict[str, Any]:
        """Frame ``i`` as a dict: ``atomic_numbers`` (N,), ``positions`` (N,3) Å and every label
        present (``energy`` eV, ``forces`` (N,3) eV/Å, ``charge`` e, ``dipole`` e·Å, ``cell`` Å, …)."""
        s = self.atoms_slice(i)
        out: dict[str, Any] = {"atomic_numbers": self.atomic_numbers[s], "positions": self.positions[s]}
        for k, v in self.frame_data.items():
            out[k] = v[i]
        for k, v in self.atom_data.items():
            out[k] = v[s]
        return out

    def __iter__(self):
        for i in range(len(self)):
            yield self.frame(i)

    def stacked(self, name: str) -> np.ndarray:
        """(F, N, ...) array of a per-atom field (``positions``, ``atomic_numbers``, ``forces``, …) or
        (F, ...) of a per-frame field. Per-atom fields need equal atom counts in every frame."""
        if name in self.frame_data:
            return self.frame_data[name]
        if name == "positions":
            arr = self.positions
        elif name == "atomic_numbers":
            arr = self.atomic_numbers
        elif name in self.atom_data:
            arr = self.atom_data[name]
        else:
            raise DataError(f"dataset {self.name!r} has no field {name!r}; fields: {self.fields}")
        n = self.n_atoms
        if n.size and not np.all(n == n[0]):
            raise DataError(
                f"dataset {self.name!r}: cannot stack {name!r}: frames have {n.min()}..{n.max()} atoms"
            )
        n0 = int(n[0]) if n.size else 0
        return arr.reshape((len(self), n0) + arr.shape[1:])

    def to_atoms(self, i: int):
        """Frame ``i`` as an ``ase.Atoms``. Labels are attached as plain ``info``/``arrays`` entries
        (``energy`` eV, ``forces`` eV/Å, ``charge``, ``multiplicity``, ``dipole`` e·Å, …), never as a
        calculator, so nothing can mistake them for model results."""
        from ase import Atoms

        f = self.frame(i)
        cell = f.get("cell")
        pbc = f.get("pbc")
        atoms = Atoms(
            numbers=f["atomic_numbers"],
            positions=f["positions"],
            cell=cell if cell is not None else None,
            pbc=pbc if pbc is not None else False,
        )
        s = self.atoms_slice(i)
        for k, v in self.frame_data.items():
            if k in ("cell", "pbc"):
                continue
            val = v[i]
            atoms.info[k] = val.item() if np.ndim(val) == 0 else np.array(val)
        for k, v in self.atom_data.items():
            atoms.arrays[k] = np.array(v[s])
        return atoms

    # ------------------------------------------------------------------ derived datasets
    def subset(self, indices: Iterable[int] | np.ndarray | slice) -> Dataset:
        """New dataset with the frames ``indices`` (in that order); provenance records the selection."""
        if isinstance(indices, slice):
            idx = np.arange(len(self))[indices]
        else:
            idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
            if idx.dtype == bool:
                idx = np.nonzero(idx)[0]
            idx = idx.astype(np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise DataError(f"subset: index out of range for a dataset of {n} frames")
        idx = idx % n if n else idx
        counts = self.n_atoms[idx]
        atom_idx = _ragged_gather(self.offsets, idx, counts)
        meta = dict(self.metadata)
        note = f"subset of {n} frames ({idx.size} selected)"
        meta["provenance"] = list(meta.get("provenance", [])) + [note]
        return Dataset(
            self.atomic_numbers[atom_idx],
            self.positions[atom_idx],
            np.concatenate([[0], np.cumsum(counts)]),
            {k: v[idx] for k, v in self.frame_data.items()},
            {k: v[atom_idx] for k, v in self.atom_data.items()},
            meta,
            validate=False,
        )

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.frame(int(key))
        return self.subset(key)

    # ------------------------------------------------------------------ identity
    def content_hash(self) -> str:
        """SHA-256 (hex) of the structures and labels (not of metadata or the file format).

        Arrays are hashed in a canonical form (int64 / float64 / bool, little-endian, C order) with
        their names and shapes, so the same data gives the same hash whatever file it came from.
        """
        h = hashlib.sha256()

        def add(name: str, arr: np.ndarray) -> None:
            a = np.asarray(arr)
            if a.dtype.kind in "iu":
                a = a.astype("<i8")
            elif a.dtype.kind == "f":
                a = a.astype("<f8")
            elif a.dtype.kind == "b":
                a = a.astype("|b1")
            else:
                a = np.char.encode(a.astype(str), "utf-8")
            h.update(name.encode())
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())

        add("offsets", self.offsets)
        add("atomic_numbers", self.atomic_numbers)
        add("positions", self.positions)
        for k in sorted(self.frame_data):
            add("frame:" + k, self.frame_data[k])
        for k in sorted(self.atom_data):
            add("atom:" + k, self.atom_data[k])
        return h.hexdigest()

    def equals(self, other: Dataset, rtol: float = 0.0, atol: float = 0.0) -> bool:
        """True if both datasets have the same frames, atoms and labels (within tolerances)."""
        if not isinstance(other, Dataset) or len(self) != len(other):
            return False
        if not np.array_equal(self.offsets, other.offsets) or not np.array_equal(
            self.atomic_numbers, other.atomic_numbers
        ):
            return False
        if set(self.frame_data) != set(other.frame_data) or set(self.atom_data) != set(other.atom_data):
            return False
        pairs = [(self.positions, other.positions)]
        pairs += [(self.frame_data[k], other.frame_data[k]) for k in self.frame_data]
        pairs += [(self.atom_data[k], other.atom_data[k]) for k in self.atom_data]
        for a, b in pairs:
            if a.shape != b.shape:
                return False
            if a.dtype.kind in "fc":
                if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=False):
                    return False
            elif not np.array_equal(a, b):
                return False
        return True


def _is_regular(seq) -> bool:
    """True if a list of arrays has equal shapes (can be stacked without padding)."""
    shapes = {np.shape(x) for x in seq}
    return len(shapes) <= 1


def _ragged_gather(offsets: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated atom indices of frames ``idx`` (vectorised: no Python loop over frames)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = offsets[idx]
    # position within each frame: arange(total) minus the start of its block in the output
    out_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    block = np.repeat(np.arange(idx.size), counts)
    return starts[block] + (np.arange(total) - out_starts[block])
