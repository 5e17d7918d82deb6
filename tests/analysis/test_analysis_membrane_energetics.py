"""Membrane observables on an ideal bilayer; interaction energies with a cheap potential; running means."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_builders import ordered_chain, synthetic_bilayer  # noqa: E402

from biomlff import units  # noqa: E402
from biomlff.analysis import (  # noqa: E402
    area_per_lipid,
    bilayer_thickness,
    bonds_from_positions,
    chain_order_parameters,
    cumulative_average,
    density_profile,
    find_acyl_chains,
    interaction_energy,
    order_parameters,
)
from biomlff.errors import ConfigError, DataError  # noqa: E402


def test_order_parameter_of_perfectly_ordered_chain_is_minus_half():
    numbers, x, carbons = ordered_chain(16)
    chains = find_acyl_chains(numbers, bonds_from_positions(numbers, x))
    assert len(chains) == 1 and chains[0].carbons == carbons
    s = chain_order_parameters(x[None], chains)[16]
    assert np.isnan(s[0])  # carbonyl C1 has no H
    assert np.allclose(s[1:15], -0.5, atol=1e-3)  # CH2 groups of an all-trans chain along z
    # a chain lying in the membrane plane (normal along y here): C–H along the normal on average
    s_y = order_parameters(x[None], chains[0].carbons, chains[0].hydrogens, normal=(1.0, 0.0, 0.0))
    assert np.all(s_y[1:15] > -0.5)


def test_order_parameter_isotropic_bonds_average_zero():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4000, 1, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    x = np.concatenate([np.zeros((4000, 1, 3)), 1.09 * v], axis=1)
    s = order_parameters(x, [0], [[1]])
    assert abs(s[0]) < 0.03


@pytest.mark.parametrize("shift", [0.0, 33.0])
def test_ideal_bilayer_area_thickness_and_order(shift):
    numbers, x, cell, p_idx, d_pp = synthetic_bilayer(shift_z=shift)
    assert x[:, 2].max() < cell[2, 2]
    apl = area_per_lipid(cell, n_lipids_per_leaflet=4)
    assert np.allclose(apl, 64.0)
    tails = np.nonzero(numbers == 6)[0]
    th = bilayer_thickness(x, cell, p_idx, center_idx=tails)
    assert np.allclose(th.per_frame, d_pp, atol=1e-9)
    assert abs(th.from_profile - d_pp) <= 2 * cell[2, 2] / 100
    bonds = bonds_from_positions(numbers, x, cell)
    chains = find_acyl_chains(numbers, bonds)
    assert len(chains) == 8
    s = chain_order_parameters(x[None], chains, cell)[16]
    assert np.allclose(s[1:15], -0.5, atol=1e-3)
    z, rho = density_profile(x, cell, p_idx, tails)
    # all 8 P atoms counted once: ∫ρ dz · area = number of P atoms
    assert np.isclose(rho.sum() * (z[1] - z[0]) * 256.0, 8.0)


def test_membrane_bad_input():
    with pytest.raises(DataError, match="periodic cell"):
        area_per_lipid(None, 4)
    with pytest.raises(ConfigError):
        area_per_lipid(np.eye(3) * 10, 0)
    numbers, x, cell, p_idx, _ = synthetic_bilayer()
    with pytest.raises(DataError, match="one side only"):
        bilayer_thickness(x, cell, p_idx[:4], center_idx=np.arange(len(numbers)))
    with pytest.raises(DataError, match="no acyl chains"):
        chain_order_parameters(x[None], [])


def lennard_jones(numbers, epsilon, sigma):
    """A minimal all-pairs Lennard-Jones Potential (free space, half pair list) for the tests."""
    import jax.numpy as jnp

    from biomlff.potential import NeighborSpec, Potential

    def energy_fn(positions, pairs, cell=None):
        p = pairs["all"]
        d = positions[p.j] - positions[p.i]
        r2 = jnp.where(p.mask, jnp.sum(d * d, axis=-1), 4.0 * sigma**2)
        sr6 = (sigma**2 / r2) ** 3
        return jnp.sum(jnp.where(p.mask, 4.0 * epsilon * (sr6 * sr6 - sr6), 0.0))

    return Potential(
        energy_fn=energy_fn,
        neighbors={"all": NeighborSpec(None, half=True)},
        atomic_numbers=np.asarray(numbers),
    )


def lj_builder(calls):
    def build(numbers, charge):
        calls.append((len(numbers), charge))
        return lennard_jones(numbers, epsilon=0.01, sigma=3.0)

    return build


def test_interaction_energy_of_lj_dimer_and_trimer_is_analytic():
    pytest.importorskip("jax")
    calls = []
    build = lj_builder(calls)
    lj = lambda r: 4 * 0.01 * ((3.0 / r) ** 12 - (3.0 / r) ** 6)
    rs = np.array([3.0, 3.37, 4.0])
    x = np.zeros((3, 2, 3))
    x[:, 1, 0] = rs
    res = interaction_energy(build, [18, 18], x, [[0], [1]], charges=[1, -1])
    assert np.allclose(res.interaction, lj(rs), atol=1e-6)
    assert calls[0] == (2, 0) and calls[1:] == [(1, 1), (1, -1)]
    assert np.isclose(res.interaction_kcal_mol[1], lj(3.37) / units.kcal_mol, atol=1e-4)
    # fragment A = two atoms, B = one: E_int = LJ(a1, b) + LJ(a2, b); the A–A term cancels
    y = np.array([[0.0, 0, 0], [3.5, 0, 0], [0.0, 3.8, 0]])
    res = interaction_energy(build, [18, 18, 18], y, [[0, 1], [2]])
    expected = lj(3.8) + lj(np.hypot(3.5, 3.8))
    assert np.isclose(res.interaction[0], expected, atol=1e-6)
    # a builder that takes fragments (like SO3LR's) gets per-atom fragment ids and charges
    seen = []

    def build_frag(numbers, charge, fragments=None):
        seen.append(fragments)
        return lennard_jones(numbers, epsilon=0.01, sigma=3.0)

    res2 = interaction_energy(build_frag, [18, 18, 18], y, [[0, 1], [2]], charges=[1, -1])
    assert res2.method == "separated"
    assert np.isclose(res2.interaction[0], expected, atol=1e-6)
    # the complex is built at the total charge without fragments, the separated reference with them
    assert seen[0] is None and seen[1][0].tolist() == [0, 0, 1] and seen[1][1].tolist() == [1.0, -1.0]
    # the reference is the separated complex: only the A–A pair (3.5 Å) is left
    assert np.isclose(res2.reference[0], lj(3.5), atol=1e-6)
    assert res.method == "fragments"
    with pytest.raises(DataError, match="overlap"):
        interaction_energy(build, [18, 18, 18], y, [[0, 1], [1, 2]])
    with pytest.raises(ConfigError, match="at least 2 fragments"):
        interaction_energy(build, [18, 18, 18], y, [[0, 1, 2]])


def test_cumulative_average():
    assert np.allclose(cumulative_average([1, 2, 3, 4]), [1, 1.5, 2, 2.5])
    rng = np.random.default_rng(1)
    v = 5.0 + rng.normal(size=20000)
    c = cumulative_average(v)
    assert abs(c[-1] - 5.0) < 0.03 and np.isclose(c[-1], v.mean())
    with pytest.raises(DataError):
        cumulative_average([])
