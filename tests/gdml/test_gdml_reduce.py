"""rGDML: descriptor over an explicit pair list, vectorised masking, orbit-closed reduction,
retraining, pair/atom contributions, sgdml desc_type=2 files, CLI and bad input.

References: the explicitly masked model (zeroed features run through the ordinary batched prediction
formula), the model's own predictions, JAX autodiff, and the permutation group. Data: rMD17 ethanol.
"""

from __future__ import annotations

import numpy as np
import pytest

from biomlff.errors import ConfigError, DataError, ModelError


@pytest.fixture(scope="module")
def ethanol(shared):
    from biomlff.gdml import load_frames

    root = shared / "datasets" / "rmd17"
    kw = dict(energy_key="energies", forces_key="forces")
    return (
        load_frames(root / "rmd17_ethanol_train_01.npz", **kw),
        load_frames(root / "rmd17_ethanol_test_01.npz", **kw),
    )


@pytest.fixture(scope="module")
def perms(ethanol):
    from biomlff.gdml.perms import find_perms

    return find_perms(ethanol[0].R[:200], ethanol[0].z, seed=0)


def _train(frames, perms, pairs=None, sigma=10.0, m=40):
    from biomlff.gdml import TrainConfig, train

    cfg = TrainConfig(
        n_train=m,
        sigmas=[sigma],
        perms=perms,
        solver="closed",
        idx_train=np.arange(0, 10 * m, 10),
        pairs=pairs,
    )
    return train(frames, cfg)[0]


@pytest.fixture(scope="module")
def sgdml_model(ethanol, perms):
    return _train(ethanol[0], perms)


@pytest.fixture(scope="module")
def gdml_model(ethanol):
    from biomlff.gdml.perms import identity

    return _train(ethanol[0], identity(9), sigma=20.0)


def _close(x, ref, rel=1e-10):
    return np.max(np.abs(np.asarray(x) - np.asarray(ref))) <= rel * max(np.max(np.abs(ref)), 1e-300)


# ------------------------------------------------------------------ masking
@pytest.mark.parametrize("which", ["gdml", "sgdml"])
def test_vectorised_masking_equals_explicitly_masked_model(which, gdml_model, sgdml_model, ethanol):
    from biomlff.gdml.reduce import feature_importance, masked_predict, masked_predictions

    model = gdml_model if which == "gdml" else sgdml_model
    pos = ethanol[1].R[:6]
    feats = [0, 5, 17, 35]
    e_v, f_v = masked_predictions(model, pos, [[n] for n in feats])
    imp = feature_importance(model, pos, groups=[[n] for n in feats], memory_mb=1.0)  # many small calls
    e0, f0 = model.predict(pos)
    for col, n in enumerate(feats):
        mask = np.ones(model.n_features)
        mask[n] = 0.0
        e_x, f_x = masked_predict(model, pos, mask)
        assert _close(f_v[:, col], f_x, 1e-10), n
        assert _close(e_v[:, col], e_x, 1e-10), n
        assert np.max(np.abs(f_x - f0)) > 1e-3  # masking does change the model
        lf = np.sqrt(np.mean((f_x - f0) ** 2))
        le = np.sqrt(np.mean((e_x - e0) ** 2))
        assert imp.loss_F[col] == pytest.approx(lf, rel=1e-9)
        assert imp.loss_E[col] == pytest.approx(le, rel=1e-9)


def test_orbit_masking_and_reduced_model_through_the_pair_list(sgdml_model, ethanol):
    """Masking whole orbits (vectorised) equals the explicitly masked model, and the model reduced to
    the remaining pairs predicts through its own pair list what the masked full model predicts."""
    from biomlff.gdml.reduce import feature_groups, masked_predict, masked_predictions, reduce_model

    model = sgdml_model
    orbits = feature_groups(model)
    assert sum(len(o) for o in orbits) == model.n_features and max(len(o) for o in orbits) > 1
    pos = ethanol[1].R[10:16]
    drop = [o for o in orbits if len(o) > 1][:3]
    e_v, f_v = masked_predictions(model, pos, [np.concatenate(drop)])
    mask = np.ones(model.n_features)
    mask[np.concatenate(drop)] = 0.0
    e_x, f_x = masked_predict(model, pos, mask)
    assert _close(f_v[:, 0], f_x) and _close(e_v[:, 0], e_x)
    red = reduce_model(model, np.nonzero(mask)[0])
    assert red.n_features == int(mask.sum()) and red.is_reduced
    e_r, f_r = red.predict(pos)
    assert _close(f_r, f_x, 1e-10) and _close(e_r, e_x, 1e-10)
    # the JAX energy function of the reduced model (direct differences, autodiff forces) agrees
    import jax

    with jax.enable_x64(True):
        pot = red.potential()
        g = jax.grad(lambda r: pot.energy_fn(r, {}, None))(pos[0])
        assert _close(-np.asarray(g), f_r[0], 1e-8)


