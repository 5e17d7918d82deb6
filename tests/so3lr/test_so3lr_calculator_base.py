"""The generic PotentialCalculator on an analytic Lennard-Jones potential: forces and stress
against finite differences, capacity growth, no recompilation when only positions change."""

import numpy as np
import pytest
from ase import Atoms

from biomlff.calculators import PotentialCalculator
from biomlff.errors import ModelError
from biomlff.potential import NeighborSpec, Potential

EPS, SIG, RC = 0.01, 2.5, 5.0


def lj_potential(z, half=True, rc=RC):
    import jax.numpy as jnp

    RC = rc  # noqa: N806  (the cutoff of this potential, Å)

    def energy_fn(positions, pairs, cell):
        p = pairs["lj"]
        d = positions[p.j] - positions[p.i]
        if cell is not None:
            box = jnp.diag(cell)
            d = d - box * jnp.round(d / box)
        r2 = jnp.where(p.mask, jnp.sum(d * d, axis=-1), 1.0)
        s6 = (SIG * SIG / r2) ** 3
        e = 4 * EPS * (s6 * s6 - s6) - 4 * EPS * ((SIG / RC) ** 12 - (SIG / RC) ** 6)
        e = jnp.where(p.mask & (r2 < RC * RC), e, 0.0)
        return jnp.sum(e) * (1.0 if half else 0.5)

    def outputs_fn(positions, pairs, cell):
        return {"n_pairs": jnp.sum(pairs["lj"].mask)}

    return Potential(energy_fn, {"lj": NeighborSpec(rc, half=half)}, np.asarray(z), outputs_fn=outputs_fn)


def lattice(n=3, a=3.9, pbc=True, seed=0):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    pos = g + rng.normal(scale=0.15, size=g.shape)
    return Atoms("Ar" * len(pos), positions=pos, cell=np.eye(3) * n * a, pbc=pbc)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_forces_stress_finite_differences(precision):
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers), precision=precision)
    atoms.calc = calc
    f = atoms.get_forces()
    s = atoms.get_stress()
    h = 1e-4
    tol = 1e-6 if precision == "float64" else 2e-3
    for a, k in [(0, 0), (5, 1), (13, 2)]:
        p = atoms.copy()
        p.calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
        p.positions[a, k] += h
        ep = p.get_potential_energy()
        p.positions[a, k] -= 2 * h
        em = p.get_potential_energy()
        assert abs(-(ep - em) / (2 * h) - f[a, k]) < tol
    # stress: σ_xx = (1/V) dE/dε_xx with positions and cell scaled
    ref = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    vol = atoms.get_volume()
    es = []
    for sgn in (1, -1):
        p = atoms.copy()
        p.set_cell(atoms.cell.array @ np.diag([1 + sgn * h, 1, 1]), scale_atoms=True)
        p.calc = ref
        es.append(p.get_potential_energy())
    assert abs((es[0] - es[1]) / (2 * h) / vol - s[0]) < max(tol, 1e-3 * abs(s[0]))
    assert np.any(np.abs(f) > 1e-3)


def test_no_recompile_and_capacity_growth():
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    atoms.calc = calc
    atoms.get_forces()
    n0 = calc.n_traces
    cap0 = dict(calc.capacities)
    for k in range(3):
        atoms.positions += np.random.default_rng(k).normal(scale=0.02, size=atoms.positions.shape)
        atoms.get_forces()
    assert calc.n_traces == n0 and calc.capacities == cap0
    # compress strongly: many more pairs → capacity grows, result still equals a fresh calculator
    atoms.set_cell(atoms.cell.array * 0.87, scale_atoms=True)
    e = atoms.get_potential_energy()
    assert calc.capacities["lj"] > cap0["lj"]
    fresh = atoms.copy()
    fresh.calc = PotentialCalculator(lj_potential(atoms.numbers), precision="float64")
    assert abs(fresh.get_potential_energy() - e) < 1e-10
    # extra outputs land in results; the padded list holds exactly the pairs within the cutoff
    calc.implemented_properties = [*PotentialCalculator.implemented_properties, "n_pairs"]
    from biomlff.neighbors import pair_indices

    i, _ = pair_indices(atoms.positions, RC, cell=atoms.cell.array, half=True)
    assert int(calc.get_property("n_pairs", atoms)) == len(i)


