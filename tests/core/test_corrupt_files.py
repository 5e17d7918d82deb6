"""Corrupt, truncated, empty and foreign files (issue 25, defect 7).

Every .npz / HDF5 reader goes through the one loader of :mod:`biomlff.fileio`, so each command
answers a bad file with one line ``biomlff: error: <what> <file>: ...`` and exit 2 (never a
traceback) and leaves existing outputs alone; a resumed run removes the temporaries that a killed
atomic write left (and only those); a resumed MD run cuts its log back to the checkpoint's step.
Small inputs only: the Lennard-Jones test model, 13 atoms, a few steps."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from biomlff.cli.main import main
from biomlff.errors import DataError
from biomlff.md.testing import lj_cluster

ETHANOL = (
    Path(__file__).resolve().parents[2] / "src" / "biomlff" / "resources" / "examples" / "ethanol_md17_50.npz"
)

TINY_ARCH = dict(
    num_features=8,
    num_heads=2,
    max_degree=2,
    num_layers=1,
    num_rbf=6,
    energy_regression_dim=8,
    hirshfeld_dim=4,
)


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def md_args(structure, out, steps, *extra):
    return [
        "md",
        "nvt",
        structure,
        "--model",
        "lj",
        "--temperature",
        "30",
        "--steps",
        steps,
        "--log-every",
        "5",
        "--traj-every",
        "5",
        "--checkpoint-every",
        "10",
        "--output",
        out,
        *extra,
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One good file of every kind: structure; MD checkpoints (steps 10 and 20), H5MD trajectory and
    log (LJ, 10 steps, resumed to 20); SO3krates model file (tiny); sGDML models (biomlff and sgdml
    layout); datasets (.npz, QCell .h5)."""
    from ase import Atoms
    from ase.io import write

    from biomlff.data.dataset import Dataset
    from biomlff.data.io import write_dataset
    from biomlff.gdml.model import GDMLModel
    from biomlff.so3lr.architecture import Architecture, init_params
    from biomlff.so3lr.modelfile import SO3LRModel

    d = tmp_path_factory.mktemp("good")
    f = {"dir": d, "structure": d / "cluster.xyz"}
    write(f["structure"], Atoms(numbers=[18] * 13, positions=lj_cluster(13, jitter=0.2)), format="extxyz")
    assert main([str(a) for a in md_args(f["structure"], d / "run.h5", 10)]) == 0
    f.update(chk=d / "run.chk.npz", traj=d / "run.h5", log=d / "run.log", chk10=d / "step10.chk.npz")
    shutil.copy(f["chk"], f["chk10"])
    assert main([str(a) for a in md_args(f["structure"], f["traj"], 20, "--restart-from", f["chk"])]) == 0
    arch = Architecture(**TINY_ARCH)
    f["model"] = SO3LRModel(arch, init_params(arch, 5), (1, 6, 8), {}, "tiny").save(d / "tiny.npz")
    rng = np.random.default_rng(0)
    gdml = GDMLModel(
        z=[8, 1, 1],
        R_desc=rng.random((2, 3)),
        R_d_desc_alpha=rng.random((2, 3)),
        sigma=2.0,
        std=1.0,
        c=0.0,
        perms=[[0, 1, 2]],
        alphas=rng.random((2, 3, 3)),
    )
    f["gdml"] = gdml.save(d / "gdml.npz")
    f["sgdml"] = gdml.save_sgdml(d / "sgdml.npz")  # with pickled {mae, rmse} dicts, as sgdml writes
    water = Dataset.from_arrays(
        [[8, 1, 1]] * 2,
        [[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]] * 2,
        frame_data={"energy": np.array([-1.0, -1.1])},
        atom_data={"forces": [np.zeros((3, 3))] * 2},
    )
    f["dataset"], f["qcell"] = d / "water.npz", d / "water.h5"
    write_dataset(water, f["dataset"])
    write_dataset(water, f["qcell"])
    return f