def test_gdml_reduction_of_any_subset(gdml_model, ethanol):
    from biomlff.gdml.reduce import masked_predict, reduce_model

    rng = np.random.default_rng(0)
    kept = np.sort(rng.choice(gdml_model.n_features, 15, replace=False))
    red = reduce_model(gdml_model, kept)
    mask = np.zeros(gdml_model.n_features)
    mask[kept] = 1.0
    pos = ethanol[1].R[:5]
    e_x, f_x = masked_predict(gdml_model, pos, mask)
    e_r, f_r = red.predict(pos)
    assert _close(f_r, f_x) and _close(e_r, e_x)


def test_selection_rules(sgdml_model, ethanol):
    from biomlff.gdml.reduce import (
        check_orbit_closed,
        feature_importance,
        percentile_selection,
        select_features,
    )

    imp = feature_importance(sgdml_model, ethanol[1].R[:8])
    lf = imp.per_feature("F")
    for keep in (0.4, 0.7, 12):
        kept = select_features(imp, keep)
        target = keep if isinstance(keep, int) else int(np.ceil(keep * 36))
        assert len(kept) >= target
        a, b = sgdml_model.pairs
        check_orbit_closed(sgdml_model.perms, a[kept], b[kept], 9)  # a union of orbits
        removed = np.setdiff1d(np.arange(36), kept)
        # nothing removed is more important than anything kept
        assert lf[removed].max() <= lf[kept].min()
    kept = percentile_selection(imp, 50)
    assert np.all(lf[kept] >= np.percentile(lf, 50)) and len(kept) < 36
    # the alternative ranking by mean pair force contribution, summed per orbit
    from biomlff.gdml.contributions import average_contributions
    from biomlff.gdml.reduce import rank_features

    imp_f = rank_features(sgdml_model, ethanol[1].R[:8], "force")
    avg = average_contributions(sgdml_model, ethanol[1].R[:8])
    g = imp_f.groups[3]
    assert imp_f.loss_F[3] == pytest.approx(avg["pair_force_norm"][g].sum(), rel=1e-12)
    kept = select_features(imp_f, 0.5)
    a, b = sgdml_model.pairs
    check_orbit_closed(sgdml_model.perms, a[kept], b[kept], 9)
    with pytest.raises(ConfigError):
        rank_features(sgdml_model, ethanol[1].R[:8], "bogus")


# ------------------------------------------------------------------ retraining and symmetry
def test_retrained_orbit_closed_model_is_invariant_under_the_group(sgdml_model, ethanol, perms):
    from biomlff.gdml.reduce import feature_importance, retrain, select_features

    imp = feature_importance(sgdml_model, ethanol[1].R[:10])
    kept = select_features(imp, 0.75)
    red, _ = retrain(sgdml_model, ethanol[0], kept, sigmas=[10.0])
    assert red.n_features == len(kept) < 36 and red.n_perms == len(perms) == 6
    assert red.info["rgdml"]["retrained"] and len(red.info["rm_arr"]) == 36 - len(kept)
    pos = ethanol[1].R[:5]
    e, f = red.predict(pos)
    # (λ = 1e-10 and the smaller descriptor make |α| ~ 1e10 here: rounding, not symmetry, sets the
    # tolerance; a model that is not exactly symmetric differs at the 1e-2 level)
    for p in perms:
        ep, fp = red.predict(pos[:, p])
        assert _close(ep - red.c, e - red.c, 1e-7)
        assert _close(fp, f[:, p], 1e-7)
    # retraining fits the training forces (the reduced model is a model, not noise)
    tr = ethanol[0].subset(red.info["idxs_train"])
    _, ftr = red.predict(tr.R)
    assert np.sqrt(np.mean((ftr - tr.F) ** 2)) < 0.1 * np.std(tr.F)


def test_full_pair_list_is_the_default(ethanol, perms, sgdml_model):
    """Training with the full pair list given explicitly is bit-identical to the default path."""
    from biomlff.gdml.descriptor import pair_list

    m2 = _train(ethanol[0], perms, pairs=pair_list(9))
    assert not m2.is_reduced
    pos = ethanol[1].R[:4]
    e1, f1 = sgdml_model.predict(pos)
    e2, f2 = m2.predict(pos)
    assert np.array_equal(f1, f2) and np.array_equal(e1, e2)


