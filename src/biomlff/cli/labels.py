"""Subcommands of the ``labels`` pillar: ``biomlff label``, ``biomlff sample``, ``biomlff fragment``.

Registration uses argparse only; quantum-chemistry engines are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys

from ._common import add_command, csv_ints, pick

LABEL_EPILOG = """\
methods:
  xtb (= gfn2)   GFN2-xTB via tblite: energy, forces, dipole, Mulliken charges (~0.02-0.05 s/frame)
  gfn1           GFN1-xTB via tblite
  dft (= pyscf)  Kohn-Sham DFT via PySCF: energy, analytic forces, dipole, Hirshfeld charges and
                 volume ratios (the SO3LR targets); --functional, --basis, --d4 (seconds-minutes/frame)

Each finished frame is appended to OUTPUT.journal.jsonl; rerunning the same command after an
interruption labels only the missing frames. Frames that fail (SCF not converged, element not in
the basis, charge/multiplicity impossible) are reported and left out; the others are written.

examples:
  biomlff label dft ../shared/datasets/rmd17/rmd17_ethanol_train_01.npz --index 0:10 -o eth_pbe.npz
  biomlff label dft traj.xyz --functional PBE0 --d4 --workers 2 -o traj_pbe0.h5
  biomlff label xtb fragments.h5 -o fragments_xtb.h5 --workers 2
  biomlff label dft big.h5 -o big_pbe.h5 --dask tcp://scheduler:8786   # on a Dask cluster
"""

SAMPLE_EPILOG = """\
Langevin MD (ASE) with a labeller or a biomlff model as the force engine; every --stride-th step is
recorded (step 0 included). Frames are journaled as they come (OUTPUT.journal.jsonl): rerunning
the same command continues from the last recorded frame.

--calc: xtb | gfn1 | dft (options as for 'biomlff label') | so3lr | PATH.npz (a GDML model)

examples:
  biomlff sample ../shared/datasets/md22/md22_Ac-Ala3-NHMe_5frames.xyz --calc xtb \\
      --temperature 500 --timestep 0.5 --steps 5000 --stride 10 -o ala3_xtb.npz
  biomlff label dft ala3_xtb.npz -o ala3_pbe.npz --workers 2       # relabel with DFT
"""

FRAGMENT_EPILOG = """\
Cuts capped clusters (QCell-style) from a large structure: all atoms within --radius Å of the
centre atoms/residues, whole small molecules (waters, ions) and whole residues kept, broken
covalent bonds capped with hydrogens. One fragment per --center / --residue value. The output
(.h5 or .xyz) records the source index of every atom (-1 = cap) and the cut bonds.

examples:
  biomlff fragment protein_h.pdb --residue 12 --residue 40 --radius 4 -o frags.h5
  biomlff fragment complex.xyz --center 0,1,2 --radius 5 -o site.xyz
