"""Subcommands of the ``data`` pillar: ``biomlff data info | convert | split``.

Registration uses argparse only; the data layer (numpy, ASE, h5py) is imported inside the handlers.
"""

from __future__ import annotations

import argparse

from ._common import add_command, add_command_group, pick

FORMATS_HELP = """\
formats (chosen from the extension, or with --format / --out-format):
  .npz            sGDML dataset layout (R, z, E, F; units in r_unit/e_unit) or revised MD17
                  (nuclear_charges, coords, energies, forces, old_*), told apart by their keys
  .xyz .extxyz    extended XYZ (labels from explicit keys, see --energy-key ...)
  .h5 .hdf5       QCell-schema HDF5, one group per structure (lossless; ragged frames)
  ase:NAME        any other format ase.io reads (e.g. --format ase:vasp-out)

units: biomlff works in eV, Å, e. Files that do not state their units need them on the command
line: an sGDML .npz without e_unit needs --energy-unit (MD17/MD22: kcal/mol); extended XYZ is
read as eV/Å unless --energy-unit says otherwise (MD22 .xyz files are kcal/mol).
"""

INFO_EPILOG = (
    """\
examples:
  biomlff data info --example
  biomlff data info ../shared/datasets/rmd17/rmd17_ethanol_train_01.npz --energy-key energies --units kcal/mol
  biomlff data info md22.xyz --energy-key Energy --energy-unit kcal/mol

"""
    + FORMATS_HELP
)

CONVERT_EPILOG = (
    """\
Reads IN with the reading options above, checks it (shapes, NaN/inf, elements, atoms closer
than --min-distance Å) and writes OUT atomically (a failed write leaves no partial file).
Energies are stored in eV inside biomlff; --out-energy-unit chooses the unit written to .npz and
.xyz (e.g. kcal/mol to keep the MD17 convention). QCell HDF5 output is always eV, Å.

examples:
  # MD22 extended XYZ (kcal/mol, energy under the key 'Energy') to an sGDML dataset in eV
  biomlff data convert md22.xyz md22.npz --energy-key Energy --energy-unit kcal/mol
  # revised MD17, revised labels, to extended XYZ in eV/Å
  biomlff data convert rmd17_ethanol_train_01.npz ethanol.extxyz --energy-key energies
  # an sGDML file without unit strings, to the lossless HDF5 layout
  biomlff data convert md17_ethanol.npz ethanol.h5 --energy-unit kcal/mol
  # only some frames (first 100)
  biomlff data convert big.h5 small.xyz --index 0:100

"""
    + FORMATS_HELP
)

SPLIT_EPILOG = """\
A split is a JSON record: the train/valid/test frame indices, the number of frames and the
content hash of the data (structures and labels, independent of file format). Training with
--split checks the hash, so a model always names the exact frames it was trained on.
Splits are disjoint; counts may be integers or fractions (0.8); --n-test defaults to the rest.

examples:
  # 1000 training and 1000 validation frames, the rest test, seeded
  biomlff data split ethanol.npz --energy-unit kcal/mol --n-train 1000 --n-valid 1000 --seed 1 -o split.json
  # explicit indices (comma lists, ranges a:b, or files with one index per line)
  biomlff data split data.h5 --train 0:800 --valid 800:900 --test 900:1000 -o split.json
  # also write the three parts as files: parts_train.h5, parts_valid.h5, parts_test.h5
  biomlff data split data.h5 --n-train 0.8 --n-valid 0.1 -o split.json --write-parts parts.h5
"""


#: extended-XYZ label keys: (option, help)
XYZ_KEY_OPTIONS = (
    ("--charge-key", "XYZ info key of the total charge (default 'charge')"),
    ("--multiplicity-key", "XYZ info key of the spin multiplicity (default 'multiplicity')"),
    ("--dipole-key", "XYZ key of the dipole (default 'dipole')"),
    ("--hirshfeld-key", "XYZ per-atom key of Hirshfeld ratios (default 'hirshfeld_ratios')"),
    ("--partial-charges-key", "XYZ per-atom key of partial charges (default 'partial_charges')"),
)


def _add_read_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    g = p.add_argument_group("reading options (units and label keys of the input)")
    g.add_argument(
        "--format",
        dest="fmt",
        metavar="FMT",
        help="input format: sgdml, rmd17, extxyz, qcell or ase:NAME (default: from extension)",
    )
    g.add_argument(
        "--energy-unit",
        metavar="UNIT",
        help="energy unit of the input when it does not say (eV, kcal/mol, kJ/mol, Hartree)",
    )
    g.add_argument("--length-unit", metavar="UNIT", help="length unit of the input (Ang, Bohr, nm)")
    g.add_argument(
        "--force-unit",
        metavar="UNIT",
        help="force unit of the input if not energy/length (e.g. Hartree/Bohr)",
    )
    g.add_argument(
        "--energy-key",
        metavar="KEY",
        help="key of the energy label: rMD17 'energies' or 'old_energies' (required there); "
        "XYZ info key (default 'energy'; MD22 files use 'Energy')",
    )
    g.add_argument("--forces-key", metavar="KEY", help="key of the forces (XYZ default 'forces')")
    for flag, text in XYZ_KEY_OPTIONS:
        g.add_argument(flag, metavar="KEY", help=text)
    g.add_argument("--index", metavar="SEL", help="read only these frames: N, A:B or A:B:STEP")
    g.add_argument(
        "--min-distance",
        type=float,
        default=0.1,
        metavar="Å",
        help="reject frames with atoms closer than this (default 0.1 Å; 0 disables)",
    )


