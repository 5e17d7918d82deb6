"""Ewald / PME lattice sums (biomlff.ewald) and SO3LR's electrostatics="ewald"|"pme" (so3lr.lattice).

References: the NaCl Madelung constant (analytic/tabulated), a directly summed lattice (smoothly
windowed spherical sum over images plus the de Leeuw–Perram–Smith surface term), converged Ewald
for PME, finite differences for forces and stress, the virial theorem of 1/r for the strain trace,
and exact invariances (splitting parameter, translation of all atoms)."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import BSpline
from scipy.special import erf

from biomlff import ewald as ew
from biomlff.errors import ConfigError

#: NaCl rock-salt Madelung constant (per ion pair, referred to the nearest-neighbour distance)
MADELUNG_NACL = 1.747564594633


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _nacl():
    """Conventional NaCl cell with nearest-neighbour distance 1: 4 Na⁺ + 4 Cl⁻, edge 2."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    pos = np.concatenate([fcc, fcc + [0.5, 0, 0]]) * 2.0
    return pos, np.array([1.0] * 4 + [-1.0] * 4), np.eye(3) * 2.0


def _random_system(seed, n, lengths, neutral=True, tilt=0.0):
    rng = np.random.default_rng(seed)
    cell = np.diag(np.asarray(lengths, float))
    cell[1, 0] = tilt * cell[0, 0]  # a triclinic cell when tilt ≠ 0
    pos = rng.uniform(0, 1, (n, 3)) @ cell
    q = rng.normal(size=n)
    if neutral:
        q -= q.mean()
    return pos, q, cell


def _energy(pos, q, cell, settings):
    return float(ew.lattice_energy(jnp.asarray(pos), jnp.asarray(q), jnp.asarray(cell), settings))


def _energy_forces(pos, q, cell, settings):
    shifts = ew.image_shifts(cell, settings.r_cut, pos) if settings.real_space else None

    def f(p):
        return ew.lattice_energy(p, jnp.asarray(q), jnp.asarray(cell), settings, shifts=shifts)

    e, g = jax.jit(jax.value_and_grad(f))(jnp.asarray(pos))
    return float(e), -np.asarray(g)


def _rel_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2)))


# --------------------------------------------------------------------------- lattice functions
@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_madelung_constant_nacl(method):
    pos, q, cell = _nacl()
    st = ew.tune(cell, r_cut=3.0, accuracy=1e-10, method=method, order=8)
    e = _energy(pos, q, cell, st)
    assert abs(-e / 4 - MADELUNG_NACL) < 1e-6  # 4 ion pairs, nearest-neighbour distance 1
    if method == "ewald":
        assert abs(-e / 4 - MADELUNG_NACL) < 1e-10


def test_bspline_weights_are_cardinal_bsplines():
    t = np.linspace(0, 0.999, 7)
    for p in (4, 6, 8):
        w = np.asarray(ew.bspline_weights(jnp.asarray(t), p))
        ref = BSpline.basis_element(np.arange(p + 1), extrapolate=False)
        for j in range(p):
            assert np.allclose(w[:, j], ref(t + j), atol=1e-13)
        assert np.allclose(w.sum(axis=1), 1.0, atol=1e-13)  # partition of unity


@pytest.mark.parametrize("sigma", [0.0, 1.5])
@pytest.mark.parametrize("neutral", [True, False])
def test_energy_independent_of_splitting(sigma, neutral):
    pos, q, cell = _random_system(1, 6, [4.0, 4.5, 5.0], neutral=neutral, tilt=0.2)
    smearings = [0.6, 0.9, 1.3] + ([sigma / math.sqrt(2.0)] if sigma > 0 else [])
    energies = []
    for s in smearings:
        st = ew.tune(cell, sigma=sigma, r_cut=14.0, accuracy=1e-13, smearing=s)
        energies.append(_energy(pos, q, cell, st))
    assert np.ptp(energies) < 1e-9 * max(1.0, abs(energies[0])), energies
    if not neutral:  # the background term is what makes a charged box independent of s
        st = ew.tune(cell, sigma=sigma, r_cut=14.0, accuracy=1e-13, smearing=0.6)
        bg = 0.5 * float(jnp.sum(q * ew.background_potential(jnp.asarray(q), jnp.asarray(cell), 0.6, sigma)))
        assert abs(bg) > 1e-3
        assert abs(bg + math.pi * q.sum() ** 2 * (0.36 - sigma**2 / 2) / abs(np.linalg.det(cell))) < 1e-12


