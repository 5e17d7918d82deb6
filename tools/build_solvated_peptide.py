"""Build ``src/biomlff/resources/structures/ac_ala3_nhme_water.xyz``: the shipped Ac-Ala3-NHMe peptide
in a gas-phase droplet of water molecules (the small solvated test system of ``md --relax``).

Water molecules (O–H 0.9572 Å, H–O–H 104.52°, randomly oriented) are placed one by one at random
points within ``--shell`` Å of the peptide's atoms and kept when no atom comes too close to the atoms
already there: O to a heavy atom ≥ 2.6 Å, O to O ≥ 2.7 Å, any other pair of atoms of different
molecules ≥ 1.7 Å. Deterministic for a given ``--seed``; no relaxation (that is the test's job).

    python tools/build_solvated_peptide.py [--waters 30] [--seed 0] [-o OUT.xyz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = ROOT / "src" / "biomlff" / "resources" / "structures"
OH, HOH = 0.9572, np.deg2rad(104.52)
WATER = np.array(
    [
        [0.0, 0.0, 0.0],
        [OH * np.sin(HOH / 2), OH * np.cos(HOH / 2), 0.0],
        [-OH * np.sin(HOH / 2), OH * np.cos(HOH / 2), 0.0],
    ]
)


def random_rotation(rng) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def fits(new_z, new_r, z, r) -> bool:
    """True when the new molecule keeps the minimum distances to the atoms (z, r) already placed."""
    d = np.linalg.norm(new_r[:, None, :] - r[None, :, :], axis=-1)
    heavy_o = (new_z[:, None] == 8) & (z[None, :] > 1)
    oo = (new_z[:, None] == 8) & (z[None, :] == 8)
    lim = np.where(oo, 2.7, np.where(heavy_o | ((new_z[:, None] > 1) & (z[None, :] == 8)), 2.6, 1.7))
    return bool(np.all(d >= lim))


def solvate(z, r, n_waters: int, shell: float, seed: int):
    """(z, r) of the peptide followed by ``n_waters`` water molecules (O, H, H)."""
    rng = np.random.default_rng(seed)
    z, r = np.asarray(z), np.asarray(r, float)
    peptide = r.copy()
    lo, hi = r.min(0) - shell, r.max(0) + shell
    placed = 0
    for _ in range(200000):
        o = rng.uniform(lo, hi)
        if np.min(np.linalg.norm(peptide - o, axis=1)) > shell:
            continue
        mol = o + WATER @ random_rotation(rng).T
        wz = np.array([8, 1, 1])
        if fits(wz, mol, z, r):
            z, r = np.concatenate([z, wz]), np.concatenate([r, mol])
            placed += 1
            if placed == n_waters:
                return z, r
    raise RuntimeError(f"placed only {placed} of {n_waters} water molecules; increase --shell")


def main() -> None:
    from ase import Atoms
    from ase.io import read, write

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waters", type=int, default=30)
    ap.add_argument("--shell", type=float, default=4.5, help="largest O distance from the peptide (Å)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default=str(STRUCTURES / "ac_ala3_nhme_water.xyz"))
    args = ap.parse_args()
    pep = read(STRUCTURES / "ac_ala3_nhme.xyz")
    z, r = solvate(pep.numbers, pep.positions, args.waters, args.shell, args.seed)
    atoms = Atoms(numbers=z, positions=np.round(r, 6), pbc=False)
    atoms.info.update(
        source=f"Ac-Ala3-NHMe (MD22 frame 0) + {args.waters} water molecules, "
        f"tools/build_solvated_peptide.py --seed {args.seed}",
        charge=0,
        multiplicity=1,
    )
    write(args.output, atoms, format="extxyz")
    print(f"{len(atoms)} atoms ({args.waters} waters) -> {args.output}")


if __name__ == "__main__":
    main()
