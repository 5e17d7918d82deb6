"""Small geometric helpers shared by several pillars (positions in Å)."""

from __future__ import annotations

import numpy as np


def separate_fragments(positions, fragment_ids, separation: float = 1000.0) -> np.ndarray:
    """Positions (Å) with fragment k translated along x so that every pair of atoms in different
    fragments is at least ``separation`` Å apart (fragment 0 stays in place).

    This is the reference geometry of binding energies as the SO3LR paper computes them:
    E_bind = E(complex) − E(separated complex), both at the complex's total charge."""
    x = np.array(positions, dtype=float)
    ids = np.asarray(fragment_ids)
    prev_max = None
    for k in range(int(ids.max()) + 1):
        sel = ids == k
        if not np.any(sel):
            continue
        if prev_max is not None:
            x[sel, 0] += prev_max + separation - x[sel, 0].min()
        prev_max = x[sel, 0].max()
    return x
