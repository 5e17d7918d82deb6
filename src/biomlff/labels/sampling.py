"""Configurational sampling: Langevin MD with any labeller (or any ASE calculator, e.g. a biomlff
model) writing an MD22-like dataset.

The integrator is ASE's Langevin (BAOAB-type, fine for QM labellers that cost far more than the
integrator). Every ``stride`` steps the frame (positions, energy, forces, dipole, charges of the
calculator at exactly those positions, plus velocities for resuming) is appended to a journal
``OUTPUT.journal.jsonl``; a rerun continues from the last recorded frame with its velocities
(the random force stream of the continuation differs from an uninterrupted run).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import units
from ..errors import ConfigError, DataError
from .base import Labeller, LabelResult


def _ase_calculator_base():
    from ase.calculators.calculator import Calculator, all_changes

    return Calculator, all_changes


def labeller_calculator(labeller: Labeller, charge: int = 0, multiplicity: int = 1):
    """An ASE calculator that evaluates ``labeller`` (energy eV, forces eV/Å, dipole e·Å, charges e).

    A frame that cannot be labelled raises the labeller's LabelError (MD cannot go on without
    forces)."""
    Calculator, all_changes = _ase_calculator_base()

    class LabellerCalculator(Calculator):
        implemented_properties = ["energy", "forces", "dipole", "charges"]

        def __init__(self):
            super().__init__()
            self.labeller = labeller
            self.charge = int(charge)
            self.multiplicity = int(multiplicity)
            self.last: LabelResult | None = None

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            res = self.labeller.label(
                self.atoms.numbers, self.atoms.positions, self.charge, self.multiplicity
            )
            self.last = res
            self.results = {"energy": res.energy, "free_energy": res.energy, "forces": res.forces}
            if res.dipole is not None:
                self.results["dipole"] = res.dipole
            if res.charges is not None:
                self.results["charges"] = res.charges

    return LabellerCalculator()


def _frame_record(step: int, atoms, calc) -> dict[str, Any]:
    # get_* return cached results when the calculator already saw these positions
    energy = float(atoms.get_potential_energy())
    forces = np.asarray(atoms.get_forces(apply_constraint=False))  # raw labels, not FixCom-projected
    res = getattr(calc, "last", None)
    rec: dict[str, Any] = {
        "step": int(step),
        "positions": atoms.positions.tolist(),
        "velocities": atoms.get_velocities().tolist(),  # Å / ASE time unit
        "energy": energy,
        "forces": forces.tolist(),
    }
    if isinstance(res, LabelResult):
        for k in ("dipole", "charges", "hirshfeld_ratios"):
            v = getattr(res, k)
            rec[k] = None if v is None else np.asarray(v).tolist()
    else:
        for k in ("dipole", "charges"):
            v = calc.results.get(k)
            rec[k] = None if v is None else np.asarray(v).tolist()
    return rec


def _read_journal(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a biomlff sampling journal; delete it to start over") from exc
    for k in ("calc", "start", "temperature_K", "timestep_fs", "stride", "charge", "multiplicity"):
        if head.get(k) != header.get(k):
            raise ConfigError(
                f"{path}: journal of an earlier run with a different {k} ({head.get(k)!r} vs "
                f"{header.get(k)!r}); delete it or choose another output"
            )
    recs = []
    for line in lines[1:]:
        if line.strip():
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:  # truncated last line of a killed run
                pass
    if lines[-1] != "":
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n")
    return recs


def _append(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def langevin_sample(
    atoms,
    calc,
    output: str | os.PathLike | None,
    *,
    steps: int,
    temperature_K: float = 300.0,
    timestep_fs: float = 0.5,
    friction_per_fs: float = 0.01,
    stride: int = 1,
    seed: int = 0,
    charge: int = 0,
    multiplicity: int = 1,
    calc_name: str = "",
    progress: bool = True,
    max_steps: int | None = None,
    energy_unit: str | None = None,
):
    """Run Langevin MD from ``atoms`` (positions Å) with ``calc`` (an ASE calculator, e.g.
    :func:`labeller_calculator`) for ``steps`` steps of ``timestep_fs`` fs at ``temperature_K`` K,
    friction ``friction_per_fs`` (1/fs), recording every ``stride``-th step (step 0 included, so
    steps//stride + 1 frames). Velocities start from Maxwell–Boltzmann at T (``seed``), without
    centre-of-mass motion or rotation.

    With ``output`` the frames go to ``OUTPUT.journal.jsonl`` as they come and, at the end, to
    ``output`` (.npz sGDML layout, kcal/mol by default; .xyz/.extxyz; .h5 QCell); a rerun resumes.
    ``max_steps`` stops early (to test resuming). Returns the Dataset of recorded frames
    (energy eV, forces eV/Å, dipole e·Å, partial_charges e where the calculator gives them).
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    if steps < 0 or stride < 1 or timestep_fs <= 0 or temperature_K < 0:
        raise ConfigError(
            f"need steps >= 0, stride >= 1, timestep > 0, T >= 0 (got {steps}, {stride}, "
            f"{timestep_fs}, {temperature_K})"
        )
    atoms = atoms.copy()
    atoms.calc = calc
    header = {
        "journal": "biomlff-sample",
        "calc": calc_name,
        "start": hashlib_positions(atoms),
        "temperature_K": float(temperature_K),
        "timestep_fs": float(timestep_fs),
        "stride": int(stride),
        "charge": int(charge),
        "multiplicity": int(multiplicity),
        "numbers": atoms.numbers.tolist(),
    }
    jpath = None
    records: list[dict[str, Any]] = []
    if output is not None:
        jpath = Path(output).with_name(Path(output).name + ".journal.jsonl")
        if jpath.exists() and jpath.stat().st_size > 0:
            records = _read_journal(jpath, header)
        else:
            _append(jpath, header)
    rng = np.random.default_rng(seed + len(records))
    if records:
        last = records[-1]
        atoms.positions = np.asarray(last["positions"])
        atoms.set_velocities(np.asarray(last["velocities"]))
        done_steps = int(last["step"])
    else:
        thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
        Stationary(atoms)
        if len(atoms) > 2:
            ZeroRotation(atoms)
        done_steps = -stride  # step 0 still to record
    remaining = steps - max(done_steps, 0)
    if max_steps is not None:
        remaining = min(remaining, int(max_steps))
    from ase.constraints import FixCom

    atoms.set_constraint(FixCom())  # ASE's recommended replacement of Langevin(fixcm=True)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.ase_time_per_fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.ase_time_per_fs,
        rng=rng,
        fixcm=False,
    )
    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        initial=max(done_steps, 0),
        desc=f"sample {calc_name or 'md'}",
        unit="step",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    start = max(done_steps, 0)

    def record():
        step = start + dyn.nsteps
        if step <= done_steps or step % stride:
            return
        rec = _frame_record(step, atoms, atoms.calc)
        if jpath is not None:
            _append(jpath, rec)
        records.append(rec)

    dyn.attach(record, interval=1)
    dyn.attach(lambda: bar.update(1) if dyn.nsteps else None, interval=1)
    t0 = time.perf_counter()
    try:
        if remaining > 0 or not records:
            dyn.run(max(remaining, 0))
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    ds = _records_to_dataset(records, atoms.numbers, charge, multiplicity, calc_name, header, wall)
    if output is not None and (records and records[-1]["step"] >= steps - steps % stride):
        from ..data import write_dataset

        out = Path(output)
        if energy_unit is None:
            energy_unit = "kcal/mol" if out.suffix.lower() == ".npz" else "eV"
        kw = {} if out.suffix.lower() in (".h5", ".hdf5") else {"energy_unit": energy_unit}
        write_dataset(ds, out, **kw)
    return ds


