"""SO3LR as a :class:`biomlff.potential.Potential` (spec §1): SO3krates + ZBL + electrostatics +
dispersion, on sparse padded pair lists.

Pair lists: ``"sr"`` each unordered pair once within 4.5 Å (SO3krates and ZBL; the network evaluates its
filters once per unordered pair and sends messages both ways) and ``"lr"`` each unordered pair
once within the long-range cutoff (electrostatics and dispersion; all pairs when the cutoff is
None, free space only). Units: positions Å, cell rows Å (orthorhombic, minimum image), energies eV,
charges e, dipole e·Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import geometry
from ..batching import fragment_arrays as _fragment_arrays
from ..defaults import DEFAULT_DISPERSION_DAMPING, DEFAULT_LR_CUTOFF
from ..errors import ConfigError, ModelError
from ..ewald import EwaldSettings
from ..potential import ChemicalSystem, Model, NeighborSpec, Pairs, Potential, bind
from . import network, physics
from .architecture import PUBLISHED, Architecture

#: elements SO3LR was trained on (H, C, N, O, F, P, S, Cl)
TRAINED_ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17)
TERMS = ("so3krates", "zbl", "electrostatics", "dispersion")


def check_elements(atomic_numbers, elements=TRAINED_ELEMENTS, model: str = "SO3LR") -> np.ndarray:
    """Atomic numbers as int array; ModelError naming the elements ``model`` was not trained on
    (``elements``: the atomic numbers it knows; default the published SO3LR's)."""
    from ase.data import chemical_symbols

    z = np.asarray(atomic_numbers)
    if z.ndim != 1 or z.size == 0:
        raise ModelError(f"atomic_numbers must be a non-empty 1-D array, got shape {z.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        if np.any(z != np.round(z)):
            raise ModelError("atomic_numbers must be integers")
        z = z.astype(np.int64)
    bad = sorted(set(int(v) for v in z) - set(int(e) for e in elements))
    if bad:

        def sym(b):
            return chemical_symbols[b] if 0 < b < len(chemical_symbols) else "?"

        names = ", ".join(f"{sym(b)} (Z={b})" for b in bad)
        known = ", ".join(sym(int(e)) for e in sorted(elements))
        raise ModelError(f"{model} was trained on {known} only; unsupported element(s): {names}")
    return z.astype(np.int32)


def check_cell(cell, lr_cutoff: float | None, sr_cutoff: float = physics.SR_CUTOFF) -> np.ndarray | None:
    """Validate a cell for SO3LR: None (free space) or any periodic cell (3, 3) Å, orthorhombic or
    triclinic, with every height ≥ 2 × max(lr cutoff, short-range cutoff 4.5 Å)
    (:func:`biomlff.geometry.check_cell`). Returns the cell as float64 or None."""
    if cell is None:
        return None
    need = None if lr_cutoff is None else max(float(lr_cutoff), float(sr_cutoff))
    return geometry.check_cell(cell, need, name="lr cutoff (--lr-cutoff)")


@dataclass(frozen=True)
class SO3LRConfig:
    """Static settings of an SO3LR energy function (hashable: equal configs share compiled code):
    long-range cutoff (Å, None = all pairs), dispersion switch width (Å), precision and the network
    :class:`~biomlff.so3lr.architecture.Architecture` (default: the published SO3LR).

    ``filters``: "exact" evaluates the radial filter networks per pair; "tabulated" reads them from
    piecewise-polynomial tables of r that travel in ``params["radial_tables"]``
    (:mod:`biomlff.so3lr.tabulate`, built by :func:`so3lr_potential`)."""

    lr_cutoff: float | None = DEFAULT_LR_CUTOFF
    dispersion_damping: float | None = DEFAULT_DISPERSION_DAMPING
    precision: str = "float32"
    arch: Architecture = PUBLISHED
    filters: str = "exact"
    #: "cutoff" (SO3LR's shifted cutoff, the default) or "ewald" / "pme": the same damped Coulomb
    #: interaction summed over the periodic lattice (:mod:`biomlff.so3lr.lattice`) with the tuned
    #: static parameters in ``ewald`` (:func:`biomlff.so3lr.lattice.lattice_settings`)
    electrostatics: str = "cutoff"
    ewald: EwaldSettings | None = None

    @property
    def dtype(self):
        return np.float64 if self.precision == "float64" else np.float32


def _displacements(positions, i, j, cell):
    """r_ij = R_j − R_i (Å), minimum image through fractional coordinates when a cell is given."""
    return geometry.minimum_image(positions[j] - positions[i], cell)


def _pair_geometry(positions, pairs, cell):
    """Distances (Å) and unit vectors of a padded pair list; padded pairs get r = 1 (finite) and
    are reported through the returned mask."""
    import jax.numpy as jnp

    d = _displacements(positions, pairs.i, pairs.j, cell)
    mask = pairs.mask
    r2 = jnp.sum(d * d, axis=-1)
    r2 = jnp.where(mask, r2, 1.0)
    r = jnp.sqrt(r2)
    return d, r, mask


#: LR pairs per block: long lists (periodic boxes with a 12 Å cutoff hold ~360 pairs per atom) are
#: evaluated block by block (lax.scan, recomputed in the backward pass) so that the per-pair
#: intermediates stay in the CPU cache
LR_BLOCK = 8192


def _long_range(positions, q, alpha, u, lr, cell, config: SO3LRConfig):
    """Per-atom electrostatic and dispersion energies (eV), each unordered pair split ½/½.

    q: partial charges (e), alpha: Hirshfeld-scaled α (bohr³), u: C6/α² (Hartree) per atom;
    lr: the long-range pair list (each unordered pair once)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    n = positions.shape[0]
    arch = config.arch

    def block(i, j, mask):
        _, r, m = _pair_geometry(positions, Pairs(i, j, mask), cell)
        if arch.electrostatics and config.electrostatics != "cutoff":
            from .lattice import real_space_pair_energy  # lattice sum: real-space part on the LR list

            e_el = real_space_pair_energy(r, q[i], q[j], config.ewald)
        elif arch.electrostatics:
            e_el = physics.electrostatic_pair_energy(
                r, q[i], q[j], config.lr_cutoff, arch.electrostatic_sigma
            )
        else:
            e_el = jnp.zeros_like(r)
        if arch.dispersion:
            e_disp = physics.dispersion_pair_energy_u(
                r,
                alpha[i],
                alpha[j],
                u[i],
                u[j],
                config.lr_cutoff,
                config.dispersion_damping,
                arch.dispersion_beta,
            )
        else:
            e_disp = jnp.zeros_like(r)
        e = 0.5 * jnp.stack([jnp.where(m, e_el, 0.0), jnp.where(m, e_disp, 0.0)], axis=-1)
        recv = jnp.concatenate([i, j])
        return jax.ops.segment_sum(jnp.concatenate([e, e]), recv, num_segments=n)  # (n, 2)

    if config.filters == "tabulated":  # the inference fast path (float32 default)
        return _long_range_fast(positions, q, alpha, u, lr, cell, config)
    p = lr.i.shape[0]
    if p <= LR_BLOCK:
        out = block(lr.i, lr.j, lr.mask)
    else:
        nb = -(-p // LR_BLOCK)
        pad = nb * LR_BLOCK - p

        def blocks(a, fill):
            a = jnp.concatenate([a, jnp.full((pad,), fill, a.dtype)]) if pad else a
            return a.reshape(nb, LR_BLOCK)

        @jax.checkpoint
        def body(acc, g):
            return acc + block(*g), None

        xs = (blocks(lr.i, 0), blocks(lr.j, 0), blocks(lr.mask, False))
        out, _ = lax.scan(body, jnp.zeros((n, 2), positions.dtype), xs)
    return out[:, 0], out[:, 1]


def _lr_pair_energies(r, m, qi, qj, ai, aj, ui, uj, config: SO3LRConfig):
    """(B, 2) electrostatic and dispersion energies (eV) of a block of unordered LR pairs at
    distances r (Å), 0 where the mask m is False."""
    import jax.numpy as jnp

    arch = config.arch
    if arch.electrostatics and config.electrostatics != "cutoff":
        from .lattice import real_space_pair_energy

        e_el = real_space_pair_energy(r, qi, qj, config.ewald)
    elif arch.electrostatics:
        e_el = physics.electrostatic_pair_energy(r, qi, qj, config.lr_cutoff, arch.electrostatic_sigma)
    else:
        e_el = jnp.zeros_like(r)
    if arch.dispersion:
        e_disp = physics.dispersion_pair_energy_u(
            r, ai, aj, ui, uj, config.lr_cutoff, config.dispersion_damping, arch.dispersion_beta
        )
    else:
        e_disp = jnp.zeros_like(r)
    return jnp.stack([jnp.where(m, e_el, 0.0), jnp.where(m, e_disp, 0.0)], axis=-1)


def _lr_block(cell, frozen, ni, nj, pairs, mask, *, config: SO3LRConfig):
    """One block of LR pairs for :func:`biomlff.pairsum.pair_sum`: rows (R, q, α, u) of atoms i
    and j, ``cell`` = None or (cell, cell⁻¹) (Å, 1/Å); ½ of every pair energy to each atom."""
    import jax.numpy as jnp

    d = nj[0] - ni[0]
    if cell is not None:
        d = geometry.minimum_image_elementwise(d, *cell)
    r2 = jnp.where(mask, jnp.sum(d * d, axis=-1), 1.0)
    e = 0.5 * _lr_pair_energies(jnp.sqrt(r2), mask, ni[1], nj[1], ni[2], nj[2], ni[3], nj[3], config)
    return e, e


def _long_range_fast(positions, q, alpha, u, lr, cell, config: SO3LRConfig):
    """:func:`_long_range` through :func:`biomlff.pairsum.pair_sum` (blocks of :data:`LR_BLOCK`
    pairs, reverse pass accumulated in place, minimum image without 3×3 matrix products, cell
    inverted once). Same energies up to the order of the float additions."""
    import functools

    import jax.numpy as jnp

    from ..pairsum import as_blocks, pair_sum

    consts = None if cell is None else (cell, jnp.linalg.inv(cell))
    out = pair_sum(
        functools.partial(_lr_block, config=config),
        positions.shape[0],
        (positions, q, alpha, u),
        as_blocks(lr.i, LR_BLOCK, 0),
        as_blocks(lr.j, LR_BLOCK, 0),
        consts=consts,
        aux=(mask := as_blocks(lr.mask, LR_BLOCK, False)),
        live=mask.any(axis=1),
    )
    return out[:, 0], out[:, 1]


def so3lr_terms(
    params, species, charge, spin, frag_ids, frag_charges, positions, pairs, cell, config: SO3LRConfig
) -> dict:
    """All per-atom quantities of SO3LR for one structure.

    Args: params (nested dict, float32 leaves), species (N,) int, charge and spin () floats (total
    charge in e, multiplicity − 1), frag_ids (N,) fragment index per atom and frag_charges (F,) in e
    (charge conservation per fragment), positions (N, 3) Å, pairs {"sr", "lr"}, cell (3, 3) Å or None.

    Returns a dict of per-atom arrays: ``so3krates``, ``zbl``, ``electrostatics``, ``dispersion``
    (eV), ``charges`` (e), ``hirshfeld_ratios``.
    """
    import jax
    import jax.numpy as jnp

    dtype = config.dtype
    arch = config.arch
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ModelError(
            "precision='float64' needs 64-bit JAX: evaluate inside `with jax.enable_x64(True):` "
            "or set jax.config.update('jax_enable_x64', True) (the SO3LR calculator does this itself)"
        )
    params = jax.tree_util.tree_map(jnp.asarray, params)  # NumPy leaves when the Partial is closed over
    frag_ids = jnp.asarray(frag_ids, jnp.int32)
    frag_charges = jnp.asarray(frag_charges)
    positions = jnp.asarray(positions, dtype)
    cell = None if cell is None else jnp.asarray(cell, dtype)
    n = positions.shape[0]
    species = jnp.asarray(species, jnp.int32)
    # species 0 marks padding atoms (used by batched evaluation to share compiled shapes between
    # structures of different sizes): they carry no pairs, form their own neutral graph for the
    # charge/spin embeddings and get zero energy, charge and Hirshfeld ratio. With no padding the
    # result is unchanged (the extra graph is empty).
    real = species > 0
    graph_ids = jnp.where(real, 0, 1).astype(jnp.int32)
    zero = jnp.zeros((1,), dtype)

    # ---- short range: SO3krates + ZBL
    sr = pairs["sr"]
    d, r, mask = _pair_geometry(positions, sr, cell)
    unit = d / r[:, None]
    phi = jnp.where(mask, physics.physnet_cutoff(r, arch.sr_cutoff), 0.0)
    ylm = network.spherical_harmonics(unit)
    if arch.num_components < ylm.shape[-1]:
        ylm = ylm[:, : arch.num_components]
    geom = {
        "i": sr.i,
        "j": sr.j,
        "n": n,
        "ylm": ylm,
        "phi": phi,
    }
    tables = None
    if config.filters == "tabulated":
        from .tabulate import TABLES_KEY

        tables = params.get(TABLES_KEY)
        if tables is None:
            raise ModelError(
                "filters='tabulated' needs the radial tables in params['radial_tables']: "
                "build them once with biomlff.so3lr.tabulate.with_tables(params, arch, dtype)"
            )
        geom["r"] = r
    else:
        geom["rbf"] = network.bernstein_basis(r, dtype, arch.num_rbf)
    x = network.features(
        params,
        species,
        jnp.concatenate([jnp.reshape(jnp.asarray(charge, dtype), (1,)), zero]),
        jnp.concatenate([jnp.reshape(jnp.asarray(spin, dtype), (1,)), zero]),
        graph_ids,
        2,
        geom,
        dtype,
        arch,
        tables,
    )
    e_nn = jnp.where(real, network.atomic_energy(params, x, species, dtype), 0.0)
    if arch.zbl:
        zbl_pair = physics.zbl_pair_energy(
            r, species[sr.i], species[sr.j], params["observables_0"]["zbl_repulsion"], dtype, arch.sr_cutoff
        )
        # ½ V per direction: atom i gets ½ V_ij and atom j ½ V_ij of every unordered pair
        zbl_pair = jnp.where(mask & (r < arch.sr_cutoff), zbl_pair, 0.0)
        e_zbl = jax.ops.segment_sum(
            jnp.concatenate([zbl_pair, zbl_pair]), jnp.concatenate([sr.i, sr.j]), num_segments=n
        )
    else:
        e_zbl = jnp.zeros((n,), dtype)

    # ---- partial charges (charge conserved per fragment) and Hirshfeld ratios
    q_raw = network.raw_partial_charges(params, x, species, dtype)
    n_frag = frag_charges.shape[0]
    q_raw = jnp.where(real, q_raw, 0.0)
    q_sum = jax.ops.segment_sum(q_raw, frag_ids, num_segments=n_frag)
    n_in = jax.ops.segment_sum(real.astype(dtype), frag_ids, num_segments=n_frag)
    # max(n, 1): an empty (padding) fragment must not put 0/0 into the gradient
    shift = (jnp.asarray(frag_charges, dtype) - q_sum) / jnp.maximum(n_in, 1.0)
    q = jnp.where(real, q_raw + shift[frag_ids], 0.0)
    h = jnp.where(real, network.hirshfeld_ratios(params, x, species, dtype), 0.0)

    # ---- long range: electrostatics + dispersion, each unordered pair once, split ½/½ per atom
    if arch.long_range:
        alpha0 = physics.free_atom_table()[0]
        z_table = jnp.where(real, species, 1)  # the Z = 0 row of the tables is NaN (padding atoms)
        alpha = jnp.asarray(alpha0, dtype)[z_table] * h
        u = jnp.asarray(physics.c6_per_alpha2_table(), dtype)[z_table]  # C6/α², independent of h
        e_el, e_disp = _long_range(positions, q, alpha, u, pairs["lr"], cell, config)
        if arch.electrostatics and config.electrostatics != "cutoff":
            from .lattice import reciprocal_atom_energies

            e_el = e_el + reciprocal_atom_energies(positions, q, cell, config.ewald)
    else:
        e_el = e_disp = jnp.zeros((n,), dtype)
    return {
        "so3krates": e_nn,
        "zbl": e_zbl,
        "electrostatics": e_el,
        "dispersion": e_disp,
        "charges": q,
        "hirshfeld_ratios": h,
    }


class _EnergyFunction:
    """Static part of the SO3LR energy function (hashable by config, so equal settings share
    compiled programs); the arrays travel as leaves of a :class:`jax.tree_util.Partial`."""

    def __init__(self, config: SO3LRConfig, outputs: bool = False):
        self.config = config
        self.outputs = outputs

    def __eq__(self, other):
        return type(other) is type(self) and (other.config, other.outputs) == (self.config, self.outputs)

    def __hash__(self):
        return hash((type(self).__name__, self.config, self.outputs))

    def __call__(self, params, species, charge, spin, frag_ids, frag_charges, positions, pairs, cell=None):
        import jax.numpy as jnp

        t = so3lr_terms(
            params, species, charge, spin, frag_ids, frag_charges, positions, pairs, cell, self.config
        )
        if not self.outputs:
            return sum(jnp.sum(t[k]) for k in TERMS)
        energies = sum(t[k] for k in TERMS)
        pos = jnp.asarray(positions, energies.dtype)
        terms = {k: jnp.sum(t[k]) for k in TERMS}
        return {
            "energy": sum(terms[k] for k in TERMS),  # the same sum as the energy path, bit for bit
            "energies": energies,
            "energy_terms": terms,
            "charges": t["charges"],
            "dipole": jnp.sum(t["charges"][:, None] * pos, axis=0),
            "hirshfeld_ratios": t["hirshfeld_ratios"],
        }


@dataclass(frozen=True)
class SO3LR(Model):
    """SO3LR (or a trained SO3krates/SO3LR model of the same family) as a
    :class:`~biomlff.potential.Model`: static settings ``config`` (:class:`SO3LRConfig`, whose
    ``arch`` is the network architecture saved in model files), the elements it knows and a name for
    messages (neither takes part in equality: equal configs share compiled programs).

    Per-structure inputs: ``species``, ``charge`` (e), ``spin`` (multiplicity − 1), ``frag_ids``,
    ``frag_charges`` (e); outputs: ``energies`` (per atom, eV), ``energy_terms`` (eV),
    ``charges`` (e), ``dipole`` (e·Å), ``hirshfeld_ratios``."""

    config: SO3LRConfig = SO3LRConfig()
    elements: tuple = field(default=TRAINED_ELEMENTS, compare=False)
    name: str = field(default="so3lr", compare=False)

    @property
    def neighbors(self) -> dict[str, NeighborSpec]:
        return neighbor_specs(self.config.lr_cutoff, self.config.arch)

    def inputs(self, system: ChemicalSystem) -> dict:
        z = check_elements(system.atomic_numbers, self.elements, self.name.upper())
        ids, fcharges = _fragment_arrays(system.fragments, len(z), float(system.charge))
        from ..checks import check_electrons

        check_electrons(z, system.charge, system.multiplicity)
        return {
            "species": np.asarray(z, np.int32),
            "charge": np.float64(system.charge),
            "spin": np.float64(spin_of(system.multiplicity)),
            "frag_ids": ids,
            "frag_charges": fcharges,
        }

    def row_inputs(self, row) -> dict:
        import jax.numpy as jnp

        out = {k: row[k] for k in ("species", "charge", "spin")}
        n = row["species"].shape[0]
        out["frag_ids"] = row["frag_ids"] if "frag_ids" in row else jnp.zeros((n,), jnp.int32)
        out["frag_charges"] = (
            row["frag_charges"] if "frag_charges" in row else jnp.reshape(row["charge"], (1,))
        )
        return out

    def _call(self, outputs: bool, params, inputs, positions, pairs, cell):
        s = inputs
        args = (s["species"], s["charge"], s["spin"], s["frag_ids"], s["frag_charges"])
        return _EnergyFunction(self.config, outputs)(params, *args, positions, pairs, cell)

    def energy(self, params, inputs, positions, pairs, cell=None):
        return self._call(False, params, inputs, positions, pairs, cell)

    def outputs(self, params, inputs, positions, pairs, cell=None) -> dict:
        return self._call(True, params, inputs, positions, pairs, cell)


#: radial filter modes of :class:`SO3LRConfig`
FILTERS = ("exact", "tabulated")


def default_filters(precision: str) -> str:
    """Default radial filters: tabulated in float32 (table error below float32 rounding; measured
    against the float64 references in tests/so3lr/test_so3lr_tabulate.py), exact in float64."""
    return "tabulated" if precision == "float32" else "exact"


def make_config(
    lr_cutoff: float | None,
    dispersion_damping: float | None,
    precision: str,
    arch: Architecture = PUBLISHED,
    filters: str | None = None,
) -> SO3LRConfig:
    """Validated :class:`SO3LRConfig`: lr cutoff in Å (> 0, or None = all pairs, in which case the
    damping is dropped), dispersion damping width in Å in (0, lr cutoff), precision float32/float64,
    network architecture, radial filters "exact" | "tabulated" (None: :func:`default_filters`)."""
    if precision not in ("float32", "float64"):
        raise ConfigError(f"precision must be 'float32' or 'float64', got {precision!r}")
    filters = default_filters(precision) if filters is None else filters
    if filters not in FILTERS:
        raise ConfigError(f"filters must be one of {FILTERS}, got {filters!r}")
    arch = arch.validate()
    if lr_cutoff is None:
        return SO3LRConfig(
            lr_cutoff=None, dispersion_damping=None, precision=precision, arch=arch, filters=filters
        )
    lr_cutoff = float(lr_cutoff)
    if lr_cutoff <= 0:
        raise ConfigError(f"lr_cutoff must be positive or None, got {lr_cutoff}")
    if dispersion_damping is None or not (0 < float(dispersion_damping) < lr_cutoff):
        raise ConfigError(
            f"dispersion_damping must be in (0, lr_cutoff={lr_cutoff}) Å, got {dispersion_damping}"
        )
    return SO3LRConfig(
        lr_cutoff=lr_cutoff,
        dispersion_damping=float(dispersion_damping),
        precision=precision,
        arch=arch,
        filters=filters,
    )


def prepare_params(params, config: SO3LRConfig):
    """``params`` ready for ``config``: with the radial tables of :mod:`biomlff.so3lr.tabulate`
    added when ``config.filters == "tabulated"`` (built once per weights, cached), else unchanged."""
    if config.filters != "tabulated":
        return params
    from . import tabulate

    return tabulate.with_tables(
        params, config.arch, config.dtype, num_cells=tabulate.default_cells(config.precision)
    )


def spin_of(multiplicity) -> float:
    """Number of unpaired electrons S = multiplicity − 1 (ConfigError for multiplicity < 1)."""
    if int(multiplicity) < 1:
        raise ConfigError(f"multiplicity must be ≥ 1, got {multiplicity}")
    return float(int(multiplicity) - 1)


def neighbor_specs(lr_cutoff: float | None, arch: Architecture = PUBLISHED) -> dict[str, NeighborSpec]:
    """The pair lists SO3LR needs: ``"sr"`` (4.5 Å) and ``"lr"`` (``lr_cutoff`` Å, None = all pairs),
    each unordered pair once; a model without long-range terms needs ``"sr"`` only."""
    specs = {"sr": NeighborSpec(float(arch.sr_cutoff), half=True)}
    if arch.long_range:
        specs["lr"] = NeighborSpec(lr_cutoff, half=True)
    return specs


def _with_lattice_sum(config: SO3LRConfig, electrostatics, cell, accuracy, order, charge) -> SO3LRConfig:
    """``config`` with the electrostatics mode and its tuned lattice-sum settings (None for "cutoff")."""
    from dataclasses import replace

    from .lattice import lattice_settings, warn_if_charged

    if electrostatics != "cutoff" and cell is not None:
        check_cell(cell, config.lr_cutoff, config.arch.sr_cutoff)
    settings = lattice_settings(
        electrostatics, cell, config.lr_cutoff, config.arch.electrostatic_sigma, accuracy, order
    )
    warn_if_charged(electrostatics, charge)
    return replace(config, electrostatics=electrostatics, ewald=settings)


def so3lr_potential(
    atomic_numbers,
    *,
    charge: float = 0.0,
    multiplicity: int = 1,
    lr_cutoff: float | None = DEFAULT_LR_CUTOFF,
    dispersion_damping: float | None = DEFAULT_DISPERSION_DAMPING,
    precision: str = "float32",
    params=None,
    fragments=None,
    arch: Architecture | None = None,
    elements=None,
    name: str = "so3lr",
    filters: str | None = None,
    electrostatics: str = "cutoff",
    cell=None,
    ewald_accuracy: float = 1e-4,
    pme_order: int = 6,
) -> Potential:
    """SO3LR bound to one system.

    Args:
        atomic_numbers: (N,) elements among H, C, N, O, F, P, S, Cl.
        charge: total charge in e. multiplicity: 2S+1 (the model was trained on singlets only).
        lr_cutoff: long-range cutoff in Å (12 Å default, for periodic systems), or None for all pairs
            (gas phase, training setting). dispersion_damping: width (Å) of the dispersion switch
            before the cutoff (ignored when lr_cutoff is None).
        precision: "float32" or "float64" (float64 needs 64-bit JAX, e.g. ``with jax.enable_x64(True)``;
            the calculator handles this).
        params: parameter tree (default: :func:`biomlff.so3lr.load_params`).
        fragments: optional (per-atom fragment ids (N,), per-fragment charges (F,) in e); partial charges
            are then conserved per fragment (dimer binding energies). Charges must add up to ``charge``.
        arch: network :class:`~biomlff.so3lr.architecture.Architecture` of ``params`` (default: the
            published SO3LR); elements: atomic numbers the model knows (default SO3LR's eight);
            name: model name used in messages (trained models: see :func:`biomlff.so3lr.load_model`).
        filters: radial filters, "exact" (the networks per pair) or "tabulated" (piecewise-quintic
            tables of r built once from ``params``, :mod:`biomlff.so3lr.tabulate`); None: tabulated
            in float32, exact in float64 (:func:`default_filters`).
        electrostatics: "cutoff" (default: SO3LR's shifted cutoff at lr_cutoff) or "ewald" / "pme":
            the damped Coulomb interaction summed over the periodic lattice (:mod:`biomlff.so3lr.lattice`),
            with parameters tuned for ``cell`` ((3, 3) Å, needed then; the integer wave-vector set or
            mesh stays fixed if the cell later changes, e.g. in NPT) to the relative force accuracy
            ``ewald_accuracy``; ``pme_order``: PME B-spline order (4, 6, 8, 10). A charged system gets
            a neutralising background (with a warning).

    Returns a Potential with ``energy_fn(positions Å, pairs, cell Å | None) -> eV`` (a
    :class:`jax.tree_util.Partial` whose leaves are the weights and system arrays), neighbours
    ``{"sr": NeighborSpec(4.5, half=True), "lr": NeighborSpec(lr_cutoff, half=True)}`` and an
    ``outputs_fn`` giving ``energy``, ``energies`` (per atom, eV), ``energy_terms`` (so3krates, zbl,
    electrostatics, dispersion; eV), ``charges`` (e), ``dipole`` (Σ q_i R_i, e·Å) and
    ``hirshfeld_ratios``.
    """
    from ..settings import ModelSettings

    settings = ModelSettings(
        lr_cutoff, dispersion_damping, precision, filters, electrostatics, ewald_accuracy, pme_order
    )
    model = build_so3lr(settings, arch=arch, elements=elements, name=name, cell=cell, charge=charge)
    return bind_so3lr(
        model, ChemicalSystem(atomic_numbers, float(charge), int(multiplicity), fragments), params
    )


def bind_so3lr(model: SO3LR, system: ChemicalSystem, params=None) -> Potential:
    """``model`` (from :func:`build_so3lr`) bound to ``system`` with ``params`` (default: the installed
    weights), its resolved settings recorded in ``info``. Bad elements, multiplicity or fragments
    fail before any weights are loaded."""
    model.inputs(system)
    params = so3lr_params(model, params)
    config = model.config
    info = {
        "charge": float(system.charge),
        "multiplicity": int(system.multiplicity),
        "lr_cutoff": config.lr_cutoff,
        "dispersion_damping": config.dispersion_damping,
        "precision": config.precision,
        "filters": config.filters,
        "electrostatics": config.electrostatics,
        "ewald": config.ewald,
    }
    return bind(model, params, system, name=model.name, info=info)


def build_so3lr(
    settings,
    *,
    arch: Architecture | None = None,
    elements=None,
    name: str = "so3lr",
    cell=None,
    charge: float = 0.0,
) -> SO3LR:
    """The one place an SO3LR / SO3krates :class:`SO3LR` model (unbound, no weights) is built, from
    concrete settings (a resolved :class:`~biomlff.settings.ModelSettings`: lr_cutoff Å or None for
    all pairs, dispersion_damping Å, precision, filters, electrostatics, ewald_accuracy, pme_order):
    the bound potential (:func:`so3lr_potential`, :meth:`~biomlff.so3lr.modelfile.SO3LRModel.bind`)
    and the batched paths (eval, bind, training, replay) all come here. ``arch``, ``elements``,
    ``name``: the network and what it knows; ``cell`` Å and ``charge`` e only tune the lattice sums."""
    arch = PUBLISHED if arch is None else arch
    s = settings
    config = make_config(s.lr_cutoff, s.dispersion_damping, s.precision, arch, s.filters)
    if s.electrostatics != "cutoff":
        config = _with_lattice_sum(config, s.electrostatics, cell, s.ewald_accuracy, s.pme_order, charge)
    return SO3LR(config, TRAINED_ELEMENTS if elements is None else tuple(elements), name)


def so3lr_params(model: SO3LR, params=None):
    """The weights of ``model`` ready for its config (radial tables added for tabulated filters):
    ``params``, or the installed SO3LR weights for the published architecture."""
    from .weights import load_params

    if params is None:
        if model.config.arch != PUBLISHED:
            raise ConfigError("params must be given for a non-published architecture")
        params = load_params()
    return prepare_params(params, model.config)