def test_full_list_equals_half_list_and_free_space():
    atoms = lattice(pbc=False)
    e = []
    for half in (True, False):
        atoms.calc = PotentialCalculator(lj_potential(atoms.numbers, half=half), precision="float64")
        e.append(atoms.get_potential_energy())
    assert abs(e[0] - e[1]) < 1e-10
    with pytest.raises(Exception, match="stress"):
        atoms.get_stress()


def test_errors():
    atoms = lattice()
    calc = PotentialCalculator(lj_potential(atoms.numbers[:-1]))
    atoms.calc = calc
    with pytest.raises(ModelError, match="atomic numbers"):
        atoms.get_potential_energy()
    atoms.calc = PotentialCalculator(lj_potential(atoms.numbers))
    atoms.pbc = [True, True, False]
    with pytest.raises(ModelError, match="mixed periodic"):
        atoms.get_potential_energy()
    small = lattice(n=2)
    small.calc = PotentialCalculator(lj_potential(small.numbers))
    with pytest.raises(ModelError, match="2 × cutoff"):
        small.get_potential_energy()


def test_pair_indices_sorted_and_complete():
    """Host pair lists: every pair within the cutoff exactly once (half) or twice (full), sorted by
    (i, j) as np.lexsort orders them; periodic (minimum image) and free space."""
    from biomlff.neighbors import pair_indices

    atoms = lattice(n=4)
    pos, cell = atoms.positions, atoms.cell.array
    for c in (cell, None):
        d = pos[None, :, :] - pos[:, None, :]
        if c is not None:
            box = np.diag(c)
            d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=-1)
        ii, jj = np.nonzero((r < 6.0) & ~np.eye(len(pos), dtype=bool))
        for half in (True, False):
            i, j = pair_indices(pos, 6.0, cell=c, half=half)
            want = (ii, jj) if not half else (ii[ii < jj], jj[ii < jj])
            order = np.lexsort((want[1], want[0]))
            np.testing.assert_array_equal(i, want[0][order])
            np.testing.assert_array_equal(j, want[1][order])