def _windowed_direct_sum(pos, q, cell, sigma, radius):
    """½ Σ_n w(|n|/R) Σ'_ij q_i q_j V(|r_ij + n|) over whole cells n, with a C∞ window w = 1 below
    R/2 and 0 beyond R (numpy, independent of biomlff.ewald)."""
    m = np.ceil(radius / np.min(np.linalg.norm(cell, axis=1)) + 1).astype(int)
    ax = np.arange(-m, m + 1)
    n = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    t = n @ cell
    rn = np.linalg.norm(t, axis=1)
    t, rn = t[rn < radius], rn[rn < radius]
    u = np.clip((rn / radius - 0.5) / 0.5, 0.0, 1.0)

    def g(x):
        return np.where(x > 0, np.exp(-1.0 / np.where(x > 0, x, 1.0)), 0.0)

    w = g(1 - u) / (g(1 - u) + g(u))
    d = pos[None, :, None, :] - pos[:, None, None, :] + t[None, None]
    r = np.linalg.norm(d, axis=-1)
    zero = r == 0
    r = np.where(zero, 1.0, r)
    v = np.where(zero, 0.0, (erf(r / sigma) if sigma > 0 else 1.0) / r)
    return 0.5 * np.einsum("i,j,ijm,m->", q, q, v, w)


@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_ewald_equals_direct_lattice_sum(sigma):
    """A spherical direct sum in vacuum converges to the (tin-foil) Ewald energy plus 2π|D|²/(3V)
    (de Leeuw, Perram & Smith, Proc. R. Soc. A 373, 27 (1980)); D = Σ q_i r_i."""
    rng = np.random.default_rng(3)
    cell = np.diag([4.0, 4.5, 5.0])
    pos = rng.uniform(0, 1, (4, 3)) @ cell
    q = np.array([0.7, -0.4, 0.5, -0.8])
    dip = q @ pos
    surface = 2 * math.pi * dip @ dip / (3 * np.linalg.det(cell))
    e_ewald = _energy(pos, q, cell, ew.tune(cell, sigma=sigma, r_cut=8.0, accuracy=1e-13))
    e_direct = _windowed_direct_sum(pos, q, cell, sigma, 120.0) - surface
    assert abs(e_direct - e_ewald) < 5e-8 * abs(e_ewald)
    # and the window is needed: a coarser sum is visibly off (the reference is not trivially equal)
    assert abs(_windowed_direct_sum(pos, q, cell, sigma, 20.0) - surface - e_ewald) > 1e-6


def _check_requested_accuracy(sigma, r_cut, lengths, cases):
    pos, q, cell = _random_system(7, 50, lengths)
    e0, f0 = _energy_forces(pos, q, cell, ew.tune(cell, sigma=sigma, r_cut=r_cut, accuracy=1e-12))
    for accuracy, method, order in cases:
        st = ew.tune(cell, sigma=sigma, r_cut=r_cut, accuracy=accuracy, method=method, order=order)
        e, f = _energy_forces(pos, q, cell, st)
        assert _rel_rms(f, f0) <= accuracy, (accuracy, method, order, st)
        assert abs(e - e0) <= accuracy * abs(e0), (accuracy, method, order, st)


CASES = [(1e-3, "pme", 4), (1e-3, "pme", 6), (1e-5, "pme", 6), (1e-5, "pme", 8), (1e-5, "ewald", 6)]


def test_pme_meets_requested_accuracy():
    """SO3LR's kernel (σ = 4 Å, all in reciprocal space): tuned PME and Ewald against converged Ewald."""
    _check_requested_accuracy(4.0, None, [14.0, 15.0, 16.0], CASES)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sigma, r_cut, lengths", [(0.0, 5.5, [12.0, 12.0, 13.0]), (4.0, 12.0, [25.0, 25.0, 25.0])]
)
def test_pme_meets_requested_accuracy_with_real_space(sigma, r_cut, lengths):
    """Point charges, and σ = 4 Å with a 12 Å real-space cutoff (s > σ/√2 at ε = 1e-3)."""
    _check_requested_accuracy(sigma, r_cut, lengths, CASES + [(1e-3, "ewald", 6), (1e-3, "pme", 8)])


