"""Subcommands of the ``analysis`` pillar: ``biomlff analyze OBSERVABLE TRAJ [options] -o OUT``.

Each observable writes ``OUT.csv`` (numbers, units in the header) and ``OUT.png`` (or ``.svg``
with ``--format svg``) and prints a one-line summary. Analyses the data cannot fully support
(:class:`biomlff.analysis.safety.AnalysisWarning`) print ``biomlff: warning: ...`` lines on stderr.
Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import functools
import sys

from ._common import add_command_group, csv_ints

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


def _warnings_to_stderr(func):
    """``func(args)`` with every AnalysisWarning it issues printed as one line
    ``biomlff: warning: ...`` on stderr (after the run; other warnings are shown as usual)."""

    @functools.wraps(func)
    def run(args):
        import warnings

        from ..analysis.safety import AnalysisWarning

        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AnalysisWarning)
                return func(args)
        finally:
            for w in caught:
                if issubclass(w.category, AnalysisWarning):
                    print(f"biomlff: warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    return run


def _observable(obs, name: str, help: str, select_default: str | None, func) -> argparse.ArgumentParser:
    """The parser of one observable with the options all of them share."""
    q = obs.add_parser(name, help=help)
    _common(q, select_default)
    q.set_defaults(func=_warnings_to_stderr(func))
    return q


def register(sub) -> None:
    """Add ``analyze`` and its observables (argparse only, no heavy imports)."""
    _, obs = add_command_group(
        sub,
        "analyze",
        "observables and plots from trajectories (RDF, MSD, spectra, ...)",
        "Compute an observable from a trajectory; writes OUT.csv and OUT.png.",
        "observable",
        metavar="OBSERVABLE",
        status=2,
    )

    q = _observable(
        obs,
        "rdf",
        "radial distribution functions g(r) per element pair (periodic), or distance histograms (--gas)",
        None,
        cmd_rdf,
    )
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
        help="count only pairs in different molecules (see --molecules)",
    )
    q.add_argument(
        "--molecules",
        choices=("bonds", "topology"),
        default="bonds",
        help="with --intermolecular: 'bonds' (default) finds molecules in every frame from covalent "
        "bonds (covalent radii × --bond-scale, each H bonded to its nearest atom; a warning when they "
        "change); 'topology' takes them from --topology (or a PDB trajectory): its bonds, else its residues",
    )
    q.add_argument(
        "--bond-scale",
        type=float,
        default=1.3,
        metavar="S",
        help="bond tolerance for --molecules bonds: d < S·(r_cov,i + r_cov,j) (default 1.3)",
    )

    q = _observable(
        obs, "msd", "mean-squared displacement and Einstein diffusion coefficient", "all", cmd_msd
    )
    q.add_argument(
        "--fit",
        type=float,
        nargs=2,
        default=None,
        metavar=("START", "END"),
        help="fit range of lag times in fs (default 10%%–50%% of the longest lag)",
    )
    q.add_argument("--per-element", action="store_true", help="one curve and D per element of the selection")

    q = _observable(
        obs, "spectrum", "velocity autocorrelation and its power spectrum (cm⁻¹)", "all", cmd_spectrum
    )
    q.add_argument("--mass-weighted", action="store_true", help="weight atoms by their masses")
    q.add_argument("--window", default="hann", help="window over lags (scipy name or 'none')")
    q.add_argument("--max-lag", type=float, default=None, metavar="FS", help="correlation length in fs")
    q.add_argument("--max-wavenumber", type=float, default=4000.0, help="plot up to this many cm⁻¹")
    q.add_argument(
        "--from-positions",
        action="store_true",
        help="finite-difference velocities from positions when the file has none",
    )

    q = _observable(
        obs, "rmsd", "RMSD to a reference after Kabsch superposition, and RMSD(t, t+Δt)", "heavy", cmd_rmsd
    )
    q.add_argument("--reference", default=None, help="reference structure file (same atoms; default frame 0)")
    q.add_argument("--ref-frame", type=int, default=0, help="reference frame when no --reference")
    q.add_argument(
        "--lags",
        default=None,
        help="lags Δt in frames for RMSD(t, t+Δt), e.g. '1,10,100' (default: about 20 log-spaced lags)",
    )
    q.add_argument("--mass-weighted", action="store_true", help="mass-weighted fit and average")

    q = _observable(obs, "rg", "radius of gyration per frame", "all", cmd_rg)
    q.add_argument(
        "--mass-weighted",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mass-weighted (default) or geometric",
    )

    q = _observable(
        obs, "rama", "φ/ψ from connectivity and the Ramachandran free-energy map (kcal/mol)", None, cmd_rama
    )
    q.add_argument("--temperature", type=float, default=300.0, help="K, for F = −kT ln P")
    q.add_argument("--bins", type=int, default=36, help="bins per axis over −180…180° (default 36: 10°)")
    q.add_argument(
        "--residues", default=None, help="residue numbers to pool (0-based, e.g. '1,2'; default all)"
    )

    q = _observable(obs, "dssp", "secondary structure per frame (MDTraj DSSP)", None, cmd_dssp)

    q = _observable(
        obs, "lipids", "area per lipid, bilayer thickness (P–P), S_CH order parameters", None, cmd_lipids
    )
    q.add_argument(
        "--per-leaflet",
        type=int,
        default=None,
        help="lipids per leaflet (default: number of head-group atoms / 2)",
    )
    q.add_argument("--head", default="P", help="head-group selection for thickness (default P)")
    q.add_argument("--bins", type=int, default=100, help="bins of the density profiles")

    q = _observable(
        obs,
        "series",
        "distance/angle/dihedral or stored observable series with cumulative averages",
        None,
        cmd_series,
    )
    q.add_argument("--distance", action="append", default=[], metavar="I,J", help="atom indices (0-based)")
    q.add_argument("--angle", action="append", default=[], metavar="I,J,K")
    q.add_argument("--dihedral", action="append", default=[], metavar="I,J,K,L")
    q.add_argument(
        "--observable",
        action="append",
        default=[],
        metavar="NAME",
        help="per-frame value stored in the file, by its name or an alias: e_pot/potential_energy/"
        "energy, e_kin/kinetic_energy, e_tot/total_energy, temperature/T_K, pressure, volume, ...",
    )


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


def _time_axis(traj):
    """(CSV column name, values, axis label): times in ps when the file has them, else frames."""
    import numpy as np

    t = _times_ps(traj)
    if t is None:
        return "frame", np.arange(traj.n_frames), "frame (index)"
    return "time_ps", t, "time (ps)"


def _time_series(args, traj, columns: dict, panels: dict, comment: str, title: str, what: str):
    """Write per-frame ``columns`` (after the time or frame column) to OUT.csv and plot ``panels``
    ({y label with unit: {legend: values}}, one panel each) against time; returns the two paths.
    A warning (naming ``what``) when there is a single frame."""
    from ..analysis import plots
    from ..analysis.safety import single_frame_message, warn

    warn(single_frame_message(traj.n_frames, what))
    csv, fig = _paths(args)
    tname, xcol, tlabel = _time_axis(traj)
    plots.write_csv(csv, {tname: xcol, **columns}, comment=comment)
    plots.plot_panels(fig, xcol, panels, tlabel, title=title)
    return csv, fig


def _wrote(csv: str, fig: str) -> int:
    print(f"wrote {csv} and {fig}")
    return 0


# --------------------------------------------------------------------------- handlers


def _molecules(args, traj):
    """Molecule ids for --intermolecular: (T, N) from bonds in every frame, or (N,) from the
    topology; prints how many and how they were found."""
    import numpy as np

    from ..errors import ConfigError

    if args.molecules == "topology":
        from ..analysis.molecules import molecules_from_topology

        if traj.topology is None:
            raise ConfigError("--molecules topology needs --topology FILE (or a PDB trajectory)")
        mol, how = molecules_from_topology(traj.topology, traj.n_atoms)
        n = np.unique(mol).size
    else:
        from ..analysis.molecules import assign_molecules

        if args.bond_scale <= 0:
            raise ConfigError(f"--bond-scale must be positive, got {args.bond_scale}")
        found = assign_molecules(traj.numbers, traj.positions, traj.cell, scale=args.bond_scale)
        mol, how = found.ids, found.method
        counts = sorted({int(row.max()) + 1 for row in mol})
        n = counts[0] if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    print(f"intermolecular pairs: {n} molecule{'' if n == 1 else 's'} from {how}")
    return mol


def cmd_rdf(args) -> int:
    import itertools

    import numpy as np
    from ase.data import atomic_numbers, chemical_symbols

    from ..analysis import plots
    from ..analysis.structure import gas_histogram, perpendicular_widths, rdf
    from ..errors import ConfigError, DataError

    if not args.intermolecular and (args.molecules != "bonds" or args.bond_scale != 1.3):
        raise ConfigError("--molecules and --bond-scale apply only with --intermolecular")
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
    mol = _molecules(args, traj) if args.intermolecular else None
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
            res = gas_histogram(traj.positions, ia, ib, r_max=rmax, n_bins=args.bins, molecules=mol)
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
        "P(r) (1/Å)" if args.gas else "g(r) (dimensionless)",
        title=f"{'distance histogram' if args.gas else 'RDF'}"
        f"{' (intermolecular)' if args.intermolecular else ''}, {traj.n_frames} frames",
        hline=None if args.gas else 1.0,
    )
    print("; ".join(summary))
    return _wrote(csv, fig)


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
        f"(fit {f.t_start:g}–{f.t_end:g} fs, {f.n_points} lags, MSD ∝ t^{f.exponent:.2f})"
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
    return _wrote(csv, fig)


def cmd_spectrum(args) -> int:

    from ..analysis import plots
    from ..analysis.dynamics import power_spectrum, spectrum_peaks, velocities_from_positions

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
        numbers=traj.numbers,
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
    peaks = spectrum_peaks(spec, args.max_wavenumber)
    print("peaks at " + ", ".join(f"{w:.0f}" for w in peaks) + f" cm⁻¹ (bin width {spec.bin_width:.2f} cm⁻¹)")
    return _wrote(csv, fig)


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
    csv, fig = _time_series(
        args,
        traj,
        {"rmsd_A": r},
        {"RMSD (Å)": {"": r}},
        comment=f"RMSD of '{args.select}' ({idx.size} atoms) after Kabsch superposition, {traj.source}",
        title=f"RMSD of '{args.select}' to {'reference' if args.reference else f'frame {args.ref_frame}'}",
        what="RMSD",
    )
    print(f"RMSD: mean {r.mean():.3f} Å, final {r[-1]:.3f} Å")
    if traj.n_frames >= 3:
        if args.lags:
            lags = np.array(csv_ints(args.lags, "--lags"))
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
    return _wrote(csv, fig)


def cmd_rg(args) -> int:

    from ..analysis.energetics import cumulative_average
    from ..analysis.structure import radius_of_gyration

    traj = _load(args)
    idx = _select(traj, args.select)
    rg = radius_of_gyration(_whole(traj), traj.masses if args.mass_weighted else None, idx)
    csv, fig = _time_series(
        args,
        traj,
        {"rg_A": rg},
        {"radius of gyration (Å)": {"Rg": rg, "cumulative average": cumulative_average(rg)}},
        comment=f"radius of gyration of '{args.select}' ({idx.size} atoms), {traj.source}",
        title=f"radius of gyration of '{args.select}'",
        what="radius of gyration",
    )
    print(f"Rg: mean {rg.mean():.3f} Å (min {rg.min():.3f}, max {rg.max():.3f})")
    return _wrote(csv, fig)


def cmd_rama(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.peptide import phi_psi, ramachandran_free_energy
    from ..errors import DataError

    traj = _load(args)
    pp = phi_psi(_whole(traj), traj.numbers, cell=None)
    cols = list(range(len(pp.residues)))
    if args.residues:
        want = csv_ints(args.residues, "--residues")
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
    return _wrote(csv, fig)


def cmd_dssp(args) -> int:

    from ..analysis import plots
    from ..analysis.peptide import secondary_structure, ss_fractions

    traj = _load(args)
    ss, residues = secondary_structure(_whole(traj), traj.numbers, topology=traj.topology)
    frac = ss_fractions(ss)
    csv, fig = _paths(args)
    tname, xcol, _ = _time_axis(traj)
    plots.write_csv(
        csv,
        {tname: xcol, **{f"{k}_fraction": v for k, v in frac.items()}},
        comment="DSSP (MDTraj, simplified H/E/C); per-residue strings in OUT_dssp.txt",
    )
    from ..data import atomic_path

    with atomic_path(csv[:-4] + "_dssp.txt") as tmp, open(tmp, "w") as fh:
        for row in ss:
            fh.write("".join(row) + "\n")
    plots.plot_secondary_structure(fig, ss, times_ps=_times_ps(traj), title=f"DSSP, {len(residues)} residues")
    print(f"frame 0: {''.join(ss[0])}; helix fraction mean {frac['helix'].mean():.3f}")
    return _wrote(csv, fig)


def cmd_lipids(args) -> int:
    import numpy as np

    from ..analysis import plots
    from ..analysis.membrane import (
        area_per_lipid,
        bilayer_center_atoms,
        bilayer_thickness,
        chain_order_parameters,
        density_profile,
    )
    from ..analysis.topology import bonds_from_positions, find_acyl_chains

    traj = _load(args)
    cell = traj.require_cell("lipid analysis")
    head = _select(traj, args.head)
    n_leaf = args.per_leaflet if args.per_leaflet else max(head.size // 2, 1)
    apl = area_per_lipid(cell, n_leaf)
    bonds = bonds_from_positions(traj.numbers, traj.positions[0], cell[0])
    chains = find_acyl_chains(traj.numbers, bonds)
    center = bilayer_center_atoms(traj.numbers, head)
    th = bilayer_thickness(traj.positions, cell, head, center_idx=center, n_bins=args.bins)
    s_ch = chain_order_parameters(traj.positions, chains, cell) if chains else {}
    lipid_atoms = np.arange(traj.n_atoms)
    z, rho_e = density_profile(
        traj.positions, cell, lipid_atoms, center, weights=traj.numbers, n_bins=args.bins
    )
    csv, fig = _paths(args)
    tname, xcol, _ = _time_axis(traj)
    plots.write_csv(
        csv,
        {
            tname: xcol,
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
    return _wrote(csv, fig)


def cmd_series(args) -> int:
    import numpy as np

    from ..analysis.energetics import cumulative_average
    from ..analysis.observables import resolve_observable
    from ..analysis.structure import angle_series, dihedral_series, distance_series
    from ..errors import ConfigError

    traj = _load(args)
    cell = traj.cell
    # column name -> (values, quantity for the axis label, unit)
    series: dict[str, tuple[np.ndarray, str, str]] = {}
    for d in args.distance:
        i, j = _ints(d, 2, "distance")
        series[f"d_{i}_{j}_A"] = (distance_series(traj.positions, i, j, cell), "distance", "Å")
    for a in args.angle:
        i, j, k = _ints(a, 3, "angle")
        series[f"angle_{i}_{j}_{k}_deg"] = (angle_series(traj.positions, i, j, k, cell), "angle", "degrees")
    for a in args.dihedral:
        i, j, k, l = _ints(a, 4, "dihedral")
        series[f"dihedral_{i}_{j}_{k}_{l}_deg"] = (
            dihedral_series(traj.positions, i, j, k, l, cell),
            "dihedral",
            "degrees",
        )
    stored = traj.info.get("observables", {})
    for name in args.observable:
        obs = resolve_observable(name, stored, traj.source)
        column = obs.stored + (f"_{_unit_tag(obs.unit)}" if obs.unit else "")
        series[column] = (obs.values, obs.label, obs.unit)
    if not series:
        raise ConfigError("give at least one --distance, --angle, --dihedral or --observable")
    cols = {}
    panels: dict[str, dict] = {}
    for name, (v, quantity, unit) in series.items():
        cols[name] = v
        cols[name + "_cumavg"] = cumulative_average(v)
        # one panel per unit; its label names the quantity when all its curves share one
        same = [q for _, q, u in series.values() if u == unit]
        what = quantity if len(set(same)) == 1 else "value"
        ylabel = f"{what} ({unit or 'unit unknown'})"
        panels.setdefault(ylabel, {})[name] = v
        panels[ylabel][name + " (cumulative avg)"] = cumulative_average(v)
    csv, fig = _time_series(
        args,
        traj,
        cols,
        panels,
        comment=f"time series from {traj.source} with cumulative averages",
        title="time series and cumulative average",
        what="series",
    )
    for name, (v, _, u) in series.items():
        print(f"{name}: mean {v.mean():.4g} {u}, std {v.std():.3g}")
    return _wrote(csv, fig)


def _unit_tag(unit: str) -> str:
    """A unit for a CSV column name: 'eV' -> 'eV', 'eV/Å³' -> 'eV_per_A3', 'Å³' -> 'A3'."""
    return unit.replace("Å", "A").replace("³", "3").replace("/", "_per_").replace(" ", "")
