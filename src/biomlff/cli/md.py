"""Subcommands of the ``md`` pillar: ``biomlff opt``, ``biomlff md nve|nvt|npt|pimd`` and
``biomlff ipi`` (an i-PI client).

Every option can also come from ``--config FILE.yaml`` (same names, ``-`` or ``_``); flags given
on the command line override the file. Heavy modules are imported inside the handlers.
"""

from __future__ import annotations

from ._common import add_command, add_model_options, csv_ints, model_settings

#: options of the command line alone (what to read and write, how to behave on the terminal): their
#: defaults live here; every other default comes from the library (:func:`defaults`)
CLI_DEFAULTS = {
    "model": "so3lr",
    "charge": None,
    "multiplicity": None,
    "free_space": False,
    "config": None,
    "fixed": None,
    "restart_from": None,
    "thermostat": "nhc",
    "relax": False,
    "relax_fmax": 0.1,
    "observables": None,
    "new_velocities": False,
    "hmr": None,
    "pull": None,
    "add_force": None,
    "tether": None,
    "force": False,
    "velocities": None,
    "allow_radicals": False,
    "trpmd": False,
    "bead_traj": True,
    "address": None,
    "max_requests": None,
}

#: option → (library class or function, field or argument, conversion): the dataclasses (and the
#: optimiser's signature) are the only defaults of these options (thesis settings: dt 0.5 fs, 300 K,
#: 1 atm, NHC length 3, τ_T = 100 dt, τ_P = 1000 dt)
_FROM_LIBRARY = {
    "output": ("md.simulation.MDSettings", "output", None),
    "seed": ("md.simulation.MDSettings", "seed", None),
    "skin": ("md.simulation.MDSettings", "skin", None),
    "capacity_multiplier": ("md.simulation.MDSettings", "capacity_multiplier", None),
    "pair_lists": ("md.simulation.MDSettings", "pair_lists", None),
    "steps": ("md.simulation.MDSettings", "steps", None),
    "log_every": ("md.simulation.MDSettings", "log_every", None),
    "traj_every": ("md.simulation.MDSettings", "traj_every", None),
    "checkpoint_every": ("md.simulation.MDSettings", "checkpoint_every", None),
    "write_forces": ("md.simulation.MDSettings", "write_forces", None),
    "progress": ("md.simulation.MDSettings", "progress", None),
    "log_file": ("md.simulation.MDSettings", "log_file", None),
    "checkpoint": ("md.simulation.MDSettings", "checkpoint", None),
    "guard_temperature_factor": ("md.simulation.MDSettings", "guard_temperature_factor", None),
    "guard_max_force": ("md.simulation.MDSettings", "guard_max_force", None),
    "temperature": ("md.integrators.Ensemble", "temperature_K", None),
    "pressure": ("md.integrators.Ensemble", "pressure_eV_A3", "per_atm"),
    "dt": ("md.integrators.Ensemble", "dt_fs", None),
    "friction": ("md.integrators.Ensemble", "friction_per_fs", None),
    "nhc_length": ("md.integrators.Ensemble", "chain_length", None),
    "nhc_steps": ("md.integrators.Ensemble", "chain_steps", None),
    "sy_order": ("md.integrators.Ensemble", "sy_order", None),
    "tau_t": (None, None, None),  # None: Ensemble / PIMD use 100 · dt
    "tau_p": (None, None, None),  # None: Ensemble uses 1000 · dt
    "coupling": ("md.integrators.Ensemble", "coupling", None),
    "remove_com": ("md.integrators.Ensemble", "remove_com", None),
    "beads": ("md.pimd.PIMD", "beads", None),
    "pile_lambda": ("md.pimd.PIMD", "pile_lambda", None),
    "fmax": ("md.minimize.optimize", "fmax", None),
    "max_steps": ("md.minimize.optimize", "max_steps", None),
    "method": ("md.minimize.optimize", "method", None),
    "connect_timeout": ("md.ipi.IPIClient.serve", "connect_timeout", None),
}