@pytest.mark.parametrize("method", ["ewald", "pme"])
@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_forces_stress_translation(method, sigma):
    pos, q, cell = _random_system(11, 8, [6.0, 6.5, 7.0], tilt=0.15 if method == "ewald" else 0.0)
    st = ew.tune(cell, sigma=sigma, r_cut=5.0 if sigma == 0 else None, accuracy=1e-6, method=method, order=8)
    shifts = ew.image_shifts(cell, st.r_cut) if st.real_space else None

    @jax.jit
    def energy(p, c):
        return ew.lattice_energy(p, jnp.asarray(q), c, st, shifts=shifts)

    p0, c0 = jnp.asarray(pos), jnp.asarray(cell)
    grad = np.asarray(jax.grad(energy)(p0, c0))
    h = 1e-5
    for a, k in ((0, 0), (3, 1), (7, 2)):
        dp = np.zeros_like(pos)
        dp[a, k] = h
        fd = (float(energy(p0 + dp, c0)) - float(energy(p0 - dp, c0))) / (2 * h)
        assert abs(fd - grad[a, k]) < 1e-7 * max(1.0, abs(fd))

    @jax.jit
    def strained(eps):
        d = jnp.eye(3) + 0.5 * (eps + eps.T)
        return energy(p0 @ d, c0 @ d)

    dedeps = np.asarray(jax.grad(strained)(jnp.zeros((3, 3))))
    for a, b in ((0, 0), (1, 1), (0, 1), (1, 2)):
        de = np.zeros((3, 3))
        de[a, b] = h
        fd = (float(strained(jnp.asarray(de))) - float(strained(jnp.asarray(-de)))) / (2 * h)
        assert abs(fd - dedeps[a, b]) < 1e-7 * max(1.0, abs(fd))
    if sigma == 0:  # virial theorem of the homogeneous 1/r interaction: Σ_a ∂E/∂ε_aa = −E
        assert abs(np.trace(dedeps) + float(energy(p0, c0))) < 1e-6 * abs(float(energy(p0, c0)))

    # translating all atoms (moving the cell origin) leaves a neutral system's energy unchanged
    e0 = float(energy(p0, c0))
    for shift in (np.array([0.37, -1.21, 2.9]), np.array([0.5, 0.25, 0.125]) @ cell):
        e1 = float(energy(p0 + shift, c0))
        tol = 1e-11 if method == "ewald" else 1e-7
        assert abs(e1 - e0) < tol * max(1.0, abs(e0))


def test_tuning_and_settings_errors():
    cell = np.eye(3) * 20.0
    st = ew.tune(cell, sigma=4.0, r_cut=6.0)
    assert not st.real_space and abs(st.smearing - 4.0 / math.sqrt(2)) < 1e-15  # g ≡ 0 for short cutoffs
    st = ew.tune(cell, sigma=4.0, r_cut=16.0, accuracy=1e-4)
    assert st.real_space and st.smearing > 4.0 / math.sqrt(2)
    # the real-space force tail at the cutoff meets the accuracy (and is tight)
    assert ew._real_space_force_tail(16.0, st.smearing, 4.0) <= 1e-4
    assert ew._real_space_force_tail(16.0, 1.01 * st.smearing, 4.0) > 1e-4
    with pytest.raises(ConfigError, match="method"):
        ew.tune(cell, sigma=4.0, method="p3m")
    with pytest.raises(ConfigError, match="order"):
        ew.tune(cell, sigma=4.0, method="pme", order=5)
    with pytest.raises(ConfigError, match="accuracy"):
        ew.tune(cell, sigma=4.0, accuracy=0.0)
    with pytest.raises(ConfigError, match="cutoff"):
        ew.tune(cell, sigma=0.0)
    with pytest.raises(ConfigError, match="cell"):
        ew.tune(np.zeros((3, 3)), sigma=4.0)


