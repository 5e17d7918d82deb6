"""Test structures built from internal coordinates (NeRF) for the analysis tests."""

import numpy as np


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