def library_default(option: str):
    """The default of a library-backed option, read from the dataclass field or function argument
    that :data:`_FROM_LIBRARY` names (so the CLI holds no default the library lacks)."""
    import dataclasses
    import importlib
    import inspect

    where, name, conv = _FROM_LIBRARY[option]
    if where is None:
        return None
    parts = where.split(".")
    for k in range(len(parts) - 1, 0, -1):  # the longest importable module prefix, then attributes
        try:
            obj = importlib.import_module("biomlff." + ".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        break
    if dataclasses.is_dataclass(obj):
        field = {f.name: f for f in dataclasses.fields(obj)}[name]
        value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    else:
        value = inspect.signature(obj).parameters[name].default
    if conv == "per_atm":
        from .. import units

        value = value / units.atm
    return value


def defaults() -> dict:
    """All defaults of the md/opt/ipi options: :data:`CLI_DEFAULTS`, the library's
    (:func:`library_default`) and every model setting's (the fields of
    :class:`biomlff.settings.ModelSettings`; "auto" is left to its ``resolve``). Imports the md
    pillar: called by the handlers, not at registration."""
    from dataclasses import fields

    from ..settings import ModelSettings

    model = {f.name: None if f.default == "auto" else f.default for f in fields(ModelSettings)}
    return {**CLI_DEFAULTS, **model, **{k: library_default(k) for k in _FROM_LIBRARY}}


def _model_args(p):
    g = add_model_options(p)  # model, charge, multiplicity and every model setting
    g.add_argument(
        "--free-space",
        action="store_true",
        default=None,
        help="ignore any cell in the structure file (gas phase)",
    )
    g.add_argument("--skin", type=float, help="pair-list skin in Å (0.5)")
    g.add_argument("--capacity-multiplier", type=float, help="pair-list head-room factor (1.25)")
    g.add_argument(
        "--pair-lists",
        choices=("auto", "blocked", "jax_md"),
        help="MD pair-list builder: blocked (streaming cell lists, ~70 KB/atom for SO3LR water at 12 Å), "
        "jax_md (JAX-MD Dense lists, ~470 KB/atom), auto (blocked from 2,048 atoms; default)",
    )
    g.add_argument(
        "--allow-radicals",
        action="store_true",
        default=None,
        help="run a structure whose hydrogens look missing (refused otherwise: a heavy-atom-only PDB "
        "entry heats to thousands of K)",
    )
    g.add_argument("--config", help="YAML file with any of these options (flags override it)")
    g.add_argument("--seed", type=int, help="random seed (0)")


def register(sub) -> None:
    """Add ``opt`` and ``md`` to the top-level subparsers (argparse only, no heavy imports)."""
    po = add_command(
        sub,
        "opt",
        "geometry optimisation (L-BFGS or FIRE)",
        "Minimise the energy until max |F| < --fmax (eV/Å): L-BFGS (default; SciPy, continues with FIRE if "
        "its line search stalls) or FIRE (steps of at most 0.2 Å per atom). A run whose energy rises far "
        "above the start or whose atoms fly apart stops with an error; nothing is written then.",
        raw=False,
    )
    po.add_argument("input", help="structure file (any ASE-readable format) or shipped:NAME")
    po.add_argument("--fmax", type=float, help="force convergence criterion max_i |F_i| in eV/Å (0.05)")
    po.add_argument("--max-steps", type=int, help="maximum number of FIRE steps or L-BFGS iterations (1000)")
    po.add_argument("--method", choices=["lbfgs", "fire"], help="minimiser (lbfgs)")
    po.add_argument("--fixed", help="comma-separated 0-based indices of atoms held fixed")
    po.add_argument("--output", "-o", help="optimised structure (default: <input>_opt.xyz)")
    po.add_argument("--force", action="store_true", default=None, help="overwrite an existing --output")
    _model_args(po)
    po.set_defaults(func=_cmd_opt)

    pm = add_command(
        sub,
        "md",
        "molecular dynamics (NVE, NVT, NPT, path-integral PIMD)",
        "Molecular dynamics with any biomlff model. Units: fs, K, atm, Å, eV.",
        epilog="example:\n  biomlff md nvt peptide.xyz --temperature 300 --steps 2000 "
        "--output traj.h5\n  biomlff md nvt peptide.xyz --restart-from traj.chk.npz "
        "--steps 4000 --output traj.h5\n  biomlff md pimd water.xyz --beads 16 --temperature 300 "
        "--steps 2000 --output pimd.h5",
    )
    pm.add_argument("ensemble", help="nve | nvt | npt | pimd (ring-polymer MD, see --beads)")
    pm.add_argument(
        "input",
        help="structure file (any ASE-readable format; cell and pbc from the file), "
        "or shipped:ac_ala3_nhme for the peptide shipped with biomlff",
    )
    g = pm.add_argument_group("dynamics")
    g.add_argument("--temperature", "-T", type=float, help="temperature in K (300)")
    g.add_argument("--pressure", type=float, help="pressure in atm (1, NPT)")
    g.add_argument("--dt", type=float, help="timestep in fs (0.5)")
    g.add_argument("--steps", type=int, help="total number of steps of the run (1000)")
    g.add_argument("--thermostat", choices=["nhc", "langevin"], help="NVT thermostat (nhc)")
    g.add_argument("--friction", type=float, help="Langevin friction in 1/fs (0.01)")
    g.add_argument("--nhc-length", type=int, help="Nosé–Hoover chain length (3)")
    g.add_argument("--nhc-steps", type=int, help="Nosé–Hoover chain sub-steps (2)")
    g.add_argument("--sy-order", type=int, choices=[1, 3, 5, 7], help="Suzuki–Yoshida order (3)")
    g.add_argument("--tau-t", type=float, help="thermostat time constant in fs (100 dt)")
    g.add_argument("--tau-p", type=float, help="barostat time constant in fs (1000 dt)")
    g.add_argument(
        "--coupling",
        choices=["isotropic", "semi-isotropic"],
        help="NPT cell coupling (isotropic; semi-isotropic: xy together, z apart, for membranes)",
    )
    g.add_argument(
        "--relax", action="store_true", default=None, help="pre-optimisation before MD (as biomlff opt)"
    )
    g.add_argument("--relax-fmax", type=float, help="max |F| criterion for --relax in eV/Å (0.1)")
    g.add_argument(
        "--relax-method", dest="method", choices=["lbfgs", "fire"], help="minimiser for --relax (lbfgs)"
    )
    g.add_argument(
        "--velocities",
        choices=["file", "maxwell"],
        help="starting velocities: 'file' (those of the structure file; the default when it has "
        "some, and their temperature is printed) or 'maxwell' (Maxwell-Boltzmann at --temperature)",
    )
    g.add_argument(
        "--new-velocities",
        action="store_true",
        default=None,
        help="same as --velocities maxwell",
    )
    g.add_argument(
        "--guard-temperature-factor",
        type=float,
        help="stop (before writing the step) when the temperature exceeds this factor × max(target, "
        "starting temperature, 300 K) (10; 0 disables)",
    )
    g.add_argument(
        "--guard-max-force",
        type=float,
        help="stop (before writing the step) when a force exceeds this many eV/Å (100; 0 disables)",
    )
    g.add_argument(
        "--no-remove-com",
        dest="remove_com",
        action="store_false",
        default=None,
        help="do not hold the centre-of-mass momentum at zero",
    )
    g = pm.add_argument_group("path integrals (md pimd)")
    g.add_argument("--beads", type=int, help="number of ring-polymer beads P (16)")
    g.add_argument(
        "--trpmd",
        action="store_true",
        default=None,
        help="thermostatted RPMD: no centroid thermostat (dynamics); default PILE-L with the centroid "
        "coupled with time constant --tau-t",
    )
    g.add_argument(
        "--pile-lambda", type=float, help="internal-mode friction γ_k = 2 λ ω_k (1 = critical damping)"
    )
    g.add_argument(
        "--no-bead-traj",
        dest="bead_traj",
        action="store_false",
        default=None,
        help="do not write the bead trajectory <output>.beads.h5",
    )
    g = pm.add_argument_group("steering")
    g.add_argument(
        "--pull",
        action="append",
        metavar="A,B,F_PN",
        help="force F (pN) pushing atoms A and B apart along their line (negative: together)",
    )
    g.add_argument(
        "--add-force", action="append", metavar="ATOM,FX,FY,FZ", help="constant force on ATOM in eV/Å"
    )
    g.add_argument(
        "--tether",
        action="append",
        metavar="ATOM,K",
        help="harmonic tether (K eV/Å²) of ATOM to its starting position",
    )
    g = pm.add_argument_group("output")
    g.add_argument(
        "--output",
        "-o",
        help="trajectory: .h5md (or .h5/.hdf5) → H5MD, .xyz/.extxyz → extended XYZ (default "
        "<input>_<ensemble>.h5md; MDAnalysis recognises H5MD by the .h5md suffix)",
    )
    g.add_argument("--log-every", type=int, help="log interval in steps (100)")
    g.add_argument("--traj-every", type=int, help="trajectory interval in steps (100)")
    g.add_argument("--checkpoint-every", type=int, help="checkpoint interval in steps (1000)")
    g.add_argument("--log-file", help="log table file (default <output>.log)")
    g.add_argument("--checkpoint", help="checkpoint file (default <output>.chk.npz)")
    g.add_argument("--restart-from", help="continue from this checkpoint (appends to the trajectory)")
    g.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="overwrite an existing trajectory, log and checkpoint (without it biomlff refuses, "
        "so that a good run is never lost)",
    )
    g.add_argument(
        "--observables", help="model outputs to store, comma-separated (e.g. charges,hirshfeld_ratios)"
    )
    g.add_argument("--write-forces", action="store_true", default=None, help="store forces in the trajectory")
    g.add_argument("--progress", action="store_true", default=None, help="show a progress bar")
    _model_args(pm)
    pm.set_defaults(func=_cmd_md)
    register_ipi(sub)


