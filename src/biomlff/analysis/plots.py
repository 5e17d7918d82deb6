"""Figures (matplotlib, Agg backend; PNG or SVG by extension) and CSV tables for each observable.

Every writer is atomic (temporary file + rename) so an interrupted run leaves no half file.
"""

from __future__ import annotations

import os

import numpy as np

from .. import units
from ..fileio import atomic_path, atomic_write


def _out(path) -> str:
    path = os.fspath(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    return path


def write_csv(path, columns: dict[str, np.ndarray], comment: str | None = None) -> str:
    """Write equal-length columns to CSV (header row = column names incl. units), atomically."""
    path = _out(path)
    names = list(columns)
    cols = [np.asarray(columns[k], dtype=float).reshape(-1) for k in names]
    n = {c.size for c in cols}
    if len(n) != 1:
        raise ValueError(
            f"CSV columns differ in length: {dict(zip(names, [c.size for c in cols], strict=True))}"
        )
    with atomic_write(path) as fh:
        if comment:
            for line in comment.splitlines():
                fh.write(f"# {line}\n")
        fh.write(",".join(names) + "\n")
        np.savetxt(fh, np.column_stack(cols), delimiter=",", fmt="%.8g")
    return path


def _figure(figsize=(5.0, 3.6)):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, dpi=110)
    return fig, ax


def _save(fig, path) -> str:
    import matplotlib.pyplot as plt

    path = _out(path)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def plot_lines(
    path,
    x,
    ys: dict[str, np.ndarray],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    hline: float | None = None,
    xlim=None,
    ylim=None,
    shade=None,
    marker: str | None = None,
    logx: bool = False,
) -> str:
    """Generic line plot: one curve per entry of ``ys`` (labels = legend)."""
    fig, ax = _figure()
    for label, y in ys.items():
        ax.plot(x if not isinstance(x, dict) else x[label], y, label=label, lw=1.3, marker=marker, ms=3)
    if logx:
        ax.set_xscale("log")
    if hline is not None:
        ax.axhline(hline, color="0.5", lw=0.8, ls="--")
    if shade is not None:
        ax.axvspan(shade[0], shade[1], color="C1", alpha=0.12, label="fit range")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    if any(ys) or shade is not None:  # a legend whenever a curve is named
        ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def plot_panels(path, x, panels: dict[str, dict[str, np.ndarray]], xlabel: str, title: str | None = None):
    """Curves against a shared x axis, one panel per y label (each label carries its unit):
    ``panels`` = {y label: {legend: values}}; a single panel looks like :func:`plot_lines`."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(len(panels), 1)
    fig, axes = plt.subplots(n, 1, figsize=(5.0, 1.2 + 2.4 * n), dpi=110, sharex=True, squeeze=False)
    for ax, (ylabel, curves) in zip(axes[:, 0], panels.items(), strict=False):
        for label, y in curves.items():
            ax.plot(x, y, label=label, lw=1.3, marker="o" if np.size(y) == 1 else None, ms=3)
        ax.set_ylabel(ylabel)
        if any(curves):
            ax.legend(fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    return _save(fig, path)


def plot_msd(path, t_ps, msd_a2, fit=None, title=None) -> str:
    """MSD (Å²) against lag time (ps) with the Einstein fit line and range."""
    fig, ax = _figure()
    ax.plot(t_ps, msd_a2, lw=1.4, label="MSD")
    if fit is not None:
        tt = np.linspace(fit.t_start, fit.t_end, 50)
        ax.plot(
            tt / units.ps,
            fit.intercept + 2 * fit.dimensions * fit.D * tt,
            "--",
            color="C3",
            label=f"fit: D = {fit.D_m2_s * 1e9:.3g} × 10⁻⁹ m²/s",
        )
        ax.axvspan(fit.t_start / units.ps, fit.t_end / units.ps, color="C3", alpha=0.08)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def plot_ramachandran(path, fmap, phi=None, psi=None, title=None, vmax: float | None = None) -> str:
    """Ramachandran free-energy map F(φ, ψ) (kcal/mol) with optional sample scatter."""
    fig, ax = _figure(figsize=(4.8, 4.0))
    e = fmap.edges
    f = fmap.free_energy.T  # rows = ψ
    top = vmax if vmax is not None else float(np.nanmax(f)) if np.isfinite(np.nanmax(f)) else 1.0
    mesh = ax.pcolormesh(
        e, e, np.ma.masked_invalid(f), cmap="viridis", vmin=0.0, vmax=max(top, 1e-6), shading="flat"
    )
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("free energy (kcal/mol)")
    if phi is not None and psi is not None and np.size(phi) <= 300:  # few samples: show them
        ax.scatter(np.ravel(phi), np.ravel(psi), s=3, c="k", alpha=0.5, lw=0)
    ax.set_facecolor("0.97")
    ax.grid(color="0.85", lw=0.5)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-180, 180)
    ax.set_xticks(range(-180, 181, 90))
    ax.set_yticks(range(-180, 181, 90))
    ax.set_xlabel("φ (degrees)")
    ax.set_ylabel("ψ (degrees)")
    ax.set_aspect("equal")
    ax.set_title(title or f"Ramachandran map, T = {fmap.temperature:g} K", fontsize=9)
    return _save(fig, path)


def plot_secondary_structure(path, ss, times_ps=None, title=None) -> str:
    """Secondary structure per residue (y) and frame (x): helix / strand / coil colours."""
    from matplotlib.colors import ListedColormap

    ss = np.asarray(ss)
    code = np.where(np.isin(ss, ["H", "G", "I"]), 0, np.where(np.isin(ss, ["E", "B"]), 1, 2))
    fig, ax = _figure(figsize=(5.5, 3.4))
    x = (
        np.arange(ss.shape[0] + 1)
        if times_ps is None
        else np.append(times_ps, times_ps[-1] + (times_ps[1] - times_ps[0] if len(times_ps) > 1 else 1.0))
    )
    y = np.arange(ss.shape[1] + 1) + 0.5
    cmap = ListedColormap(["#d62728", "#1f77b4", "#dddddd"])
    ax.pcolormesh(x, y, code.T, cmap=cmap, vmin=-0.5, vmax=2.5, shading="flat")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="#d62728", label="helix"),
            Patch(color="#1f77b4", label="strand"),
            Patch(color="#dddddd", label="coil"),
        ],
        fontsize=7,
        loc="upper right",
        bbox_to_anchor=(1.0, 1.18),
        ncol=3,
        frameon=False,
    )
    ax.set_xlabel("time (ps)" if times_ps is not None else "frame (index)")
    ax.set_ylabel("residue (index from 1)")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return _save(fig, path)


def plot_profile_and_order(path, z, profiles: dict, s_ch: dict, title=None) -> str:
    """Two panels: density profiles along the normal, and −S_CH per carbon position."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.4), dpi=110)
    for label, p in profiles.items():
        a1.plot(z, p, label=label, lw=1.3)
    a1.set_xlabel("z − z_centre (Å)")
    a1.set_ylabel("density (1/Å³)")
    a1.legend(fontsize=7, frameon=False)
    for n, s in s_ch.items():
        k = np.arange(1, len(s) + 1)
        ok = np.isfinite(s)
        a2.plot(k[ok], -s[ok], "o-", ms=3, label=f"{n}-carbon chains")
    a2.set_xlabel("carbon number (C1 = carbonyl)")
    a2.set_ylabel("−S_CH (dimensionless)")
    a2.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
