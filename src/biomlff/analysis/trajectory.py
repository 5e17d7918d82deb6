"""Trajectories as plain NumPy arrays, thin readers, and atom selections.

A :class:`Trajectory` holds positions (T, N, 3) in Å, atomic numbers (N,), times (T,) in fs (or
``None`` when the file carries no time), cells (T, 3, 3) in Å (rows = lattice vectors, ASE
convention) or ``None`` for free space, and velocities (T, N, 3) in Å/fs or ``None``.

Readers:

* H5MD (``.h5``, ``.hdf5``, ``.h5md``), the layout :mod:`biomlff.md` writes —
  ``/particles/all/{position,velocity}/value`` (T, N, 3), ``.../time``, ``.../step``,
  ``/particles/all/box/edges[/value]`` and ``/particles/all/species`` (atomic numbers) — read with
  h5py directly (MDAnalysis' H5MD reader needs a topology and ``pyh5md`` for writing; reading the
  few datasets is simpler and keeps unit attributes under our control).
* extended XYZ and everything else ASE reads (``ase.io.read``; velocities from momenta).
* with ``topology=`` (PDB, PSF, GRO, ...) or for formats ASE does not know (XTC, DCD, TRR, ...):
  MDAnalysis (optional extra ``biomlff[analysis]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from .. import units
from ..errors import ConfigError, DataError, MissingDependencyError
from ..fileio import atomic_path, open_h5

H5MD_SUFFIXES = (".h5", ".hdf5", ".h5md")
ASE_FIRST_SUFFIXES = (".xyz", ".extxyz", ".traj", ".pdb", ".cif", ".vasp", ".xsf")

# unit tables of biomlff.units (ASE CODATA), one place for every conversion
_LENGTH_TO_A = units.to_angstrom
_TIME_TO_FS = units.to_fs


@dataclass
class Trajectory:
    """A trajectory in biomlff units (positions Å, time fs, velocities Å/fs, cell Å).

    positions: (T, N, 3) Å. numbers: (N,) atomic numbers. times: (T,) fs or None.
    cell: (T, 3, 3) Å or None (free space). velocities: (T, N, 3) Å/fs or None.
    source: file name (for messages). topology: optional path of a topology file (PDB, ...)
    that MDTraj/MDAnalysis can read, used for secondary structure.
    """

    positions: np.ndarray
    numbers: np.ndarray
    times: np.ndarray | None = None
    cell: np.ndarray | None = None
    velocities: np.ndarray | None = None
    source: str = "<arrays>"
    topology: str | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=float)
        if self.positions.ndim == 2:
            self.positions = self.positions[None]
        if self.positions.ndim != 3 or self.positions.shape[-1] != 3:
            raise DataError(f"{self.source}: positions must have shape (T, N, 3), got {self.positions.shape}")
        self.numbers = np.asarray(self.numbers, dtype=int)
        if self.numbers.shape != (self.positions.shape[1],):
            raise DataError(
                f"{self.source}: {self.numbers.shape} atomic numbers for {self.positions.shape[1]} atoms"
            )
        t = self.n_frames
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=float).reshape(-1)
            if self.times.shape != (t,):
                raise DataError(f"{self.source}: {self.times.shape[0]} times for {t} frames")
        if self.cell is not None:
            c = np.asarray(self.cell, dtype=float)
            if c.shape == (3,):
                c = np.diag(c)
            if c.shape == (3, 3):
                c = np.broadcast_to(c, (t, 3, 3)).copy()
            if c.shape == (t, 3):
                c = np.einsum("ti,ij->tij", c, np.eye(3))
            if c.shape != (t, 3, 3):
                raise DataError(
                    f"{self.source}: cell must be (3,), (3, 3), (T, 3) or (T, 3, 3), got {c.shape}"
                )
            if np.all(np.abs(np.linalg.det(c)) < 1e-12):
                c = None  # a zero cell means free space (ASE writes one for molecules)
            self.cell = c
        if self.velocities is not None:
            self.velocities = np.asarray(self.velocities, dtype=float)
            if self.velocities.shape != self.positions.shape:
                raise DataError(
                    f"{self.source}: velocities {self.velocities.shape} do not match positions "
                    f"{self.positions.shape}"
                )

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[1])

    @property
    def masses(self) -> np.ndarray:
        """(N,) atomic masses in amu (ASE's table)."""
        from ase.data import atomic_masses

        return np.asarray(atomic_masses[self.numbers], dtype=float)

    @property
    def symbols(self) -> list[str]:
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    def timestep(self) -> float:
        """Spacing of frames in fs (the times must be uniform). Raises DataError if unknown."""
        if self.times is None:
            raise DataError(
                f"{self.source}: the trajectory carries no time information; give the time between "
                "frames (--timestep FS / timestep=...)"
            )
        if self.n_frames < 2:
            raise DataError(f"{self.source}: a time step needs at least 2 frames, got {self.n_frames}")
        dt = np.diff(self.times)
        if np.any(dt <= 0) or np.ptp(dt) > 1e-6 * max(abs(dt.mean()), 1e-12) + 1e-9:
            raise DataError(
                f"{self.source}: frames are not evenly spaced in time (spacing {dt.min()}–{dt.max()} fs)"
            )
        return float(dt.mean())

    def with_timestep(self, dt_fs: float | None) -> Trajectory:
        """Copy with times = frame index × dt (fs); ``None`` keeps the file's times."""
        if dt_fs is None:
            return self
        if dt_fs <= 0:
            raise ConfigError(f"timestep must be positive, got {dt_fs} fs")
        return replace(self, times=np.arange(self.n_frames) * float(dt_fs))

    def slice(self, start=None, stop=None, step=None) -> Trajectory:
        """Frames ``[start:stop:step]``."""
        s = slice(start, stop, step)
        out = replace(
            self,
            positions=self.positions[s],
            times=None if self.times is None else self.times[s],
            cell=None if self.cell is None else self.cell[s],
            velocities=None if self.velocities is None else self.velocities[s],
        )
        if out.n_frames == 0:
            raise DataError(f"{self.source}: no frames left in [{start}:{stop}:{step}] of {self.n_frames}")
        return out

    def require_cell(self, what: str) -> np.ndarray:
        """(T, 3, 3) cell or a DataError that says ``what`` needs one."""
        return self._require(
            "cell", what, "a periodic cell", "(free space); use the gas-phase variant or give --cell"
        )

    def require_velocities(self, what: str) -> np.ndarray:
        """(T, N, 3) velocities (Å/fs) or a DataError that says ``what`` needs them."""
        hint = "(write velocities/momenta in the MD run, or use --from-positions)"
        return self._require("velocities", what, "velocities", hint)

    def _require(self, attr: str, what: str, noun: str, hint: str):
        value = getattr(self, attr)
        if value is None:
            raise DataError(f"{self.source}: {what} needs {noun} but the trajectory has none {hint}")
        return value


# --------------------------------------------------------------------------- readers


def read_trajectory(path, index=":", topology=None, timestep_fs: float | None = None) -> Trajectory:
    """Read a trajectory file into a :class:`Trajectory` (positions Å, times fs, cell Å, v Å/fs).

    path: H5MD (.h5/.hdf5/.h5md), extended XYZ or anything ASE reads; with ``topology`` (or for
    formats ASE does not read, e.g. XTC/DCD/TRR) MDAnalysis is used. index: ASE-style frame
    selection string (``":"``, ``"100:"``, ``"::10"``). timestep_fs: overrides the file's times
    (time between stored frames in fs).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"trajectory not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if topology is not None or suffix in (".xtc", ".dcd", ".trr", ".nc", ".ncdf", ".dump", ".lammpstrj"):
        traj = _read_mdanalysis(path, topology)
        traj = _apply_index(traj, index)
    elif suffix in H5MD_SUFFIXES:
        traj = _apply_index(read_h5md(path), index)
    else:
        traj = _read_ase(path, index)
    if suffix == ".pdb" and topology is None:
        traj.topology = path
    return traj.with_timestep(timestep_fs)


def _apply_index(traj: Trajectory, index) -> Trajectory:
    if index in (None, ":"):
        return traj
    parts = str(index).split(":")
    if len(parts) == 1:
        i = int(parts[0])
        i = i % traj.n_frames
        return traj.slice(i, i + 1)
    vals = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
    return traj.slice(*vals[:3])


def _read_ase(path: str, index) -> Trajectory:
    import ase.io
    from ase import units as ase_units

    try:
        frames = ase.io.read(path, index=index if index is not None else ":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DataError(f"{path}: cannot read with ASE ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise DataError(f"{path}: no frames")
    numbers = frames[0].numbers
    for k, a in enumerate(frames):
        if len(a) != len(numbers) or np.any(a.numbers != numbers):
            raise DataError(f"{path}: frame {k} has a different composition than frame 0")
    pos = np.stack([a.positions for a in frames])
    cell = None
    if any(a.pbc.any() for a in frames):
        cell = np.stack([np.asarray(a.cell.array) for a in frames])
    vel = None
    if all(("momenta" in a.arrays) or ("velocities" in a.arrays) for a in frames):
        vs = []
        for a in frames:
            if "momenta" in a.arrays:  # ASE units Å/(ASE time) -> Å/fs
                vs.append(a.get_velocities() * ase_units.fs)
            else:  # a plain 'velocities' column: by biomlff convention in Å/fs
                vs.append(np.asarray(a.arrays["velocities"], dtype=float))
        vel = np.stack(vs)
    obs = {}
    for key, val in frames[0].info.items():  # per-frame scalars (energies eV, temperature K, ...)
        if key in ("step", "time", "time_ps", "timestep") or not np.isscalar(val):
            continue
        if isinstance(val, (bool, str, np.bool_)) or not all(key in a.info for a in frames):
            continue
        try:
            obs[key] = np.array([float(a.info[key]) for a in frames])
        except (TypeError, ValueError):
            continue
    if all(a.calc is not None for a in frames):
        try:
            obs.setdefault("energy", np.array([a.get_potential_energy() for a in frames]))
        except Exception:  # noqa: BLE001 - a stored calculator without energy is fine
            pass
    times = None
    if all("time_ps" in a.info for a in frames):  # biomlff.md writes time_ps
        times = np.array([float(a.info["time_ps"]) for a in frames]) * units.ps
    elif all("time" in a.info for a in frames):  # 'time' in fs
        times = np.array([float(a.info["time"]) for a in frames])
    elif "timestep" in frames[0].info and len(frames) > 0:
        # some writers store the spacing of frames in fs ('timestep=2.0')
        times = np.arange(len(frames)) * float(frames[0].info["timestep"])
    return Trajectory(
        pos, numbers, times=times, cell=cell, velocities=vel, source=path, info={"observables": obs}
    )


def _h5_unit_factor(ds, table, default: float, what: str, path: str) -> float:
    unit = ds.attrs.get("unit", None)
    if unit is None:
        return default
    if isinstance(unit, bytes):
        unit = unit.decode()
    if not isinstance(unit, str):
        unit = str(np.asarray(unit).reshape(-1)[0])
    u = unit.strip().lower().replace("angstroms", "angstrom")
    if u in table:
        return table[u]
    if what == "velocity":  # 'Å/fs', 'nm/ps' or the H5MD/UDUNITS style 'Angstrom ps-1'
        if "/" in u:
            num, den = (x.strip() for x in u.split("/", 1))
        else:
            parts = u.split()
            num, den = (parts[0], parts[1][:-2]) if len(parts) == 2 and parts[1].endswith("-1") else ("", "")
        if num in _LENGTH_TO_A and den in _TIME_TO_FS:
            return _LENGTH_TO_A[num] / _TIME_TO_FS[den]
    raise DataError(f"{path}: unknown {what} unit {unit!r} in {ds.name}")


def _h5_times(group, n: int, path: str):
    """Times (fs) of an H5MD time-dependent group, or None."""
    if "time" not in group:
        return None
    t = group["time"]
    f = _h5_unit_factor(t, _TIME_TO_FS, 1.0, "time", path)
    if t.shape == ():  # fixed interval: time = step * dt
        dt = float(t[()]) * f
        if "step" in group and group["step"].shape != ():
            steps = np.asarray(group["step"][()], dtype=float)
            step0 = float(group["step"].attrs.get("step", 1)) if "step" in group["step"].attrs else 1.0
            return steps / step0 * dt if step0 else steps * dt
        return np.arange(n) * dt
    return np.asarray(t[()], dtype=float).reshape(-1)[:n] * f


def read_h5md(path) -> Trajectory:
    """Read an H5MD file (positions Å, velocities Å/fs, box Å, times fs; ``unit`` attributes honoured)."""
    import h5py

    path = os.fspath(path)
    with open_h5(path, "H5MD trajectory") as h5:
        if "particles" not in h5:
            raise DataError(f"{path}: no /particles group (not H5MD)")
        parts = h5["particles"]
        name = "all" if "all" in parts else next(iter(parts.keys()), None)
        if name is None:
            raise DataError(f"{path}: /particles is empty")
        g = parts[name]
        if "position" not in g:
            raise DataError(f"{path}: /particles/{name}/position missing")
        pg = g["position"]
        pval = pg["value"] if isinstance(pg, h5py.Group) else pg
        pos = np.asarray(pval[()], dtype=float) * _h5_unit_factor(pval, _LENGTH_TO_A, 1.0, "length", path)
        if pos.ndim == 2:
            pos = pos[None]
        n_t = pos.shape[0]
        times = _h5_times(pg, n_t, path) if isinstance(pg, h5py.Group) else None
        numbers = None
        for key in ("species", "atomic_numbers", "numbers"):
            if key in g:
                sp = g[key]
                sp = sp["value"] if isinstance(sp, h5py.Group) else sp
                arr = np.asarray(sp[()])
                numbers = arr[0] if arr.ndim == 2 else arr
                break
        if numbers is None:
            raise DataError(f"{path}: /particles/{name}/species (atomic numbers) missing")
        vel = None
        if "velocity" in g:
            vg = g["velocity"]
            vval = vg["value"] if isinstance(vg, h5py.Group) else vg
            vel = np.asarray(vval[()], dtype=float) * _h5_unit_factor(vval, {}, 1.0, "velocity", path)
            if vel.ndim == 2:
                vel = vel[None]
            if vel.shape != pos.shape:
                vel = None  # velocities stored at another interval: not aligned with positions
        cell = None
        if "box" in g:
            box = g["box"]
            boundary = box.attrs.get("boundary", None)
            periodic = True
            if boundary is not None:
                b = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(boundary).reshape(-1)]
                periodic = any(x.lower() == "periodic" for x in b)
            if periodic and "edges" in box:
                e = box["edges"]
                ev = e["value"] if isinstance(e, h5py.Group) else e
                edges = np.asarray(ev[()], dtype=float) * _h5_unit_factor(
                    ev, _LENGTH_TO_A, 1.0, "length", path
                )
                if edges.ndim == 1:
                    edges = np.diag(edges)
                if edges.ndim == 2 and edges.shape == (n_t, 3):
                    edges = np.einsum("ti,ij->tij", edges, np.eye(3))
                if edges.shape == (3, 3):
                    edges = np.broadcast_to(edges, (n_t, 3, 3)).copy()
                cell = edges[:n_t]
        obs = {}
        if "observables" in h5:
            for key, item in h5["observables"].items():
                ds = item["value"] if isinstance(item, h5py.Group) and "value" in item else item
                if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.shape[0] == n_t:
                    obs[key] = np.asarray(ds[()], dtype=float)
    return Trajectory(
        pos, numbers, times=times, cell=cell, velocities=vel, source=path, info={"observables": obs}
    )


def write_h5md(path, traj: Trajectory) -> None:
    """Write ``traj`` in the H5MD layout :func:`read_h5md` reads (atomically: temp file + rename),
    with the MD pillar's writer (:class:`biomlff.data.trajectory.H5MDWriter`): positions and box
    edges in Å, velocities Å/ps, time ps (``unit`` attributes set), steps = frame indices, the
    per-frame ``info['observables']`` as observables."""
    from ..data.trajectory import H5MDWriter

    path = os.fspath(path)
    obs = (traj.info or {}).get("observables", {})
    with atomic_path(path) as tmp:
        w = H5MDWriter(tmp, traj.numbers, periodic=traj.cell is not None)
        try:
            for t in range(traj.n_frames):
                w.write(
                    t,
                    None if traj.times is None else traj.times[t],
                    traj.positions[t],
                    None if traj.velocities is None else traj.velocities[t],
                    None if traj.cell is None else traj.cell[t],
                    {key: np.asarray(val, dtype=float)[t] for key, val in obs.items()},
                )
        finally:
            w.close()


def _read_mdanalysis(path: str, topology) -> Trajectory:
    try:
        import MDAnalysis as mda
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "reading this trajectory needs MDAnalysis: pip install 'biomlff[analysis]'"
        ) from exc
    from ase.data import atomic_numbers as z_of

    try:
        u = mda.Universe(topology, path) if topology is not None else mda.Universe(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read with MDAnalysis ({type(exc).__name__}: {exc})") from exc
    atoms = u.atoms
    if hasattr(atoms, "elements"):
        syms = [e.capitalize() for e in atoms.elements]
    else:
        from MDAnalysis.topology.guessers import guess_atom_element

        syms = [guess_atom_element(n).capitalize() for n in atoms.names]
    try:
        numbers = np.array([z_of[s] for s in syms])
    except KeyError as exc:
        raise DataError(f"{path}: unknown element {exc} (give a topology with elements)") from exc
    pos, cells, vel, times = [], [], [], []
    has_v = True
    for ts in u.trajectory:
        pos.append(atoms.positions.astype(float))
        times.append(float(ts.time) * units.ps)  # MDAnalysis time is ps
        if ts.dimensions is not None and np.all(ts.dimensions[:3] > 0):
            from ase.geometry import cellpar_to_cell

            cells.append(cellpar_to_cell(ts.dimensions))
        else:
            cells.append(None)
        if has_v and ts.has_velocities:
            vel.append(atoms.velocities.astype(float) / units.ps)  # Å/ps -> Å/fs
        else:
            has_v = False
    cell = None if any(c is None for c in cells) else np.stack(cells)
    top = topology if topology is not None else (path if path.lower().endswith(".pdb") else None)
    return Trajectory(
        np.stack(pos),
        numbers,
        times=np.array(times) if len(times) > 1 else None,
        cell=cell,
        velocities=np.stack(vel) if has_v and vel else None,
        source=path,
        topology=top,
    )


# --------------------------------------------------------------------------- selections


def select_atoms(numbers, selection: str | None, backbone=None, source: str = "trajectory") -> np.ndarray:
    """Indices of atoms matching ``selection`` (sorted int array; DataError if none match).

    Grammar: comma-separated terms, each ``all``, ``heavy`` (not H), ``backbone`` (N, CA, C of
    residues found from connectivity; needs ``backbone`` indices), an element symbol (``O``,
    ``C``), an index ``12`` or range ``0-9`` (inclusive, 0-based); a leading ``not `` negates a
    term. Terms are joined by union; ``not`` terms are removed from the union (or from all atoms
    when only ``not`` terms are given).
    """
    from ase.data import atomic_numbers as z_of

    numbers = np.asarray(numbers)
    n = len(numbers)
    if selection is None or str(selection).strip() == "":
        selection = "all"
    include = np.zeros(n, bool)
    exclude = np.zeros(n, bool)
    any_positive = False
    for raw in str(selection).split(","):
        term = raw.strip()
        if not term:
            continue
        neg = term.lower().startswith("not ")
        if neg:
            term = term[4:].strip()
        m = np.zeros(n, bool)
        low = term.lower()
        if low == "all":
            m[:] = True
        elif low == "heavy":
            m = numbers != 1
        elif low == "backbone":
            if backbone is None:
                raise DataError(f"{source}: selection 'backbone' needs a peptide backbone (none was found)")
            m[np.asarray(backbone, dtype=int)] = True
        elif term[0].isdigit():
            try:
                if "-" in term:
                    a, b = (int(x) for x in term.split("-", 1))
                else:
                    a = b = int(term)
            except ValueError as exc:
                raise ConfigError(f"bad atom index range {term!r} in selection {selection!r}") from exc
            if a < 0 or b >= n or a > b:
                raise DataError(f"{source}: atom range {term!r} outside 0-{n - 1}")
            m[a : b + 1] = True
        else:
            sym = term.capitalize()
            if sym not in z_of:
                raise ConfigError(
                    f"unknown selection term {term!r} in {selection!r} "
                    "(use all, heavy, backbone, element symbols, index ranges, 'not ...')"
                )
            m = numbers == z_of[sym]
        if neg:
            exclude |= m
        else:
            include |= m
            any_positive = True
    if not any_positive:
        include[:] = True
    idx = np.nonzero(include & ~exclude)[0]
    if idx.size == 0:
        raise DataError(f"{source}: selection {selection!r} matches no atoms")
    return idx