def test_long_lists_are_reused_within_half_the_skin():
    """A list with a cutoff ≥ REUSE_MIN_CUTOFF is built once with a skin and reused while every atom
    moved less than skin/2 (Verlet): same energy and forces as a calculator that rebuilds every call,
    also when a pair crosses into the cutoff; rebuilt after a larger move or a new cell."""
    from biomlff.calculators.base import REUSE_MIN_CUTOFF
    from biomlff.errors import ConfigError

    rc = 7.0
    assert rc >= REUSE_MIN_CUTOFF
    atoms = lattice(n=4)  # 15.6 Å box: skin 0.5 fits the minimum image (7.5 < 7.8)
    reuse = PotentialCalculator(lj_potential(atoms.numbers, rc=rc), precision="float64", skin=0.5)
    fresh = PotentialCalculator(lj_potential(atoms.numbers, rc=rc), precision="float64", skin=0.0)
    a, b = atoms.copy(), atoms.copy()
    a.calc, b.calc = reuse, fresh

    def same():
        np.testing.assert_allclose(a.get_potential_energy(), b.get_potential_energy(), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=1e-12, atol=1e-13)

    same()
    rng = np.random.default_rng(1)
    for _ in range(3):  # small moves: reused
        step = rng.normal(scale=0.002, size=a.positions.shape)
        a.positions += step
        b.positions += step
        same()
    assert reuse.list_builds == {"lj": 1} and fresh.list_builds == {"lj": 4}
    # a pair just outside rc at build moves inside rc, every atom still < skin/2 from its build position
    d = a.get_all_distances(mic=True)
    p, q = np.argwhere((d > rc) & (d < rc + 0.4))[0]
    u = a.get_distance(p, q, mic=True, vector=True) / d[p, q]
    for x in (a, b):
        x.positions[p] += 0.24 * u
        x.positions[q] -= 0.24 * u
    assert a.get_distance(p, q, mic=True) < rc
    same()
    assert reuse.list_builds == {"lj": 1}
    for x in (a, b):  # a move beyond skin/2: rebuilt
        x.positions[3] += [0.3, 0.0, 0.0]
    same()
    assert reuse.list_builds == {"lj": 2}
    for x in (a, b):  # a new cell: rebuilt
        x.set_cell(x.cell.array * 1.01, scale_atoms=True)
    same()
    assert reuse.list_builds == {"lj": 3}
    # short lists (rc < REUSE_MIN_CUTOFF) are searched once too and cut to the pairs within rc on
    # every call: the padded list of a search on every call, and its result, bit for bit
    short = PotentialCalculator(lj_potential(atoms.numbers), skin=0.5)
    every = PotentialCalculator(lj_potential(atoms.numbers), skin=0.0)
    c, e = atoms.copy(), atoms.copy()
    c.calc, e.calc = short, every
    for _ in range(3):
        step = rng.normal(scale=0.02, size=c.positions.shape)  # within skin / 2 = 0.25 Å
        c.positions += step
        e.positions += step
        assert c.get_potential_energy() == e.get_potential_energy()
        np.testing.assert_array_equal(c.get_forces(), e.get_forces())
        ps = short.pairs_for(c.positions, c.cell.array)["lj"]
        pe = every.pairs_for(e.positions, e.cell.array)["lj"]
        for u, v in zip(ps, pe, strict=True):
            np.testing.assert_array_equal(u, v)
    assert short.list_builds == {"lj": 1} and every.list_builds == {"lj": 6}
    with pytest.raises(ConfigError, match="skin"):
        PotentialCalculator(lj_potential(atoms.numbers), skin=-0.1)


def test_all_pairs_list_built_once_per_system():
    """An all-pairs list (cutoff None, free space) does not depend on the positions: built once per
    system and reused, unless skin=0 asks for a rebuild on every call."""
    import jax.numpy as jnp

    def energy_fn(positions, pairs, cell):
        p = pairs["all"]
        d = positions[p.j] - positions[p.i]
        r2 = jnp.where(p.mask, jnp.sum(d * d, axis=-1), 1.0)
        return jnp.sum(jnp.where(p.mask, 1.0 / r2, 0.0))

    atoms = lattice(n=2, pbc=False)
    pot = Potential(energy_fn, {"all": NeighborSpec(None, half=True)}, atoms.numbers)
    for skin, builds in ((0.5, 1), (0.0, 3)):
        calc = PotentialCalculator(pot, precision="float64", skin=skin)
        a = atoms.copy()
        a.calc = calc
        for step in range(3):
            a.positions[0] += 0.7 * step  # far beyond any skin: the list holds all pairs anyway
            d = a.get_all_distances()
            want = np.sum(1.0 / d[np.triu_indices(len(a), 1)] ** 2)
            np.testing.assert_allclose(a.get_potential_energy(), want, rtol=1e-12)
        assert calc.list_builds == {"all": builds}


def test_calls_repeat_no_host_work(monkeypatch):
    """Issue 26: a call on moved atoms costs the compiled function and little else: no neighbour
    search while the atoms stay within half the skin (the short list is cut from its candidates, the
    overlap check reads its distances), and the system key is not recomputed while the atomic numbers,
    cell and info stay the same."""
    import biomlff.neighbors as neighbors

    searches = []
    search = neighbors.pair_indices
    monkeypatch.setattr(neighbors, "pair_indices", lambda *a, **k: searches.append(1) or search(*a, **k))

    class Counting(PotentialCalculator):
        keys = 0

        def system_key(self, atoms):
            Counting.keys += 1
            return super().system_key(atoms)

    atoms = lattice(n=4)
    atoms.calc = Counting(lj_potential(atoms.numbers), precision="float64")
    e0 = atoms.get_potential_energy()
    searches.clear()
    Counting.keys = 0
    rng = np.random.default_rng(3)
    for _ in range(3):
        atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
        atoms.get_potential_energy()
        atoms.get_forces()
    assert searches == [] and Counting.keys == 0
    atoms.info["charge"] = 1.0  # an info entry the key reads: recomputed (the key itself is the same)
    atoms.get_potential_energy()
    assert Counting.keys == 1 and abs(atoms.get_potential_energy() - e0) < 1.0


