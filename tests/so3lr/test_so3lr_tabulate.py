"""Tabulated radial filters (biomlff.so3lr.tabulate, issue 13).

References: the float64 outputs of the original SO3LR code (../shared/so3lr/reference/*_jaxmd.npz)
for float32 runs with tabulated filters (tolerances of the float32 reference tests), the exact
float64 filter networks for tabulated float64 runs, central finite differences of the tabulated
energy for the forces, and the exact networks of a random-weight model for its table.
"""

import ase.io
import jax
import numpy as np
import pytest
from ase.build import molecule

from biomlff.calculators import SO3LRCalculator
from biomlff.errors import ConfigError, ModelError
from biomlff.neighbors import build_pairs
from biomlff.potential import energy_and_forces
from biomlff.so3lr import so3lr_potential, tabulate
from biomlff.so3lr.architecture import Architecture, init_params


def _ref(shared, name):
    return np.load(shared / "so3lr" / "reference" / f"{name}_jaxmd.npz")


def _structure(shared, name):
    if name == "water":  # water_64.xyz repeated 2×2×2 (1536 atoms, 24.8 Å box), as the reference
        atoms = ase.io.read(shared / "so3lr" / "reference" / "water_64.xyz")
        atoms.wrap()
        atoms = atoms * (2, 2, 2)
    else:
        atoms = ase.io.read(shared / "so3lr" / "reference" / f"{name}.xyz")
        atoms.set_cell(None)
        atoms.pbc = False
    atoms.info = {}
    return atoms


def _run(atoms, params, precision, filters):
    atoms.calc = SO3LRCalculator(
        lr_cutoff=12.0, dispersion_damping=2.0, precision=precision, params=params, filters=filters
    )
    return atoms.get_potential_energy(), atoms.get_forces()


def _pairs(potential, positions, cell=None):
    return {
        name: build_pairs(positions, spec.cutoff, cell=cell, half=spec.half)
        for name, spec in potential.neighbors.items()
    }


# ------------------------------------------------------------------ the polynomial pieces
def test_hermite_coefficients_reproduce_a_quintic():
    rng = np.random.default_rng(0)
    a = rng.normal(size=6)
    p = np.polynomial.Polynomial(a)
    ends = [np.array([[p(t)], [p.deriv(1)(t)], [p.deriv(2)(t)]]) for t in (0.0, 1.0)]
    c = tabulate.hermite_coefficients(ends[0], ends[1], "quintic")[:, 0]
    assert np.allclose(c, a, atol=1e-12)
    cubic = np.polynomial.Polynomial(a[:4])
    ends = [np.array([[cubic(t)], [cubic.deriv(1)(t)], [0.0]]) for t in (0.0, 1.0)]
    assert np.allclose(tabulate.hermite_coefficients(ends[0], ends[1], "cubic")[:, 0], a[:4], atol=1e-12)


def test_published_tables_are_below_float32_rounding(params):
    """The table error of the published filters (float64 table, 20011 distances) is far below the
    float32 rounding of the filter values (|w| up to ~11.5, ulp ≈ 1e-6)."""
    for cells, tol in ((512, 1e-7), (1024, 2e-9)):
        tables = tabulate.build_tables(params, dtype=np.float64, num_cells=cells)
        for layer, (err, biggest) in tabulate.table_error(params, tables).items():
            assert err <= tol, (cells, layer, err)
            assert biggest > 1.0  # the filters are not trivially small


def test_random_weight_model_table_matches_its_filters():
    """A table is built from any weights: a random 32-feature, 2-layer model."""
    arch = Architecture(num_features=32, num_layers=2)
    p = init_params(arch, 3)
    tables = tabulate.build_tables(p, arch, np.float64, 1024)
    assert set(tables) == {"layers_0", "layers_1"}
    assert tables["layers_0"].shape == (1024, 6, 2 * arch.num_features)
    for layer, (err, biggest) in tabulate.table_error(p, tables, arch).items():
        assert err <= 1e-9 * max(1.0, biggest), (layer, err, biggest)
    # and its energy and forces with tables equal the exact ones (float64)
    atoms = molecule("CH3CH2OH")
    x = atoms.positions
    out = {}
    with jax.enable_x64(True):
        for filters in ("exact", "tabulated"):
            pot = so3lr_potential(
                atoms.numbers, lr_cutoff=None, precision="float64", params=p, arch=arch, filters=filters
            )
            e, f = jax.jit(energy_and_forces(pot))(x, _pairs(pot, x))
            out[filters] = (float(e), np.asarray(f))
    assert abs(out["exact"][0] - out["tabulated"][0]) < 1e-8
    assert np.abs(out["exact"][1] - out["tabulated"][1]).max() < 1e-8