# ------------------------------------------------------------------ contributions
@pytest.mark.parametrize("reduced", [False, True])
def test_contributions_sum_to_energy_and_forces(sgdml_model, ethanol, reduced):
    from biomlff.gdml.contributions import average_contributions, contributions
    from biomlff.gdml.reduce import feature_groups, reduce_model

    model = sgdml_model
    if reduced:
        orbits = feature_groups(model)
        model = reduce_model(model, np.sort(np.concatenate(orbits[::2])))
    pos = ethanol[1].R[20:27]
    e, f = model.predict(pos)
    con = contributions(model, pos, batch_size=4)
    assert _close(con.const + con.pair_energy.sum(axis=1), e, 1e-12)
    assert _close(con.const + con.atom_energy.sum(axis=1), e, 1e-12)
    assert _close(con.forces, f, 1e-10)
    # pair force contributions: equal and opposite on the two atoms, along the pair axis
    a, b = model.pairs
    rvec = pos[:, a] - pos[:, b]
    cross = np.cross(con.pair_force, rvec)
    assert np.max(np.abs(cross)) <= 1e-10 * np.max(np.abs(con.pair_force)) * np.max(np.abs(rvec))
    avg = average_contributions(model, pos)
    assert avg["pair_force_norm"].shape == (model.n_features,)
    assert avg["atom_energy_mean"].sum() == pytest.approx(np.mean(e) - model.c, rel=1e-10)


# ------------------------------------------------------------------ files
def test_sgdml_desc_type_2_round_trip(gdml_model, sgdml_model, ethanol, tmp_path):
    from biomlff.gdml import GDMLModel
    from biomlff.gdml.descriptor import pair_list
    from biomlff.gdml.reduce import feature_groups, load_index_file, reduce_model, save_index_file

    pos = ethanol[1].R[:5]
    for model, kept in (
        (gdml_model, np.array([0, 3, 4, 10, 11, 20, 30, 35])),
        (sgdml_model, np.sort(np.concatenate(feature_groups(sgdml_model)[1::2]))),
    ):
        red = reduce_model(model, kept)
        arr = red.to_sgdml_arrays()
        assert int(arr["desc_type"]) == 2
        assert np.array_equal(arr["rm_arr"], np.setdiff1d(np.arange(36), kept))
        assert arr["R_desc"].shape == (len(kept), red.n_train)
        assert arr["tril_perms_lin"].shape == (len(kept) * red.n_perms,)
        path = red.save_sgdml(tmp_path / "red_sgdml.npz")
        back = GDMLModel.load(path)
        assert np.array_equal(back.pairs[0], red.pairs[0]) and np.array_equal(back.pairs[1], red.pairs[1])
        e0, f0 = red.predict(pos)
        e1, f1 = back.predict(pos)
        assert _close(f1, f0, 1e-12) and _close(e1, e0, 1e-12)
        back2 = GDMLModel.load(red.save(tmp_path / "red.npz"))  # biomlff format
        assert np.array_equal(back2.predict(pos)[1], f0)
        # rGDML index file: idxs = removed pair indices
        idx = save_index_file(tmp_path / "Q_idxs.npz", 9, *red.pairs)
        with np.load(idx) as fh:
            assert np.array_equal(fh["idxs"], arr["rm_arr"])
        ka, kb = load_index_file(idx, 9)
        assert np.array_equal(ka, red.pairs[0]) and np.array_equal(kb, red.pairs[1])
    # full models are written without desc_type (unchanged sgdml 1.0.3 layout)
    assert "desc_type" not in gdml_model.to_sgdml_arrays()
    # full-length arrays with rm_arr are reduced on reading too
    arr = gdml_model.to_sgdml_arrays()
    arr.update(desc_type=2, rm_arr=np.array([1, 2]))
    from biomlff.gdml.model import from_sgdml_arrays

    m = from_sgdml_arrays(arr)
    assert m.n_features == 34 and np.array_equal(m.pairs[0], np.delete(pair_list(9)[0], [1, 2]))


