"""The shared geometry (minimum image, cell heights, one cell check), precision switch and atomic
file output (biomlff.geometry, biomlff.precision, biomlff.fileio)."""

import itertools

import jax
import numpy as np
import pytest
from ase import Atoms

from biomlff import geometry
from biomlff.errors import ModelError
from biomlff.fileio import atomic_path, atomic_savez, atomic_write
from biomlff.precision import dtype_of, precision_context

#: a strongly skewed triclinic cell (rows = lattice vectors, Å)
TRICLINIC = np.array([[10.0, 0.0, 0.0], [4.0, 9.0, 0.0], [-3.0, 2.5, 11.0]])


def _brute_force_image(d, cell, reach: int = 3):
    """Shortest d + n·cell over all integer n with |n_k| ≤ reach (an independent reference)."""
    shifts = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3)), float) @ cell
    cand = d[:, None, :] + shifts[None]
    k = np.argmin(np.einsum("pmi,pmi->pm", cand, cand), axis=1)
    return cand[np.arange(len(d)), k]


def test_cell_heights_triclinic_and_orthorhombic():
    h = geometry.cell_heights(TRICLINIC)
    vol = abs(np.linalg.det(TRICLINIC))
    for k in range(3):  # height = volume / area of the opposite face
        area = np.linalg.norm(np.cross(TRICLINIC[(k + 1) % 3], TRICLINIC[(k + 2) % 3]))
        assert h[k] == pytest.approx(vol / area, rel=1e-13)
    box = np.diag([24.0, 20.0, 30.0])
    assert geometry.cell_heights(box).tolist() == [24.0, 20.0, 30.0]  # exactly the edges
    # per-frame cells broadcast
    assert geometry.cell_heights(np.stack([TRICLINIC, box])).shape == (2, 3)


def test_minimum_image_matches_brute_force_on_triclinic_cell():
    rng = np.random.default_rng(3)
    # displacements spread over several cells: their images are far from the rounding answer's start
    d = rng.uniform(-25.0, 25.0, size=(4000, 3))
    ref = _brute_force_image(d, TRICLINIC)
    half_height = 0.5 * geometry.cell_heights(TRICLINIC).min()
    near = np.linalg.norm(ref, axis=1) < half_height  # the range the cell check guarantees
    assert near.sum() > 500
    got_np = geometry.minimum_image_np(d, TRICLINIC)
    np.testing.assert_allclose(got_np[near], ref[near], atol=1e-10)
    with jax.enable_x64(True):
        got_jax = np.asarray(geometry.minimum_image(jax.numpy.asarray(d), jax.numpy.asarray(TRICLINIC)))
    np.testing.assert_allclose(got_jax[near], ref[near], atol=1e-10)
    # every rounding result is a lattice translate of d, never longer than needed in the safe range
    n = (got_np - d) @ np.linalg.inv(TRICLINIC)
    np.testing.assert_allclose(n, np.round(n), atol=1e-9)
    # per-frame cells: frame t uses cell t
    cells = np.stack([TRICLINIC, np.diag([9.0, 9.0, 9.0])])
    per_frame = geometry.minimum_image_np(d[:200].reshape(2, 100, 3), cells)
    np.testing.assert_allclose(per_frame[0], geometry.minimum_image_np(d[:100], cells[0]), atol=1e-12)
    np.testing.assert_allclose(per_frame[1], geometry.minimum_image_np(d[100:200], cells[1]), atol=1e-12)
    assert geometry.minimum_image(d, None) is d


def test_so3lr_displacements_are_the_shared_minimum_image():
    """SO3LR's pair vectors are exactly geometry.minimum_image (same formula, same bits)."""
    from biomlff.so3lr.model import _displacements

    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        pos = jax.numpy.asarray(rng.uniform(0, 20, size=(30, 3)))
        cell = jax.numpy.asarray(np.diag([20.0, 21.0, 22.0]))
        i = np.arange(30)
        j = (i + 7) % 30
        a = np.asarray(_displacements(pos, i, j, cell))
        s = (pos[j] - pos[i]) @ jax.numpy.linalg.inv(cell)
        b = np.asarray((s - jax.numpy.round(s)) @ cell)
    assert np.array_equal(a, b)


