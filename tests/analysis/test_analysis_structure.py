"""Structural observables against analytic cases and peer packages (MDTraj)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_builders import alanine_dipeptide  # noqa: E402

from biomlff.analysis import (  # noqa: E402
    angle_series,
    dihedral_series,
    distance_series,
    gas_histogram,
    kabsch,
    phi_psi,
    radius_of_gyration,
    rdf,
    rmsd,
    rmsd_lag,
    select_atoms,
)
from biomlff.errors import ConfigError, DataError  # noqa: E402


def random_rotation(rng):
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_matrix()


def test_rdf_uniform_random_points_is_one():
    rng = np.random.default_rng(1)
    box = 20.0
    x = rng.uniform(0, box, (20, 400, 3))
    idx = np.arange(400)
    res = rdf(x, np.eye(3) * box, idx, idx, r_max=9.0, n_bins=30)
    ok = res.r > 2.0  # small shells hold few pairs: noisy
    expected_noise = 1.0 / np.sqrt(20 * 400 * 399 / 2 * 4 * np.pi * res.r[ok] ** 2 * 0.3 / box**3)
    assert np.all(np.abs(res.g[ok] - 1.0) < 5 * expected_noise), (res.g[ok], expected_noise)
    assert abs(res.g[ok].mean() - 1.0) < 0.01
    # running coordination number = ρ·(4/3)πr³ for an ideal gas
    n_exp = 399 / box**3 * 4 / 3 * np.pi * (res.r + 0.15) ** 3
    assert np.allclose(res.n_r[-5:], n_exp[-5:], rtol=0.02)


def test_rdf_fcc_lattice_first_peak_and_coordination():
    from ase.build import bulk

    a = 4.05
    atoms = bulk("Al", "fcc", a=a, cubic=True).repeat((4, 4, 4))
    idx = np.arange(len(atoms))
    res = rdf(atoms.positions, atoms.cell.array, idx, idx, r_max=7.5, n_bins=300)
    k = np.argmax(res.g)
    assert abs(res.r[k] - a / np.sqrt(2)) <= 0.5 * (res.r[1] - res.r[0]) + 1e-9
    # 12 nearest neighbours before the second shell at a
    between = (res.r > 3.0) & (res.r < 3.9)
    assert np.allclose(res.n_r[between], 12.0)
    assert np.all(res.g[res.r < 2.7] == 0)


def test_rdf_triclinic_cell_matches_orthorhombic_reference():
    # the same fcc crystal described by its primitive (triclinic) cell: same first peak, 12 neighbours
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6).repeat((6, 6, 6))
    idx = np.arange(len(atoms))
    res = rdf(atoms.positions, atoms.cell.array, idx, idx, r_max=4.3, n_bins=86)
    k = np.argmax(res.g)
    assert abs(res.r[k] - 3.6 / np.sqrt(2)) <= 0.05
    assert np.isclose(res.n_r[(res.r > 2.7) & (res.r < 3.5)], 12.0).all()


def test_rdf_two_groups_and_gas_histogram():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 15, (10, 300, 3))
    a, b = np.arange(100), np.arange(100, 300)
    res = rdf(x, np.diag([15.0] * 3), a, b, r_max=7.0, n_bins=14)
    assert abs(res.g[3:].mean() - 1.0) < 0.03
    # gas phase: two atoms at a fixed distance give a delta peak integrating to 1
    y = np.zeros((5, 2, 3))
    y[:, 1, 0] = 2.34
    h = gas_histogram(y, [0, 1], [0, 1], r_max=5.0, n_bins=50)
    assert np.isclose(np.sum(h.g * 0.1), 1.0)
    assert abs(h.r[np.argmax(h.g)] - 2.35) < 1e-9


def test_rdf_bad_input():
    x = np.zeros((1, 4, 3))
    with pytest.raises(DataError, match="needs a cell"):
        rdf(x, None, [0, 1], [2, 3])
    with pytest.raises(ConfigError, match="exceeds half"):
        rdf(x, np.eye(3) * 10.0, [0, 1], [2, 3], r_max=6.0)


def test_rmsd_of_rotated_translated_copy_is_zero():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(30, 3)) * 5
    frames = np.array([ref @ random_rotation(rng).T + rng.normal(size=3) * 10 for _ in range(7)])
    assert np.all(rmsd(frames, ref) < 1e-10)
    w = rng.uniform(1, 16, 30)
    assert np.all(rmsd(frames, ref, weights=w) < 1e-10)
    # a mirror image is not a rotation: RMSD > 0
    assert rmsd(ref * np.array([1, 1, -1]), ref)[0] > 0.5
    # known displacement: one atom of n moved by d along a fixed axis after centring → analytic
    moved = ref.copy()
    moved[0] += [3.0, 0.0, 0.0]
    assert np.isclose(rmsd(moved, ref, fit=False)[0], 3.0 / np.sqrt(30))
    assert rmsd(moved, ref)[0] <= 3.0 / np.sqrt(30)


def test_kabsch_matches_scipy_align_vectors_and_mdtraj():
    import mdtraj as md
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(4)
    ref = rng.normal(size=(20, 3)) * 4
    mob = ref @ random_rotation(rng).T + rng.normal(scale=0.4, size=(20, 3)) + 3.0
    r, cp, cq = kabsch(mob, ref)
    rot, _ = Rotation.align_vectors(ref - cq, mob - cp[0])
    assert np.allclose(r[0], rot.as_matrix(), atol=1e-10)
    top = md.Topology()
    res = top.add_residue("UNK", top.add_chain())
    for _ in range(20):
        top.add_atom("C", md.element.carbon, res)
    traj = md.Trajectory(np.array([ref, mob]) / 10.0, top)
    peer = md.rmsd(traj, traj, 0)[1] * 10.0
    assert abs(rmsd(mob, ref)[0] - peer) < 2e-3  # MDTraj works in float32


def test_rmsd_selection_and_lag():
    rng = np.random.default_rng(5)
    numbers = np.array([6, 1, 1, 8, 1, 7])
    ref = rng.normal(size=(6, 3)) * 3
    traj = np.repeat(ref[None], 6, axis=0)
    traj[:, 1] += np.arange(6)[:, None] * 0.5  # only a hydrogen moves
    heavy = select_atoms(numbers, "heavy")
    assert heavy.tolist() == [0, 3, 5]
    assert np.all(rmsd(traj, ref, idx=heavy) < 1e-10)
    assert rmsd(traj, ref)[-1] > 0.1
    mean, std = rmsd_lag(traj, [1, 2], idx=heavy)
    assert np.allclose(mean, 0.0, atol=1e-10)
    with pytest.raises(DataError, match="matches no atoms"):
        select_atoms(numbers, "S")
    with pytest.raises(DataError, match="lags must lie"):
        rmsd_lag(traj, [6])
    # RMSD(t, t+Δt) of a rigid rotation = 0, of a linear drift of one atom grows with Δt
    lag_mean, _ = rmsd_lag(traj, [1, 3])
    assert lag_mean[1] > lag_mean[0] > 0


def test_radius_of_gyration_known_shapes():
    # dumbbell of equal masses at ±d: Rg = d
    d = 1.7
    x = np.array([[[-d, 0, 0], [d, 0, 0]]])
    assert np.isclose(radius_of_gyration(x)[0], d)
    # unequal masses m1 = 1, m2 = 3 at distance L: Rg = L·sqrt(m1 m2)/(m1 + m2)
    x = np.array([[[0, 0, 0], [2.0, 0, 0]]])
    assert np.isclose(radius_of_gyration(x, masses=[1.0, 3.0])[0], 2.0 * np.sqrt(3.0) / 4.0)
    # points on a sphere of radius R: Rg = R; uniform ball: Rg = sqrt(3/5) R
    rng = np.random.default_rng(6)
    v = rng.normal(size=(20000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert np.isclose(radius_of_gyration(5.0 * v)[0], 5.0, rtol=1e-3)
    ball = v * rng.uniform(0, 1, (20000, 1)) ** (1 / 3) * 5.0
    assert np.isclose(radius_of_gyration(ball)[0], np.sqrt(3 / 5) * 5.0, rtol=0.01)
    # a regular hexagon (benzene ring) of side a: Rg = a
    ang = np.arange(6) * np.pi / 3
    ring = 1.39 * np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], axis=1)
    assert np.isclose(radius_of_gyration(ring)[0], 1.39)


@pytest.mark.parametrize(
    "phi,psi", [(-60.0, -45.0), (-150.0, 150.0), (60.0, 45.0), (-80.0, 80.0), (170.0, -170.0)]
)
def test_phi_psi_of_constructed_alanine_dipeptide(phi, psi):
    numbers, x = alanine_dipeptide(phi, psi)
    pp = phi_psi(x, numbers)
    assert pp.residues == [0]
    assert pp.quads_phi.tolist() == [[1, 3, 4, 5]] and pp.quads_psi.tolist() == [[3, 4, 5, 7]]
    assert abs(pp.phi[0, 0] - phi) < 1e-8 and abs(pp.psi[0, 0] - psi) < 1e-8
    # ASE's independent dihedral (0…360) agrees
    from ase import Atoms

    a = Atoms(numbers=numbers, positions=x)
    assert np.isclose((a.get_dihedral(1, 3, 4, 5) + 180) % 360 - 180, phi)


def test_phi_psi_and_dssp_of_crambin_match_mdtraj_with_names(shared):
    """Backbone from connectivity alone (heavy atoms, no residue names) reproduces MDTraj's
    name-based φ/ψ and DSSP on the X-ray structure of crambin."""
    import mdtraj as md

    from biomlff.analysis import secondary_structure

    t = md.load(str(shared / "structures" / "1crn.pdb"))
    z = np.array([a.element.atomic_number for a in t.top.atoms])
    x = t.xyz.astype(float) * 10.0
    pp = phi_psi(x, z)
    assert pp.residues == list(range(1, 45))
    _, phi = md.compute_phi(t)
    _, psi = md.compute_psi(t)
    wrap = lambda d: np.abs((d + 180) % 360 - 180)
    assert wrap(pp.phi - np.degrees(phi[:, :44])).max() < 1e-3
    assert wrap(pp.psi - np.degrees(psi[:, 1:45])).max() < 1e-3
    ss, _ = secondary_structure(x, z)
    assert "".join(ss[0]) == "".join(md.compute_dssp(t)[0])
    assert "".join(ss[0]).count("H") >= 15


def test_geometry_series_with_minimum_image():
    x = np.array([[[0.5, 0, 0], [9.5, 0, 0], [9.5, 1.0, 0], [9.5, 1.0, 1.0]]])
    cell = np.eye(3) * 10.0
    assert np.isclose(distance_series(x, 0, 1, cell)[0], 1.0)
    assert np.isclose(distance_series(x, 0, 1)[0], 9.0)
    assert np.isclose(angle_series(x, 0, 1, 2, cell)[0], 90.0)
    assert np.isclose(abs(dihedral_series(x, 0, 1, 2, 3, cell)[0]), 90.0)
    with pytest.raises(DataError, match="outside"):
        distance_series(x, 0, 7)


def test_relative_rotation_of_two_nested_rings():
    from scipy.spatial.transform import Rotation

    from biomlff.analysis import relative_rotation

    # two coaxial rings (a "nanotube pair"): the inner one turns about the common z axis by θ(t)
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([6 * np.cos(ang), 6 * np.sin(ang), np.tile([0.0, 1.2], 6)], axis=1)
    inner = np.stack([3 * np.cos(ang), 3 * np.sin(ang), np.tile([0.0, 1.2], 6)], axis=1)
    thetas = np.array([0.0, 10.0, 45.0, 90.0, 170.0])
    rng = np.random.default_rng(9)
    frames = []
    for th in thetas:
        spun = inner @ Rotation.from_euler("z", th, degrees=True).as_matrix().T
        both = np.concatenate([outer, spun])
        frames.append(both @ Rotation.random(random_state=rng).as_matrix().T + rng.normal(size=3))
    got = relative_rotation(np.array(frames), np.arange(12), np.arange(12, 24))
    assert np.allclose(got, thetas, atol=1e-6)
    with pytest.raises(DataError, match="at least 3 atoms"):
        relative_rotation(np.array(frames), [0, 1], np.arange(12, 24))
