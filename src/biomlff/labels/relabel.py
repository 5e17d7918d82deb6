"""Label (or relabel) a dataset file: read frames with :mod:`biomlff.data`, run the batch with
:func:`biomlff.labels.jobs.run_labelling`, write the labelled frames atomically.

The journal ``OUTPUT.journal.jsonl`` beside the output keeps every finished frame; rerunning the
same command after an interruption labels only the missing frames and then writes OUTPUT.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .jobs import Frame, LabelRun, frames_from_dataset, run_labelling


def journal_path(output: str | os.PathLike) -> Path:
    """Journal file that belongs to ``output`` (``OUTPUT.journal.jsonl``)."""
    p = Path(output)
    return p.with_name(p.name + ".journal.jsonl")


def results_to_dataset(
    frames: list[Frame],
    run: LabelRun,
    *,
    name: str = "",
    theory: str = "",
    provenance: list[str] | None = None,
):
    """Dataset of the successfully labelled frames (input order): energy eV, forces eV/Å, dipole
    e·Å, partial_charges e, hirshfeld_ratios, charge, multiplicity and ``source_index`` (index of
    the frame in the input). Raises DataError if no frame was labelled."""
    from ..data import Dataset

    ok = [f for f in frames if f.index in run.results]
    if not ok:
        raise DataError(
            "no frame was labelled successfully: "
            + "; ".join(f"frame {i}: {m}" for i, m in sorted(run.errors.items())[:5])
        )
    res = [run.results[f.index] for f in ok]

    def opt(name):
        vals = [getattr(r, name) for r in res]
        return None if any(v is None for v in vals) else vals

    dip = opt("dipole")
    return Dataset.from_arrays(
        [f.atomic_numbers for f in ok],
        [f.positions for f in ok],
        energy=np.array([r.energy for r in res]),
        forces=[r.forces for r in res],
        charge=np.array([f.charge for f in ok], dtype=np.float64),
        multiplicity=np.array([f.multiplicity for f in ok], dtype=np.int64),
        dipole=None if dip is None else np.stack(dip),
        hirshfeld_ratios=opt("hirshfeld_ratios"),
        partial_charges=opt("charges"),
        frame_data={"source_index": np.array([f.index for f in ok], dtype=np.int64)},
        name=name,
        theory=theory,
        metadata={"provenance": list(provenance or [])},
    )


def read_structures(path, index: Any = None, read_kwargs: dict[str, Any] | None = None):
    """Read the frames of ``path`` for labelling. The old labels are dropped anyway, so where the
    data layer needs a choice only for the labels (which rMD17 label set; the energy unit of an
    sGDML file without ``e_unit``) a neutral one is made instead of failing."""
    from ..data import detect_format, read_dataset

    kw = dict(read_kwargs or {})
    fmt = kw.get("fmt") or detect_format(path)
    if fmt == "rmd17":
        kw.setdefault("energy_key", "energies")
        kw.setdefault("forces_key", "forces")
    try:
        return read_dataset(path, index=index, **kw)
    except DataError as exc:
        if fmt == "sgdml" and "e_unit" in str(exc) and "energy_unit" not in kw:
            return read_dataset(path, index=index, energy_unit="eV", **kw)  # labels are discarded
        raise


def label_dataset(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    method: str,
    settings: dict[str, Any] | None = None,
    *,
    index: Any = None,
    charge: int | None = None,
    multiplicity: int | None = None,
    workers: int = 1,
    executor=None,
    retry_failed: bool = False,
    energy_unit: str | None = None,
    progress: bool = True,
    max_frames: int | None = None,
    read_kwargs: dict[str, Any] | None = None,
) -> tuple[LabelRun, Path | None]:
    """Label the frames of ``input_path`` (any format biomlff.data reads; ``index`` selects frames)
    with ``method`` and write the labelled dataset to ``output`` (.npz sGDML layout, .xyz/.extxyz,
    .h5 QCell). ``energy_unit`` of the written file: default kcal/mol for .npz (MD17/MD22
    convention), eV otherwise. Returns the run and the written path (None when interrupted by
    ``max_frames`` before all frames were done). Old labels of the input are not carried over.
    """
    from ..data import write_dataset

    ds = read_structures(input_path, index=index, read_kwargs=read_kwargs)
    if ds.pbc is not None and np.any(ds.pbc):
        raise ConfigError(f"{input_path}: periodic frames are not supported by the molecular labellers")
    frames = frames_from_dataset(ds, charge=charge, multiplicity=multiplicity)
    output = Path(output)
    run = run_labelling(
        frames,
        method,
        settings,
        journal_path(output),
        workers=workers,
        executor=executor,
        retry_failed=retry_failed,
        input_fingerprint=ds.content_hash(),
        progress=progress,
        max_frames=max_frames,
    )
    missing = [f.index for f in frames if f.index not in run.results and f.index not in run.errors]
    if missing:
        return run, None
    from .base import make_labeller

    theory = make_labeller(method, **(settings or {})).theory
    prov = [
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} biomlff label {method} {input_path} "
        f"settings={settings or {}} frames={len(frames)} ok={len(run.results)} failed={len(run.errors)}"
    ]
    prov += [f"failed frame {i}: {m}" for i, m in sorted(run.errors.items())]
    out_ds = results_to_dataset(
        frames, run, name=ds.name or Path(input_path).stem, theory=theory, provenance=prov
    )
    if energy_unit is None:
        energy_unit = "kcal/mol" if output.suffix.lower() == ".npz" else "eV"
    kw = {} if output.suffix.lower() in (".h5", ".hdf5") else {"energy_unit": energy_unit}
    write_dataset(out_ds, output, **kw)
    return run, output