def register_ipi(sub) -> None:
    """Add ``ipi``: serve a biomlff model to an i-PI server over its socket protocol."""
    pi = add_command(
        sub,
        "ipi",
        "i-PI client: compute energies/forces for an i-PI server (PIMD, PIGLET, REMD, ...)",
        "Connect to a running i-PI server and answer its force requests with a biomlff "
        "model. i-PI sends only positions and the cell, so --structure gives the elements (and "
        "whether the system is periodic) in i-PI's atom order.",
        epilog="example:\n  i-pi input.xml &\n  biomlff ipi --address unix:water --structure init.xyz "
        "--model so3lr",
    )
    pi.add_argument(
        "--address",
        required=True,
        help="HOST:PORT (TCP, e.g. localhost:31415) or unix:NAME (UNIX socket /tmp/ipi_NAME, as i-PI "
        "names it; a NAME containing '/' is taken as the socket path)",
    )
    pi.add_argument(
        "--structure",
        dest="input",
        required=True,
        help="structure file with the atoms in i-PI's order (elements, cell/pbc; positions unused)",
    )
    pi.add_argument("--max-requests", type=int, help="stop after this many force evaluations")
    pi.add_argument("--connect-timeout", type=float, help="seconds to keep trying to connect (60)")
    _model_args(pi)
    pi.set_defaults(func=_cmd_ipi)


