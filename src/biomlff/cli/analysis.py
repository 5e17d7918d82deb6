"""Subcommands of the ``analysis`` pillar: ``biomlff analyze OBSERVABLE TRAJ [options] -o OUT``.

Each observable writes ``OUT.csv`` (numbers, units in the header) and ``OUT.png`` (or ``.svg``
with ``--format svg``) and prints a one-line summary. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse

OBSERVABLES = ("rdf", "msd", "spectrum", "rmsd", "rg", "rama", "dssp", "lipids", "series")


def _common(p: argparse.ArgumentParser, select_default: str | None = "all") -> None:
    p.add_argument(
        "trajectory",
        metavar="TRAJ",
        help="trajectory: H5MD (.h5), extxyz, or anything "
        "ASE/MDAnalysis reads (with --topology for XTC/DCD/...)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output prefix: writes OUT.csv and OUT.png"
    )
    p.add_argument(
        "--topology", default=None, help="topology file (PDB, PSF, GRO, ...) for MDAnalysis/MDTraj"
    )
    p.add_argument("--frames", default=":", metavar="START:STOP:STEP", help="frames to use (default all)")
    p.add_argument(
        "--timestep",
        type=float,
        default=None,
        metavar="FS",
        help="time between stored frames in fs (overrides the file's times)",
    )
    p.add_argument("--format", choices=("png", "svg"), default="png", help="figure format")
    if select_default is not None:
        p.add_argument(
            "--select",
            default=select_default,
            help="atoms: 'all', 'heavy', 'backbone', elements 'O,H', ranges '0-9', 'not H' "
            f"(default {select_default!r})",
        )


def register(sub) -> None:
    """Add ``analyze`` and its observables (argparse only, no heavy imports)."""
    p = sub.add_parser(
        "analyze",
        help="observables and plots from trajectories (RDF, MSD, spectra, ...)",
        description="Compute an observable from a trajectory; writes OUT.csv and OUT.png.",
    )
    obs = p.add_subparsers(dest="observable", metavar="OBSERVABLE")

    q = obs.add_parser(
        "rdf",
        help="radial distribution functions g(r) per element pair (periodic), or distance histograms (--gas)",
    )
    _common(q, None)
    q.add_argument("--pairs", default=None, help="element pairs, e.g. 'O-O,O-H' (default: all pairs)")
    q.add_argument(
        "--rmax",
        type=float,
        default=None,
        help="largest distance in Å (default: half the box, or 10 Å with --gas)",
    )
    q.add_argument("--bins", type=int, default=150, help="number of bins")
    q.add_argument("--gas", action="store_true", help="free-space distance histograms P(r) (no cell needed)")
    q.add_argument(
        "--intermolecular",
        action="store_true",
        help="count only pairs in different molecules (molecules from covalent bonds)",
    )
    q.set_defaults(func=cmd_rdf)

    q = obs.add_parser("msd", help="mean-squared displacement and Einstein diffusion coefficient")
    _common(q, "all")
    q.add_argument(
        "--fit",
        type=float,
        nargs=2,
        default=None,
        metavar=("START", "END"),
        help="fit range of lag times in fs (default 10%%–50%% of the longest lag)",
    )
    q.add_argument("--per-element", action="store_true", help="one curve and D per element of the selection")
    q.set_defaults(func=cmd_msd)

    q = obs.add_parser("spectrum", help="velocity autocorrelation and its power spectrum (cm⁻¹)")
    _common(q, "all")
    q.add_argument("--mass-weighted", action="store_true", help="weight atoms by their masses")
    q.add_argument("--window", default="hann", help="window over lags (scipy name or 'none')")
    q.add_argument("--max-lag", type=float, default=None, metavar="FS", help="correlation length in fs")
    q.add_argument("--max-wavenumber", type=float, default=4000.0, help="plot up to this many cm⁻¹")
    q.add_argument(
        "--from-positions",
        action="store_true",
        help="finite-difference velocities from positions when the file has none",
    )
    q.set_defaults(func=cmd_spectrum)

    q = obs.add_parser("rmsd", help="RMSD to a reference after Kabsch superposition, and RMSD(t, t+Δt)")
    _common(q, "heavy")
    q.add_argument("--reference", default=None, help="reference structure file (same atoms; default frame 0)")
    q.add_argument("--ref-frame", type=int, default=0, help="reference frame when no --reference")
    q.add_argument(
        "--lags",
        default=None,
        help="lags Δt in frames for RMSD(t, t+Δt), e.g. '1,10,100' (default: about 20 log-spaced lags)",
    )
    q.add_argument("--mass-weighted", action="store_true", help="mass-weighted fit and average")
    q.set_defaults(func=cmd_rmsd)

    q = obs.add_parser("rg", help="radius of gyration per frame")
    _common(q, "all")
    q.add_argument(
        "--mass-weighted",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mass-weighted (default) or geometric",
    )
    q.set_defaults(func=cmd_rg)

    q = obs.add_parser("rama", help="φ/ψ from connectivity and the Ramachandran free-energy map (kcal/mol)")
    _common(q, None)
    q.add_argument("--temperature", type=float, default=300.0, help="K, for F = −kT ln P")
    q.add_argument("--bins", type=int, default=36, help="bins per axis over −180…180° (default 36: 10°)")
    q.add_argument(
        "--residues", default=None, help="residue numbers to pool (0-based, e.g. '1,2'; default all)"
    )
    q.set_defaults(func=cmd_rama)

    q = obs.add_parser("dssp", help="secondary structure per frame (MDTraj DSSP)")
    _common(q, None)
    q.set_defaults(func=cmd_dssp)

    q = obs.add_parser("lipids", help="area per lipid, bilayer thickness (P–P), S_CH order parameters")
    _common(q, None)
    q.add_argument(
        "--per-leaflet",
        type=int,
        default=None,
        help="lipids per leaflet (default: number of head-group atoms / 2)",
    )
    q.add_argument("--head", default="P", help="head-group selection for thickness (default P)")
    q.add_argument("--bins", type=int, default=100, help="bins of the density profiles")
    q.set_defaults(func=cmd_lipids)

    q = obs.add_parser(
        "series", help="distance/angle/dihedral or stored observable series with cumulative averages"
    )
    _common(q, None)
    q.add_argument("--distance", action="append", default=[], metavar="I,J", help="atom indices (0-based)")
    q.add_argument("--angle", action="append", default=[], metavar="I,J,K")
    q.add_argument("--dihedral", action="append", default=[], metavar="I,J,K,L")
    q.add_argument(
        "--observable",
        action="append",
        default=[],
        metavar="NAME",
        help="per-frame value stored in the file (e.g. energy, potential_energy, temperature)",
    )
    q.set_defaults(func=cmd_series)

    p.set_defaults(func=lambda args: p.print_help() or 2)


# --------------------------------------------------------------------------- helpers


def _load(args):
    from ..analysis.trajectory import read_trajectory

    return read_trajectory(
        args.trajectory, index=args.frames, topology=args.topology, timestep_fs=args.timestep
    )


def _paths(args) -> tuple[str, str]:
    import os

    out = args.output
    root, ext = os.path.splitext(out)
    if ext.lower() in (".png", ".svg", ".csv"):
        out = root
    return out + ".csv", out + "." + args.format


def _select(traj, sel, backbone=None):
    from ..analysis.trajectory import select_atoms

    if sel is not None and "backbone" in sel and backbone is None:
        from ..analysis.topology import backbone_from_positions

        bb = backbone_from_positions(
            traj.numbers, traj.positions[0], None if traj.cell is None else traj.cell[0]
        )
        backbone = bb.atom_indices() if bb.residues else None
    return select_atoms(traj.numbers, sel, backbone=backbone, source=traj.source)


def _whole(traj):
    """Positions with molecules made whole across periodic boundaries (bonds of frame 0)."""
    if traj.cell is None:
        return traj.positions
    from ..analysis.topology import bonds_from_positions, make_whole

    bonds = bonds_from_positions(traj.numbers, traj.positions[0], traj.cell[0])
    return make_whole(traj.positions, traj.cell, bonds)


def _ints(text: str, n: int, what: str) -> list[int]:
    from ..errors import ConfigError

    try:
        vals = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError as exc:
        raise ConfigError(f"--{what} needs {n} comma-separated atom indices, got {text!r}") from exc
    if len(vals) != n:
        raise ConfigError(f"--{what} needs {n} comma-separated atom indices, got {text!r}")
    return vals


def _times_ps(traj):
    import numpy as np

    from .. import units

    return None if traj.times is None else np.asarray(traj.times) / units.ps


# --------------------------------------------------------------------------- handlers


def cmd_rdf(args) -> int:
    import itertools

    import numpy as np
    from ase.data import atomic_numbers, chemical_symbols

    from ..analysis import plots
    from ..analysis.structure import gas_histogram, perpendicular_widths, rdf
    from ..errors import ConfigError, DataError

    traj = _load(args)
    present = sorted(set(traj.numbers.tolist()))
    if args.pairs:
        pairs = []
        for item in args.pairs.split(","):
            parts = item.strip().split("-")
            if len(parts) != 2:
                raise ConfigError(f"--pairs entries look like 'O-H', got {item!r}")
            pairs.append(tuple(p.strip().capitalize() for p in parts))
    else:
        syms = [chemical_symbols[z] for z in present]
        pairs = list(itertools.combinations_with_replacement(syms, 2))
    if not args.gas and traj.cell is None:
        raise DataError(
            f"{traj.source}: a periodic RDF needs a cell but the trajectory has none; "
            "use --gas for free-space distance histograms"
        )
    rmax = args.rmax
    if rmax is None:
        rmax = 10.0 if args.gas else float(0.5 * perpendicular_widths(traj.cell).min())
    mol = None
    if args.intermolecular:
        from ..analysis.topology import bonds_from_positions, molecule_ids

        bonds = bonds_from_positions(
            traj.numbers, traj.positions[0], None if traj.cell is None else traj.cell[0]
        )
        mol = molecule_ids(traj.n_atoms, bonds)
    cols: dict = {}
    curves: dict = {}
    summary = []
    for a, b in pairs:
        for s in (a, b):
            if s not in atomic_numbers:
                raise ConfigError(f"unknown element {s!r} in --pairs")
        ia = np.nonzero(traj.numbers == atomic_numbers[a])[0]
        ib = np.nonzero(traj.numbers == atomic_numbers[b])[0]
        if ia.size == 0 or ib.size == 0:
            raise DataError(
                f"{traj.source}: pair {a}-{b}: element {a if ia.size == 0 else b} is not in the trajectory"
            )
        if args.gas:
            res = gas_histogram(traj.positions, ia, ib, r_max=rmax, n_bins=args.bins)
        else:
            res = rdf(traj.positions, traj.cell, ia, ib, r_max=rmax, n_bins=args.bins, molecules=mol)
        cols.setdefault("r_A", res.r)
        label = f"{a}-{b}"
        cols[("P_per_A_" if args.gas else "g_") + label] = res.g
        curves[label] = res.g
        k = int(np.argmax(res.g))
        summary.append(f"{label}: highest maximum {res.g[k]:.3g} at {res.r[k]:.3f} Å")
    csv, fig = _paths(args)
    plots.write_csv(
        csv,
        cols,
        comment=f"{'distance histogram P(r) 1/Å' if args.gas else 'g(r)'} from "
        f"{traj.source}, {traj.n_frames} frames",
    )
    plots.plot_lines(
        fig,
        cols["r_A"],
        curves,
        "r (Å)",
        "P(r) (1/Å)" if args.gas else "g(r)",
        title=f"{'distance histogram' if args.gas else 'RDF'}"
        f"{' (intermolecular)' if args.intermolecular else ''}, {traj.n_frames} frames",
        hline=None if args.gas else 1.0,
    )
    print("; ".join(summary))
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_msd(args) -> int:
    import numpy as np
    from ase.data import chemical_symbols

    from .. import units
    from ..analysis import plots
    from ..analysis.dynamics import diffusion_coefficient, msd, unwrap

    traj = _load(args)
    dt = traj.timestep()
    idx = _select(traj, args.select)
    x = unwrap(traj.positions, traj.cell)
    groups = {args.select: idx}
    if args.per_element:
        groups = {chemical_symbols[z]: idx[traj.numbers[idx] == z] for z in sorted(set(traj.numbers[idx]))}
    lag = np.arange(traj.n_frames) * dt
    cols = {"lag_fs": lag}
    fits = {}
    for name, g in groups.items():
        m = msd(x, g)
        fit = diffusion_coefficient(lag, m, fit_range=args.fit)
        cols[f"msd_{name}_A2".replace(" ", "_")] = m
        fits[name] = (m, fit)
    csv, fig = _paths(args)
    lines = [
        f"{n}: D = {f.D_m2_s * 1e9:.4g} ± {f.D_err_m2_s * 1e9:.2g} × 10⁻⁹ m²/s "
        f"(fit {f.t_start:g}–{f.t_end:g} fs, {f.n_points} lags)"
        for n, (_, f) in fits.items()
    ]
    plots.write_csv(csv, cols, comment=f"MSD from {traj.source}; " + "; ".join(lines))
    if len(fits) == 1:
        ((name, (m, fit)),) = fits.items()
        plots.plot_msd(fig, lag / units.ps, m, fit, title=f"MSD of '{name}' ({idx.size} atoms)")
    else:
        plots.plot_lines(
            fig,
            lag / units.ps,
            {f"{n} (D = {f.D_m2_s * 1e9:.3g}e-9 m²/s)": m for n, (m, f) in fits.items()},
            "lag time (ps)",
            "MSD (Å²)",
            title="MSD per element",
        )
    print("\n".join(lines))
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_spectrum(args) -> int:

    from ..analysis import plots
    from ..analysis.dynamics import power_spectrum, velocities_from_positions

    traj = _load(args)
    dt = traj.timestep()
    if traj.velocities is None and args.from_positions:
        v = velocities_from_positions(traj.positions, dt, traj.cell)
    else:
        v = traj.require_velocities("a power spectrum")
    idx = _select(traj, args.select)
    spec = power_spectrum(
        v,
        dt,
        masses=traj.masses if args.mass_weighted else None,
        idx=idx,
        window=args.window,
        max_lag_fs=args.max_lag,
    )
    csv, fig = _paths(args)
    plots.write_csv(
        csv,
        {"wavenumber_cm-1": spec.wavenumber, "intensity_arb": spec.intensity},
        comment=f"VACF power spectrum of {traj.source}, dt = {dt:g} fs, window {args.window}, "
        f"{'mass-weighted' if args.mass_weighted else 'unweighted'}",
    )
    keep = spec.wavenumber <= args.max_wavenumber
    plots.plot_lines(
        fig,
        spec.wavenumber[keep],
        {"": spec.intensity[keep]},
        "wavenumber (cm⁻¹)",
        "intensity (arb. units)",
        title=f"power spectrum (VACF, {traj.n_frames} frames)",
    )
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(spec.intensity[keep], prominence=0.05)
    peaks = sorted(peaks, key=lambda k: -spec.intensity[k])[:5]
    print(
        "peaks at "
        + ", ".join(f"{spec.wavenumber[k]:.0f}" for k in sorted(peaks))
        + f" cm⁻¹ (bin width {spec.bin_width:.2f} cm⁻¹)"
    )
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_rmsd(args) -> int:
    import numpy as np

    from .. import units
    from ..analysis import plots
    from ..analysis.structure import rmsd, rmsd_lag
    from ..analysis.trajectory import read_trajectory
    from ..errors import DataError

    traj = _load(args)
    idx = _select(traj, args.select)
    w = traj.masses if args.mass_weighted else None
    if args.reference:
        ref = read_trajectory(args.reference, index="0")
        if ref.n_atoms != traj.n_atoms:
            raise DataError(f"reference {args.reference} has {ref.n_atoms} atoms, trajectory {traj.n_atoms}")
        ref_x = ref.positions[0]
    else:
        if not -traj.n_frames <= args.ref_frame < traj.n_frames:
            raise DataError(f"--ref-frame {args.ref_frame} outside the {traj.n_frames} frames")
        ref_x = traj.positions[args.ref_frame]
    x = _whole(traj)
    if not args.reference:
        ref_x = x[args.ref_frame]
    r = rmsd(x, ref_x, idx=idx, weights=w)
    csv, fig = _paths(args)
    t = _times_ps(traj)
    xcol = t if t is not None else np.arange(traj.n_frames)
    plots.write_csv(
        csv,
        {"time_ps" if t is not None else "frame": xcol, "rmsd_A": r},
        comment=f"RMSD of '{args.select}' ({idx.size} atoms) after Kabsch superposition, {traj.source}",
    )
    plots.plot_lines(
        fig,
        xcol,
        {"": r},
        "time (ps)" if t is not None else "frame",
        "RMSD (Å)",
        title=f"RMSD of '{args.select}' to {'reference' if args.reference else f'frame {args.ref_frame}'}",
    )
    print(f"RMSD: mean {r.mean():.3f} Å, final {r[-1]:.3f} Å")
    if traj.n_frames >= 3:
        if args.lags:
            lags = np.array([int(v) for v in args.lags.split(",")])
        else:
            lags = np.unique(np.geomspace(1, traj.n_frames - 1, 20).astype(int))
        mean, std = rmsd_lag(x, lags, idx=idx, weights=w)
        root = csv[:-4] + "_lag"
        dt = traj.timestep() if traj.times is not None else None
        lag_x = lags * dt / units.ps if dt else lags
        plots.write_csv(
            root + ".csv",
            {"lag_ps" if dt else "lag_frames": lag_x, "rmsd_mean_A": mean, "rmsd_std_A": std},
            comment="RMSD(t, t+Δt) averaged over t",
        )
        plots.plot_lines(
            root + "." + args.format,
            lag_x,
            {"": mean},
            "Δt (ps)" if dt else "Δt (frames)",
            "⟨RMSD(t, t+Δt)⟩ (Å)",
            title="RMSD(t, t+Δt) averaged over t",
            marker="o",
            logx=True,
        )
        print(f"wrote {root}.csv and {root}.{args.format}")
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_rg(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.energetics import cumulative_average
    from ..analysis.structure import radius_of_gyration

    traj = _load(args)
    idx = _select(traj, args.select)
    rg = radius_of_gyration(_whole(traj), traj.masses if args.mass_weighted else None, idx)
    csv, fig = _paths(args)
    t = _times_ps(traj)
    xcol = t if t is not None else np.arange(traj.n_frames)
    plots.write_csv(
        csv,
        {"time_ps" if t is not None else "frame": xcol, "rg_A": rg},
        comment=f"radius of gyration of '{args.select}' ({idx.size} atoms), {traj.source}",
    )
    plots.plot_lines(
        fig,
        xcol,
        {"Rg": rg, "cumulative average": cumulative_average(rg)},
        "time (ps)" if t is not None else "frame",
        "radius of gyration (Å)",
        title=f"radius of gyration of '{args.select}'",
    )
    print(f"Rg: mean {rg.mean():.3f} Å (min {rg.min():.3f}, max {rg.max():.3f})")
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_rama(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.peptide import phi_psi, ramachandran_free_energy
    from ..errors import DataError

    traj = _load(args)
    pp = phi_psi(_whole(traj), traj.numbers, cell=None)
    cols = list(range(len(pp.residues)))
    if args.residues:
        want = [int(v) for v in args.residues.split(",")]
        missing = [r for r in want if r not in pp.residues]
        if missing:
            raise DataError(f"residues {missing} have no φ/ψ; residues with both: {pp.residues}")
        cols = [pp.residues.index(r) for r in want]
    phi, psi = pp.phi[:, cols], pp.psi[:, cols]
    fmap = ramachandran_free_energy(phi, psi, temperature=args.temperature, bins=args.bins)
    csv, fig = _paths(args)
    table = {
        "frame": np.repeat(np.arange(traj.n_frames), len(cols)),
        "residue": np.tile(np.array(pp.residues)[cols], traj.n_frames),
        "phi_deg": phi.reshape(-1),
        "psi_deg": psi.reshape(-1),
    }
    plots.write_csv(csv, table, comment=f"backbone dihedrals from connectivity, {traj.source}")
    centres = 0.5 * (fmap.edges[1:] + fmap.edges[:-1])
    gphi, gpsi = np.meshgrid(centres, centres, indexing="ij")
    plots.write_csv(
        csv[:-4] + "_free_energy.csv",
        {
            "phi_deg": gphi.reshape(-1),
            "psi_deg": gpsi.reshape(-1),
            "F_kcal_mol": fmap.free_energy.reshape(-1),
        },
        comment=f"F = -kT ln P(phi, psi), T = {args.temperature} K; NaN = no samples",
    )
    plots.plot_ramachandran(
        fig,
        fmap,
        phi,
        psi,
        title=f"φ/ψ free energy: {len(cols)} residue(s), {traj.n_frames} frames, {args.temperature:g} K",
    )
    print(
        f"{len(pp.residues)} residue(s) with φ/ψ: {pp.residues}; frame 0: "
        + ", ".join(f"({a:.1f}°, {b:.1f}°)" for a, b in zip(pp.phi[0], pp.psi[0], strict=True))
    )
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_dssp(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.peptide import secondary_structure, ss_fractions

    traj = _load(args)
    ss, residues = secondary_structure(_whole(traj), traj.numbers, topology=traj.topology)
    frac = ss_fractions(ss)
    csv, fig = _paths(args)
    t = _times_ps(traj)
    xcol = t if t is not None else np.arange(traj.n_frames)
    plots.write_csv(
        csv,
        {"time_ps" if t is not None else "frame": xcol, **{f"{k}_fraction": v for k, v in frac.items()}},
        comment="DSSP (MDTraj, simplified H/E/C); per-residue strings in OUT_dssp.txt",
    )
    with open(csv[:-4] + "_dssp.txt", "w") as fh:
        for row in ss:
            fh.write("".join(row) + "\n")
    plots.plot_secondary_structure(fig, ss, times_ps=t, title=f"DSSP, {len(residues)} residues")
    print(f"frame 0: {''.join(ss[0])}; helix fraction mean {frac['helix'].mean():.3f}")
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_lipids(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.membrane import area_per_lipid, bilayer_thickness, chain_order_parameters, density_profile
    from ..analysis.topology import bonds_from_positions, find_acyl_chains

    traj = _load(args)
    cell = traj.require_cell("lipid analysis")
    head = _select(traj, args.head)
    n_leaf = args.per_leaflet if args.per_leaflet else max(head.size // 2, 1)
    apl = area_per_lipid(cell, n_leaf)
    bonds = bonds_from_positions(traj.numbers, traj.positions[0], cell[0])
    chains = find_acyl_chains(traj.numbers, bonds)
    # bilayer centre: periodic mean height of all carbons (lipid tails dominate; water has none)
    tails = np.nonzero(traj.numbers == 6)[0]
    center = tails if tails.size else head
    th = bilayer_thickness(traj.positions, cell, head, center_idx=center, n_bins=args.bins)
    s_ch = chain_order_parameters(traj.positions, chains, cell) if chains else {}
    lipid_atoms = np.arange(traj.n_atoms)
    z, rho_e = density_profile(
        traj.positions, cell, lipid_atoms, center, weights=traj.numbers, n_bins=args.bins
    )
    csv, fig = _paths(args)
    t = _times_ps(traj)
    xcol = t if t is not None else np.arange(traj.n_frames)
    plots.write_csv(
        csv,
        {
            "time_ps" if t is not None else "frame": xcol,
            "area_per_lipid_A2": apl,
            "thickness_PP_A": th.per_frame,
        },
        comment=f"{n_leaf} lipids per leaflet; thickness from profile peaks {th.from_profile:.3f} Å",
    )
    plots.write_csv(
        csv[:-4] + "_profile.csv", {"z_A": z, "electron_density_e_A3": rho_e, "head_density_A3": th.profile}
    )
    if s_ch:
        n_max = max(s_ch)
        table = {"carbon": np.arange(1, n_max + 1)}
        for n, s in s_ch.items():
            table[f"S_CH_{n}C"] = np.concatenate([s, np.full(n_max - len(s), np.nan)])
        plots.write_csv(
            csv[:-4] + "_scd.csv", table, comment="C-H order parameters per carbon (C1 = carbonyl)"
        )
    scale = th.profile.max() / max(rho_e.max(), 1e-12)
    plots.plot_profile_and_order(
        fig,
        z,
        {"electron density (scaled)": rho_e * scale, f"'{args.head}' number density": th.profile},
        s_ch,
        title=f"area per lipid {apl.mean():.1f} Å², D_PP {th.per_frame.mean():.1f} Å",
    )
    print(
        f"area per lipid {apl.mean():.2f} Å² ({n_leaf} per leaflet); "
        f"thickness D_PP {th.per_frame.mean():.2f} Å (profile peaks {th.from_profile:.2f} Å); "
        f"{len(chains)} acyl chains"
    )
    print(f"wrote {csv} and {fig}")
    return 0


def cmd_series(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.energetics import cumulative_average
    from ..analysis.structure import angle_series, dihedral_series, distance_series
    from ..errors import ConfigError, DataError

    traj = _load(args)
    cell = traj.cell
    series: dict[str, tuple[np.ndarray, str]] = {}
    for d in args.distance:
        i, j = _ints(d, 2, "distance")
        series[f"d_{i}_{j}_A"] = (distance_series(traj.positions, i, j, cell), "Å")
    for a in args.angle:
        i, j, k = _ints(a, 3, "angle")
        series[f"angle_{i}_{j}_{k}_deg"] = (angle_series(traj.positions, i, j, k, cell), "degrees")
    for a in args.dihedral:
        i, j, k, l = _ints(a, 4, "dihedral")
        series[f"dihedral_{i}_{j}_{k}_{l}_deg"] = (
            dihedral_series(traj.positions, i, j, k, l, cell),
            "degrees",
        )
    stored = traj.info.get("observables", {})
    for name in args.observable:
        if name not in stored:
            raise DataError(
                f"{traj.source}: no per-frame observable {name!r}; stored: {sorted(stored) or 'none'}"
            )
        series[name] = (stored[name], "eV" if "energy" in name else "K" if "temp" in name else "")
    if not series:
        raise ConfigError("give at least one --distance, --angle, --dihedral or --observable")
    t = _times_ps(traj)
    xcol = t if t is not None else np.arange(traj.n_frames)
    cols = {"time_ps" if t is not None else "frame": xcol}
    for name, (v, _) in series.items():
        cols[name] = v
        cols[name + "_cumavg"] = cumulative_average(v)
    csv, fig = _paths(args)
    plots.write_csv(csv, cols, comment=f"time series from {traj.source} with cumulative averages")
    units_used = {u for _, u in series.values()}
    ylabel = "value" if len(units_used) != 1 else f"value ({units_used.pop() or 'a.u.'})"
    if len(series) == 1:
        ((only, (_, unit)),) = series.items()
        ylabel = f"{only.replace('_', ' ')} ({unit or 'a.u.'})" if unit else only.replace("_", " ")
    curves = {}
    for name, (v, _) in series.items():
        curves[name] = v
        curves[name + " (cumulative avg)"] = cumulative_average(v)
    plots.plot_lines(
        fig,
        xcol,
        curves,
        "time (ps)" if t is not None else "frame",
        ylabel,
        title="time series and cumulative average",
    )
    for name, (v, u) in series.items():
        print(f"{name}: mean {v.mean():.4g} {u}, std {v.std():.3g}")
    print(f"wrote {csv} and {fig}")
    return 0