"""


def _add_method_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("method settings")
    g.add_argument("--functional", default="PBE", help="DFT functional (any PySCF/libxc name; default PBE)")
    g.add_argument("--basis", default="def2-SVP", help="DFT basis set (default def2-SVP)")
    g.add_argument("--grid-level", type=int, default=3, help="DFT grid level 0-9 (default 3)")
    g.add_argument("--no-density-fit", action="store_true", help="DFT without density fitting (slower)")
    g.add_argument("--no-hirshfeld", action="store_true", help="DFT: skip the Hirshfeld analysis")
    g.add_argument("--d4", action="store_true", help="DFT: add D4 dispersion (dftd4)")
    g.add_argument(
        "--no-warm-start",
        action="store_true",
        help="DFT: never start the SCF from the previous frame's density",
    )
    g.add_argument("--conv-tol", type=float, default=None, help="SCF energy convergence (Hartree)")
    g.add_argument("--max-cycle", type=int, default=None, help="SCF iterations before a frame fails")
    g.add_argument("--threads", type=int, default=1, help="threads per labeller (default 1)")
    g.add_argument(
        "--charge", type=int, default=None, help="total charge in e (default: from the file, else 0)"
    )
    g.add_argument(
        "--multiplicity", type=int, default=None, help="spin multiplicity 2S+1 (default: file, else 1)"
    )


def _add_run_options(p: argparse.ArgumentParser, func, input_energy_unit: bool = False) -> None:
    """Output unit, progress bar and the method settings of ``label`` and ``sample``; ``func``
    handles the command."""
    p.add_argument("--energy-unit", default=None, help="unit of written energies (.npz default kcal/mol)")
    if input_energy_unit:
        p.add_argument("--input-energy-unit", default=None, help="energy unit of INPUT if it does not say")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_method_options(p)
    p.set_defaults(func=func)


def _settings(args) -> dict:
    m = args.method if hasattr(args, "method") else args.calc
    m = m.lower()
    s: dict = {"threads": args.threads}
    if m in ("dft", "pyscf"):
        s.update(
            functional=args.functional,
            basis=args.basis,
            grid_level=args.grid_level,
            density_fit=not args.no_density_fit,
            hirshfeld=not args.no_hirshfeld,
            d4=args.d4,
            warm_start=not args.no_warm_start,
        )
        if args.conv_tol is not None:
            s["conv_tol"] = args.conv_tol
        if args.max_cycle is not None:
            s["max_cycle"] = args.max_cycle
    elif m in ("xtb", "gfn2", "gfn2-xtb", "gfn1", "gfn1-xtb"):
        if args.max_cycle is not None:
            s["max_iter"] = args.max_cycle
    return s


def register(sub) -> None:
    """Add this pillar's subcommands to the top-level subparsers (argparse only, no heavy imports)."""
    p = add_command(
        sub,
        "label",
        "label structures with GFN2-xTB or PySCF DFT (resumable, parallel)",
        "Label (or relabel) every frame of INPUT with METHOD and write OUTPUT.",
        LABEL_EPILOG,
    )
    p.add_argument("method", metavar="METHOD", help="xtb | gfn1 | dft")
    p.add_argument("input", metavar="INPUT", help="dataset or structure file (.npz, .xyz, .extxyz, .h5, ...)")
    p.add_argument("-o", "--output", required=True, help="output dataset (.npz sGDML layout, .xyz, .h5)")
    p.add_argument("--index", default=None, help="frames of INPUT to label (e.g. 0:100)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run the frames on a Dask distributed cluster (scheduler address, or 'local:N' for N local "
        "worker processes); needs `pip install distributed`",
    )
    p.add_argument("--retry-failed", action="store_true", help="retry frames that failed in an earlier run")
    _add_run_options(p, _label, input_energy_unit=True)

    p = add_command(
        sub,
        "sample",
        "Langevin MD with a labeller or model, written as an MD22-like dataset",
        "Sample configurations of INPUT (first frame) by Langevin MD.",
        SAMPLE_EPILOG,
    )
    p.add_argument("input", metavar="INPUT", help="start structure (any format ASE reads; first frame)")
    p.add_argument("--calc", default="xtb", help="xtb | gfn1 | dft | so3lr | PATH.npz (default xtb)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--steps", type=int, required=True, help="MD steps")
    p.add_argument("--stride", type=int, default=1, help="record every STRIDE-th step (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (velocities, Langevin noise)")
    p.add_argument("-o", "--output", required=True, help="output dataset (.npz sGDML layout, .xyz, .h5)")
    _add_run_options(p, _sample)

    p = add_command(
        sub,
        "fragment",
        "cut hydrogen-capped clusters around atoms/residues (QCell-style)",
        "Cut capped clusters from a large structure.",
        FRAGMENT_EPILOG,
    )
    p.add_argument("input", metavar="INPUT", help="structure (PDB for residues; any format ASE reads)")
    p.add_argument(
        "--center", action="append", default=[], help="comma list of centre atom indices (0-based)"
    )
    p.add_argument("--residue", action="append", default=[], help="centre residue number or CHAIN:NUMBER")
    p.add_argument("--radius", type=float, default=4.0, help="Å around the centre atoms (default 4)")
    p.add_argument(
        "--max-molecule-size", type=int, default=30, help="molecules up to this size are kept whole"
    )
    p.add_argument("--no-whole-residues", action="store_true", help="do not extend cuts to whole residues")
    p.add_argument("-o", "--output", required=True, help="output (.h5 or .xyz/.extxyz)")
    p.set_defaults(func=_fragment)