# ------------------------------------------------------------------ against the references
@pytest.mark.parametrize("name", ["atat", "dha", "bb"])
def test_float32_tabulated_matches_float64_reference(shared, params, name):
    ref = _ref(shared, name)
    e_ref = float(ref["energy"])
    e, f = _run(_structure(shared, name), params, "float32", "tabulated")
    assert abs(e - e_ref) <= 2e-4 + 2e-7 * abs(e_ref), (e, e_ref)
    assert np.abs(f - ref["forces"]).max() <= 5e-4


def test_float32_tabulated_water_matches_float64_reference(shared, params):
    ref = _ref(shared, "water")
    e_ref = float(ref["energy"])
    e, f = _run(_structure(shared, "water"), params, "float32", "tabulated")
    assert abs(e - e_ref) <= 2e-4 + 2e-7 * abs(e_ref), (e, e_ref)
    assert np.abs(f - ref["forces"]).max() <= 5e-4


def test_float32_default_is_tabulated_and_float64_default_exact(params):
    assert SO3LRCalculator(params=params).filters == "tabulated"
    assert SO3LRCalculator(params=params, precision="float64").filters == "exact"
    pot = so3lr_potential([8, 1, 1], lr_cutoff=None, params=params)
    assert pot.info["filters"] == "tabulated"
    assert pot.energy_fn.func.config.filters == "tabulated"
    assert tabulate.TABLES_KEY in pot.energy_fn.args[0]


def test_float64_tabulated_matches_exact(shared, params):
    atoms = _structure(shared, "dha")
    e0, f0 = _run(atoms.copy(), params, "float64", "exact")
    e1, f1 = _run(atoms.copy(), params, "float64", "tabulated")
    assert abs(e1 - e0) < 1e-6
    assert np.abs(f1 - f0).max() <= 1e-5
    assert np.abs(f1 - f0).max() > 0  # really a different code path


@pytest.mark.slow
def test_float64_tabulated_water_matches_reference(shared, params):
    """1536 atoms in float64 (one evaluation): tabulated within the float64 tolerances of the
    reference that the exact path meets (tests/so3lr/test_so3lr_reference.py)."""
    ref = _ref(shared, "water")
    e_ref = float(ref["energy"])
    e, f = _run(_structure(shared, "water"), params, "float64", "tabulated")
    assert abs(e - e_ref) <= 1e-5 + 1e-7 * abs(e_ref), (e, e_ref)
    assert np.abs(f - ref["forces"]).max() <= 1e-5


# ------------------------------------------------------------------ forces and plumbing
def test_tabulated_forces_are_minus_gradient(shared, params):
    """F = −∇E of the tabulated energy: central differences along random directions (float64)."""
    atoms = _structure(shared, "dha")
    x0 = atoms.positions
    with jax.enable_x64(True):
        pot = so3lr_potential(
            atoms.numbers, lr_cutoff=12.0, precision="float64", params=params, filters="tabulated"
        )
        pairs = _pairs(pot, x0)
        energy = jax.jit(pot.energy_fn)
        _, f = jax.jit(energy_and_forces(pot))(x0, pairs)
        f = np.asarray(f)
        rng = np.random.default_rng(7)
        h = 1e-4
        for _ in range(3):
            v = rng.normal(size=x0.shape)
            v /= np.linalg.norm(v)
            fd = (float(energy(x0 + h * v, pairs)) - float(energy(x0 - h * v, pairs))) / (2 * h)
            assert abs(fd + np.sum(f * v)) < 1e-6, (fd, -np.sum(f * v))
        # one atom, one component: the largest force component
        k = np.unravel_index(np.argmax(np.abs(f)), f.shape)
        d = np.zeros_like(x0)
        d[k] = h
        fd = (float(energy(x0 + d, pairs)) - float(energy(x0 - d, pairs))) / (2 * h)
        assert abs(fd + f[k]) < 1e-6