# ---------------------------------------------------------------------------------------------
def resolve_options(args, defaults: dict | None = None) -> dict:
    """Merge defaults (:func:`defaults`) < YAML config (``--config``) < command-line flags into one
    dict (:func:`biomlff.options.merge_options`, the loader ``train`` uses too)."""
    from ..options import merge_options

    def rename(key, value):
        # before 2026-12 'force' was the constant steering force (now --add-force; --force overwrites)
        return "add_force" if key == "force" and not isinstance(value, bool) else key

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "command", "debug")}
    return merge_options(
        globals()["defaults"]() if defaults is None else defaults,
        getattr(args, "config", None),
        flags,
        extra_keys=("ensemble", "input", "steering"),
        rename=rename,
    )


def _read_system(opts):
    """The input structure; ``shipped:NAME`` names a structure shipped with biomlff."""
    from ..checks import check_hydrogens, check_structure
    from ..md.structure import read_structure, shipped_structure

    path = str(opts["input"])
    if path.startswith("shipped:"):
        path = str(shipped_structure(path.split(":", 1)[1]))
    system = read_structure(path, free_space=bool(opts.get("free_space")))
    check_structure(system.atomic_numbers, system.positions, system.cell, name=system.name)
    why = check_hydrogens(
        system.atomic_numbers, system.positions, system.cell, system.name, bool(opts.get("allow_radicals"))
    )
    if why:
        import sys

        print(
            f"biomlff: warning: {system.name}: hydrogens look missing ({why}); --allow-radicals given",
            file=sys.stderr,
        )
    return system