# ------------------------------------------------------------------------------- SO3LR wiring
def _small_water_box():
    """8 water molecules (24 atoms) in a 9.2 Å box (lr cutoff 4.5 Å)."""
    from ase.build import molecule

    rng = np.random.default_rng(5)
    w = molecule("H2O")
    pos, z = [], []
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)]) * 4.5 + 1.5
    for g in grid:
        pos.append(w.positions + g + rng.normal(scale=0.2, size=3))
        z += list(w.numbers)
    return np.concatenate(pos), np.array(z), np.eye(3) * 9.2


@pytest.fixture(scope="module")
def tiny_model():
    """A small random-weight SO3LR-type model (fast to compile; the lattice wiring does not depend
    on the weights)."""
    from biomlff.so3lr.architecture import Architecture, init_params

    arch = Architecture(
        num_features=16,
        num_heads=4,
        max_degree=4,
        num_layers=1,
        num_rbf=8,
        energy_regression_dim=16,
        hirshfeld_dim=8,
    ).validate()
    return init_params(arch, 0), arch


def test_so3lr_lattice_electrostatics(tiny_model):
    _check_so3lr_lattice(*tiny_model)


@pytest.mark.slow
def test_so3lr_lattice_electrostatics_published(params):
    _check_so3lr_lattice(params, None)


def _check_so3lr_lattice(params, arch):
    from biomlff.neighbors import pair_indices
    from biomlff.potential import Pairs
    from biomlff.so3lr import so3lr_potential

    pos, z, cell = _small_water_box()

    def pairs_for(pot, x):
        out = {}
        for name, spec in pot.neighbors.items():
            i, j = pair_indices(x, spec.cutoff, cell=cell, half=spec.half)
            out[name] = Pairs(jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32), jnp.ones(len(i), bool))
        return out

    kw = dict(
        lr_cutoff=4.5, dispersion_damping=1.0, precision="float64", params=params, filters="exact", arch=arch
    )
    cut = so3lr_potential(z, **kw)
    assert cut.info["electrostatics"] == "cutoff" and cut.info["ewald"] is None
    pot = {
        m: so3lr_potential(z, electrostatics=m, cell=cell, ewald_accuracy=1e-6, **kw)
        for m in ("ewald", "pme")
    }
    pairs = pairs_for(cut, pos)
    out = {m: jax.jit(p.outputs_fn)(jnp.asarray(pos), pairs, jnp.asarray(cell)) for m, p in pot.items()}
    out_cut = jax.jit(cut.outputs_fn)(jnp.asarray(pos), pairs, jnp.asarray(cell))
    q = np.asarray(out["ewald"]["charges"])
    assert np.allclose(q, np.asarray(out_cut["charges"]), atol=1e-12)  # only the electrostatics change
    for term in ("so3krates", "zbl", "dispersion"):
        assert float(out["ewald"]["energy_terms"][term]) == float(out_cut["energy_terms"][term])
    # the model's electrostatics equals k_e × the lattice energy of its charges (converged Ewald)
    from biomlff import units

    ref = units.k_e * _energy(pos, q, cell, ew.tune(cell, sigma=4.0, r_cut=4.5, accuracy=1e-12))
    e_ew = float(out["ewald"]["energy_terms"]["electrostatics"])
    e_pme = float(out["pme"]["energy_terms"]["electrostatics"])
    assert abs(e_ew - ref) < 1e-6 * abs(ref) and abs(e_pme - ref) < 1e-5 * abs(ref)
    assert abs(e_ew - float(out_cut["energy_terms"]["electrostatics"])) > 1e-3  # a different sum
    assert abs(float(jnp.sum(out["ewald"]["energies"])) - float(out["ewald"]["energy"])) < 1e-9

    # forces (including the charges' dependence on positions) by finite differences
    e_fn = jax.jit(pot["ewald"].energy_fn)
    grad = np.asarray(jax.jit(jax.grad(pot["ewald"].energy_fn))(jnp.asarray(pos), pairs, jnp.asarray(cell)))
    h = 1e-5
    for a, k in ((0, 0), (4, 2)):
        dp = np.zeros_like(pos)
        dp[a, k] = h
        fd = (
            float(e_fn(jnp.asarray(pos + dp), pairs, jnp.asarray(cell)))
            - float(e_fn(jnp.asarray(pos - dp), pairs, jnp.asarray(cell)))
        ) / (2 * h)
        assert abs(fd - grad[a, k]) < 1e-6 * max(1.0, abs(fd))