def bad_files(good, folder, wrong):
    """{case: path} of a truncated copy of ``good``, an empty file, random bytes and ``wrong`` (a
    file of another kind), all with ``good``'s suffix."""
    folder.mkdir(exist_ok=True)
    data = good.read_bytes()
    cases = {
        "truncated": data[: max(1, min(2000, len(data) // 2))],
        "empty": b"",
        "random": np.random.default_rng(1).bytes(3000),
        "wrong": wrong.read_bytes(),
    }
    out = {}
    for case, content in cases.items():
        p = folder / f"{case}{good.suffix}"
        p.write_bytes(content)
        out[case] = p
    return out


def assert_clean_error(rc, err, path, what):
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("biomlff: error: "), err
    assert path.name in lines[0], err
    assert "Traceback" not in err
    if what:
        assert what in lines[0], err


# --------------------------------------------------------------------------------- command line
KINDS = {
    # kind: (good file key, wrong-kind file key, what the message must call it, command)
    "MD checkpoint": ("chk", "dataset", "MD checkpoint", "restart"),
    "PIMD checkpoint": ("chk", "dataset", "PIMD checkpoint", "pimd"),
    "model file": ("model", "chk", "model file", "md_model"),
    "SO3krates model file": ("model", "sgdml", "SO3krates model file", "eval"),
    "sGDML model": ("sgdml", "model", "sGDML model", "gdml"),
    "dataset": ("dataset", "chk", "dataset", "data"),
    "QCell dataset": ("qcell", "traj", "dataset", "data"),
    "H5MD trajectory": ("traj", "qcell", "H5MD trajectory", "analyze"),
}


def command(kind, path, files, out):
    s = files["structure"]
    return {
        "restart": md_args(s, out, 30, "--restart-from", path),
        "pimd": ["md", "pimd", s, "--model", "lj", "--beads", "2", "--steps", "4", "--output", out]
        + ["--restart-from", path],
        "md_model": ["md", "nvt", s, "--model", path, "--steps", "2", "--output", out],
        "eval": ["eval", "--model", path, "--data", s],
        "gdml": ["gdml", "predict", path, s, "-o", out.with_suffix(".xyz")],
        "data": ["data", "info", path],
        "analyze": ["analyze", "rg", path, "-o", out.with_suffix("")],
    }[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_file_one_line_error_exit_2(kind, files, tmp_path, capsys):
    good, wrong, what, cmd = KINDS[kind]
    for case, path in bad_files(files[good], tmp_path / "bad", files[wrong]).items():
        out = tmp_path / "out.h5"
        if cmd in ("restart", "pimd"):  # an existing output to continue: its bytes must survive
            shutil.copy(files["traj"], out)
        before = out.read_bytes() if out.exists() else None
        rc, _, err = run_cli(command(cmd, path, files, out), capsys)
        # a wrong-kind file is named, but its message says what it is rather than what it should be
        assert_clean_error(rc, err, path, None if case == "wrong" else what)
        assert (out.read_bytes() if out.exists() else None) == before, (kind, case)
        assert not out.with_suffix(".xyz").exists()


def test_pickles_are_refused_never_run(files, tmp_path, capsys):
    """A model file is never unpickled as a whole, and the object arrays of sgdml models only by a
    restricted unpickler: a planted payload is refused (and the good sgdml model still loads)."""
    from biomlff.gdml.model import GDMLModel

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with np.load(files["sgdml"], allow_pickle=True) as z:
        arrays = dict(z)
    arrays["e_err"] = np.array([Payload()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    import pickle

    (tmp_path / "evil.pkl.npz").write_bytes(pickle.dumps(Payload()))
    for name in ("evil.npz", "evil.pkl.npz"):
        rc, _, err = run_cli(
            ["gdml", "predict", tmp_path / name, files["structure"], "-o", tmp_path / "p.xyz"], capsys
        )
        assert_clean_error(rc, err, tmp_path / name, "sGDML model")
        assert "refus" in err or "pickle" in err
    assert not marker.exists()
    assert GDMLModel.load(files["sgdml"]).info["imported_from"] == "sgdml"


def test_training_checkpoint(files, tmp_path, capsys):
    """``biomlff train --resume`` on a truncated checkpoint: one line naming it; the temporaries a
    killed write left beside it are removed, other files kept. Other corruptions via the reader."""
    from biomlff.training.trainer import _save_checkpoint, read_training_checkpoint

    good = tmp_path / "good.chk.npz"
    _save_checkpoint(good, {"p": np.ones(3)}, {"p": np.zeros(3)}, {"step": 5, "epoch": 0})
    info, s, b = read_training_checkpoint(good)
    assert info["step"] == 5 and len(s) == len(b) == 1
    for path in bad_files(good, tmp_path / "bad", files["chk"]).values():
        with pytest.raises(DataError, match=r"training checkpoint .*" + re.escape(path.name)):
            read_training_checkpoint(path)

    work = tmp_path / "k.train"
    work.mkdir()
    (work / "checkpoint.npz").write_bytes(good.read_bytes()[:300])
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [
        work / ".checkpoint.npz.a1b2c3d4.tmp.npz",  # named as before this fix
        work / f".checkpoint.npz.a1b2_3d4.{dead.pid}.biomlff-tmp.npz",  # its writer is gone
        tmp_path / f".k.npz.zzzzzzzz.{dead.pid}.biomlff-tmp.npz",  # the model file's
    ]
    kept = [
        work / f".checkpoint.npz.a1b2c3d4.{os.getpid()}.biomlff-tmp.npz",  # a live writer's
        work / ".checkpoint.npz.a1b2c3d4.tmp.npz.bak",
        work / "checkpoint.tmp.npz",
        work / ".other.npz.a1b2c3d4.tmp.npz",
    ]
    for p in stale + kept:
        p.write_bytes(b"x" * 10)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {ETHANOL}\nn_train: 4\nn_valid: 2\narchitecture: {json.dumps(TINY_ARCH)}\n"
        f"batch_size: 2\nepochs: 1\ndipole_weight: 0\nhirshfeld_weight: 0\noutput: {tmp_path / 'k.npz'}\n"
    )
    rc, _, err = run_cli(["train", cfg, "--resume", "--no-progress"], capsys)
    assert_clean_error(rc, err, work / "checkpoint.npz", "training checkpoint")
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_md_resume_log_has_no_repeated_steps_and_stale_temporaries_go(files, tmp_path, capsys):
    """Resume from an earlier checkpoint (as after a kill): the log, like the trajectory, holds
    every step once; the temporaries of an interrupted checkpoint write are removed."""
    import h5py

    d = tmp_path
    for key in ("traj", "log", "chk"):
        shutil.copy(files[key], d)
    out = d / "run.h5"
    # a kill during the next log line and during a checkpoint write
    with open(d / "run.log", "a") as fh:
        fh.write("        2")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [d / ".run.chk.npz.abcdefgh.tmp.npz", d / f".run.chk.npz.abcdefgh.{dead.pid}.biomlff-tmp.npz"]
    kept = [d / ".run.chk.npz.abcdefgh.tmp.npz.keep", d / "notes.tmp.npz"]
    for p in stale + kept:
        p.write_bytes(b"x" * 100)
    capsys.readouterr()
    rc, _, err = run_cli(md_args(files["structure"], out, 20, "--restart-from", files["chk10"]), capsys)
    assert rc == 0, err
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    rows = [ln.split() for ln in (d / "run.log").read_text().splitlines()]
    steps = [int(r[0]) for r in rows if r and r[0].isdigit()]
    assert steps == [0, 5, 10, 15, 20], (d / "run.log").read_text()
    assert rows[0][0] == "step"  # the header kept
    with h5py.File(out, "r") as f:
        assert list(f["particles/all/position/step"][()]) == [0, 5, 10, 15, 20]