#: the reading options of _add_read_options, as read_dataset's keywords
READ_OPTIONS = (
    "fmt",
    "energy_unit",
    "length_unit",
    "force_unit",
    "energy_key",
    "forces_key",
    "charge_key",
    "multiplicity_key",
    "dipole_key",
    "hirshfeld_key",
    "partial_charges_key",
    "index",
    "min_distance",
)


def _read_kwargs(args) -> dict:
    return pick(args, *READ_OPTIONS)


def register(sub) -> None:
    """Add ``data info``, ``data convert`` and ``data split`` (argparse only, no heavy imports)."""
    _, dsub = add_command_group(
        sub,
        "data",
        "inspect, convert and split datasets (sGDML .npz, rMD17, extended XYZ, QCell HDF5)",
        "Datasets of structures with energies, forces, charges, dipoles, Hirshfeld ratios.",
        "data_command",
        epilog=FORMATS_HELP,
        raw=True,
    )

    info = add_command(
        dsub,
        "info",
        "counts, elements, atom counts and energy/force statistics of a dataset",
        "Print what a dataset holds: frames, elements, atoms per frame, fields, energy and\n"
        "force statistics in the chosen unit, source units, provenance and content hash.",
        INFO_EPILOG,
    )
    info.add_argument("file", nargs="?", help="dataset file")
    info.add_argument(
        "--example",
        action="store_true",
        help="use the example shipped with biomlff (50 frames of MD17 ethanol)",
    )
    info.add_argument(
        "--units",
        default="eV",
        metavar="UNIT",
        help="energy unit of the printed statistics: eV (default) or kcal/mol (forces per Å)",
    )
    _add_read_options(info)
    info.set_defaults(func=_info)

    conv = add_command(
        dsub,
        "convert",
        "convert a dataset between formats (by extension), checking it on the way",
        "Convert IN to OUT. The formats follow from the extensions; labels are converted\n"
        "to eV/Å on reading and to the output's units on writing.",
        CONVERT_EPILOG,
    )
    conv.add_argument("input", metavar="IN", help="input dataset")
    conv.add_argument("output", metavar="OUT", help="output file (.npz, .xyz/.extxyz, .h5/.hdf5)")
    conv.add_argument("--out-format", metavar="FMT", help="output format: sgdml, extxyz, qcell or ase:NAME")
    conv.add_argument(
        "--out-energy-unit",
        default="eV",
        metavar="UNIT",
        help="energy unit written to .npz/.xyz outputs (default eV; forces in UNIT/Å)",
    )
    conv.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    _add_read_options(conv)
    conv.set_defaults(func=_convert)

    split = add_command(
        dsub,
        "split",
        "make a disjoint train/valid/test split with a record of indices and the data's hash",
        "Split a dataset into disjoint train/valid/test parts, randomly (seeded) or by\n"
        "explicit indices, and save the record as JSON.",
        SPLIT_EPILOG,
    )
    split.add_argument("input", metavar="FILE", help="dataset to split")
    split.add_argument("-o", "--output", required=True, metavar="SPLIT.json", help="where to save the record")
    g = split.add_argument_group("random split")
    g.add_argument("--n-train", metavar="N", help="training frames (integer or fraction)")
    g.add_argument("--n-valid", metavar="N", default="0", help="validation frames (default 0)")
    g.add_argument("--n-test", metavar="N", help="test frames (default: all remaining)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g = split.add_argument_group("explicit split (instead of --n-train)")
    g.add_argument("--train", metavar="IDX", help="training indices: 0,5,7 or 0:800 or a file")
    g.add_argument("--valid", metavar="IDX", help="validation indices")
    g.add_argument("--test", metavar="IDX", help="test indices")
    split.add_argument(
        "--write-parts",
        metavar="PREFIX.EXT",
        help="also write the parts as PREFIX_train.EXT, PREFIX_valid.EXT, PREFIX_test.EXT",
    )
    split.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _add_read_options(split)
    split.set_defaults(func=_split)


# ---------------------------------------------------------------------------- handlers
def _info(args) -> int:
    from pathlib import Path

    from ..data import example_path, read_dataset
    from ..data.stats import Summary, summarize
    from ..errors import ConfigError
    from ..units import energy_factor

    energy_factor(args.units)  # reject unknown units before reading anything
    if args.example:
        if args.file:
            raise ConfigError("give either FILE or --example, not both")
        path = example_path()
    elif args.file:
        path = Path(args.file)
    else:
        raise ConfigError("data info needs a FILE (or --example for the shipped example)")
    kw = _read_kwargs(args)
    fmt = kw["fmt"]
    if fmt is None and path.suffix.lower() in (".h5", ".hdf5") and kw["index"] is None:
        # stream QCell files: statistics without loading all structures
        from ..data.qcell import check_record, iter_qcell, read_qcell_metadata

        summary = Summary(metadata=read_qcell_metadata(path))
        for i, rec in enumerate(iter_qcell(path)):
            check_record(rec, str(path), i, kw["min_distance"])
            summary.add_frame(rec)
    elif kw["energy_key"] is None and fmt in (None, "rmd17") and _is_rmd17(path):
        # inspection only: show both label sets of rMD17 side by side (reading for use needs a choice)
        revised = summarize(read_dataset(path, **{**kw, "energy_key": "energies"}))
        old = summarize(read_dataset(path, **{**kw, "energy_key": "old_energies"}))
        print(revised.format(energy_unit=args.units, source=str(path)))
        print("original MD17 labels (old_energies/old_forces; a different level of theory):")
        for line in old.format(energy_unit=args.units).splitlines():
            if line.startswith(("theory", "energy", "forces")):
                print("  " + line)
        print(
            "(rMD17 holds two label sets: choose one with --energy-key energies|old_energies "
            "when converting or training)"
        )
        return 0
    else:
        summary = summarize(read_dataset(path, **kw))
    print(summary.format(energy_unit=args.units, source=str(path)))
    return 0


def _is_rmd17(path) -> bool:
    from ..data import detect_format

    return path.suffix.lower() == ".npz" and detect_format(path) == "rmd17"


def _check_new(path, force: bool) -> None:
    from pathlib import Path

    from ..errors import ConfigError

    if Path(path).exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")


def _convert(args) -> int:
    from ..data import read_dataset, write_dataset

    _check_new(args.output, args.force)
    ds = read_dataset(args.input, **_read_kwargs(args))
    dropped = write_dataset(ds, args.output, fmt=args.out_format, energy_unit=args.out_energy_unit)
    print(f"wrote {len(ds)} frames ({ds.n_atoms_range[0]}..{ds.n_atoms_range[1]} atoms) to {args.output}")
    if dropped:
        print(f"note: {args.output} cannot hold {', '.join(dropped)} (write .h5 or .xyz to keep them)")
    return 0


def _parse_indices(text: str | None):
    import numpy as np

    from ..errors import ConfigError

    if text is None:
        return np.zeros(0, dtype=np.int64)
    from pathlib import Path

    if Path(text).is_file():
        try:
            return np.loadtxt(text, dtype=np.int64, ndmin=1)
        except ValueError as exc:
            raise ConfigError(f"{text}: expected one integer index per line ({exc})") from None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                out.extend(range(*bits))
            else:
                out.append(int(part))
        except (ValueError, TypeError):
            raise ConfigError(f"cannot read indices {part!r}: use 0,5,7 or 0:800 or a file") from None
    return np.asarray(out, dtype=np.int64)


def _number(text: str | None, name: str):
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"--{name} must be a number, got {text!r}") from None
    return int(v) if v >= 1 or v == 0 else v