# ------------------------------------------------------------------ bad input
def test_bad_input_errors(gdml_model, sgdml_model, ethanol, tmp_path):
    from biomlff.gdml import GDMLModel
    from biomlff.gdml.model import from_sgdml_arrays
    from biomlff.gdml.reduce import (
        check_keep,
        feature_groups,
        feature_importance,
        load_index_file,
        parse_keep,
        reduce_model,
        retrain,
        select_features,
    )

    # keep 0 % or 100 %
    for bad in ("0%", "100%", "0", "1.0", "150%", "abc"):
        with pytest.raises(ConfigError):
            parse_keep(bad)
    with pytest.raises(ConfigError, match="no reduction"):
        check_keep(36, 36)
    imp = feature_importance(gdml_model, ethanol[1].R[:3])
    with pytest.raises(ConfigError):
        select_features(imp, 1.0)
    with pytest.raises(ConfigError):
        select_features(imp, 0)
    assert parse_keep("40%") == pytest.approx(0.4) and parse_keep("12") == 12
    # a pair list that does not match the molecule
    m = gdml_model
    with pytest.raises(ModelError, match="does not match the molecule"):
        GDMLModel(
            m.z,
            m.R_desc,
            m.R_d_desc_alpha,
            m.sigma,
            m.std,
            m.c,
            m.perms,
            pairs=(np.array([9]), np.array([0])),
        )
    with pytest.raises(ModelError, match="do not match the pair list"):
        GDMLModel(
            m.z,
            m.R_desc,
            m.R_d_desc_alpha,
            m.sigma,
            m.std,
            m.c,
            m.perms,
            pairs=(np.array([1]), np.array([0])),
        )
    arr = m.to_sgdml_arrays()
    arr.update(desc_type=2, rm_arr=np.array([40]))
    with pytest.raises(DataError, match="rm_arr does not match"):
        from_sgdml_arrays(arr)
    arr.update(rm_arr=np.array([1]), R_desc=m.R_desc.T[:30])
    with pytest.raises(DataError, match="do not match"):
        from_sgdml_arrays(arr)
    np.savez(tmp_path / "idx.npz", idxs=np.arange(50))
    with pytest.raises(DataError, match="do not match a molecule of 9 atoms"):
        load_index_file(tmp_path / "idx.npz", 9)
    # symmetric reduction with a broken orbit
    big = next(o for o in feature_groups(sgdml_model) if len(o) > 1)
    kept = np.setdiff1d(np.arange(36), big[:1])
    with pytest.raises(ModelError, match="not a union of symmetry orbits"):
        reduce_model(sgdml_model, kept)
    with pytest.raises(ModelError, match="not a union of symmetry orbits"):
        retrain(sgdml_model, ethanol[0], kept, sigmas=[10.0])
    a, b = sgdml_model.pairs
    with pytest.raises(ModelError, match="orbit"):
        _train(ethanol[0], sgdml_model.perms, pairs=(a[kept], b[kept]), m=10)
    # retraining on data the model was not trained on needs explicit indices
    other = ethanol[1]
    with pytest.raises(ConfigError, match="not the dataset"):
        retrain(gdml_model, other, np.arange(20), sigmas=[20.0])


# ------------------------------------------------------------------ CLI
def test_cli_reduce_and_heatmap(shared, gdml_model, tmp_path, capsys):
    from PIL import Image

    from biomlff.cli.main import main
    from biomlff.gdml import GDMLModel

    data = shared / "datasets" / "rmd17" / "rmd17_ethanol_train_01.npz"
    keys = ["--energy-key", "energies", "--forces-key", "forces"]
    src = gdml_model.save(tmp_path / "full.npz")
    out = tmp_path / "red.npz"
    rc = main(
        ["gdml", "reduce", str(src), str(data), "--keep", "50%", "--scan", "25%", "--n-configs", "20",
         "--rank", "force",
         "--n-test", "40", "--sigma", "20", "--index-file", str(tmp_path / "idx.npz"), "--no-progress",
         "-o", str(out), *keys]
    )  # fmt: skip
    assert rc == 0
    txt = capsys.readouterr().out
    assert "F MAE kcal/mol/Å" in txt and "speed-up" in txt and "full" in txt
    red = GDMLModel.load(out)
    assert red.n_features == 18 and red.info["rgdml"]["retrained"]
    assert (tmp_path / "idx.npz").exists()
    hm = tmp_path / "hm"
    rc = main(
        ["gdml", "heatmap", str(src), str(data), "--n-configs", "10", "--keep", "40%", "--no-progress",
         "-o", str(hm), *keys]
    )  # fmt: skip
    assert rc == 0
    for name in ("pairs.png", "atoms.png", "distance.png"):
        with Image.open(hm / name) as im:
            assert im.size[0] > 200
    lines = (hm / "pairs.csv").read_text().splitlines()
    assert len(lines) == 37 and lines[0].startswith("k,a,b")
    assert len((hm / "atoms.csv").read_text().splitlines()) == 10
    # keep 100 % is refused with a clear message
    capsys.readouterr()
    assert main(["gdml", "reduce", str(src), str(data), "--keep", "100%", "-o", str(out), *keys]) != 0
    assert "no reduction" in capsys.readouterr().err
