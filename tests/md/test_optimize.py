"""Geometry optimisation (biomlff.md.minimize, ``biomlff opt``, ``md --relax``): FIRE against ASE's
FIRE, L-BFGS, the blow-up guards of issue 25 (defect 1), and the ``from biomlff.md import optimize``
import (defect 9)."""

import subprocess
import sys

import numpy as np
import pytest

from biomlff.md import System
from biomlff.md.testing import lennard_jones, lj_cluster

AR_MASS = 39.948
R_MIN = 2 ** (1 / 6) * 3.40  # Lennard-Jones minimum of biomlff.md.testing's argon, Å


@pytest.fixture(scope="module")
def lj_pot():
    """One Lennard-Jones potential object for the LJ13 tests: the optimiser's compiled program is
    cached per potential object, so they share one compilation."""
    return lennard_jones(np.full(13, 18), cutoff=None)


def _lj13(jitter=0.3, seed=4):
    pos = lj_cluster(13, jitter=jitter, seed=seed)
    z = np.full(13, 18)
    return System(z, pos, np.full(13, AR_MASS))


def _ase_bonds(numbers, positions, mult=1.2) -> set:
    """Covalent bonds from ASE's natural cutoffs (covalent radii × mult): an independent bond list."""
    from ase import Atoms
    from ase.neighborlist import natural_cutoffs, neighbor_list

    atoms = Atoms(numbers=numbers, positions=positions)
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=mult))
    return {(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True) if a < b}