def _verdicts(cell, cutoff):
    """Does each consumer accept ``cell`` for ``cutoff``? MD lists, host lists, SO3LR calculator."""
    from biomlff.calculators import SO3LRCalculator
    from biomlff.md.neighborlist import PairLists
    from biomlff.neighbors import pair_indices
    from biomlff.potential import NeighborSpec

    pos = np.array([[1.0, 1.0, 1.0], [3.0, 1.5, 1.0]])

    def md():
        PairLists({"x": NeighborSpec(cutoff, half=True)}, len(pos), cell)

    def host():
        pair_indices(pos, cutoff, cell=cell, half=True)

    def calculator():
        atoms = Atoms("H2", positions=pos, cell=cell, pbc=True)
        atoms.calc = SO3LRCalculator(lr_cutoff=cutoff, params={})  # the cell is checked first
        atoms.get_potential_energy()

    out = {}
    for name, fn in (("md", md), ("host", host), ("so3lr", calculator)):
        try:
            fn()
        except ModelError as exc:
            if "box heights" in str(exc):
                assert f"{2 * cutoff:g} Å" in str(exc)
                out[name] = False
                continue
            if name != "so3lr":
                raise
        except (KeyError, TypeError, ValueError):  # the dummy SO3LR weights, after the cell was accepted
            if name != "so3lr":
                raise
        out[name] = True
    return out


def test_one_cell_check_for_md_host_lists_and_so3lr():
    small = np.diag([10.0, 14.0, 14.0])  # 10 Å < 2 × 6 Å
    assert _verdicts(small, 6.0) == {"md": False, "host": False, "so3lr": False}
    message = r"box heights \[10.0, 14.0, 14.0\] Å are smaller than 2 × cutoff = 12 Å"
    with pytest.raises(ModelError, match=message):
        geometry.check_cell(small, 6.0)
    exact = np.diag([12.0, 14.0, 14.0])  # heights exactly 2 × cutoff: accepted by all
    assert geometry.check_cell(exact, 6.0) is not None
    assert _verdicts(exact, 6.0) == {"md": True, "host": True, "so3lr": True}


def test_cell_check_uses_heights_not_edges():
    # every edge ≥ 10.9 Å but the heights are smaller: refused (fractional rounding would be wrong)
    skew = np.array([[11.0, 0.0, 0.0], [8.0, 8.0, 0.0], [0.0, 0.0, 11.0]])
    assert np.linalg.norm(skew, axis=1).min() > 2 * 5.0
    assert geometry.cell_heights(skew).min() < 2 * 5.0
    with pytest.raises(ModelError, match="box heights"):
        geometry.check_cell(skew, 5.0)
    with pytest.raises(ModelError, match="free space"):
        geometry.check_cell(np.eye(3) * 30.0, None)
    with pytest.raises(ModelError, match="singular"):
        geometry.check_cell(np.zeros((3, 3)), 1.0)
    assert geometry.check_cell(None, 6.0) is None


def test_precision_context_and_dtype():
    assert dtype_of("float64") is np.float64 and dtype_of("float32") is np.float32
    before = jax.config.jax_enable_x64
    with precision_context("float64"):
        assert jax.numpy.asarray(1.0).dtype == np.float64
    with precision_context("float32"):
        assert jax.numpy.asarray(1.0).dtype == np.float32
    assert jax.config.jax_enable_x64 == before  # the global flag is never flipped


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("new, half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old\n"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.npz") as tmp:
            np.savez(tmp, a=np.arange(3))
            raise RuntimeError("writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary files left
    with atomic_write(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    path = atomic_savez(tmp_path / "a.npz", {"x": np.arange(4)}, fsync=True)
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2, 3]


def test_atomic_path_old_import_paths():
    import biomlff.data
    import biomlff.data.io
    import biomlff.fileio

    assert biomlff.data.atomic_path is biomlff.fileio.atomic_path
    assert biomlff.data.io.atomic_path is biomlff.fileio.atomic_path
