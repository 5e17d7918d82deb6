"""Command line of the MD pillar: biomlff opt / biomlff md, config files, bad input, SIGKILL + resume."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from biomlff.cli.main import main
from biomlff.md.testing import lj_cluster


@pytest.fixture()
def cluster_file(tmp_path):
    from ase import Atoms
    from ase.io import write

    path = tmp_path / "cluster.xyz"
    write(path, Atoms(numbers=[18] * 13, positions=lj_cluster(13, jitter=0.2)), format="extxyz")
    return path


def run_cli(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_md_nvt_with_config_and_override(tmp_path, argon_file, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: lj\nlr-cutoff: 6.0\ntemperature: 50\nsteps: 40\nlog_every: 10\ntraj-every: 20\n"
        "dt: 4.0\nprecision: float64\n"
    )
    out = tmp_path / "t.xyz"
    rc, so, se = run_cli(
        ["md", "nvt", str(argon_file), "--config", str(cfg), "--temperature", "80", "--output", str(out)],
        capsys,
    )
    assert rc == 0, se
    from ase.io import read

    frames = read(out, index=":")
    assert [a.info["step"] for a in frames] == [0, 20, 40]
    # the flag overrode the file: initial temperature 80 K (exact MB rescaling), not 50 K
    assert frames[0].info["temperature"] == pytest.approx(80.0, rel=1e-9)
    assert (tmp_path / "t.chk.npz").exists() and (tmp_path / "t.log").exists()
    assert "T_K" in so


def test_cli_opt(tmp_path, cluster_file, capsys):
    out = tmp_path / "opt.xyz"
    rc, so, se = run_cli(
        [
            "opt",
            str(cluster_file),
            "--model",
            "lj",
            "--fmax",
            "0.002",
            "--precision",
            "float64",
            "-o",
            str(out),
            "--fixed",
            "0",
        ],
        capsys,
    )
    assert rc == 0, se
    from ase.io import read

    a = read(out)
    assert a.info["converged"] and a.info["fmax"] < 0.002
    assert np.allclose(a.positions[0], read(cluster_file).positions[0])


@pytest.mark.parametrize(
    "args,match",
    [
        (["md", "npt", "{cluster}", "--model", "lj"], "NPT needs a periodic cell"),
        (["md", "nvt", "{argon}", "--model", "lj", "--lr-cutoff", "9"], "2 × cutoff"),
        (
            ["md", "nvt", "{argon}", "--model", "lj", "--lr-cutoff", "6", "--temperature", "-10"],
            "temperature",
        ),
        (["md", "nvt", "{argon}", "--model", "lj", "--lr-cutoff", "6", "--dt", "-0.5"], "dt"),
        (["md", "nvx", "{argon}", "--model", "lj"], "unknown ensemble"),
        (["md", "nvt", "{bad}", "--model", "lj"], "cannot read structure"),
        (["md", "nvt", "{missing}", "--model", "lj"], "does not exist"),
    ],
)
def test_cli_bad_input_clear_error_nothing_overwritten(
    tmp_path, argon_file, cluster_file, capsys, args, match
):
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not\na structure file\n")
    out = tmp_path / "keep.h5"
    out.write_bytes(b"precious")
    subs = {
        "{cluster}": str(cluster_file),
        "{argon}": str(argon_file),
        "{bad}": str(bad),
        "{missing}": str(tmp_path / "nope.xyz"),
    }
    # --force: the run may overwrite, yet a run refused for bad input must not touch the file
    argv = [subs.get(a, a) for a in args] + ["--output", str(out), "--force"]
    rc, so, se = run_cli(argv, capsys)
    assert rc == 2
    assert match in se and se.startswith("biomlff: error:")
    assert out.read_bytes() == b"precious"
    assert not (tmp_path / "keep.log").exists() and not (tmp_path / "keep.chk.npz").exists()


def test_cli_restart_from_other_system_refused(tmp_path, argon_file, cluster_file, capsys):
    out = tmp_path / "a.xyz"
    rc, _, se = run_cli(
        [
            "md",
            "nvt",
            str(argon_file),
            "--model",
            "lj",
            "--lr-cutoff",
            "6",
            "--steps",
            "10",
            "--checkpoint-every",
            "10",
            "--output",
            str(out),
        ],
        capsys,
    )
    assert rc == 0, se
    before = out.read_bytes()
    rc, _, se = run_cli(
        [
            "md",
            "nvt",
            str(cluster_file),
            "--model",
            "lj",
            "--restart-from",
            str(tmp_path / "a.chk.npz"),
            "--output",
            str(out),
        ],
        capsys,
    )
    assert rc == 2 and "different system" in se
    assert out.read_bytes() == before


def test_cli_unknown_config_key(tmp_path, argon_file, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("temprature: 300\n")
    rc, _, se = run_cli(["md", "nvt", str(argon_file), "--config", str(cfg)], capsys)
    assert rc == 2 and "unknown option 'temprature'" in se


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path, argon_file):
    import h5py

    out = tmp_path / "run.h5"
    chk = tmp_path / "run.chk.npz"
    cmd = [
        sys.executable,
        "-m",
        "biomlff",
        "md",
        "nvt",
        str(argon_file),
        "--model",
        "lj",
        "--lr-cutoff",
        "6",
        "--dt",
        "4",
        "--temperature",
        "80",
        "--precision",
        "float64",
        "--log-every",
        "50",
        "--traj-every",
        "50",
        "--checkpoint-every",
        "200",
        "--output",
        str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        cmd + ["--steps", "10000000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if chk.exists() and proc.poll() is None:
                with np.load(chk) as z:
                    if int(z["state/step"]) >= 400:
                        break
            time.sleep(0.5)
        else:
            proc.kill()  # before reading its stderr: reading a live process's pipe blocks until it ends
            proc.wait(30)
            pytest.fail("no checkpoint at step 400 within 240 s: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the trajectory written so far is readable
    with h5py.File(out, "r") as f:
        steps = list(f["particles/all/position/step"][()])
        assert len(steps) >= 9 and steps[:3] == [0, 50, 100]
        assert f["particles/all/position/value"].shape[0] == len(steps)
    with np.load(chk) as z:
        chk_step = int(z["state/step"])
    target = chk_step + 200
    res = subprocess.run(
        cmd + ["--steps", str(target), "--restart-from", str(chk)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    with h5py.File(out, "r") as f:
        steps = list(f["particles/all/position/step"][()])
        assert steps == list(range(0, target + 1, 50))  # frames after the checkpoint replaced, no duplicates
        assert np.all(np.isfinite(f["particles/all/position/value"][()]))