def test_so3lr_lattice_errors_and_charged_box(tiny_model):
    from biomlff.errors import ModelError
    from biomlff.so3lr import so3lr_potential

    _, z, cell = _small_water_box()
    params, arch = tiny_model
    kw = dict(lr_cutoff=4.5, dispersion_damping=1.0, params=params, filters="exact", arch=arch)
    with pytest.raises(ConfigError, match="periodic cell"):
        so3lr_potential(z, electrostatics="ewald", **kw)
    with pytest.raises(ConfigError, match="electrostatics must be one of"):
        so3lr_potential(z, electrostatics="Ewald", cell=cell, **kw)
    with pytest.raises(ModelError, match="2 × lr cutoff"):
        so3lr_potential(z, electrostatics="pme", cell=np.eye(3) * 8.0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        so3lr_potential(z, electrostatics="ewald", cell=cell, **kw)  # neutral: no warning
    with pytest.warns(UserWarning, match="neutralising background"):
        so3lr_potential(z, charge=2.0, electrostatics="ewald", cell=cell, **kw)  # even: a singlet


@pytest.mark.slow
def test_calculator_ewald_stress(params):
    from ase import Atoms

    from biomlff.calculators import SO3LRCalculator

    pos, z, cell = _small_water_box()
    atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
    atoms.calc = SO3LRCalculator(
        lr_cutoff=4.5,
        dispersion_damping=1.0,
        precision="float64",
        params=params,
        filters="exact",
        electrostatics="pme",
        ewald_accuracy=1e-6,
    )
    stress = atoms.get_stress(voigt=False)
    # SO3LR cells are orthorhombic: the normal components by finite differences of the energy under
    # uniaxial strain (the shear components are checked on the lattice functions above)
    h, vol = 1e-5, atoms.get_volume()
    for k in range(3):
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.calc = atoms.calc
            c = np.array(cell)
            c[k, k] *= 1 + sign * h
            a.set_cell(c, scale_atoms=True)
            e.append(a.get_potential_energy())
        assert abs((e[0] - e[1]) / (2 * h * vol) - stress[k, k]) < 1e-6
    assert atoms.calc.potential.info["ewald"].method == "pme"


@pytest.mark.slow
def test_cli_md_and_eval_with_lattice_electrostatics(shared, tmp_path, monkeypatch, capsys):
    import ase.io
    from ase import Atoms

    from biomlff.cli.main import main
    from biomlff.data import read_dataset
    from biomlff.so3lr.weights import read_params_pickle, save_canonical

    params = read_params_pickle(shared / "so3lr" / "params.pkl")
    save_canonical(params, tmp_path / "cache" / "so3lr", source="test")
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path / "cache"))
    pos, z, cell = _small_water_box()
    atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
    path = tmp_path / "water8.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    with jax.enable_x64(False):
        common = ["--lr-cutoff", "4.5", "--dispersion-damping", "1.0", "--electrostatics", "pme"]
        traj = tmp_path / "t.xyz"
        assert main(["md", "nve", str(path), "--steps", "2", "--output", str(traj), *common]) == 0
        out = tmp_path / "pred.extxyz"
        assert main(["eval", "--data", str(path), "--out", str(out), *common]) == 0
        capsys.readouterr()
    # the MD (JAX-MD pair lists) and the batched evaluator give the same PME energy
    pred = read_dataset(out)
    assert abs(ase.io.read(traj, index=0).info["e_pot"] - pred.energy[0]) < 1e-3
    # and its electrostatics is the lattice sum of the predicted charges (not the cutoff form)
    from biomlff import units

    frame = pred.frame(0)
    with jax.enable_x64(True):
        q = np.asarray(frame["partial_charges"], float)
        ref = units.k_e * _energy(pos, q, cell, ew.tune(cell, sigma=4.0, r_cut=4.5, accuracy=1e-10))
    assert abs(float(np.ravel(frame["energy_electrostatics"])[0]) - ref) < 2e-3 * abs(ref)
