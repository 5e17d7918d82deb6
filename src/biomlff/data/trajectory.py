"""Trajectory writers: extended XYZ and HDF5 in the H5MD layout.

Both append one frame at a time and flush after every frame, so a run that is killed leaves a
readable file holding every frame written so far; both can be truncated back to the last
checkpoint (``truncate_to_step``) before a resumed run appends to them. This is the one trajectory
writing stack of biomlff: :func:`biomlff.analysis.write_h5md` writes through :class:`H5MDWriter`,
and :func:`biomlff.analysis.read_trajectory` reads both formats back.

Frame contents: positions (Å, unwrapped: atoms are not folded back into the cell, so diffusion
can be measured directly), velocities (Å/fs in extxyz, Å/ps in H5MD as the unit attribute says),
cell (Å, rows), step, time (ps) and scalar observables (eV, K, eV/Å³, Å³); optionally forces and
per-atom / per-structure model outputs.

H5MD layout (https://www.nongnu.org/h5md/h5md.html, as read by MDAnalysis' H5MDReader)::

    /h5md                      attrs version=[1, 1]; /h5md/author, /h5md/creator (name, version)
    /particles/all/species     (N,) atomic numbers
    /particles/all/position    value (F, N, 3) [Angstrom], step (F,), time (F,) [ps]
    /particles/all/velocity    value (F, N, 3) [Angstrom ps-1], step, time
    /particles/all/force       value (F, N, 3) [eV Angstrom-1], step, time       (on request)
    /particles/all/box         attrs dimension=3, boundary=periodic|none;
                               edges/value (F, 3, 3) [Angstrom], step, time     (periodic only)
    /observables/<name>        value (F, ...), step, time
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, units
from ..errors import DataError

#: ps per fs (time is written in ps)
PS_PER_FS = units.ps_per_fs


def trajectory_format(path) -> str:
    """'h5md' for .h5/.hdf5/.h5md, otherwise 'extxyz'."""
    return "h5md" if Path(path).suffix.lower() in (".h5", ".hdf5", ".h5md") else "extxyz"


def open_trajectory(
    path, atomic_numbers, periodic: bool, append: bool = False, truncate_step: int | None = None
):
    """Open a trajectory writer for ``path`` (format from the extension)."""
    cls = H5MDWriter if trajectory_format(path) == "h5md" else ExtXYZWriter
    return cls(path, atomic_numbers, periodic, append=append, truncate_step=truncate_step)


@dataclass
class Frame:
    """One frame as the writers receive it: step, time (ps, or None when unknown), positions (N, 3) Å,
    velocities (N, 3) Å/fs or None, cell (3, 3) Å or None, scalar observables, forces (N, 3) eV/Å
    or None, per-atom and per-structure model outputs."""

    step: int
    time_ps: float | None
    positions: np.ndarray
    velocities: np.ndarray | None
    cell: np.ndarray | None
    scalars: dict
    forces: np.ndarray | None = None
    per_atom: dict = field(default_factory=dict)
    per_structure: dict = field(default_factory=dict)


class TrajectoryWriter:
    """What both writers share: the system (atomic numbers, periodicity), opening for a fresh file or
    for appending after a truncation to ``truncate_step``, and :meth:`write` of one frame."""

    def __init__(
        self, path, atomic_numbers, periodic: bool, append: bool = False, truncate_step: int | None = None
    ):
        self.path = Path(path)
        self.numbers = np.asarray(atomic_numbers)
        self.n = len(self.numbers)
        self.periodic = periodic
        self._open(append and self.path.exists(), truncate_step)

    def write(
        self,
        step: int,
        time_fs: float | None,
        positions,
        velocities_A_fs,
        cell,
        scalars: dict,
        forces=None,
        per_atom: dict | None = None,
        per_structure: dict | None = None,
    ):
        """Append one frame (positions Å, time fs, velocities Å/fs, cell Å, forces eV/Å) and flush."""
        self._write(
            Frame(
                int(step),
                None if time_fs is None else float(time_fs) * PS_PER_FS,
                np.asarray(positions, float),
                None if velocities_A_fs is None else np.asarray(velocities_A_fs, float),
                None if cell is None else np.asarray(cell, float),
                scalars,
                None if forces is None else np.asarray(forces, float),
                per_atom or {},
                per_structure or {},
            )
        )


class ExtXYZWriter(TrajectoryWriter):
    """Appends frames to an extended-XYZ file (written with ASE, flushed per frame)."""

    def _open(self, append: bool, truncate_step):
        if append and truncate_step is not None:
            self.truncate_to_step(truncate_step)
        self.fh = open(self.path, "a" if append else "w")

    def truncate_to_step(self, step: int) -> int:
        """Drop frames written after ``step`` (used on resume); returns the frames kept."""
        keep_bytes = 0
        kept = 0
        with open(self.path, "rb") as fh:
            while True:
                header = fh.readline()
                if not header:
                    break
                try:
                    nat = int(header.split()[0])
                except (ValueError, IndexError):
                    break  # a partially written frame: drop it and everything after
                comment = fh.readline()
                lines = [fh.readline() for _ in range(nat)]
                if nat != self.n or not lines or not lines[-1].endswith(b"\n"):
                    break
                fstep = _extxyz_step(comment)
                if fstep is None or fstep > step:
                    break
                keep_bytes = fh.tell()
                kept += 1
        with open(self.path, "r+b") as fh:
            fh.truncate(keep_bytes)
        return kept

    def _write(self, fr: Frame):
        from ase import Atoms
        from ase.io import write

        atoms = Atoms(numbers=self.numbers, positions=fr.positions, cell=fr.cell, pbc=self.periodic)
        if fr.velocities is not None:
            atoms.arrays["velocities"] = fr.velocities
        if fr.forces is not None:
            atoms.arrays["forces_md"] = fr.forces
        for k, v in fr.per_atom.items():
            atoms.arrays[k] = np.asarray(v)
        atoms.info["step"] = fr.step
        if fr.time_ps is not None:
            atoms.info["time_ps"] = fr.time_ps
        for k, v in fr.scalars.items():
            atoms.info[k] = float(v)
        for k, v in fr.per_structure.items():
            atoms.info[k] = np.asarray(v)
        write(self.fh, atoms, format="extxyz")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        if not self.fh.closed:
            self.fh.close()


def _extxyz_step(comment: bytes) -> int | None:
    text = comment.decode(errors="replace")
    for tok in text.split():
        if tok.startswith("step="):
            try:
                return int(tok.split("=", 1)[1])
            except ValueError:
                return None
    return None


class H5MDWriter(TrajectoryWriter):
    """Appends frames to an H5MD file (h5py), flushed after every frame."""

    def _open(self, append: bool, truncate_step):
        import h5py

        from ..fileio import h5_file

        if not append:
            self.f = h5py.File(self.path, "w")
            self._create()
            return
        self.f = h5_file(self.path, "H5MD trajectory (to append to)", "a")
        if "particles/all/position" not in self.f:
            raise DataError(f"{self.path} is not an H5MD trajectory written by biomlff")
        sp = self.f["particles/all/species"][()]
        if len(sp) != self.n or np.any(sp != self.numbers):
            raise DataError(f"trajectory {self.path} holds a different system; refusing to append")
        if truncate_step is not None:
            self.truncate_to_step(truncate_step)

    def _create(self):
        f = self.f
        h = f.create_group("h5md")
        h.attrs["version"] = np.array([1, 1], dtype=np.int32)
        h.create_group("author").attrs["name"] = "biomlff user"
        c = h.create_group("creator")
        c.attrs["name"] = "biomlff"
        c.attrs["version"] = __version__
        part = f.create_group("particles/all")
        part.create_dataset("species", data=self.numbers.astype(np.int32))
        box = part.create_group("box")
        box.attrs["dimension"] = np.int32(3)
        bnd = "periodic" if self.periodic else "none"
        box.attrs["boundary"] = np.array([bnd.encode()] * 3, dtype="S8")
        f.create_group("observables")

    def _element(self, group_path: str, shape: tuple, dtype, unit: str | None, timed: bool):
        if group_path in self.f:
            return self.f[group_path]
        g = self.f.create_group(group_path)
        v = g.create_dataset(
            "value",
            shape=(0,) + shape,
            maxshape=(None,) + shape,
            dtype=dtype,
            chunks=(1,) + shape if shape else (256,),
        )
        if unit:
            v.attrs["unit"] = unit
        g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
        if timed:
            t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,))
            t.attrs["unit"] = "ps"
        return g

    def _append(self, group_path, value, step, time_ps, unit=None):
        value = np.asarray(value)
        g = self._element(group_path, value.shape, value.dtype, unit, time_ps is not None)
        k = g["value"].shape[0]
        for name, val in (("value", value), ("step", step), ("time", time_ps)):
            if name in g:
                ds = g[name]
                ds.resize((k + 1,) + ds.shape[1:])
                ds[k] = val

    def _write(self, fr: Frame):
        t = fr.time_ps
        self._append("particles/all/position", fr.positions, fr.step, t, "Angstrom")
        if fr.velocities is not None:
            self._append("particles/all/velocity", fr.velocities / PS_PER_FS, fr.step, t, "Angstrom ps-1")
        if fr.forces is not None:
            self._append("particles/all/force", fr.forces, fr.step, t, "eV Angstrom-1")
        if self.periodic and fr.cell is not None:
            self._append("particles/all/box/edges", fr.cell, fr.step, t, "Angstrom")
        for k, v in fr.scalars.items():
            self._append(f"observables/{k}", np.float64(v), fr.step, t, None)
        for k, v in {**fr.per_atom, **fr.per_structure}.items():
            self._append(f"observables/{k}", np.asarray(v), fr.step, t, None)
        self.f.flush()

    def truncate_to_step(self, step: int) -> int:
        """Drop frames written after ``step`` in every time-dependent element; returns frames kept."""
        kept = 0

        def visit(name, obj):
            nonlocal kept
            import h5py

            if isinstance(obj, h5py.Group) and "step" in obj and "value" in obj:
                steps = obj["step"][()]
                k = int(np.searchsorted(steps, step, side="right"))
                for ds in ("value", "step", "time"):
                    if ds in obj:
                        d = obj[ds]
                        d.resize((k,) + d.shape[1:])
                if name == "particles/all/position":
                    kept = k

        self.f.visititems(visit)
        self.f.flush()
        return kept

    def close(self):
        try:
            self.f.close()
        except Exception:  # noqa: BLE001 - closing an already closed file
            pass