def hashlib_positions(atoms) -> str:
    import hashlib

    h = hashlib.sha1(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(atoms.positions, 8).tobytes())
    return h.hexdigest()[:16]


def _records_to_dataset(records, numbers, charge, multiplicity, calc_name, header, wall_s):
    from ..data import Dataset

    if not records:
        raise DataError("sampling produced no frames")

    def opt(k):
        vals = [r.get(k) for r in records]
        return None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64)

    prov = [
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} biomlff sample: "
        f"Langevin {header['temperature_K']} K, "
        f"dt {header['timestep_fs']} fs, stride {header['stride']}, calc {calc_name}, {len(records)} frames, "
        f"steps {records[0]['step']}..{records[-1]['step']} ({wall_s:.1f} s this run)"
    ]
    return Dataset.from_arrays(
        np.asarray(numbers),
        np.asarray([r["positions"] for r in records], dtype=np.float64),
        energy=np.asarray([r["energy"] for r in records], dtype=np.float64),
        forces=np.asarray([r["forces"] for r in records], dtype=np.float64),
        charge=float(charge),
        multiplicity=int(multiplicity),
        dipole=opt("dipole"),
        partial_charges=opt("charges"),
        hirshfeld_ratios=opt("hirshfeld_ratios"),
        frame_data={"md_step": np.asarray([r["step"] for r in records], dtype=np.int64)},
        name=f"langevin_{calc_name}" if calc_name else "langevin",
        theory=calc_name,
        metadata={"provenance": prov},
    )
