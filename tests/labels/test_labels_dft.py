"""PySCF DFT labeller: rMD17 reproduction (PBE/def2-SVP), Hirshfeld ratios and charges, dipole,
open shells, D4, SCF failure and bad input. ~40 s on one core."""

import numpy as np
import pytest

pytest.importorskip("pyscf")

from biomlff import units  # noqa: E402
from biomlff.errors import ConfigError  # noqa: E402
from biomlff.labels import (  # noqa: E402
    ElectronCountError,
    Frame,
    SCFConvergenceError,
    UnsupportedElementError,
    make_labeller,
    run_labelling,
)

WATER_Z = np.array([8, 1, 1])
WATER_R = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])


@pytest.fixture(scope="module")
def ethanol(shared):
    d = np.load(shared / "datasets/rmd17/rmd17_ethanol_train_01.npz")
    return d["nuclear_charges"].astype(int), d["coords"][0], d["energies"][0], d["forces"][0]


@pytest.fixture(scope="module")
def ethanol_pbe(ethanol):
    lab = make_labeller("dft")  # PBE/def2-SVP, RI, grid level 3 (defaults)
    res = lab.label(ethanol[0], ethanol[1])
    return lab, res


@pytest.mark.slow
def test_pbe_def2svp_reproduces_rmd17(ethanol, ethanol_pbe):
    """rMD17 = ORCA PBE/def2-SVP (RI-J, def2/J): energy is the total electronic energy in kcal/mol,
    so only units are converted."""
    _, res = ethanol_pbe
    e_kcal = res.energy / units.kcal_mol
    f_kcal = res.forces / units.kcal_mol
    de = abs(e_kcal - ethanol[2])
    mae = np.abs(f_kcal - ethanol[3]).mean()
    print(f"rMD17 ethanol frame 0: |dE| = {de:.4f} kcal/mol, force MAE = {mae:.4f} kcal/mol/Å")
    assert de < 0.5
    assert mae < 0.05


@pytest.mark.slow
def test_hirshfeld_ratios_charges_and_dipole(ethanol, ethanol_pbe):
    from pyscf.scf.hf import dip_moment

    lab, res = ethanol_pbe
    z = ethanol[0]
    h = res.hirshfeld_ratios
    print("Hirshfeld ratios", dict(zip(["C", "C", "O"] + ["H"] * 6, np.round(h, 3), strict=False)))
    assert np.all((h[z == 6] > 0.8) & (h[z == 6] < 0.9))
    assert np.all((h[z == 8] > 0.9) & (h[z == 8] < 1.0))
    assert np.all((h[z == 1] > 0.55) & (h[z == 1] < 0.75))
    assert abs(res.charges.sum()) < 1e-3
    assert res.charges[z == 8][0] < -0.1  # O is the most negative atom
    assert np.argmin(res.charges) == int(np.flatnonzero(z == 8)[0])
    # PySCF's own dipole of the converged density (Debye -> e·Å through ASE's constant)
    mf = lab.last_scf
    ref = dip_moment(mf.mol, mf.make_rdm1(), unit="Debye", verbose=0) * units.Debye
    np.testing.assert_allclose(res.dipole, ref, atol=1e-6)
    # and independently: nuclei minus the grid-integrated electron density
    from biomlff.labels.hirshfeld import free_atom, hirshfeld_partition

    free = [free_atom(s, "def2-SVP", "PBE") for s in mf.mol.elements]
    part = hirshfeld_partition(mf.mol, mf.make_rdm1(), mf.grids.coords, mf.grids.weights, free)
    np.testing.assert_allclose(part["dipole_grid"] * units.Bohr, res.dipole, atol=2e-3)
    # free atoms integrate to their electron counts
    for f, zi in zip(free, z, strict=True):
        assert abs(f.n_electrons - zi) < 1e-4