def _split(args) -> int:
    from pathlib import Path

    from ..data import make_split, read_dataset, split_from_indices, write_dataset
    from ..errors import ConfigError

    explicit = any(x is not None for x in (args.train, args.valid, args.test))
    if explicit == (args.n_train is not None):
        raise ConfigError("give either --n-train (random split) or --train/--valid/--test (explicit indices)")
    _check_new(args.output, args.force)
    ds = read_dataset(args.input, **_read_kwargs(args))
    if explicit:
        sp = split_from_indices(
            ds,
            _parse_indices(args.train),
            _parse_indices(args.valid),
            _parse_indices(args.test),
            source=str(args.input),
        )
    else:
        sp = make_split(
            ds,
            _number(args.n_train, "n-train"),
            _number(args.n_valid, "n-valid"),
            _number(args.n_test, "n-test"),
            seed=args.seed,
            source=str(args.input),
        )
    parts = {}
    if args.write_parts:
        base = Path(args.write_parts)
        for part in ("train", "valid", "test"):
            out = base.with_name(f"{base.stem}_{part}{base.suffix}")
            _check_new(out, args.force)
            parts[part] = out
    sp.save(args.output)
    for part, out in parts.items():
        if sp.indices(part).size:
            write_dataset(ds.subset(sp.indices(part)), out)
    print(
        f"split of {len(ds)} frames: train {sp.train.size}, valid {sp.valid.size}, test {sp.test.size} "
        f"(content hash {sp.source_hash[:16]}…) -> {args.output}"
    )
    return 0
