"""Training data for (s)GDML: one molecule (fixed atom order), positions Å, energies eV, forces eV/Å.

Reads through :mod:`biomlff.data` (any supported format) and checks what a global model needs: the
same atoms in the same order in every frame, forces present, finite labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import DataError


@dataclass
class Frames:
    """Fixed-composition frames: z (N,), R (F, N, 3) Å, F (F, N, 3) eV/Å, E (F,) eV or None, and
    one periodic ``cell`` (3, 3) Å with rows = lattice vectors (as everywhere in biomlff) or None."""

    z: np.ndarray
    R: np.ndarray
    F: np.ndarray | None
    E: np.ndarray | None = None
    cell: np.ndarray | None = None  # (3, 3) rows = lattice vectors (ASE convention), Å
    name: str = "dataset"
    theory: str = "unknown"
    source: str = "<arrays>"
    dataset_hash: str | None = None  # biomlff.data content hash of the file it came from

    def __len__(self) -> int:
        return self.R.shape[0]

    def content_hash(self) -> str:
        """Content hash: the :class:`biomlff.data.Dataset` hash when read from a dataset, otherwise
        SHA-256 over z, R, E, F — provenance of a training set."""
        if self.dataset_hash:
            return self.dataset_hash
        h = hashlib.sha256()
        for arr in (self.z.astype(np.int64), self.R, self.E, self.F):
            if arr is not None:
                h.update(np.ascontiguousarray(arr, dtype=arr.dtype).tobytes())
        return h.hexdigest()

    def sgdml_lattice(self) -> np.ndarray | None:
        """The cell in sGDML's convention, lattice vectors as columns (3, 3) Å, or None."""
        return None if self.cell is None else self.cell.T

    def subset(self, idx) -> Frames:
        idx = np.asarray(idx)
        return Frames(
            self.z,
            self.R[idx],
            None if self.F is None else self.F[idx],
            None if self.E is None else self.E[idx],
            self.cell,
            self.name,
            self.theory,
            self.source,
        )


def from_dataset(ds, source: str = "<dataset>") -> Frames:
    """Convert a :class:`biomlff.data.Dataset` (one molecule, fixed atom order) into :class:`Frames`."""
    if len(ds) == 0:
        raise DataError(f"{source}: the dataset is empty")
    if not ds.is_fixed_composition:
        raise DataError(
            f"{source}: a GDML model needs one molecule with the same atoms in the same "
            "order in every frame; this dataset mixes molecules (different atom counts or order)"
        )
    z = np.asarray(ds.frame(0)["atomic_numbers"]).astype(np.int64)
    R = np.asarray(ds.stacked("positions"), dtype=np.float64)
    F = ds.forces
    F = None if F is None else np.asarray(F, dtype=np.float64).reshape(R.shape)
    E = ds.energy
    cell = None
    if ds.cell is not None and ds.pbc is not None and np.all(ds.pbc):
        cells = np.asarray(ds.cell, dtype=np.float64)
        if not np.allclose(cells, cells[0]):
            raise DataError(f"{source}: a GDML model supports one fixed periodic cell for all frames")
        cell = cells[0]
    return Frames(
        z=z,
        R=R,
        F=F,
        E=None if E is None else np.asarray(E, dtype=np.float64).reshape(-1),
        cell=cell,
        name=ds.name or "dataset",
        theory=ds.theory or "unknown",
        source=source,
        dataset_hash=ds.content_hash(),
    )


def load_frames(path, **read_kwargs) -> Frames:
    """Read a dataset file with :func:`biomlff.data.read_dataset` (units converted to eV, Å;
    ``read_kwargs`` such as ``energy_key='energies'`` for rMD17 or ``energy_unit`` are passed on)."""
    from ..data import read_dataset

    read_kwargs = {k: v for k, v in read_kwargs.items() if v is not None}
    return from_dataset(read_dataset(path, **read_kwargs), source=str(path))


def check_frames(frames: Frames, use_E: bool = True) -> None:
    """Raise DataError for what a GDML training set must not contain (missing/NaN labels)."""
    src = frames.source
    if frames.F is None:
        raise DataError(f"{src}: the dataset has no forces; GDML is trained on forces")
    if frames.F.shape != frames.R.shape:
        raise DataError(f"{src}: forces have shape {frames.F.shape}, positions {frames.R.shape}")
    for name, arr in (("positions", frames.R), ("forces", frames.F)):
        bad = ~np.all(np.isfinite(arr.reshape(len(arr), -1)), axis=1)
        if bad.any():
            raise DataError(
                f"{src}: {name} contain NaN or inf in frame(s) {np.nonzero(bad)[0][:10].tolist()}"
            )
    if use_E and frames.E is not None:
        bad = ~np.isfinite(frames.E)
        if bad.any():
            raise DataError(
                f"{src}: energies contain NaN or inf in frame(s) {np.nonzero(bad)[0][:10].tolist()}"
            )
    for s in range(0, len(frames.R), 1000):
        chunk = frames.R[s : s + 1000]
        diff = chunk[:, :, None, :] - chunk[:, None, :, :]
        r = np.sqrt(np.sum(diff * diff, axis=-1)) + np.eye(chunk.shape[1])
        if np.any(r < 1e-6):
            f = s + int(np.nonzero(np.any(r < 1e-6, axis=(1, 2)))[0][0])
            raise DataError(f"{src}: frame {f} has two atoms at the same position")
