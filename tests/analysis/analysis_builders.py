"""Test structures built from internal coordinates (NeRF) for the analysis tests."""

from pathlib import Path

import numpy as np


def read_csv(path) -> dict:
    """Columns of a CSV written by biomlff.analysis.plots.write_csv ('#' comment lines first)."""
    lines = [ln for ln in Path(path).read_text().splitlines() if not ln.startswith("#")]
    names = lines[0].split(",")
    data = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]]).reshape(-1, len(names))
    return {n: data[:, k] for k, n in enumerate(names)}


def place(a, b, c, bond, angle_deg, torsion_deg):
    """Position of d with |cd| = bond (Å), angle b-c-d and dihedral a-b-c-d (degrees, IUPAC)."""
    ang, tor = np.radians(angle_deg), np.radians(torsion_deg)
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    d2 = np.array([-bond * np.cos(ang), bond * np.sin(ang) * np.cos(tor), bond * np.sin(ang) * np.sin(tor)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


def alanine_dipeptide(phi, psi):
    """Ace-Ala-NMe (22 atoms) with backbone dihedrals φ, ψ (degrees). Returns (numbers, positions).

    Index map: 0 CH3(ace) 1 C 2 O 3 N 4 CA 5 C 6 O 7 N(nme) 8 CH3(nme) 9 CB 10 H(N) 11 HA 12 H(nme)
    13-15 H(ace) 16-18 HB 19-21 H(nme)."""
    x = np.zeros((22, 3))
    x[0] = [0.0, 0.0, 0.0]
    x[1] = [1.52, 0.0, 0.0]
    a = np.radians(121.0)
    x[2] = x[1] + 1.23 * np.array([-np.cos(a), np.sin(a), 0.0])
    x[3] = place(x[2], x[0], x[1], 1.33, 116.0, 180.0)
    x[4] = place(x[0], x[1], x[3], 1.46, 122.0, 180.0)
    x[5] = place(x[1], x[3], x[4], 1.53, 110.0, phi)
    x[7] = place(x[3], x[4], x[5], 1.33, 116.0, psi)
    x[6] = place(x[3], x[4], x[5], 1.23, 121.0, psi + 180.0)
    x[8] = place(x[4], x[5], x[7], 1.46, 122.0, 180.0)
    x[9] = place(x[5], x[3], x[4], 1.53, 110.0, -120.0)
    x[10] = place(x[0], x[1], x[3], 1.01, 119.0, 0.0)
    x[11] = place(x[5], x[3], x[4], 1.09, 109.5, 120.0)
    x[12] = place(x[4], x[5], x[7], 1.01, 119.0, 0.0)
    for k, t in enumerate((60.0, 180.0, 300.0)):
        x[13 + k] = place(x[3], x[1], x[0], 1.09, 109.5, t)
        x[16 + k] = place(x[3], x[4], x[9], 1.09, 109.5, t)
        x[19 + k] = place(x[5], x[7], x[8], 1.09, 109.5, t)
    numbers = np.array([6, 6, 8, 7, 6, 6, 8, 7, 6, 6] + [1] * 12)
    return numbers, x


def ordered_chain(n_carbons=16, axis_z=True):
    """An ideal all-trans acyl chain along z with an ester head: O=C(-O-CH3)-(CH2)n-2-CH3.

    Returns (numbers, positions, carbon indices C1..Cn). C–C 1.53 Å, C–H 1.09 Å, tetrahedral."""
    cc, ch = 1.53, 1.09
    theta = np.radians(109.47)
    half = theta / 2
    dz = cc * np.sin(half)  # rise per carbon along z
    dx = cc * np.cos(half)
    carbons = [np.array([(k % 2) * dx, 0.0, -k * dz]) for k in range(n_carbons)]
    pos = list(carbons)
    numbers = [6] * n_carbons
    # hydrogens: in the plane perpendicular to the chain axis, bisector along ±x, ± y components
    hh = np.radians(109.47) / 2
    for k in range(1, n_carbons):
        sx = -1.0 if k % 2 == 0 else 1.0  # pointing away from the neighbours
        for sy in (1.0, -1.0):
            pos.append(carbons[k] + ch * np.array([sx * np.cos(hh), sy * np.sin(hh), 0.0]))
            numbers.append(1)
    # terminal methyl third H along the axis direction (down)
    pos.append(carbons[-1] + ch * np.array([0.0, 0.0, -1.0]))
    numbers.append(1)
    # ester head on C1 (index 0): carbonyl O and ester O-CH3 (above the chain)
    c1 = carbons[0]
    pos.append(c1 + np.array([-1.05, 0.0, 0.6]))  # =O
    numbers.append(8)
    o_est = c1 + np.array([0.75, 0.0, 1.15])
    pos.append(o_est)
    numbers.append(8)
    pos.append(o_est + np.array([0.0, 0.0, 1.43]))  # methyl C on the ester O
    numbers.append(6)
    return np.array(numbers), np.array(pos), list(range(n_carbons))


class FlexibleWater:
    """A cheap flexible water model (SPC/Fw parameters: Wu, Tepper & Voth, J. Chem. Phys. 124,
    024503 (2006)) as an ASE calculator, for end-to-end analysis tests: harmonic O–H bonds and
    H–O–H angle, O–O Lennard-Jones and damped-shifted-force Coulomb (α = 0.2 Å⁻¹) between
    molecules within ``cutoff`` (minimum image, cubic box). Atoms ordered O, H, H per molecule."""

    def __new__(cls, cutoff=6.0):
        from ase.calculators.calculator import Calculator, all_changes
        from scipy.special import erfc

        from biomlff import units

        kcal = units.kcal_mol
        kb, b0 = 1059.162 * kcal, 1.012
        ka, a0 = 75.90 * kcal, np.radians(113.24)
        q = {8: -0.82, 1: 0.41}
        sig, eps = 3.165492, 0.1554253 * kcal
        alpha, rc = 0.2, cutoff

        def dsf(r):
            c = erfc(alpha * r) / r
            g = erfc(alpha * rc) / rc**2 + 2 * alpha / np.sqrt(np.pi) * np.exp(-((alpha * rc) ** 2)) / rc
            e = c - erfc(alpha * rc) / rc + g * (r - rc)
            f = erfc(alpha * r) / r**2 + 2 * alpha / np.sqrt(np.pi) * np.exp(-((alpha * r) ** 2)) / r - g
            return e, f  # energy and −dE/dr per unit charge product

        class _Water(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                x = self.atoms.positions
                n = len(x)
                box = np.diag(self.atoms.cell.array)
                mol = np.arange(n) // 3
                charges = np.array([q[z] for z in self.atoms.numbers])
                d = x[None, :, :] - x[:, None, :]
                d -= box * np.round(d / box)
                r = np.linalg.norm(d, axis=-1)
                pair = (mol[:, None] != mol[None, :]) & (r < rc)
                rr = np.where(pair, r, 1.0)
                ec, fc = dsf(rr)
                qq = units.k_e * charges[:, None] * charges[None, :]
                energy = 0.5 * np.sum(np.where(pair, qq * ec, 0.0))
                fmag = np.where(pair, qq * fc, 0.0)
                oo = pair & (self.atoms.numbers[:, None] == 8) & (self.atoms.numbers[None, :] == 8)
                sr6 = (sig / rr) ** 6
                shift = (sig / rc) ** 12 - (sig / rc) ** 6
                energy += 0.5 * np.sum(np.where(oo, 4 * eps * (sr6**2 - sr6 - shift), 0.0))
                fmag += np.where(oo, 24 * eps * (2 * sr6**2 - sr6) / rr, 0.0)
                forces = -np.einsum("ij,ijk->ik", fmag / rr, d)
                o, h1, h2 = x[0::3], x[1::3], x[2::3]
                v1 = h1 - o
                v2 = h2 - o
                v1 -= box * np.round(v1 / box)
                v2 -= box * np.round(v2 / box)
                r1 = np.linalg.norm(v1, axis=1)[:, None]
                r2 = np.linalg.norm(v2, axis=1)[:, None]
                e1, e2 = v1 / r1, v2 / r2
                energy += 0.5 * kb * np.sum((r1 - b0) ** 2 + (r2 - b0) ** 2)
                fh1 = -kb * (r1 - b0) * e1
                fh2 = -kb * (r2 - b0) * e2
                cos = np.clip(np.sum(e1 * e2, axis=1, keepdims=True), -1, 1)
                th = np.arccos(cos)
                sin = np.sqrt(1 - cos**2)
                energy += 0.5 * ka * np.sum((th - a0) ** 2)
                fa1 = ka * (th - a0) * (e2 - cos * e1) / (r1 * sin)
                fa2 = ka * (th - a0) * (e1 - cos * e2) / (r2 * sin)
                forces[1::3] += fh1 + fa1
                forces[2::3] += fh2 + fa2
                forces[0::3] -= fh1 + fa1 + fh2 + fa2
                self.results = {"energy": float(energy), "forces": forces}

        return _Water()


def water_trajectory(path, shared, n_steps=400, every=2, dt_fs=0.5, temperature=300.0, seed=0):
    """Langevin MD of 64 flexible waters (12.4 Å box, start from ``shared`` = ../shared) with
    :class:`FlexibleWater`, written as extended XYZ in biomlff's MD layout (velocities Å/fs,
    time_ps, energies)."""
    import ase.io
    from ase import units as u
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = ase.io.read(Path(shared) / "so3lr" / "reference" / "water_64.xyz")
    atoms.calc = FlexibleWater()
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    md = Langevin(
        atoms,
        dt_fs * u.fs,
        temperature_K=temperature,
        friction=0.02 / u.fs,
        rng=np.random.default_rng(seed + 1),
        fixcm=False,
    )
    frames = []

    def grab():
        a = atoms.copy()
        a.calc = None
        a.arrays["velocities"] = atoms.get_velocities() / u.fs  # Å/fs
        a.info["time_ps"] = len(frames) * every * dt_fs / 1000.0
        a.info["potential_energy"] = atoms.get_potential_energy()
        a.info["temperature"] = atoms.get_temperature()
        frames.append(a)

    grab()
    for _ in range(n_steps // every):
        md.run(every)
        grab()
    for a in frames:
        if "momenta" in a.arrays:
            del a.arrays["momenta"]
    ase.io.write(path, frames, format="extxyz")
    return frames


def synthetic_bilayer(n_side=2, spacing=8.0, lz=70.0, n_carbons=16, shift_z=0.0):
    """A perfectly ordered bilayer: n_side² lipids per leaflet on a square grid (``spacing`` Å),
    each an all-trans chain along z with an ester head and one P atom; upper leaflet heads up,
    lower leaflet mirrored. The whole bilayer is shifted by ``shift_z`` and wrapped into the box.
    Returns (numbers, positions (N, 3), cell (3, 3), P indices, expected D_PP in Å)."""
    z1, x1, _ = ordered_chain(n_carbons)
    # head: P above the ester methyl carbon (last atom)
    x1 = np.vstack([x1, x1[-1] + [0.0, 0.0, 1.8]])
    z1 = np.append(z1, 15)
    x1 = x1 - [0.0, 0.0, x1[:, 2].min() - 1.0]  # chain tip 1 Å above the mid-plane
    numbers, pos, p_idx = [], [], []
    for leaflet in (1.0, -1.0):
        for i in range(n_side):
            for j in range(n_side):
                xy = np.array(
                    [
                        i * spacing + (0 if leaflet > 0 else spacing / 2),
                        j * spacing + (0 if leaflet > 0 else spacing / 2),
                        0.0,
                    ]
                )
                p_idx.append(len(numbers) + len(z1) - 1)
                numbers.extend(z1.tolist())
                pos.extend((x1 * [1.0, 1.0, leaflet] + xy).tolist())
    pos = np.array(pos)
    cell = np.diag([n_side * spacing, n_side * spacing, lz])
    d_pp = 2 * x1[-1, 2]
    pos[:, 2] += lz / 2 + shift_z
    pos = np.mod(pos, np.diag(cell))
    return np.array(numbers), pos, cell, np.array(p_idx), d_pp
