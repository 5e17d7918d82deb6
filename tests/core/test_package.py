import subprocess
import sys
import time

import biomlff
from biomlff import units
from biomlff.cli.main import main
from biomlff.neighbors import bucket, build_pairs


def test_version_and_cli_help_fast():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "biomlff", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert "biomlff" in out.stdout
    # --help must not import JAX / JAX-MD (slow); generous bound for a busy 2-core machine
    assert elapsed < 5.0
    code = (
        "import biomlff.cli.main as m, sys; m.build_parser(); "
        "print('jax' in sys.modules, 'jax_md' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert biomlff.__version__ in capsys.readouterr().out


def test_units_from_ase_codata():
    import ase.units

    assert units.kcal_mol == ase.units.kcal / ase.units.mol
    assert units.Hartree == ase.units.Hartree
    assert units.Bohr == ase.units.Bohr
    assert abs(units.energy_factor("kcal/mol") - 0.0433641043) < 1e-9


def test_bucket_monotone_and_sufficient():
    prev = 0
    for n in range(1, 5000, 37):
        b = bucket(n)
        assert b >= n and b >= prev
        prev = b
    assert len({bucket(n) for n in range(1, 100000)}) < 40


def test_pairs_periodic_match_bruteforce():
    import numpy as np

    rng = np.random.default_rng(0)
    box = np.array([10.0, 11.0, 12.0])
    pos = rng.uniform(0, 1, (80, 3)) * box
    p = build_pairs(pos, 4.5, cell=np.diag(box))
    d = pos[:, None] - pos[None]
    d -= box * np.round(d / box)
    r = np.linalg.norm(d, axis=-1)
    expected = {(a, b) for a, b in zip(*np.nonzero((r < 4.5) & ~np.eye(80, dtype=bool)), strict=True)}
    got = {(int(a), int(b)) for a, b, m in zip(p.i, p.j, p.mask, strict=True) if m}
    assert got == expected