def test_tables_are_built_once_and_travel_with_the_weights(params, monkeypatch):
    a = tabulate.with_tables(params)
    b = tabulate.with_tables(dict(params))
    assert a[tabulate.TABLES_KEY] is b[tabulate.TABLES_KEY]  # cached by the weights' checksum
    assert tabulate.with_tables(a) is a
    pot = so3lr_potential([8, 1, 1], lr_cutoff=None, params=params, filters="tabulated")
    leaves = jax.tree_util.tree_leaves(pot.energy_fn)
    assert any(leaf is a[tabulate.TABLES_KEY]["layers_0"] for leaf in leaves)

    def boom(*args, **kwargs):
        raise AssertionError("table rebuilt inside an energy call")

    monkeypatch.setattr(tabulate, "layer_table", boom)
    monkeypatch.setattr(tabulate, "build_tables", boom)
    x = molecule("H2O").positions
    e, f = jax.jit(energy_and_forces(pot))(x, _pairs(pot, x))
    assert np.isfinite(float(e)) and np.all(np.isfinite(np.asarray(f)))


def test_bad_filters_and_missing_tables(params):
    with pytest.raises(ConfigError, match="filters must be one of"):
        so3lr_potential([8, 1, 1], params=params, filters="table")
    with pytest.raises(ConfigError, match="filters must be one of"):
        SO3LRCalculator(params=params, filters="fast")
    pot = so3lr_potential([8, 1, 1], lr_cutoff=None, params=params, filters="tabulated")
    bare = jax.tree_util.Partial(
        pot.energy_fn.func, tabulate.without_tables(pot.energy_fn.args[0]), *pot.energy_fn.args[1:]
    )
    x = molecule("H2O").positions
    with pytest.raises(ModelError, match="radial_tables"):
        bare(x, _pairs(pot, x))


@pytest.mark.slow
def test_batched_evaluation_and_cli_take_filters(params):
    from biomlff.cli.main import build_parser
    from biomlff.so3lr.evaluate import evaluate

    atoms = molecule("CH3CH2OH")
    out = {}
    for filters in ("exact", "tabulated"):
        pot = so3lr_potential(atoms.numbers, lr_cutoff=None, params=params, filters=filters)
        out[filters] = evaluate(pot, atoms.positions)
    assert abs(out["exact"]["energy"] - out["tabulated"]["energy"]) < 1e-4
    assert np.abs(out["exact"]["forces"] - out["tabulated"]["forces"]).max() < 1e-4
    parser = build_parser()
    args = parser.parse_args(["eval", "--data", "x.xyz", "--filters", "exact"])
    assert args.filters == "exact"
    args = parser.parse_args(["md", "nvt", "x.xyz", "--filters", "tabulated"])
    assert args.filters == "tabulated"