# --- defect 9: the documented import ------------------------------------------------------------------
def test_from_biomlff_md_import_optimize_is_the_function():
    """In a fresh interpreter, ``from biomlff.md import optimize`` gives the function, also after the
    module that defines it was imported and when imported twice (it gave the module before)."""
    code = (
        "import types\n"
        "from biomlff.md import optimize\n"
        "assert isinstance(optimize, types.FunctionType), type(optimize)\n"
        "import biomlff.md.minimize\n"
        "from biomlff.md import optimize as again\n"
        "from biomlff.md import OptResult\n"
        "assert again is optimize and callable(again) and isinstance(OptResult, type)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --- FIRE and L-BFGS on Lennard-Jones ----------------------------------------------------------------
def test_fire_equals_ase_fire_step_by_step(lj_pot):
    """Same algorithm and parameters as ASE's FIRE (dt 0.1, dt_max 1, N_min 5, ...): where the step cap
    does not act, the path is ASE's to rounding (same step count, positions to 1e-10 Å)."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.optimize import FIRE

    from biomlff.md import optimize

    pot, sysm = lj_pot, _lj13()
    atoms = Atoms(numbers=sysm.atomic_numbers, positions=sysm.positions)
    atoms.calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=1e3, smooth=False)
    ase_opt = FIRE(atoms, logfile=None)
    ase_opt.run(fmax=1e-3, steps=3000)
    res = optimize(pot, sysm, fmax=1e-3, max_steps=3000, precision="float64", method="fire", echo=False)
    assert res.converged and res.method == "fire"
    assert res.steps == ase_opt.nsteps
    assert np.abs(res.positions - atoms.positions).max() < 1e-10
    assert res.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-12)


def test_fire_step_is_capped_per_atom():
    """The step dt·v is scaled as a whole so that no atom moves more than max_step Å."""
    import jax.numpy as jnp

    from biomlff.md.minimize import FireParams, fire_move

    F = jnp.array([[10.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    st = {"F": F, "V": jnp.zeros_like(F), "dt": 1.0, "alpha": 0.1, "n_pos": 0}
    names = ("dt_max", "max_step", "n_min", "f_inc", "f_dec", "alpha_start", "f_alpha")
    p = {k: getattr(FireParams(), k) for k in names}
    dR, V, dt, a, n_pos = fire_move(st, p)
    assert np.allclose(dR, 0.2 * np.asarray(F) / 10.0)  # the largest move is 0.2 Å, direction kept
    assert np.allclose(V, np.asarray(F))  # the velocity is not capped (as ASE)


@pytest.mark.parametrize("method", ["fire", "lbfgs"])
def test_optimiser_reaches_fmax_with_fixed_atoms(lj_pot, method):
    from biomlff.md import optimize
    from biomlff.md.testing import harmonic_tether
    from biomlff.neighbors import build_pairs
    from biomlff.potential import energy_and_forces

    pot, sysm = lj_pot, _lj13()
    pos = sysm.positions
    res = optimize(
        pot, sysm, fmax=1e-3, max_steps=3000, fixed=[3], precision="float64", method=method, echo=False
    )
    assert res.converged and res.method == method
    assert np.array_equal(res.positions[3], pos[3])
    assert res.energy < res.energy_start
    # independent check: host pair list + autodiff forces on the optimised structure
    import jax

    with jax.enable_x64(True):
        pairs = {"lj": build_pairs(res.positions, None, half=True)}
        e, f = energy_and_forces(pot)(res.positions, pairs, None)
    f = np.array(f)
    f[3] = 0.0
    assert np.max(np.linalg.norm(f, axis=1)) < 1e-3
    assert float(e) == pytest.approx(res.energy, abs=1e-9)
    # a harmonic tether has its minimum at the anchor
    ref = pos + 0.3
    res2 = optimize(
        harmonic_tether(sysm.atomic_numbers, ref, k=2.0),
        sysm,
        fmax=1e-5,
        max_steps=3000,
        precision="float64",
        method=method,
        echo=False,
    )
    assert np.allclose(res2.positions, ref, atol=1e-5)


@pytest.mark.parametrize("method", ["fire", "lbfgs"])
def test_step_limit_reports_not_converged(lj_pot, method):
    from biomlff.md import optimize

    pot, sysm = lj_pot, _lj13()
    res = optimize(pot, sysm, fmax=1e-6, max_steps=20, precision="float64", method=method, echo=False)
    assert not res.converged and res.steps == 20


# --- the blow-up guards (issue 25, defect 1) -----------------------------------------------------------
def test_exploding_fire_is_never_reported_converged(lj_pot, tmp_path):
    """The old failure: FIRE without a step cap and a huge dt throws the atoms apart, where the force
    vanishes, and reported "converged" at an energy above the start. Now: an error, not convergence;
    with the default cap of 0.2 Å per atom the same dt converges to the minimum."""
    from ase.io import read

    from biomlff.errors import ModelError
    from biomlff.md import optimize

    z = np.full(2, 18)
    dimer = System(z, np.array([[0.0, 0.0, 0.0], [0.95 * R_MIN, 0.0, 0.0]]), np.full(2, AR_MASS))
    pot = lennard_jones(z, cutoff=None)
    kw = dict(fmax=1e-3, precision="float64", method="fire", dt_start=50.0, dt_max=50.0, echo=False)
    # no cap, no displacement limit: flung 85 Å apart, zero force, E = 0 > E0 = -0.009 eV
    with pytest.raises(ModelError, match="above the start"):
        optimize(pot, dimer, max_step=1e3, max_displacement=1e6, **kw)
    # no cap: the displacement guard stops it at the first step; the trajectory holds only the start
    traj = tmp_path / "blown.xyz"
    with pytest.raises(ModelError, match="blew up at step 1"):
        optimize(pot, dimer, max_step=1e3, trajectory=str(traj), **kw)
    assert [a.info["step"] for a in read(traj, index=":")] == [0]
    # LJ13 with dt 10 and no cap: the energy rises far above the start at once
    with pytest.raises(ModelError, match="blew up"):
        optimize(lj_pot, _lj13(jitter=0.05), max_step=1e3, **dict(kw, dt_start=10.0, dt_max=10.0))
    # the default cap makes the same huge dt safe
    res = optimize(pot, dimer, **kw)
    assert res.converged and res.energy == pytest.approx(-0.0104, abs=1e-5)  # ε
    d = np.linalg.norm(res.positions[1] - res.positions[0])
    assert d == pytest.approx(R_MIN, abs=0.02)


def test_opt_cli_methods_and_bad_method(tmp_path, capsys):
    """``biomlff opt --method fire|lbfgs`` (Lennard-Jones model): both converge and write the structure;
    an unknown method is refused before anything is written."""
    from ase.io import read

    from biomlff.cli.main import main

    xyz = tmp_path / "lj13.xyz"
    _lj13().to_atoms().write(xyz)
    for method in ("fire", "lbfgs"):
        out = tmp_path / f"opt_{method}.xyz"
        rc = main(["opt", str(xyz), "--model", "lj", "--method", method, "--fmax", "0.001", "-o", str(out)])
        assert rc == 0
        atoms = read(out)
        assert atoms.info["method"] == method and atoms.info["converged"]
        assert atoms.get_potential_energy() < -0.4
    assert "L-BFGS converged" in capsys.readouterr().out
    try:
        rc = main(["opt", str(xyz), "--model", "lj", "--method", "bfgs", "-o", str(tmp_path / "x.xyz")])
    except SystemExit as exc:  # argparse's error for a bad choice
        rc = exc.code
    assert rc == 2
    assert not (tmp_path / "x.xyz").exists()


# --- SO3LR: the shipped peptide against ASE's optimisers, the solvated peptide through md --relax -----
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_peptide_minimum_agrees_with_ase(params, precision):
    """Ac-Ala3-NHMe (shipped) with SO3LR: FIRE and L-BFGS reach max|F| < 0.05 eV/Å (checked with the
    ASE calculator) at energies within 0.01 eV of ASE's FIRE and LBFGS minima on biomlff's
    SO3LRCalculator, without changing a bond (the old FIRE tore it apart: +134 eV)."""
    from ase.io import read
    from ase.optimize import FIRE, LBFGS

    from biomlff.calculators import SO3LRCalculator
    from biomlff.md import optimize, read_structure, shipped_structure
    from biomlff.so3lr import so3lr_potential

    path = shipped_structure("ac_ala3_nhme")
    calc = SO3LRCalculator(lr_cutoff=None, precision=precision, params=params)
    ref = {}
    for opt_cls in (FIRE, LBFGS):
        atoms = read(path)
        atoms.calc = calc
        opt_cls(atoms, logfile=None).run(fmax=0.05, steps=500)
        ref[opt_cls.__name__] = atoms.get_potential_energy()
    sysm = read_structure(path)
    pot = so3lr_potential(sysm.atomic_numbers, lr_cutoff=None, precision=precision, params=params)
    bonds0 = _ase_bonds(sysm.atomic_numbers, sysm.positions)
    for method in ("fire", "lbfgs"):
        res = optimize(pot, sysm, fmax=0.05, precision=precision, method=method, echo=False)
        assert res.converged and res.method == method
        atoms = read(path)
        atoms.positions = res.positions
        atoms.calc = calc
        e = atoms.get_potential_energy()
        assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.05
        assert e == pytest.approx(res.energy, abs=2e-3 if precision == "float32" else 1e-6)
        for name, e_ref in ref.items():
            assert abs(e - e_ref) < 0.01, (method, name, e, e_ref)
        assert _ase_bonds(sysm.atomic_numbers, res.positions) == bonds0
        assert not res.bonds_broken and not res.bonds_formed


@pytest.mark.slow
def test_md_relax_of_solvated_peptide_keeps_bonds(tmp_path, capsys):
    """``biomlff md nvt shipped:ac_ala3_nhme_water --relax`` (the peptide in a droplet of 30 waters,
    built by tools/build_solvated_peptide.py, unrelaxed): the relaxation converges below the energy of
    the start, and no covalent bond (covalent radii × 1.2 at the start) is broken or formed; MD then
    runs from the relaxed structure."""
    from ase.io import read

    from biomlff.cli.main import main
    from biomlff.md import read_structure, shipped_structure

    start = read_structure(shipped_structure("ac_ala3_nhme_water"))
    bonds0 = _ase_bonds(start.atomic_numbers, start.positions)
    assert len(bonds0) == 41 + 2 * 30  # the peptide's 41 bonds and two O–H per water
    out = tmp_path / "w.xyz"
    args = ["md", "nvt", "shipped:ac_ala3_nhme_water", "--relax", "--steps", "2", "--traj-every", "2"]
    rc = main(args + ["--log-every", "2", "--capacity-multiplier", "1.6", "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    line = next(s for s in text.splitlines() if s.startswith("# relax"))
    assert "converged after" in line and "NOT" not in line
    e_end = float(line.split("E = ")[1].split()[0])
    e_start = float(line.split("(start ")[1].split()[0])
    assert e_end < e_start - 1.0
    relaxed = read(out, index=0)
    assert relaxed.info["step"] == 0
    assert np.max(np.linalg.norm(relaxed.positions - start.positions, axis=1)) > 0.05  # it was relaxed
    assert _ase_bonds(start.atomic_numbers, relaxed.positions) == bonds0