def _build_potential(opts, system):
    """The model for this system: a name of the registry (:mod:`biomlff.models`: so3lr, lj, ...)
    or a model file."""
    from ..models import build_potential

    return _build(opts, system, build_potential)


def _build(opts, system, build_potential):
    return build_potential(
        str(opts["model"]),
        system,
        model_settings(opts),
        charge=opts["charge"],
        multiplicity=opts["multiplicity"],
    )


def _steering(opts, system):
    """The steering terms of ``--pull/--add-force/--tether`` and a config's ``steering`` mapping."""
    from ..md.steering import parse_steering

    return parse_steering(
        opts["pull"], opts["add_force"], opts["tether"], system.positions, opts.get("steering")
    )


def _default_output(opts, suffix: str) -> str:
    """``opts['output']``, or the input's stem with ``suffix`` (e.g. ``_nvt.h5``) beside it."""
    from pathlib import Path

    stem = Path(str(opts["input"]).split(":", 1)[-1])
    return str(opts["output"] or stem.with_name(stem.stem + suffix))


def _starting_velocities(opts, system, temperature: float) -> None:
    """``--velocities file|maxwell`` (``--new-velocities`` = maxwell): keep or drop the structure
    file's velocities, saying what they are, since a file's velocities may be far from the target."""
    import sys

    import numpy as np

    from ..errors import ConfigError

    choice = opts.get("velocities") or ("maxwell" if opts.get("new_velocities") else None)
    if choice not in (None, "file", "maxwell"):
        raise ConfigError(f"--velocities must be 'file' or 'maxwell', got {choice!r}")
    if choice == "maxwell" or opts.get("restart_from"):
        system.velocities = None
        return
    if system.velocities is None:
        if choice == "file":
            raise ConfigError(f"--velocities file: {opts['input']} holds no velocities")
        return
    from ase.units import _amu, _e, kB

    m = np.asarray(system.masses, float)[:, None]
    e_kin = 0.5 * float(np.sum(m * system.velocities**2)) * _amu * 1e10 / _e  # amu Å²/fs² → eV
    t_file = 2.0 * e_kin / (3 * system.n_atoms * kB)
    print(
        f"# starting velocities from {opts['input']}: T = {t_file:.1f} K (target {temperature:g} K); "
        "pass --velocities maxwell to draw new ones",
        file=sys.stderr,
    )