@pytest.mark.slow
def test_charged_and_open_shell_hirshfeld():
    lab = make_labeller("dft", grid_level=2)
    hydronium_z = np.array([8, 1, 1, 1])
    r = np.array([[0.0, 0.0, 0.1], [0.0, 0.94, -0.2], [0.81, -0.47, -0.2], [-0.81, -0.47, -0.2]])
    res = lab.label(hydronium_z, r, charge=1)
    assert abs(res.charges.sum() - 1.0) < 1e-3 and np.all(res.charges[1:] > 0.1)
    oh = lab.label(np.array([8, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]]), charge=0, multiplicity=2)
    from pyscf.dft.uks import UKS

    assert abs(oh.charges.sum()) < 1e-3 and isinstance(lab.last_scf, UKS)
    # warm start: the previous density as guess gives the same energy in fewer cycles
    cold = make_labeller("dft", grid_level=2, warm_start=False, hirshfeld=False)
    warm = make_labeller("dft", grid_level=2, hirshfeld=False)
    warm.label(WATER_Z, WATER_R)
    r2 = WATER_R + np.array([[0, 0, 0.01], [0, 0.005, 0], [0, 0, 0]])
    a, b = cold.label(WATER_Z, r2), warm.label(WATER_Z, r2)
    assert b.info["warm_start"] and not a.info["warm_start"]
    assert abs(a.energy - b.energy) < 1e-6 and b.info["scf_cycles"] < a.info["scf_cycles"]
    far = warm.label(WATER_Z, WATER_R + np.array([[0, 0, 0], [0, 0.5, 0.1], [0, -0.3, 0]]))
    assert not far.info["warm_start"]  # RMSD > 0.2 Å: PySCF's own guess


@pytest.mark.slow
def test_d4_matches_finite_differences_and_is_added():
    pytest.importorskip("dftd4")
    from biomlff.labels.pyscf_dft import d4_correction

    rng = np.random.default_rng(0)
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    r = np.array(
        [
            [0.0, 0, 0],
            [1.52, 0, 0],
            [2.0, 1.3, 0],
            [-0.4, 1.0, 0],
            [-0.4, -0.5, 0.9],
            [-0.4, -0.5, -0.9],
            [1.9, -0.5, 0.9],
            [1.9, -0.5, -0.9],
            [2.9, 1.3, 0.3],
        ]
    )
    e, f = d4_correction(z, r, 0, "PBE")
    assert -0.5 < e < 0  # eV, dispersion is attractive
    h = 1e-4
    for a, c in [(0, 0), (2, 1), (8, 2)]:
        rp, rm = r.copy(), r.copy()
        rp[a, c] += h
        rm[a, c] -= h
        fd = -(d4_correction(z, rp, 0, "PBE")[0] - d4_correction(z, rm, 0, "PBE")[0]) / (2 * h)
        assert abs(fd - f[a, c]) < 1e-6
    plain = make_labeller("dft", grid_level=1, hirshfeld=False).label(WATER_Z, WATER_R)
    d4 = make_labeller("dft", grid_level=1, hirshfeld=False, d4=True).label(WATER_Z, WATER_R)
    e4, f4 = d4_correction(WATER_Z, WATER_R, 0, "PBE")
    assert abs(d4.energy - plain.energy - e4) < 1e-7
    np.testing.assert_allclose(d4.forces - plain.forces, f4, atol=1e-7)
    del rng


def test_dft_bad_input_per_frame():
    frames = [
        Frame(0, WATER_Z, WATER_R, charge=0, multiplicity=2),  # even electron count, doublet
        Frame(1, np.array([87, 1]), np.array([[0.0, 0, 0], [0, 0, 2.3]])),  # Fr: not in def2-SVP
        Frame(2, WATER_Z, WATER_R),  # SCF with 2 cycles cannot converge
    ]
    run = run_labelling(frames, "dft", {"max_cycle": 2, "grid_level": 1, "hirshfeld": False}, progress=False)
    assert not run.results
    assert "ElectronCountError" in run.errors[0]
    assert "UnsupportedElementError" in run.errors[1] and "Fr" in run.errors[1]
    assert "SCFConvergenceError" in run.errors[2] and "not converged" in run.errors[2]
    lab = make_labeller("dft", max_cycle=2, grid_level=1, hirshfeld=False)
    with pytest.raises(SCFConvergenceError):
        lab.label(WATER_Z, WATER_R)
    with pytest.raises(ElectronCountError):
        lab.label(WATER_Z, WATER_R, charge=1, multiplicity=1)
    with pytest.raises(UnsupportedElementError):
        make_labeller("dft", basis="6-31G").label(np.array([54]), np.zeros((1, 3)))  # no Xe in 6-31G
    with pytest.raises(ConfigError, match="functional"):
        make_labeller("dft", functional="NOT-A-FUNCTIONAL")
