"""Batched SO3LR predictions for a dataset, with error metrics against its labels.

Frames of any composition, charge, multiplicity and cell are evaluated in batches (``jax.vmap`` over
frames padded to atom-count and pair-capacity buckets). Units: eV, Å, e.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .model import TERMS


def predict_dataset(
    ds,
    *,
    batch_size: int = 16,
    params=None,
    progress: Callable[[int], None] | None = None,
    model=None,
    **settings,
) -> list[dict]:
    """SO3LR predictions for every frame of a :class:`biomlff.data.Dataset` (any mix of molecules).

    ``settings``: :class:`~biomlff.settings.ModelSettings` fields (lr_cutoff, dispersion_damping,
    precision, filters, electrostatics, ewald_accuracy), resolved per frame by
    :meth:`~biomlff.settings.ModelSettings.resolve`, the rule of every other path:
    ``lr_cutoff="auto"``: a model file's own cutoff, else no cutoff (all pairs) for free-space frames
    and 12 Å for periodic ones; None: all pairs. ``dispersion_damping`` (Å, None: the model file's,
    else 2). Frames of different sizes share compiled programs through atom-count
    buckets (see :func:`biomlff.so3lr.evaluate.evaluate_systems`). Returns one dict per frame (energy
    eV, forces eV/Å, energies, energy_terms, charges e, dipole e·Å, hirshfeld_ratios). ``progress(n)``
    is called after each batch of n frames. ``filters``: radial filters "exact" | "tabulated" (None:
    tabulated in float32, exact in float64; tables built once, see :mod:`biomlff.so3lr.tabulate`).
    ``model``: a trained :class:`~biomlff.so3lr.modelfile.SO3LRModel` or model file instead of the
    pretrained SO3LR. ``electrostatics``: "cutoff" (default) or "ewald" / "pme" for periodic frames
    (lattice sum tuned per cell to ``ewald_accuracy``, :mod:`biomlff.so3lr.lattice`; free-space frames
    keep the cutoff form). Periodicity: :func:`biomlff.geometry.cell_from_pbc` (mixed pbc refused)."""
    from dataclasses import replace

    from ..checks import check_electrons
    from ..errors import ConfigError
    from ..geometry import cell_from_pbc
    from ..potential import ChemicalSystem
    from ..settings import ModelSettings
    from ..system import System
    from .evaluate import evaluate_systems
    from .model import check_cell, check_elements, spin_of
    from .modelfile import SO3LRModel

    if batch_size < 1:
        raise ConfigError(f"batch size must be ≥ 1, got {batch_size}")
    source = SO3LRModel.of("so3lr" if model is None else model)
    if settings.get("lr_cutoff", "auto") is None:
        settings["lr_cutoff"] = "none"  # an explicit None here meant all pairs
    settings = ModelSettings.of(settings)
    groups: dict = {}
    for k in range(len(ds)):
        f = ds.frame(k)
        cell = cell_from_pbc(f.get("cell"), f.get("pbc"), name=f"frame {k}")
        charge = f.get("charge")
        q = 0.0 if charge is None else float(charge)
        mult = f.get("multiplicity")
        try:
            check_electrons(f["atomic_numbers"], q, 1 if mult is None else mult)
        except ConfigError as exc:
            raise ConfigError(f"frame {k}: {exc}") from None
        frame_settings = settings if cell is not None else replace(settings, electrostatics="cutoff")
        so3, resolved = source.unbound(ChemicalSystem(f["atomic_numbers"], q, cell=cell), frame_settings)
        if cell is not None:
            check_cell(cell, resolved.lr_cutoff)
        system = System(
            atomic_numbers=check_elements(f["atomic_numbers"], source.elements, source.name.upper()),
            positions=np.asarray(f["positions"], float),
            charge=q,
            multiplicity=spin_of(1 if mult is None else mult) + 1.0,
            cell=cell,
        )
        groups.setdefault((so3, cell is not None), []).append((k, system))
    base = source.params if params is None else params
    results: list[dict | None] = [None] * len(ds)
    for (so3, _), members in groups.items():
        out = evaluate_systems(
            [s for _, s in members],
            so3.config,
            source.weights_for(so3, base),
            batch_size=batch_size,
            progress=progress,
        )
        for (k, _), o in zip(members, out, strict=True):
            results[k] = o
    return results  # type: ignore[return-value]


def metrics(ds, preds: list[dict]) -> dict:
    """Errors of predictions against the dataset labels that exist.

    forces: MAE/RMSE over all components (eV/Å); energy: MAE/RMSE after removing the mean offset
    (SO3LR energies are relative; eV) and the offset itself; dipole: MAE/RMSE over components (e·Å);
    hirshfeld_ratios: MAE/RMSE."""
    out: dict = {"n_frames": len(preds)}
    frames = [ds.frame(i) for i in range(len(ds))]

    def err(name, pred_key):
        if not all(f.get(name) is not None for f in frames):
            return None
        d = np.concatenate(
            [
                np.ravel(np.asarray(p[pred_key]) - np.asarray(f[name]))
                for p, f in zip(preds, frames, strict=True)
            ]
        )
        if not np.all(np.isfinite(d)):
            return None
        return d

    d = err("forces", "forces")
    if d is not None:
        out["forces_mae"] = float(np.abs(d).mean())
        out["forces_rmse"] = float(np.sqrt((d**2).mean()))
    d = err("energy", "energy")
    if d is not None:
        offset = float(d.mean())
        d = d - offset
        out["energy_offset"] = offset
        out["energy_mae"] = float(np.abs(d).mean())
        out["energy_rmse"] = float(np.sqrt((d**2).mean()))
    for name, key in (("dipole", "dipole"), ("hirshfeld_ratios", "hirshfeld_ratios")):
        d = err(name, key)
        if d is not None:
            out[f"{name}_mae"] = float(np.abs(d).mean())
            out[f"{name}_rmse"] = float(np.sqrt((d**2).mean()))
    return out


def predictions_dataset(ds, preds: list[dict]):
    """A Dataset with the structures of ``ds`` and the SO3LR predictions as labels (energy, forces,
    dipole, hirshfeld_ratios, partial_charges) plus per-frame ``energy_<term>`` fields."""
    from ..data import Dataset

    frames = [ds.frame(i) for i in range(len(ds))]
    has_cell = all(f.get("cell") is not None for f in frames)
    frame_data = {f"energy_{t}": np.array([p["energy_terms"][t] for p in preds]) for t in TERMS}
    return Dataset.from_arrays(
        [f["atomic_numbers"] for f in frames],
        [f["positions"] for f in frames],
        energy=np.array([p["energy"] for p in preds]),
        forces=[p["forces"] for p in preds],
        charge=np.array([float(f.get("charge") or 0.0) for f in frames]),
        dipole=np.stack([p["dipole"] for p in preds]),
        hirshfeld_ratios=[p["hirshfeld_ratios"] for p in preds],
        partial_charges=[p["charges"] for p in preds],
        cell=np.stack([f["cell"] for f in frames]) if has_cell else None,
        pbc=np.stack([np.asarray(f["pbc"], bool) for f in frames])
        if has_cell and frames[0].get("pbc") is not None
        else None,
        name=(ds.name or "dataset") + "_so3lr",
        theory="SO3LR",
        frame_data=frame_data,
        validate=False,
    )
