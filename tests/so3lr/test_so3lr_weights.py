"""SO3LR weights: restricted unpickling (params.pkl and the torch-free so3krates-torch reader),
canonical format with checksum, cache lookup and its error, and the PyPI wheel conversion
(`biomlff weights fetch`) compared leaf by leaf with params.pkl."""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from biomlff.so3lr import weights as W

ROOT = Path(__file__).resolve().parents[2]
#: the downloaded wheel is kept in the checkout's ignored /.whl/ folder between runs
WHEEL_DIR = ROOT / ".whl" / "so3krates_torch"


@pytest.fixture(scope="module")
def raw_pickle(shared):
    """params.pkl read with plain pickle — trusted here: it is the reference to compare against."""
    with open(shared / "so3lr" / "params.pkl", "rb") as fh:
        return W.flatten(pickle.load(fh)["params"])


@pytest.fixture(scope="module")
def params(shared):
    return W.read_params_pickle(shared / "so3lr" / "params.pkl")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/biomlff_pwned_by_pickle",))


def test_restricted_unpickler_equals_plain_pickle(params, raw_pickle):
    flat = W.flatten(params)
    assert set(flat) == set(raw_pickle) and len(flat) == W.N_LEAVES
    for name, val in raw_pickle.items():
        if name in W.Z0_TABLES:  # the unused Z = 0 row is zeroed in the canonical form
            assert np.array_equal(flat[name][1:], val[1:]) and not flat[name][0].any()
        else:
            assert np.array_equal(flat[name], val), name
    assert W.checksum(params) == W.PUBLISHED_SHA256


def test_malicious_pickles_are_refused(tmp_path):
    marker = Path("/tmp/biomlff_pwned_by_pickle")
    marker.unlink(missing_ok=True)
    bad = tmp_path / "params.pkl"
    bad.write_bytes(pickle.dumps({"params": {"x": _Evil()}}))
    with pytest.raises(W.WeightsError, match="refusing to load 'posix.system'"):
        W.read_params_pickle(bad)
    obj_array = tmp_path / "obj.pkl"
    obj_array.write_bytes(pickle.dumps({"params": {"x": np.array([1, "a"], dtype=object)}}))
    with pytest.raises(W.WeightsError):
        W.read_params_pickle(obj_array)
    # a torch-style archive whose data.pkl calls a function
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/data.pkl", pickle.dumps(_Evil(), protocol=2))
        zf.writestr("m/byteorder", "little")
    with pytest.raises(W.WeightsError, match="refusing"):
        W.read_torch_state(buf.getvalue())
    assert not marker.exists()


def test_canonical_roundtrip_checksum_and_missing_weights(params, tmp_path, monkeypatch):
    path = W.save_canonical(params, tmp_path / "c", source="test")
    back, meta = W.read_canonical(path)
    assert meta["sha256"] == W.PUBLISHED_SHA256 and meta["n_parameters"] == W.N_PARAMETERS
    assert all(
        np.array_equal(a, b)
        for a, b in zip(W.flatten(back).values(), W.flatten(params).values(), strict=True)
    )
    # corrupt one parameter: the checksum catches it
    flat = W.flatten(back)
    flat["observables_0/zbl_repulsion/p"] = flat["observables_0/zbl_repulsion/p"] + np.float32(1e-3)
    with open(path, "wb") as fh:
        np.savez(fh, **flat)
    with pytest.raises(W.WeightsError, match="checksum mismatch"):
        W.read_canonical(path)
    # missing weights name the command to run
    monkeypatch.setenv("BIOMLFF_CACHE", str(tmp_path / "empty"))
    with pytest.raises(W.WeightsError, match="biomlff weights fetch"):
        W.load_params()
    with pytest.raises(W.WeightsError, match="biomlff weights fetch"):
        W.load_params(tmp_path / "nope.npz")


def _wheel() -> Path:
    try:
        return W.download_wheel(WHEEL_DIR)
    except W.WeightsError as exc:  # no network: CI has PyPI, so this is a real failure there
        pytest.fail(f"could not download the so3krates-torch wheel: {exc}")


def test_wheel_conversion_equals_params_pkl(raw_pickle):
    """so3krates-torch 0.2.1 → flax tree without torch: every leaf equals params.pkl (the Z = 0 rows,
    which torch does not store, are zero; the −163.618 eV/atom shift is dropped)."""
    wheel = _wheel()
    state, attrs = W.read_torch_state(zipfile.ZipFile(wheel).read(W.TORCH_MODEL_MEMBER))
    assert attrs["r_max"] == 4.5 and attrs["avg_num_neighbors"] == 13.168995780096482
    assert np.allclose(state["atomic_energy_output_block.energy_shifts"], W.TORCH_ENERGY_SHIFT, atol=1e-4)
    flat = W.flatten(W.torch_to_flax(state))
    assert set(flat) == set(raw_pickle)
    for name, val in raw_pickle.items():
        got = flat[name]
        if name in W.Z0_TABLES:
            got, val = got[1:], val[1:]
        assert got.dtype == np.float32 and np.array_equal(got, val), name
    assert not flat["observables_0/energy_offset"].any()
    assert W.checksum(flat) == W.PUBLISHED_SHA256
    assert "torch" not in sys.modules


def test_cli_fetch_import_info(tmp_path, shared):
    _wheel()  # make sure the cached wheel is there
    env = {**os.environ, "BIOMLFF_CACHE": str(tmp_path / "cache")}
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "biomlff", *a], capture_output=True, text=True, env=env, timeout=600
    )
    r = run("weights", "info")
    assert r.returncode == 2 and "biomlff weights fetch" in r.stderr
    r = run("weights", "fetch", "--download-dir", str(WHEEL_DIR))
    assert r.returncode == 0, r.stderr
    assert W.PUBLISHED_SHA256 in r.stdout and "yes" in r.stdout
    r = run("weights", "import", str(shared / "so3lr" / "params.pkl"), "--dir", str(tmp_path / "imp"))
    assert r.returncode == 0 and W.PUBLISHED_SHA256 in r.stdout, r.stderr
    r = run("weights", "info")
    assert r.returncode == 0 and "checksum verified" in r.stdout
    r = run("weights", "import", str(tmp_path / "missing.pkl"))
    assert r.returncode == 2 and "does not exist" in r.stderr
