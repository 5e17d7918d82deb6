"""Figures and tables of pair importance for global models: the N×N pair heatmap, atom
contributions drawn on a 2D projection of the molecule, importance against pair distance, and the
CSV files behind them (matplotlib with the Agg backend, imported lazily)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..fileio import atomic_path, atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _symbols(z) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(v)] for v in z]


def _finish(fig, ax, path, xlabel: str, ylabel: str, title: str = "", colorbar=None) -> Path:
    """Axis labels, optional ``colorbar=(mappable, label)`` and title, then :func:`_save`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar is not None:
        fig.colorbar(colorbar[0], ax=ax, label=colorbar[1], shrink=0.8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    """Save a figure atomically (temp file + rename) as PNG."""
    path = Path(path)
    try:
        with atomic_path(path, make_parents=True) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return path


def pair_matrix(values, a, b, n_atoms: int) -> np.ndarray:
    """Symmetric (N, N) matrix with values[k] at (a_k, b_k) and (b_k, a_k); NaN where no pair."""
    m = np.full((n_atoms, n_atoms), np.nan)
    m[np.asarray(a), np.asarray(b)] = values
    m[np.asarray(b), np.asarray(a)] = values
    return m


def plot_pair_heatmap(values, a, b, z, path, label: str, title: str = "", log: bool = True) -> Path:
    """N×N heatmap of pair values (D,) (e.g. masking loss, eV/Å) with element labels; log colour scale
    for positive data when ``log``; pairs absent from the list are blank."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    n = len(z)
    mat = pair_matrix(values, a, b, n)
    pos = np.asarray(values)[np.asarray(values) > 0]
    norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-6), vmax=pos.max()) if log and len(pos) else None
    size = min(9.0, 3.0 + 0.12 * n)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(np.where(mat > 0, mat, np.nan) if norm is not None else mat, cmap="magma_r", norm=norm)
    syms = _symbols(z)
    step = max(1, n // 30)
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([f"{syms[i]}{i}" for i in ticks], rotation=90, fontsize=7)
    ax.set_yticklabels([f"{syms[i]}{i}" for i in ticks], fontsize=7)
    return _finish(fig, ax, path, "atom", "atom", title, colorbar=(im, label))


def projection_2d(positions: np.ndarray) -> np.ndarray:
    """2D coordinates (N, 2) in Å: the positions projected on their two principal axes."""
    r = np.asarray(positions, dtype=float)
    r = r - r.mean(axis=0)
    _, _, vt = np.linalg.svd(r, full_matrices=False)
    return r @ vt[:2].T


def plot_atom_contributions(
    positions, z, values, path, label: str, title: str = "", bond_scale: float = 1.2
) -> Path:
    """Atoms of one geometry (N, 3) Å projected on its principal plane, coloured by ``values`` (N,);
    bonds where the distance is below ``bond_scale`` × the sum of covalent radii."""
    from ase.data import covalent_radii

    plt = _pyplot()
    z = np.asarray(z)
    xy = projection_2d(positions)
    r = np.asarray(positions, dtype=float)
    dist = np.linalg.norm(r[:, None] - r[None], axis=-1)
    rc = covalent_radii[z]
    bonded = (dist < bond_scale * (rc[:, None] + rc[None])) & ~np.eye(len(z), dtype=bool)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for i, j in zip(*np.nonzero(np.triu(bonded)), strict=True):
        ax.plot(xy[[i, j], 0], xy[[i, j], 1], color="0.6", lw=1.5, zorder=1)
    sizes = 60 + 200 * (rc / rc.max()) ** 2
    sc = ax.scatter(
        xy[:, 0], xy[:, 1], c=values, s=sizes, cmap="viridis", edgecolors="k", linewidths=0.6, zorder=2
    )
    syms = _symbols(z)
    if len(z) <= 60:
        for i, (px, py) in enumerate(xy):
            ax.annotate(f"{syms[i]}{i}", (px, py), fontsize=6, ha="center", va="center", zorder=3, color="w")
    ax.set_aspect("equal")
    return _finish(fig, ax, path, "principal axis 1 (Å)", "principal axis 2 (Å)", title, colorbar=(sc, label))


def plot_importance_vs_distance(distance, values, path, label: str, kept=None, title: str = "") -> Path:
    """Scatter of pair values (D,) against mean pair distance (D,) in Å (log y); ``kept`` (D,) bool
    colours the selected pairs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    values = np.asarray(values)
    distance = np.asarray(distance)
    if kept is None:
        ax.scatter(distance, values, s=10, alpha=0.7)
    else:
        kept = np.asarray(kept, dtype=bool)
        ax.scatter(distance[~kept], values[~kept], s=10, alpha=0.6, color="0.6", label="removed")
        ax.scatter(distance[kept], values[kept], s=10, alpha=0.8, color="C3", label="kept")
        ax.legend(fontsize=8)
    if np.all(values > 0):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return _finish(fig, ax, path, "mean pair distance (Å)", label, title)


def write_csv(path, header: list[str], rows) -> Path:
    """Write a CSV file atomically."""
    path = Path(path)
    with atomic_write(path, "w", make_parents=True, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
    return path


def pair_report(
    model,
    positions,
    out_dir,
    measure: str = "loss",
    keep=None,
    title: str = "",
    progress: bool = False,
) -> dict:
    """Pair-importance figures and tables of ``model`` on configurations ``positions`` (B, N, 3) Å,
    written into ``out_dir``: ``pairs.png`` (N×N heatmap), ``atoms.png`` (atom contributions on the
    molecule), ``distance.png`` (importance against mean pair distance), ``pairs.csv``, ``atoms.csv``.

    ``measure``: 'loss' (masking loss L_n of single features, eV/Å; :mod:`biomlff.gdml.reduce`),
    'force' (mean ‖φ_k‖, eV/Å) or 'energy' (mean |ε_k|, eV) of :mod:`biomlff.gdml.contributions`.
    ``keep``: optional fraction/count; the pairs that :func:`select_features` keeps are marked.
    Returns {name: path} plus the arrays used."""
    from ..errors import ConfigError
    from .contributions import atom_split, average_contributions
    from .reduce import feature_importance, select_features

    if measure not in ("loss", "force", "energy"):
        raise ConfigError(f"measure must be loss, force or energy, got {measure!r}")
    out_dir = Path(out_dir)
    pos = np.asarray(positions, dtype=np.float64)
    a, b = model.pairs
    n = model.n_atoms
    imp = feature_importance(model, pos, orbits=False, progress=progress)
    loss = imp.per_feature("F")
    avg = average_contributions(model, pos)
    kept_mask = None
    if keep is not None:
        kept_mask = np.zeros(model.n_features, dtype=bool)
        kept_mask[select_features(feature_importance(model, pos, progress=progress), keep)] = True
    values, label = {
        "loss": (loss, "masking loss L_n (force RMSE, eV/Å)"),
        "force": (avg["pair_force_norm"], "mean pair force contribution ‖φ_k‖ (eV/Å)"),
        "energy": (avg["pair_energy_abs"], "mean |pair energy contribution ε_k| (eV)"),
    }[measure]
    atom_values = atom_split(values, a, b, n)
    syms = _symbols(model.z)
    paths = {
        "pairs_png": plot_pair_heatmap(values, a, b, model.z, out_dir / "pairs.png", label, title),
        "atoms_png": plot_atom_contributions(
            pos[0], model.z, atom_values, out_dir / "atoms.png", "½ Σ over the atom's pairs: " + label, title
        ),
        "distance_png": plot_importance_vs_distance(
            avg["pair_distance"], values, out_dir / "distance.png", label, kept_mask, title
        ),
    }
    rows = [
        [
            k,
            int(a[k]),
            int(b[k]),
            syms[a[k]],
            syms[b[k]],
            f"{avg['pair_distance'][k]:.4f}",
            f"{loss[k]:.6e}",
            f"{imp.per_feature('E')[k]:.6e}",
            f"{avg['pair_energy_mean'][k]:.6e}",
            f"{avg['pair_energy_abs'][k]:.6e}",
            f"{avg['pair_force_norm'][k]:.6e}",
            "" if kept_mask is None else int(kept_mask[k]),
        ]
        for k in range(model.n_features)
    ]
    paths["pairs_csv"] = write_csv(
        out_dir / "pairs.csv",
        [
            "k",
            "a",
            "b",
            "element_a",
            "element_b",
            "mean_distance_A",
            "loss_F_eV_A",
            "loss_E_eV",
            "energy_mean_eV",
            "energy_abs_eV",
            "force_norm_eV_A",
            "kept",
        ],
        rows,
    )
    atoms_rows = [
        [
            i,
            syms[i],
            f"{avg['atom_energy_mean'][i]:.6e}",
            f"{avg['atom_energy_abs'][i]:.6e}",
            f"{avg['atom_force_norm'][i]:.6e}",
            f"{atom_split(loss, a, b, n)[i]:.6e}",
        ]
        for i in range(n)
    ]
    paths["atoms_csv"] = write_csv(
        out_dir / "atoms.csv",
        ["atom", "element", "energy_mean_eV", "energy_abs_eV", "force_norm_eV_A", "loss_F_half_sum_eV_A"],
        atoms_rows,
    )
    return {"paths": paths, "values": values, "loss": loss, "average": avg, "kept": kept_mask}
