"""One front door for "model × system × settings" (issue 26).

Each finding of the issue gets a test that failed before the change: a model file's own long-range
cutoff reaches ``biomlff md``; the thermostat time constant is the same through the command line and
the library; a slab gets the same clear error in eval, finetune, md and the calculators; a precision
mismatch between a potential and the MD run is refused; the md command holds no defaults of its own
beside the library's. No model is compiled here (the potentials are built, not evaluated, except
for one Lennard-Jones call).
"""

import numpy as np
import pytest

from biomlff.cli.main import main


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


WATER = ([8, 1, 1], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


def _write(path, numbers, positions, **kw):
    from ase import Atoms
    from ase.io import write

    atoms = Atoms(numbers=numbers, positions=positions, **kw)
    write(path, atoms, format="extxyz")
    return path


# --- model settings: one resolution rule ---------------------------------------------------------
def test_model_settings_resolve_is_the_one_rule():
    from biomlff.models import ModelSettings
    from biomlff.potential import ChemicalSystem

    gas = ChemicalSystem(np.array([8, 1, 1]))
    box = ChemicalSystem(np.array([8, 1, 1]), cell=np.eye(3) * 30.0)
    s = ModelSettings()
    assert s.resolve(gas).lr_cutoff is None and s.resolve(box).lr_cutoff == 12.0
    assert (
        s.resolve(gas).filters == "tabulated"
        and ModelSettings(precision="float64").resolve(gas).filters == "exact"
    )
    trained = {"lr_cutoff": 6.0, "trained_lr_cutoff": 6.0, "dispersion_damping": 1.5}
    assert s.resolve(gas, trained).lr_cutoff == 6.0 and s.resolve(box, trained).lr_cutoff == 6.0
    assert s.resolve(gas, trained).dispersion_damping == 1.5
    gas_trained = {"lr_cutoff": 12.0, "trained_lr_cutoff": None}
    assert s.resolve(gas, gas_trained).lr_cutoff is None and s.resolve(box, gas_trained).lr_cutoff == 12.0
    # an explicit value always wins; 'none' is all pairs; None means "not given"
    assert ModelSettings.of(lr_cutoff=8).resolve(gas, trained).lr_cutoff == 8.0
    assert ModelSettings.of(lr_cutoff="none").resolve(box).lr_cutoff is None
    assert ModelSettings.of(lr_cutoff=None).lr_cutoff == "auto"
    from biomlff.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model setting"):
        ModelSettings.of(lr_cutof=3)


def test_md_model_file_uses_its_own_cutoff(so3lr_cache, tmp_path, monkeypatch):
    """Before: ``biomlff md --model FILE`` built the model with all pairs in gas phase (and 12 Å in a
    box) whatever cutoff the model was trained with; the Python API honoured it."""
    monkeypatch.setenv("BIOMLFF_CACHE", str(so3lr_cache))
    from biomlff.cli.main import build_parser
    from biomlff.cli.md import _build_potential, _read_system, resolve_options
    from biomlff.so3lr.modelfile import SO3LRModel

    base = SO3LRModel.published()
    meta = {"inference": {"lr_cutoff": 6.0, "trained_lr_cutoff": 6.0}}
    path = SO3LRModel(base.arch, base.params, base.elements, meta, "so3lr-finetuned").save(tmp_path / "m.npz")
    xyz = _write(tmp_path / "water.xyz", *WATER)
    for extra, want in (([], 6.0), (["--lr-cutoff", "9"], 9.0)):
        args = build_parser().parse_args(["md", "nvt", str(xyz), "--model", str(path), *extra])
        opts = resolve_options(args)
        pot = _build_potential(opts, _read_system(opts))
        assert pot.info["lr_cutoff"] == want and pot.neighbors["lr"].cutoff == want
    # the library paths agree: the model's own potential(), the front door and the calculator
    from biomlff.calculators import SO3LRCalculator
    from biomlff.models import build_potential

    z = np.array(WATER[0])
    assert SO3LRModel.published().potential(z).info["lr_cutoff"] is None
    assert build_potential(str(path), z).info["lr_cutoff"] == 6.0
    from ase import Atoms

    atoms = Atoms(numbers=z, positions=WATER[1])
    calc = SO3LRCalculator(model=str(path))
    assert calc.resolved(atoms).lr_cutoff == 6.0
    assert SO3LRCalculator().resolved(atoms).lr_cutoff is None  # before: 12 Å even in gas phase


# --- thermostat time constant: one default --------------------------------------------------------
def test_tau_t_is_the_same_through_cli_and_library(argon_file, tmp_path, monkeypatch, capsys):
    """Before: the command line used τ_T = 100·dt, the library's Ensemble 50 fs (equal at dt = 0.5 fs
    only)."""
    from biomlff.md.integrators import Ensemble
    from biomlff.md.pimd import PIMD
    from biomlff.md.simulation import Simulation

    seen = {}

    class Stop(Exception):
        pass

    def capture(self, potential, system, ensemble, *args, **kwargs):
        seen["ensemble"] = ensemble
        raise Stop

    monkeypatch.setattr(Simulation, "__init__", capture)
    with pytest.raises(Stop):
        main(["md", "nvt", str(argon_file), "--model", "lj", "--dt", "1", "-o", str(tmp_path / "a.h5md")])
    lib = Ensemble(kind="nvt", dt_fs=1.0)
    assert seen["ensemble"].tau_t_fs == lib.tau_t_fs == 100.0
    assert seen["ensemble"].tau_p_fs == lib.tau_p_fs == 1000.0
    assert PIMD(dt_fs=1.0).tau_centroid_fs == 100.0
    assert Ensemble(dt_fs=1.0, tau_t_fs=30.0).tau_t_fs == 30.0


def test_md_cli_defaults_come_from_the_library():
    """The md command holds no defaults of its own for library settings: each comes from the
    dataclass field (or the optimiser's argument) it feeds."""
    import biomlff.cli.md as cli_md
    from biomlff import units
    from biomlff.md.integrators import Ensemble
    from biomlff.md.minimize import DEFAULT_METHOD
    from biomlff.md.simulation import MDSettings
    from biomlff.models import ModelSettings

    assert not hasattr(cli_md, "DEFAULTS")
    d = cli_md.defaults()
    ens, md = Ensemble(), MDSettings()
    assert d["dt"] == ens.dt_fs and d["temperature"] == ens.temperature_K
    assert d["pressure"] == pytest.approx(ens.pressure_eV_A3 / units.atm)
    assert d["nhc_length"] == ens.chain_length and d["friction"] == ens.friction_per_fs
    assert d["skin"] == md.skin and d["guard_max_force"] == md.guard_max_force and d["steps"] == md.steps
    assert d["precision"] == ModelSettings().precision and d["method"] == DEFAULT_METHOD
    assert d["tau_t"] is None and d["lr_cutoff"] is None and d["dispersion_damping"] is None


# --- periodicity: one rule ---------------------------------------------------------------------------
SLAB = "mixed periodic boundary conditions pbc=[True, True, False]"


@pytest.fixture()
def slab_file(tmp_path):
    from ase import Atoms
    from ase.io import write

    frames = []
    for k in range(4):
        pos = np.array(WATER[1]) + [5.0, 5.0, 5.0 + 0.01 * k]
        a = Atoms(numbers=WATER[0], positions=pos, cell=np.eye(3) * 30.0, pbc=[True, True, False])
        a.info["energy"] = -10.0 - 0.01 * k
        a.arrays["forces"] = np.zeros((3, 3)) + 0.01 * k
        frames.append(a)
    path = tmp_path / "slab.extxyz"
    write(path, frames, format="extxyz")
    return path


def test_slab_gets_the_same_error_everywhere(slab_file, so3lr_cache, tmp_path, monkeypatch, capsys):
    """Before: eval and finetune treated a slab as 3-D periodic (``np.any(pbc)``), md and the
    calculators refused it with two different messages."""
    monkeypatch.setenv("BIOMLFF_CACHE", str(so3lr_cache))
    runs = {
        "eval": ["eval", "--data", slab_file],
        "finetune": ["finetune", slab_file, "-o", tmp_path / "ft.npz", "--max-steps", "1", "--no-progress"],
        "md": ["md", "nvt", slab_file, "--model", "lj", "-o", tmp_path / "slab.h5md"],
        "opt": ["opt", slab_file, "--model", "lj", "-o", tmp_path / "slab_opt.xyz"],
    }
    for name, args in runs.items():
        rc, _, err = run_cli(args, capsys)
        assert rc == 2 and SLAB in err, (name, err)
    from ase.io import read

    from biomlff.calculators import SO3LRCalculator, calculator
    from biomlff.errors import PeriodicityError

    for calc in (SO3LRCalculator(), calculator("lj")):
        atoms = read(slab_file)
        atoms.calc = calc
        with pytest.raises(PeriodicityError, match=SLAB.replace("[", r"\[").replace("]", r"\]")):
            atoms.get_potential_energy()


# --- precision: one owner ----------------------------------------------------------------------------
def test_precision_mismatch_is_refused(argon_file):
    """Before: MDSettings.precision and the model's precision were set independently; a float64 model
    was silently run in float32."""
    from biomlff.errors import ConfigError
    from biomlff.md.integrators import Ensemble
    from biomlff.md.minimize import optimize
    from biomlff.md.simulation import MDSettings, Simulation
    from biomlff.md.structure import read_structure
    from biomlff.models import build_potential
    from biomlff.precision import resolve_precision

    system = read_structure(str(argon_file))
    pot = build_potential("lj", system, precision="float64")
    assert pot.info["precision"] == "float64"
    with pytest.raises(ConfigError, match="precision mismatch: the model was built in float64"):
        Simulation(pot, system, Ensemble(), MDSettings(precision="float32", output=None, steps=1))
    with pytest.raises(ConfigError, match="precision mismatch"):
        optimize(pot, system, precision="float32")
    # not given: the run follows the potential
    assert resolve_precision(None, pot) == "float64" and MDSettings().precision is None


def test_training_resolves_settings_by_the_same_rule():
    """Training and fine-tuning resolve their model settings by ModelSettings.resolve: a model file's
    trained cutoff is kept, free-space data train with all pairs, periodic data with 12 Å, and any
    other setting given in the config (model_settings) reaches the SO3LR the trainer builds."""
    from biomlff.data import Dataset
    from biomlff.so3lr.architecture import PUBLISHED
    from biomlff.training.config import TrainConfig
    from biomlff.training.loss import training_model
    from biomlff.training.trainer import _settings_of, training_settings

    pos = np.array(WATER[1])
    gas = Dataset.from_arrays([8, 1, 1], pos[None])
    box = Dataset.from_arrays([8, 1, 1], pos[None] + 5.0, cell=np.eye(3) * 30.0, pbc=True)
    cfg = TrainConfig(data="x", model_settings={"dispersion_damping": 1.5})
    assert training_settings(_settings_of(cfg), None, gas).lr_cutoff is None
    periodic = training_settings(_settings_of(cfg), None, gas, box)
    assert periodic.lr_cutoff == 12.0 and periodic.dispersion_damping == 1.5
    trained = {"lr_cutoff": 6.0, "trained_lr_cutoff": 6.0}
    assert training_settings(_settings_of(cfg), trained, gas).lr_cutoff == 6.0
    model = training_model(periodic, PUBLISHED)
    assert model.config.dispersion_damping == 1.5 and model.config.filters == "exact"


def test_every_model_setting_reaches_every_entry_point():
    """A model setting is declared once (a ModelSettings field): it is then an option of every command
    that takes a model, a key of md's config file, a keyword of the calculator and of build_potential."""
    from dataclasses import fields

    from biomlff.calculators import SO3LRCalculator
    from biomlff.cli.main import build_parser
    from biomlff.cli.md import defaults
    from biomlff.settings import ModelSettings

    parser = build_parser()
    names = [f.name for f in fields(ModelSettings)]
    ipi = ["ipi", "--address", "localhost:1", "--structure", "x.xyz"]
    for command in (["md", "nvt", "x.xyz"], ["opt", "x.xyz"], ipi, ["eval", "--data", "x"], ["bind", "x"]):
        for name in names:
            flag = "--" + name.replace("_", "-")
            value = {"lr_cutoff": "7", "precision": "float64", "filters": "exact", "electrostatics": "pme"}
            args = parser.parse_args([*command, flag, value.get(name, "3")])
            assert getattr(args, name) is not None, (command, flag)
    assert set(names) <= set(defaults())
    calc = SO3LRCalculator(pme_order=8, ewald_accuracy=1e-5)
    assert calc.settings.pme_order == 8 and calc.settings.ewald_accuracy == 1e-5


# --- one system type -------------------------------------------------------------------------------
def test_one_structure_type_for_md_evaluation_and_binding():
    """MD's structures, SO3LR's batched evaluation and binding energies share one class (before
    issue 26 there were ``md.structure.System`` and ``so3lr.evaluate.System``, with other field
    names); what a model binds to is its positions-free view, ``System.chemical()``."""
    import ast
    from pathlib import Path

    import biomlff
    from biomlff.md import System as md_system
    from biomlff.md.structure import System as md_structure_system
    from biomlff.potential import ChemicalSystem
    from biomlff.so3lr.evaluate import System as evaluate_system
    from biomlff.system import System

    assert md_system is System and md_structure_system is System and evaluate_system is System
    src = Path(biomlff.__file__).parent
    defined = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == "System"
    ]
    assert defined == ["system.py"]

    z, x = np.array([8, 1, 1]), np.array(WATER[1])
    s = System(z, x)  # masses from the elements, no charge or multiplicity given
    assert np.allclose(s.masses, [15.999, 1.008, 1.008], atol=1e-3)
    c = s.chemical()
    assert isinstance(c, ChemicalSystem) and c.charge == 0.0 and c.multiplicity == 1
    assert c.fragments is None and c.cell is None and s.spin == 0.0
    ions = System(z, x, charge=-1.0, multiplicity=2, fragments=(np.zeros(3, int), np.array([-1.0])))
    c = ions.chemical()
    assert c.charge == -1.0 and c.multiplicity == 2 and ions.spin == 1.0
    assert c.fragments[1][0] == -1.0