def _crystal_hint(handler):
    """Wrap a command handler: a box-too-small error for a PDB/mmCIF file says that the cell is the
    crystal's unit cell (CRYST1), not a simulation box, and names --free-space."""
    import functools

    @functools.wraps(handler)
    def wrapped(args):
        from ..errors import ModelError

        try:
            return handler(args)
        except ModelError as exc:
            suffix = str(args.input).lower().rsplit(".", 1)[-1]
            crystal = suffix in ("pdb", "ent", "cif", "pdbx") and not args.free_space
            if "box heights" in str(exc) and crystal:
                raise ModelError(
                    f"{exc}. The cell comes from the file's crystal record (CRYST1): the crystal's unit "
                    "cell, not a simulation box; pass --free-space to simulate the molecule in vacuum, or "
                    "solvate it in a larger box"
                ) from None
            raise

    return wrapped


def _refuse_overwrite(opts, *paths) -> None:
    """ConfigError if any output in ``paths`` exists, unless ``--force`` or ``--restart-from`` (which
    continues those files) was given: a failed or mistaken run never destroys a good one."""
    from ..errors import ConfigError

    if opts.get("force") or opts.get("restart_from"):
        return
    taken = [str(p) for p in paths if p is not None and p.exists()]
    if taken:
        raise ConfigError(
            f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; pass --force to "
            "overwrite, --restart-from CHECKPOINT to continue, or choose another --output"
        )


def _phase(system) -> str:
    return "periodic" if system.periodic else "gas phase"


def _dt_and_temperature(opts, allow_zero: bool, what: str = "") -> tuple[float, float]:
    """``--dt`` (fs, > 0) and ``--temperature`` (K, ≥ 0 if ``allow_zero`` else > 0); ``what``
    ends the temperature error (e.g. ' for PIMD')."""
    from ..errors import ConfigError

    dt = float(opts["dt"])
    if not dt > 0:
        raise ConfigError(f"--dt must be positive, got {dt} fs")
    temp = float(opts["temperature"])
    if temp < 0 or (not allow_zero and temp == 0):
        raise ConfigError(f"--temperature must be positive{what}, got {temp} K")
    return dt, temp


def _md_settings(opts, output: str, **extra):
    """:class:`MDSettings` from the output options (``extra``: observables, forces)."""
    from ..md.simulation import MDSettings

    return MDSettings(
        steps=int(opts["steps"]),
        log_every=int(opts["log_every"]),
        traj_every=int(opts["traj_every"]),
        checkpoint_every=int(opts["checkpoint_every"]),
        output=output,
        log_file=opts["log_file"],
        checkpoint=opts["checkpoint"],
        seed=int(opts["seed"]),
        precision=opts["precision"],
        skin=float(opts["skin"]),
        capacity_multiplier=float(opts["capacity_multiplier"]),
        pair_lists=opts["pair_lists"],
        progress=opts["progress"],
        guard_temperature_factor=float(opts["guard_temperature_factor"]),
        guard_max_force=float(opts["guard_max_force"]),
        **extra,
    ).validate()


def _relax(opts, pot, system) -> None:
    """``--relax``: pre-optimisation to ``--relax-fmax`` eV/Å (the ``opt`` minimiser, ``method`` and
    ``max_steps`` from a config file), in place; a blow-up raises ModelError before any MD output."""
    if not opts["relax"]:
        return
    from ..md.minimize import DEFAULT_METHOD, optimize

    res = optimize(
        pot,
        system,
        fmax=float(opts["relax_fmax"]),
        max_steps=int(opts["max_steps"]),
        precision=opts["precision"],
        method=str(opts.get("method") or DEFAULT_METHOD),
        skin=float(opts["skin"]),
        capacity_multiplier=float(opts["capacity_multiplier"]),
    )
    state = "converged" if res.converged else "NOT converged (MD starts from the last structure)"
    print(
        f"# relax ({res.method}) {state} after {res.steps} steps: E = {res.energy:.6f} eV "
        f"(start {res.energy_start:.6f} eV), max|F| = {res.fmax:.5f} eV/Å",
        flush=True,
    )
    system.positions = res.positions