# ------------------------------------------------------------------ pair lists at scale
@pytest.mark.slow
def test_cell_list_skin_avoids_the_all_pairs_fallback():
    """JAX-MD builds a list from a cell list only with ≥ 4 cells per side; a box just below that
    (25.5 Å, 6 + 0.5 Å) gets a smaller skin, a cell list, and the same pairs as the host list."""
    from biomlff.md.neighborlist import PairLists, cell_list_skin
    from biomlff.neighbors import pair_indices
    from biomlff.potential import NeighborSpec

    assert cell_list_skin(49.6, 12.0, 0.5, 12288) == pytest.approx(0.399)
    assert cell_list_skin(99.2, 12.0, 0.5, 98304) == 0.5  # already 7 cells
    assert cell_list_skin(24.8, 12.0, 0.5, 1536) == 0.5  # small system, 4 cells out of reach
    assert cell_list_skin(49.6, 12.0, 0.5, 1000) == 0.5  # below CELL_LIST_MIN_ATOMS
    rng = np.random.default_rng(0)
    n, box = 2048, 25.5
    x = rng.uniform(0, box, size=(n, 3))
    cell = np.eye(3) * box
    pl = PairLists({"lr": NeighborSpec(6.0, half=True)}, n, cell, skin=0.5, builder="jax_md")
    assert pl.skin == pytest.approx(25.5 / 4 - 6.0 - 1e-3)
    state = pl.allocate(x, cell)
    assert state["lists"]["lr"].cell_list_capacity is not None  # a cell list, not N² candidates
    p = pl.pairs(state, jax.numpy.asarray(x), jax.numpy.asarray(cell))["lr"]
    m = np.asarray(p.mask)
    got = set(zip(np.asarray(p.i)[m].tolist(), np.asarray(p.j)[m].tolist(), strict=True))
    i, j = pair_indices(x, 6.0, cell=cell, half=True)
    assert got == set(zip(i.tolist(), j.tolist(), strict=True))


# ------------------------------------------------------------------ the fast path (biomlff.pairsum)
@pytest.mark.parametrize("first", [True, False])
def test_hand_written_block_vjp_equals_jax_vjp(params, first):
    """The hand-written reverse pass of one block of tabulated messages equals jax.vjp of the block
    (float64, random rows and cotangents, published weights and tables)."""
    import functools

    import jax.numpy as jnp

    from biomlff.so3lr import network
    from biomlff.so3lr.architecture import PUBLISHED as arch

    with jax.enable_x64(True):
        tab = tabulate.build_tables(params, arch, np.float64)["layers_1"]
        ab = params["layers_1"]["attention_block"]
        consts = {k: jax.tree_util.tree_map(jnp.asarray, ab[k]) for k in network._SPHERICAL_KEYS}
        rng = np.random.default_rng(3)
        b = 64

        def rows(*shape):
            return jnp.asarray(rng.normal(size=shape))

        ni = tuple(rows(b, 4, 32) for _ in range(5)) + (() if first else (rows(b, 24),))
        nj = tuple(rows(b, 4, 32) for _ in range(5)) + (() if first else (rows(b, 24),))
        g = {
            "r": jnp.asarray(rng.uniform(0.5, 4.4, b)),
            "ylm": rows(b, 24),
            "phi": jnp.asarray(rng.uniform(0, 1, b)),
        }
        ct_i, ct_j = (rows(b, 128), rows(b, 24)), (rows(b, 128), rows(b, 24))
        kw = dict(dtype=jnp.float64, first=first, arch=arch)
        fn = functools.partial(network._tabulated_block, **kw)
        _, vjp = jax.vjp(lambda c, a, bb, gg: fn(c, tab, a, bb, gg, None), consts, ni, nj, g)
        want = vjp((ct_i, ct_j))
        got = network._tabulated_block_vjp(consts, tab, ni, nj, g, None, ct_i, ct_j, **kw)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for u, v in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        # the spherical-filter weight cotangents come back in the weights' float32
        tol = 1e-5 if u.dtype == np.float32 else 1e-10
        assert np.abs(np.asarray(u) - np.asarray(v)).max() <= tol * max(1.0, np.abs(np.asarray(v)).max())


