"""A blocked cell-list pair builder with memory linear in the number of atoms (issue 13).

Why our own and not JAX-MD's: JAX-MD 0.2.29's ``Dense`` cell-list build forms N × 27 × (cell
capacity) candidates at once, each with its neighbour position, squared distance, mask, prefix sum
and scatter index — ≈ 470 KB/atom for a water box at 12.5 Å, so 10⁶ atoms would need ~470 GB — and it
falls back to all N² pairs below 4 cells per side. Its ``Sparse`` formats, which avoid the dense
(N, K) index, give wrong lists in 0.2.29 (see :mod:`biomlff.md.neighborlist`). This builder

* bins atoms into cells at least ``r_list`` wide (periodic: fractional cells, ``n_a = ⌊h_a/r_list⌋``
  per axis when that is ≥ 3, else one cell along that axis with the minimum image doing the rest; free
  space: a grid of r_list-wide cells over the allocation bounding box, atoms outside clamped into the
  edge cells, which stays exact),
* visits only the *half shell* of neighbour cells (the cell itself with j > i and the 13 forward
  neighbours; fewer along single-cell axes), so every unordered pair is tested once,
* streams over blocks of atoms in a ``lax.scan`` whose candidates are (block × 14 × capacity), and
  writes the pairs within ``r_list`` straight into one compact (P,) buffer pair (i < j) — memory is
  P × 8 bytes plus one block, no (N, K) arrays.

Buffers are sized by occupancy on the host (:func:`allocate`) and every rebuild reports overflow (a
cell holding more atoms than the capacity, more pairs than P, or a cell that became too small in a
variable-cell run) so that the MD loop re-allocates instead of using an incomplete list. All sizes are
array shapes in the state, so a new size re-traces the compiled step; everything else (cells per
axis, free-space origin, neighbour-cell table) is data in the state.

Positions are Cartesian Å (may be unwrapped); cells have lattice vectors as rows (Å) or are ``None``.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .. import geometry

#: candidates per block (block atoms × half-shell cells × capacity) held at once
BLOCK_CANDIDATES = 1 << 18


def grid_for(positions, cell, r_list: float):
    """Host: (cells per axis (3,), origin (3,) Å, cell size (3,) Å) for a list of ``r_list`` Å.

    Periodic: fractional cells; origin and size are unused (zeros, ones). Free space: r_list-wide cells
    over the bounding box of ``positions`` with half a cell of margin."""
    x = np.asarray(positions, dtype=float)
    if cell is not None:
        h = geometry.cell_heights(np.asarray(cell, dtype=float))
        n = np.floor(h / r_list).astype(np.int64)
        n = np.where(n >= 3, n, 1)
        return n, np.zeros(3), np.ones(3)
    lo, hi = x.min(axis=0), x.max(axis=0)
    n = np.maximum(1, np.ceil((hi - lo + r_list) / r_list)).astype(np.int64)
    return n, lo - 0.5 * r_list, np.full(3, float(r_list))


def half_shell_table(n, periodic: bool) -> np.ndarray:
    """Host: (n_cells + 1, n_offsets) int32 neighbour-cell ids of the half shell of every cell (offset
    0 — the cell itself — first; the last row and missing neighbours point at an empty dummy cell
    ``n_cells``). Offsets ±1 along an axis exist for ≥ 3 cells (periodic) or ≥ 2 cells (free space)."""
    n = [int(a) for a in n]
    steps = [(-1, 0, 1) if (a >= 3 or (not periodic and a >= 2)) else (0,) for a in n]
    offsets = [o for o in itertools.product(*steps) if o > (0, 0, 0)]
    offsets = [(0, 0, 0), *offsets]  # lexicographically forward offsets: each cell pair once
    n_cells = n[0] * n[1] * n[2]
    c = np.stack(np.meshgrid(*[np.arange(a) for a in n], indexing="ij"), axis=-1).reshape(-1, 3)
    table = np.full((n_cells + 1, len(offsets)), n_cells, dtype=np.int32)
    for k, off in enumerate(offsets):
        q = c + np.asarray(off)
        if periodic:
            q = q % np.asarray(n)
            ok = np.ones(len(q), bool)
        else:
            ok = np.all((q >= 0) & (q < np.asarray(n)), axis=1)
        ids = (q[:, 0] * n[1] + q[:, 1]) * n[2] + q[:, 2]
        table[:n_cells, k] = np.where(ok, ids, n_cells)
    return table


def cell_ids(positions, cell, n, origin, size):
    """Flat cell id (N,) of every atom (inside jit)."""
    import jax.numpy as jnp

    if cell is not None:
        s = positions @ jnp.linalg.inv(cell)
        s = s - jnp.floor(s)
        c = jnp.floor(s * n.astype(s.dtype))
    else:
        c = jnp.floor((positions - origin) / size)
    c = jnp.clip(c.astype(jnp.int32), 0, n - 1)
    return (c[:, 0] * n[1] + c[:, 1]) * n[2] + c[:, 2]


def _cell_too_small(cell, n, r_list):
    """True if a (variable) cell no longer gives cells ≥ r_list wide / a valid minimum image."""
    import jax.numpy as jnp

    h = []
    for k in range(3):
        nrm = jnp.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])
        h.append(jnp.abs(jnp.dot(cell[k], nrm)) / jnp.linalg.norm(nrm))
    h = jnp.stack(h)
    need = jnp.where(n >= 3, n * r_list, 2.0 * r_list)
    return jnp.any(h < need)


def build(state: dict, positions, cell, r_list: float) -> dict:
    """Rebuild the half list of pairs (i < j) closer than ``r_list`` Å (inside jit).

    ``state`` holds the buffers (see :func:`empty_state`); returns it with new ``i``, ``j``,
    ``count`` (pairs found, may exceed the capacity) and ``overflow``."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    positions = jnp.asarray(positions)
    cell = None if cell is None else jnp.asarray(cell, dtype=positions.dtype)
    n_atoms = positions.shape[0]
    cap = state["i"].shape[0]
    ccap = state["cell_slots"].shape[0]
    table = state["table"]
    n_cells = table.shape[0] - 1
    n_off = table.shape[1]
    n, origin, size = state["n"], state["origin"], state["size"]

    cid = cell_ids(positions, cell, n, origin.astype(positions.dtype), size.astype(positions.dtype))
    order = jnp.argsort(cid)
    sid = cid[order]
    counts = jnp.zeros((n_cells,), jnp.int32).at[cid].add(1)
    start = jnp.cumsum(counts) - counts
    slot = jnp.arange(n_atoms, dtype=jnp.int32) - start[sid]
    dump = (n_cells + 1) * ccap
    target = jnp.where(slot < ccap, sid * ccap + slot, dump)
    members = jnp.full((dump + 1,), n_atoms, jnp.int32).at[target].set(order.astype(jnp.int32))
    members = members[:dump].reshape(n_cells + 1, ccap)  # last row: the empty dummy cell
    overflow = jnp.max(counts) > ccap
    if cell is not None:
        overflow = overflow | _cell_too_small(cell, n, r_list)

    block = int(max(1, min(n_atoms, BLOCK_CANDIDATES // (n_off * ccap))))
    n_blocks = -(-n_atoms // block)
    own = jnp.arange(n_off * ccap) < ccap  # candidates from the atom's own cell: keep j > i only
    r2max = jnp.asarray(r_list * r_list, positions.dtype)

    def body(carry, b):
        out_i, out_j, off = carry
        ii = b * block + jnp.arange(block, dtype=jnp.int32)
        real = ii < n_atoms
        ii = jnp.minimum(ii, n_atoms - 1)
        jj = members[table[cid[ii]]].reshape(block, n_off * ccap)
        ok = real[:, None] & (jj < n_atoms) & jnp.where(own[None, :], jj > ii[:, None], True)
        jc = jnp.minimum(jj, n_atoms - 1)
        d = positions[jc] - positions[ii][:, None, :]
        d = geometry.minimum_image(d, cell)
        ok = ok & (jnp.sum(d * d, axis=-1) < r2max)
        flat = ok.reshape(-1)
        where = off + jnp.cumsum(flat, dtype=jnp.int32) - 1
        tgt = jnp.where(flat & (where < cap), where, cap)
        lo = jnp.minimum(ii[:, None], jc).reshape(-1)
        hi = jnp.maximum(ii[:, None], jc).reshape(-1)
        out_i = out_i.at[tgt].set(lo, mode="drop")
        out_j = out_j.at[tgt].set(hi, mode="drop")
        return (out_i, out_j, off + jnp.sum(flat, dtype=jnp.int32)), None

    init = (jnp.zeros((cap,), jnp.int32), jnp.zeros((cap,), jnp.int32), jnp.zeros((), jnp.int32))
    body = jax.checkpoint(body)  # nothing of a block is kept (the builder is not differentiated)
    (out_i, out_j, count), _ = lax.scan(body, init, jnp.arange(n_blocks, dtype=jnp.int32))
    return dict(
        state,
        i=out_i,
        j=out_j,
        count=count,
        max_cell=jnp.max(counts),
        overflow=overflow | (count > cap),
    )


def empty_state(n, origin, size, periodic: bool, pair_capacity: int, cell_capacity: int) -> dict:
    """Buffers for :func:`build` (host): sizes are array shapes, the grid is data."""
    import jax.numpy as jnp

    return {
        "i": jnp.zeros((int(pair_capacity),), jnp.int32),
        "j": jnp.zeros((int(pair_capacity),), jnp.int32),
        "count": jnp.zeros((), jnp.int32),
        "max_cell": jnp.zeros((), jnp.int32),
        "overflow": jnp.zeros((), bool),
        "cell_slots": jnp.zeros((int(cell_capacity),), bool),
        "table": jnp.asarray(half_shell_table(n, periodic)),
        "n": jnp.asarray(np.asarray(n), jnp.int32),
        "origin": jnp.asarray(np.asarray(origin, dtype=float)),
        "size": jnp.asarray(np.asarray(size, dtype=float)),
    }


@functools.cache
def _jitted_build():
    """One jitted :func:`build` for all host-side allocations (compiled once per buffer shape)."""
    import jax

    return jax.jit(build, static_argnums=3)


def _round_up(x: float, to: int) -> int:
    return int(max(to, int(np.ceil(x / to)) * to))


def allocate(
    positions,
    cell,
    r_list: float,
    capacity_multiplier: float = 1.25,
    capacities: tuple | None = None,
) -> dict:
    """Host: a built list for ``positions`` (Å) with buffers sized by occupancy × head-room.

    ``capacities`` = (pair capacity, cell capacity, n0, n1, n2, origin0, origin1, origin2) as returned
    by :func:`capacities` forces sizes and grid (restart: the same padded shapes and pair order)."""
    import jax.numpy as jnp

    x = np.asarray(positions)
    periodic = cell is not None
    if capacities is not None:
        p_cap, c_cap = int(capacities[0]), int(capacities[1])
        n = np.asarray(capacities[2:5], dtype=np.int64)
        origin = np.asarray(capacities[5:8], dtype=float)
        size = np.ones(3) if periodic else np.full(3, float(r_list))
    else:
        n, origin, size = grid_for(x, cell, r_list)
        p_cap = c_cap = None
    pos = jnp.asarray(positions)
    c = None if cell is None else jnp.asarray(cell, dtype=pos.dtype)
    fn = _jitted_build()
    if c_cap is None:
        probe = empty_state(n, origin, size, periodic, 1, 1)
        cid = np.asarray(
            cell_ids(pos, c, probe["n"], probe["origin"].astype(pos.dtype), probe["size"].astype(pos.dtype))
        )
        c_cap = _round_up(np.bincount(cid).max() * capacity_multiplier, 8)
    if p_cap is None:
        counted = fn(empty_state(n, origin, size, periodic, 1, c_cap), pos, c, float(r_list))
        p_cap = _round_up(int(counted["count"]) * capacity_multiplier, 64)
    return fn(empty_state(n, origin, size, periodic, p_cap, c_cap), pos, c, float(r_list))


def capacities(state: dict) -> tuple:
    """(pair capacity, cell capacity, n0, n1, n2, origin0, origin1, origin2) of a list state."""
    n = np.asarray(state["n"]).tolist()
    o = np.asarray(state["origin"]).tolist()
    return (int(state["i"].shape[0]), int(state["cell_slots"].shape[0]), *map(int, n), *map(float, o))


def pairs(state: dict):
    """(i, j, valid) of the built list: the first ``count`` slots are real pairs i < j."""
    import jax.numpy as jnp

    valid = jnp.arange(state["i"].shape[0]) < state["count"]
    return state["i"], state["j"], valid