def _dask_client(address: str):
    """A Dask distributed client for ``address`` ('local:N' starts N local worker processes)."""
    from ..labels.base import require

    distributed = require("distributed", extra=None)
    if address.startswith("local"):
        n = int(address.split(":", 1)[1]) if ":" in address else 2
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
        client._biomlff_cluster = cluster  # closed with the client in _label
        return client
    return distributed.Client(address)


def _label(args) -> int:
    from ..labels.relabel import label_dataset

    read_kwargs = {"energy_unit": args.input_energy_unit} if args.input_energy_unit else {}
    client = _dask_client(args.dask) if args.dask else None
    try:
        run, written = label_dataset(
            args.input,
            args.output,
            args.method,
            _settings(args),
            index=args.index,
            charge=args.charge,
            multiplicity=args.multiplicity,
            workers=args.workers,
            executor=client.get_executor() if client is not None else None,
            retry_failed=args.retry_failed,
            energy_unit=args.energy_unit,
            progress=not args.no_progress,
            read_kwargs=read_kwargs,
        )
    finally:
        if client is not None:
            client.close()
            if getattr(client, "_biomlff_cluster", None) is not None:
                client._biomlff_cluster.close()
    n = len(run.results) + len(run.errors)
    print(
        f"labelled {len(run.results)}/{n} frames ({len(run.computed)} computed now, "
        f"{n - len(run.computed)} from the journal) in {run.wall_s:.1f} s -> {written}"
    )
    if run.errors:
        print(f"{len(run.errors)} frame(s) failed (left out of the output):", file=sys.stderr)
        for i, m in sorted(run.errors.items()):
            print(f"  frame {i}: {m}", file=sys.stderr)
        return 1
    return 0


def _model_calculator(name: str, charge: int, multiplicity: int):
    """ASE calculator of a biomlff model named on the command line (see :mod:`biomlff.models`)."""
    from ..calculators import calculator

    return calculator(name, charge=float(charge), multiplicity=int(multiplicity))


def _sample(args) -> int:
    from ase.io import read

    from ..labels.base import METHODS, make_labeller
    from ..labels.sampling import labeller_calculator, langevin_sample

    try:
        atoms = read(args.input, index=0)
    except Exception as exc:  # ASE raises many types for unreadable files
        from ..errors import DataError

        raise DataError(f"{args.input}: cannot read a start structure ({exc})") from exc
    charge = args.charge or 0
    mult = args.multiplicity or 1
    if args.calc.lower() in METHODS:
        lab = make_labeller(args.calc, **_settings(args))
        calc = labeller_calculator(lab, charge, mult)
        name = lab.theory
    else:
        calc = _model_calculator(args.calc, charge, mult)
        name = args.calc
    ds = langevin_sample(
        atoms,
        calc,
        args.output,
        charge=charge,
        multiplicity=mult,
        calc_name=name,
        progress=not args.no_progress,
        **pick(
            args,
            "steps",
            "stride",
            "seed",
            "energy_unit",
            temperature_K="temperature",
            timestep_fs="timestep",
            friction_per_fs="friction",
        ),
    )
    print(f"{len(ds)} frames ({name}, {args.temperature} K) -> {args.output}")
    return 0


def _fragment(args) -> int:
    import numpy as np
    from ase.io import read

    from ..data import write_dataset
    from ..errors import ConfigError
    from ..labels.fragments import extract_fragments, fragments_to_dataset, residue_atoms

    atoms = read(args.input, index=0)
    centers = [np.array(csv_ints(c, "--center")) for c in args.center]
    centers += [residue_atoms(atoms, [r]) for r in args.residue]
    if not centers:
        raise ConfigError("give at least one --center or --residue")
    frags = extract_fragments(
        atoms,
        centers,
        args.radius,
        max_molecule_size=args.max_molecule_size,
        whole_residues=not args.no_whole_residues,
        source=str(args.input),
    )
    write_dataset(fragments_to_dataset(frags, name=f"fragments_{args.input}"), args.output)
    for k, f in enumerate(frags):
        extra = f"  WARNING: {f.info['warning']}" if "warning" in f.info else ""
        print(f"fragment {k}: {len(f.atoms)} atoms ({f.info['n_caps']} H caps), charge {f.charge}{extra}")
    print(f"-> {args.output}")
    return 0