@pytest.mark.parametrize("rc", [RC, 7.0])
def test_overlap_and_nan_refused_between_searches(rc):
    """Atoms that come closer than checks.MIN_DISTANCE while the pair list is reused (no search) are
    refused as check_structure refuses them, naming the atoms; non-finite positions too. rc = 5 Å is
    a short list (cut every call), 7 Å a long one (handed to the model as it is)."""
    from biomlff.errors import DataError

    atoms = lattice(n=4)
    atoms.positions[1] = atoms.positions[0] + [0.45, 0.0, 0.0]  # allowed: > 0.1 Å
    calc = PotentialCalculator(lj_potential(atoms.numbers, rc=rc), precision="float64")
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.positions[0] += [0.2, 0.0, 0.0]  # both within skin / 2 = 0.25 Å: no new search
    atoms.positions[1] -= [0.2, 0.0, 0.0]
    with pytest.raises(DataError, match="atoms 0 and 1 are 0.05 Å apart"):
        atoms.get_potential_energy()
    assert calc.list_builds == {"lj": 1}
    atoms.positions[1] += [0.3, 0.0, 0.0]
    atoms.get_potential_energy()
    atoms.positions[2] = [np.nan, 0.0, 0.0]
    with pytest.raises(DataError, match="non-finite"):
        atoms.get_potential_energy()


def test_check_state_reports_what_ase_reports():
    """The calculator's cheap state check reports the changes ASE's compare_atoms reports."""
    from ase.calculators.calculator import compare_atoms as ase_compare

    from biomlff.calculators.base import compare_atoms

    atoms = lattice(n=2)
    edits = {
        "nothing": lambda a: None,
        "rounding": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-16),
        "positions": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-9),
        "numbers": lambda a: a.numbers.__setitem__(0, 1),
        "cell": lambda a: a.set_cell(a.cell.array * 1.001),
        "pbc": lambda a: a.set_pbc([True, False, True]),
        "charges": lambda a: a.set_initial_charges(np.ones(len(a))),
        "magmoms, cell": lambda a: (a.set_initial_magnetic_moments(np.ones(len(a))), a.set_cell(2 * a.cell)),
    }
    for name, edit in edits.items():
        b = atoms.copy()
        edit(b)
        assert sorted(compare_atoms(atoms, b)) == sorted(ase_compare(atoms, b)), name
        assert sorted(compare_atoms(b, atoms, excluded_properties={"cell"})) == sorted(
            ase_compare(b, atoms, excluded_properties={"cell"})
        ), name
    assert compare_atoms(None, atoms) == ase_compare(None, atoms)


def test_capacity_never_pads_more_than_the_bucket():
    """Padded slots cost the model work: a grown list gets at most the batcher's bucket (the jitted
    model's own lists) and at most 1.25 × its pairs, but at least 10 % head-room (fewer recompiles)."""
    import math

    from biomlff.calculators.base import capacity_for
    from biomlff.neighbors import bucket

    def up64(x):
        return max(64, 64 * math.ceil(x / 64))

    for n in [1, 36, 607, 1540, 1940, 9497, 29640, 38000, 614640, *range(100, 5000, 37)]:
        cap = capacity_for(n)
        assert cap % 32 == 0 and cap >= max(64, 1.1 * n)
        assert cap <= max(up64(1.1 * n), min(bucket(n), up64(1.25 * n))), n
    assert capacity_for(607) == bucket(607) == 736 and capacity_for(29640) == 32768
    assert capacity_for(1000, margin=1.0) == 1024  # a smaller margin than 1.1 is honoured