@_crystal_hint
def _cmd_opt(args) -> int:
    from pathlib import Path

    from ..md.minimize import DEFAULT_METHOD, optimize

    opts = resolve_options(args)
    system = _read_system(opts)
    out = Path(_default_output(opts, "_opt.xyz"))
    _refuse_overwrite(opts, out)
    pot = _build_potential(opts, system)
    res = optimize(
        pot,
        system,
        fmax=float(opts["fmax"]),
        max_steps=int(opts["max_steps"]),
        fixed=csv_ints(opts["fixed"], "--fixed"),
        precision=opts["precision"],
        method=str(opts.get("method") or DEFAULT_METHOD),
        skin=float(opts["skin"]),
        capacity_multiplier=float(opts["capacity_multiplier"]),
    )
    from ase.io import write

    from ..fileio import atomic_path

    atoms = system.to_atoms()
    atoms.positions = res.positions
    atoms.info.update(
        {"energy": res.energy, "fmax": res.fmax, "converged": res.converged, "method": res.method}
    )
    with atomic_path(out) as tmp:
        write(str(tmp), atoms, format="extxyz")
    state = "converged" if res.converged else "NOT converged"
    name = {"fire": "FIRE", "lbfgs": "L-BFGS"}.get(res.method, res.method)
    print(
        f"{name} {state} after {res.steps} steps: E = {res.energy:.6f} eV (start {res.energy_start:.6f} eV), "
        f"max|F| = {res.fmax:.5f} eV/Å → {out}"
    )
    return 0 if res.converged else 1


@_crystal_hint
def _cmd_md(args) -> int:
    from .. import units
    from ..errors import ConfigError
    from ..md.integrators import Ensemble
    from ..md.simulation import Simulation

    opts = resolve_options(args)
    ens_name = str(opts["ensemble"]).lower()
    if ens_name == "pimd":
        return _cmd_pimd(opts)
    if ens_name not in ("nve", "nvt", "npt"):
        raise ConfigError(f"unknown ensemble {opts['ensemble']!r}; choose nve, nvt, npt or pimd")
    kind = "langevin" if ens_name == "nvt" and opts["thermostat"] == "langevin" else ens_name
    dt, temp = _dt_and_temperature(opts, allow_zero=kind == "nve")
    ensemble = Ensemble(
        kind=kind,
        dt_fs=dt,
        temperature_K=temp,
        pressure_eV_A3=float(opts["pressure"]) * units.atm,
        tau_t_fs=None if opts["tau_t"] is None else float(opts["tau_t"]),
        tau_p_fs=None if opts["tau_p"] is None else float(opts["tau_p"]),
        chain_length=int(opts["nhc_length"]),
        chain_steps=int(opts["nhc_steps"]),
        sy_order=int(opts["sy_order"]),
        friction_per_fs=float(opts["friction"]),
        remove_com=bool(opts["remove_com"]),
        coupling=str(opts["coupling"]),
    ).validate()
    system = _read_system(opts)
    if opts["hmr"] is not None:
        from ..md.structure import repartition_hydrogen_masses

        system = repartition_hydrogen_masses(system, h_mass=float(opts["hmr"]))
    if kind == "npt" and not system.periodic:
        raise ConfigError(
            f"NPT needs a periodic cell, but {opts['input']} has none (or --free-space was given)"
        )
    obs = tuple(x for x in str(opts["observables"]).split(",") if x) if opts["observables"] else ()
    settings = _md_settings(
        opts,
        _default_output(opts, f"_{ens_name}.h5md"),
        observables=obs,
        write_forces=bool(opts["write_forces"]),
    )
    _refuse_overwrite(opts, *settings.paths())
    steering = _steering(opts, system)
    pot = _build_potential(opts, system)
    _starting_velocities(opts, system, temp)
    if opts["restart_from"]:
        sim = Simulation.resume(opts["restart_from"], pot, ensemble, settings, steering, system=system)
    else:
        _relax(opts, pot, system)
        sim = Simulation(pot, system, ensemble, settings, steering)
    traj, log, chk = settings.paths()
    print(
        f"# {ens_name.upper()}{' (Langevin)' if kind == 'langevin' else ''} of {system.name}: "
        f"{system.n_atoms} atoms, {_phase(system)}, dt = {dt} fs, "
        f"T = {temp} K, model {opts['model']} ({opts['precision']}); trajectory {traj}, log {log}, "
        f"checkpoint {chk}"
    )
    sim.run()
    return 0