def test_fast_path_periodic_forces_stress_and_second_derivatives(shared, params):
    """Tabulated (fast path) against exact filters, float64, periodic water_64 (lr cutoff 6 Å so that
    the 12.4 Å box is large enough): forces, stress (cell derivative through the long-range minimum
    image) and the gradient of Σ F² (reverse over reverse, as force training needs)."""
    from biomlff.potential import stress

    atoms = ase.io.read(shared / "so3lr" / "reference" / "water_64.xyz")
    atoms.wrap()
    cell = np.asarray(atoms.cell[:])
    x = atoms.positions % np.diag(cell)
    out = {}
    with jax.enable_x64(True):
        for filters in ("exact", "tabulated"):
            pot = so3lr_potential(
                atoms.numbers,
                lr_cutoff=6.0,
                dispersion_damping=1.0,
                precision="float64",
                params=params,
                filters=filters,
            )
            pairs = _pairs(pot, x, cell)
            e, f = jax.jit(energy_and_forces(pot))(x, pairs, cell)
            s = jax.jit(stress(pot))(x, pairs, cell)

            def force_norm(r, pot=pot, pairs=pairs):
                return jax.numpy.sum(energy_and_forces(pot)(r, pairs, cell)[1] ** 2)

            gf = jax.jit(jax.grad(force_norm))(x)
            out[filters] = (float(e), np.asarray(f), np.asarray(s), np.asarray(gf))
    ex, tb = out["exact"], out["tabulated"]
    assert abs(ex[0] - tb[0]) < 1e-6
    assert np.abs(ex[1] - tb[1]).max() < 1e-5
    assert np.abs(ex[2] - tb[2]).max() < 1e-8  # eV/Å³ (values ~1e-3)
    assert np.abs(ex[3] - tb[3]).max() < 1e-3 * max(1.0, np.abs(ex[3]).max())


def test_fast_path_hessian_by_reverse_over_reverse(shared, params):
    """biomlff.potential.hessian works through the fast path (no forward mode there) and equals the
    exact path's jax.hessian (float64, ethanol)."""
    from biomlff.potential import hessian

    atoms = molecule("CH3CH2OH")
    x = atoms.positions
    with jax.enable_x64(True):
        h = {}
        for filters in ("exact", "tabulated"):
            pot = so3lr_potential(
                atoms.numbers, lr_cutoff=None, precision="float64", params=params, filters=filters
            )
            h[filters] = np.asarray(jax.jit(hessian(pot))(x, _pairs(pot, x)))
        pot = so3lr_potential(
            atoms.numbers, lr_cutoff=None, precision="float64", params=params, filters="exact"
        )
        fwd = np.asarray(jax.jit(jax.hessian(pot.energy_fn))(x, _pairs(pot, x)))
    assert h["tabulated"].shape == (9, 3, 9, 3)
    assert np.abs(h["exact"] - fwd).max() < 1e-8
    assert np.abs(h["tabulated"] - h["exact"]).max() < 1e-4
    assert np.abs(h["tabulated"] - h["tabulated"].transpose(2, 3, 0, 1)).max() < 1e-8


def test_tables_are_stored_and_read_back_bit_for_bit(tmp_path, monkeypatch):
    """A later process reads the tables from the user cache instead of building them (issue 26):
    the same arrays bit for bit; corrupt files and other weights are built again."""
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path))
    monkeypatch.delenv("BIOMLFF_COMPILE_CACHE", raising=False)
    monkeypatch.delenv("BIOMLFF_AOT_DIR", raising=False)  # the suite's own folder (tests/conftest.py)
    arch = Architecture(num_features=16, num_layers=2)
    p = init_params(arch, 5)

    def tables(weights):
        tabulate._cached_tables.cache_clear()  # a new process
        return tabulate.with_tables(weights, arch, np.float64, num_cells=8)[tabulate.TABLES_KEY]

    built = tables(p)
    (path,) = (tmp_path / "aot").glob("so3lr-tables-*.npz")
    real_build = tabulate.build_tables

    def boom(*args, **kwargs):
        raise AssertionError("tables rebuilt")

    monkeypatch.setattr(tabulate, "build_tables", boom)
    read = tables(p)
    assert set(read) == set(built)
    for k in built:
        assert read[k].dtype == built[k].dtype and read[k].tobytes() == built[k].tobytes()
    path.write_bytes(path.read_bytes()[:-100])  # truncated: built again and replaced
    with pytest.raises(AssertionError, match="rebuilt"):
        tables(p)
    monkeypatch.setattr(tabulate, "build_tables", real_build)
    assert tables(p)["layers_1"].tobytes() == built["layers_1"].tobytes()
    tables(init_params(arch, 6))  # other weights: another file
    assert len(list((tmp_path / "aot").glob("so3lr-tables-*.npz"))) == 2