def _cmd_pimd(opts) -> int:
    """``biomlff md pimd``: ring-polymer MD (PILE-L or TRPMD) with the same conventions as md nvt."""
    from ..errors import ConfigError
    from ..md.pimd import PIMD, PIMDSimulation

    for key, what in (
        ("pull", "--pull"),
        ("add_force", "--add-force"),
        ("tether", "--tether"),
        ("steering", "steering"),
        ("observables", "--observables"),
        ("hmr", "--hmr (it changes the quantum statistics)"),
    ):
        if opts.get(key):
            raise ConfigError(f"{what} is not supported with md pimd")
    if opts.get("write_forces"):
        raise ConfigError("--write-forces is not supported with md pimd")
    if str(opts["thermostat"]) != "nhc":
        raise ConfigError("--thermostat applies to md nvt; md pimd uses PILE-L (default) or --trpmd")
    dt, temp = _dt_and_temperature(opts, allow_zero=False, what=" for PIMD")
    pimd = PIMD(
        beads=int(opts["beads"]),
        temperature_K=temp,
        dt_fs=dt,
        thermostat="trpmd" if opts["trpmd"] else "pile_l",
        tau_centroid_fs=None if opts["tau_t"] is None else float(opts["tau_t"]),
        pile_lambda=float(opts["pile_lambda"]),
        remove_com=bool(opts["remove_com"]),
    ).validate()
    system = _read_system(opts)
    settings = _md_settings(opts, _default_output(opts, "_pimd.h5md"))
    traj = settings.paths()[0]
    beads = None
    if traj is not None and opts["bead_traj"]:
        beads = traj.with_name(traj.stem + ".beads" + traj.suffix)
    _refuse_overwrite(opts, *settings.paths(), beads)
    pot = _build_potential(opts, system)
    _starting_velocities(opts, system, temp)
    if opts["restart_from"]:
        sim = PIMDSimulation.resume(opts["restart_from"], pot, pimd, settings, system=system)
    else:
        _relax(opts, pot, system)
        sim = PIMDSimulation(pot, system, pimd, settings)
    sim.write_beads = bool(opts["bead_traj"])
    traj, log, chk = settings.paths()
    beads = sim.bead_trajectory_path() if sim.write_beads else None
    print(
        f"# PIMD ({pimd.thermostat.upper()}, {pimd.beads} beads) of {system.name}: {system.n_atoms} atoms, "
        f"{_phase(system)}, dt = {dt} fs, T = {temp} K, model "
        f"{opts['model']} ({opts['precision']}); centroid trajectory {traj}, beads {beads}, log {log}, "
        f"checkpoint {chk}"
    )
    sim.run()
    return 0


def _cmd_ipi(args) -> int:
    """``biomlff ipi``: answer an i-PI server's force requests with a biomlff model."""
    from ..md.ipi import IPIClient

    opts = resolve_options(args)
    system = _read_system(opts)
    pot = _build_potential(opts, system)
    client = IPIClient(
        pot,
        periodic=system.periodic,
        precision=opts["precision"],
        skin=float(opts["skin"]),
        capacity_multiplier=float(opts["capacity_multiplier"]),
    )
    print(
        f"# i-PI client: {system.n_atoms} atoms ({_phase(system)}), model "
        f"{opts['model']} ({opts['precision']}), connecting to {opts['address']}",
        flush=True,
    )
    n = client.serve(
        opts["address"],
        connect_timeout=float(opts["connect_timeout"]),
        max_requests=None if opts["max_requests"] is None else int(opts["max_requests"]),
    )
    print(f"# i-PI client: {n} force evaluations, server closed the connection")
    return 0
