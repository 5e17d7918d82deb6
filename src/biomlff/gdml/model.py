"""The trained sGDML model: arrays, batched prediction, Potential, and model files.

Internal units: positions Å, energies eV, forces eV/Å; descriptor 1/Å, σ in descriptor units (1/Å).
Array conventions follow sgdml 1.0.3 (spec §4, §9) so that models convert losslessly:

* ``R_desc`` (M, D) training descriptors (stored transposed, (D, M), in the sgdml format),
* ``alphas`` (M, N, 3) = α = −a where (K + λI) a = F/s,
* ``R_d_desc_alpha`` (M, D) = u_j = J_j α_j,
* ``std`` s (eV/Å), ``c`` integration constant (eV), ``perms`` (P, N), pair list ``a, b``,
* ``alphas_E`` (M,) energy-constraint coefficients (models trained with energy constraints, spec §3;
  then E = c + s [Σ c2 (d·u) + Σ α_E κ(d)] and c is the mean training energy).

Two file formats: biomlff's own ``.npz`` (a container of kind "gdml-model",
:func:`biomlff.fileio.save_tree`, with ``format='biomlff-gdml'`` in its metadata; eV/Å, with
provenance: dataset hash, indices, σ, λ, solver statistics; files of format version 1, one entry per
array, still load) and the sgdml 1.0.3 model ``.npz`` (``type='m'``; written in kcal/mol and Å unless
told otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import units
from ..errors import DataError, ModelError
from ..fileio import atomic_savez, open_npz, read_tree, save_tree, tree_header
from ..potential import Model
from ..precision import precision_context
from .descriptor import (
    check_pair_list,
    descriptor_and_jacobian,
    pair_list,
    pairs_from_removed,
    removed_from_pairs,
)
from .perms import descriptor_perms, tril_perms_lin

FORMAT = "biomlff-gdml"
#: 2: a container of kind GDML_KIND (fileio.save_tree); 1: one entry per array (still read)
FORMAT_VERSION = 2
GDML_KIND = "gdml-model"
SGDML_CODE_VERSION = "1.0.3"


@dataclass
class GDMLModel:
    """A trained (s)GDML model (see module docstring for units and conventions)."""

    z: np.ndarray
    R_desc: np.ndarray
    R_d_desc_alpha: np.ndarray
    sigma: float
    std: float
    c: float
    perms: np.ndarray
    lam: float = 1e-10
    alphas: np.ndarray | None = None
    lattice: np.ndarray | None = None  # (3, 3), lattice vectors as columns (sgdml convention), Å
    alphas_E: np.ndarray | None = None  # (M,) energy-constraint coefficients (dimensionless)
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.z = np.asarray(self.z, dtype=np.int64)
        self.R_desc = np.asarray(self.R_desc, dtype=np.float64)
        self.R_d_desc_alpha = np.asarray(self.R_d_desc_alpha, dtype=np.float64)
        self.perms = np.asarray(self.perms, dtype=np.int64)
        if self.alphas_E is not None:
            self.alphas_E = np.asarray(self.alphas_E, dtype=np.float64).reshape(-1)
            if len(self.alphas_E) != self.R_desc.shape[0]:
                raise ModelError(
                    f"alphas_E has {len(self.alphas_E)} entries for {self.R_desc.shape[0]} training points"
                )
        if self.pairs is None:
            self.pairs = pair_list(len(self.z))
        else:
            self.pairs = check_pair_list(len(self.z), *self.pairs)
        d = len(self.pairs[0])
        if (
            self.R_desc.ndim != 2
            or self.R_desc.shape[1] != d
            or self.R_d_desc_alpha.shape != self.R_desc.shape
        ):
            raise ModelError(
                f"descriptor arrays do not match the pair list: R_desc {self.R_desc.shape}, "
                f"R_d_desc_alpha {self.R_d_desc_alpha.shape}, {d} pairs (M, D) expected"
            )
        if not (self.sigma > 0):
            raise ModelError(f"model σ must be > 0, got {self.sigma}")
        self._cache: dict = {}

    # ---- basic properties -------------------------------------------------------------------
    @property
    def n_atoms(self) -> int:
        return len(self.z)

    @property
    def n_train(self) -> int:
        return self.R_desc.shape[0]

    @property
    def n_perms(self) -> int:
        return self.perms.shape[0]

    @property
    def n_features(self) -> int:
        """Descriptor length D (number of atom pairs in the pair list)."""
        return len(self.pairs[0])

    @property
    def is_reduced(self) -> bool:
        """True if the pair list is not the full default list (an rGDML model)."""
        return self.n_features != self.n_atoms * (self.n_atoms - 1) // 2

    def q(self) -> np.ndarray:
        """Descriptor index maps (P, D)."""
        a, b = self.pairs
        return descriptor_perms(self.perms, a, b, self.n_atoms)

    def _permuted(self):
        if "xp" not in self._cache:
            q = self.q()
            xp = self.R_desc[:, q].reshape(-1, self.R_desc.shape[1])  # (M·P, D)
            up = self.R_d_desc_alpha[:, q].reshape(-1, self.R_desc.shape[1])
            self._cache["xp"] = xp
            self._cache["up"] = up
        return self._cache["xp"], self._cache["up"]

    # ---- prediction ---------------------------------------------------------------------------
    def _rows(self, chunk: int):
        """Centred, padded training rows for the batched path (cached per chunk size)."""
        key = ("rows", chunk)
        if key not in self._cache:
            from .predict import prepare_rows

            xp, up = self._permuted()
            self._cache[key] = prepare_rows(xp, up, chunk, self._ae_rows())
        return self._cache[key]

    def _ae_rows(self):
        """α_E per permuted row (rows are ordered training point-major, like ``_permuted``)."""
        return None if self.alphas_E is None else np.repeat(self.alphas_E, self.n_perms)

    def sgdml(self, chunk: int | None = None) -> SGDML:
        """This model as a :class:`SGDML` :class:`~biomlff.potential.Model` whose batched path runs
        over ``chunk`` training rows at a time (None: all rows)."""
        a, b = self.pairs
        lattice = None if self.lattice is None else tuple(map(tuple, np.asarray(self.lattice, float)))
        return SGDML(self.n_atoms, (tuple(map(int, a)), tuple(map(int, b))), lattice, chunk)

    def params(self, chunk: int | None = None) -> dict:
        """Parameters of :meth:`sgdml`: permuted training rows ``xp``, ``up`` (M·P, D), σ (1/Å),
        ``std`` (eV/Å), ``c`` (eV), pair list ``a``, ``b``, optional ``lattice`` (columns, Å) and
        ``ae`` (α_E per row); with ``chunk`` also ``rows``, the centred rows of the batched path
        (:func:`biomlff.gdml.predict.prepare_rows`, padded to a multiple of ``chunk``)."""
        xp, up = self._permuted()
        a, b = self.pairs
        params = {
            "xp": xp,
            "up": up,
            "sigma": float(self.sigma),
            "std": float(self.std),
            "c": float(self.c),
            "a": np.asarray(a),
            "b": np.asarray(b),
        }
        if self.lattice is not None:
            params["lattice"] = np.asarray(self.lattice, dtype=np.float64)
        if self.alphas_E is not None:
            params["ae"] = self._ae_rows()
        if chunk is not None:
            params["rows"] = self._rows(chunk)
        return params

    def _batch_fn(self, chunk: int):
        key = ("batch", chunk)
        if key not in self._cache:
            import jax

            self._cache[key] = jax.jit(self.sgdml(chunk).apply)
        return self._cache[key]

    def predict(self, positions, batch_size: int = 1024, progress: bool = False):
        """Energies (B,) in eV and forces (B, N, 3) in eV/Å for positions (B, N, 3) or (N, 3) in Å.

        Runs in float64 (thread-local ``jax.enable_x64``), ``batch_size`` geometries per compiled call
        (larger batches reuse each chunk of training rows for more queries: on ethanol M = 1000 sGDML
        1024 gives ~1.5× the throughput of 128); a last partial batch is padded to the next power of
        two, so that few compiled shapes serve all calls.
        """

        from .predict import row_chunk

        pos = np.asarray(positions, dtype=np.float64)
        single = pos.ndim == 2
        if single:
            pos = pos[None]
        if pos.ndim != 3 or pos.shape[1:] != (self.n_atoms, 3):
            raise ModelError(f"positions must have shape (B, {self.n_atoms}, 3), got {np.shape(positions)}")
        if not np.all(np.isfinite(pos)):
            raise DataError("positions contain NaN or inf")
        if batch_size < 1:
            raise ModelError(f"batch_size must be ≥ 1, got {batch_size}")
        nb = len(pos)
        bs = max(1, min(batch_size, nb))
        energies = np.empty(nb)
        forces = np.empty((nb, self.n_atoms, 3))
        starts = range(0, nb, bs)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="predict", unit="batch", leave=False)
        n_rows = self.n_train * self.n_perms
        consts = {"sigma": float(self.sigma), "std": float(self.std), "c": float(self.c)}
        with precision_context("float64"):
            for s in starts:
                chunk_pos = pos[s : s + bs]
                k = len(chunk_pos)
                b = bs if k == bs else min(bs, 1 << (k - 1).bit_length())
                if k < b:
                    chunk_pos = np.concatenate([chunk_pos, np.repeat(chunk_pos[:1], b - k, axis=0)])
                chunk = row_chunk(n_rows, b)
                params = {"rows": self._rows(chunk), **consts}
                out = self._batch_fn(chunk)(params, {"positions": chunk_pos})
                energies[s : s + k] = np.asarray(out["energy"])[:k]
                forces[s : s + k] = np.asarray(out["forces"])[:k]
        if single:
            return float(energies[0]), forces[0]
        return energies, forces

    def predict_energies_numpy(self, positions) -> np.ndarray:
        """Energies (B,) in eV for positions (B, N, 3) in Å, computed in NumPy without compiling the
        JAX prediction (cheaper for one-off evaluations such as the integration constant)."""
        from .predict import energies_numpy

        pos = np.asarray(positions, dtype=np.float64).reshape(-1, self.n_atoms, 3)
        a, b = self.pairs
        x = descriptor_and_jacobian(pos, a, b, self.lattice)[0]
        rows = self._rows(self.n_train * self.n_perms)
        return energies_numpy(x, *rows[:5], float(self.sigma), float(self.std), float(self.c), *rows[5:])

    def potential(self):
        """A :class:`biomlff.potential.Potential` (``neighbors = {}``): :meth:`sgdml` bound to this
        molecule; forces follow by autodiff and equal the analytic forces of :meth:`predict`."""
        from ..potential import ChemicalSystem, bind

        info = {"sigma": float(self.sigma), "n_train": self.n_train, "n_perms": self.n_perms}
        return bind(self.sgdml(), self.params(), ChemicalSystem(self.z), name="sgdml", info=info)

    # ---- biomlff model files ---------------------------------------------------------------
    def save(self, path) -> Path:
        """Write biomlff's model ``.npz`` atomically (temp file + rename; a missing ``.npz`` suffix
        is added, missing folders are made) as one container. Units eV, Å."""
        a, b = self.pairs
        optional = {"alphas": self.alphas, "alphas_E": self.alphas_E, "lattice": self.lattice}
        tree = {
            "z": self.z,
            "R_desc": self.R_desc,
            "R_d_desc_alpha": self.R_d_desc_alpha,
            "sigma": float(self.sigma),
            "std": float(self.std),
            "c": float(self.c),
            "perms": self.perms,
            "lam": float(self.lam),
            "pairs_a": np.asarray(a),
            "pairs_b": np.asarray(b),
            **{k: None if v is None else np.asarray(v) for k, v in optional.items()},
        }
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "energy_unit": "eV",
            "length_unit": "Ang",
            "info": self.info,
        }
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        return save_tree(path, tree, meta, kind=GDML_KIND, compressed=True, make_parents=True)

    @classmethod
    def load(cls, path) -> GDMLModel:
        """Read a model file: biomlff's ``.npz`` (either format version) or an sgdml 1.0.3 model
        ``.npz`` (auto-detected)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
        # sgdml stores a few object arrays (None, {mae, rmse} dicts): read by a restricted unpickler
        with open_npz(path, "sGDML model", object_arrays=True) as f:
            keys = set(f.files)
            if tree_header(f) is not None:
                return cls._from_container(f, path)
            if "format" in keys and str(f["format"]) == FORMAT:
                return cls._from_biomlff(f, path)
            if "type" in keys and str(f["type"]) == "m":
                return from_sgdml_arrays({k: f[k] for k in keys}, source=str(path))
        raise DataError(f"{path}: neither a biomlff GDML model nor an sgdml model (type='m')")

    @classmethod
    def _from_container(cls, f, path) -> GDMLModel:
        tree, meta = read_tree(f, kind=GDML_KIND)
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
        ver = int(meta.get("version", 0))
        if ver > FORMAT_VERSION:
            raise DataError(
                f"{path}: model format version {ver} is newer than this biomlff ({FORMAT_VERSION})"
            )
        fields = ("z", "R_desc", "R_d_desc_alpha", "sigma", "std", "c", "perms", "lam")
        for key in (*fields, "pairs_a", "pairs_b"):
            if tree.get(key) is None:
                raise f.missing(key)
        return cls(
            **{k: tree[k] for k in fields},
            **{k: tree.get(k) for k in ("alphas", "alphas_E", "lattice")},
            pairs=(tree["pairs_a"], tree["pairs_b"]),
            info=meta.get("info", {}),
        )

    @classmethod
    def _from_biomlff(cls, f, path) -> GDMLModel:
        """A model file of format version 1 (one entry per array)."""
        ver = int(f["format_version"])
        if ver > FORMAT_VERSION:
            raise DataError(
                f"{path}: model format version {ver} is newer than this biomlff ({FORMAT_VERSION})"
            )
        return cls(
            z=f["z"],
            R_desc=f["R_desc"],
            R_d_desc_alpha=f["R_d_desc_alpha"],
            sigma=float(f["sigma"]),
            std=float(f["std"]),
            c=float(f["c"]),
            perms=f["perms"],
            lam=float(f["lam"]),
            alphas=f["alphas"] if "alphas" in f.files else None,
            alphas_E=f["alphas_E"] if "alphas_E" in f.files else None,
            lattice=f["lattice"] if "lattice" in f.files else None,
            pairs=(f["pairs_a"], f["pairs_b"]),
            info=json.loads(str(f["info"])),
        )

    # ---- sgdml 1.0.3 model files -------------------------------------------------------------
    def to_sgdml_arrays(self, energy_unit: str = "kcal/mol") -> dict[str, Any]:
        """The sgdml 1.0.3 model arrays (spec §9), energies in ``energy_unit``, lengths in Å."""
        a, b = self.pairs
        # a reduced pair list is written as rGDML's desc_type = 2 + rm_arr (removed tril indices)
        rm = removed_from_pairs(self.n_atoms, a, b) if self.is_reduced else None
        if self.alphas is None:
            raise ModelError("this model has no alphas (needed by the sgdml format)")
        fe = units.energy_factor(energy_unit)  # eV per unit
        info = self.info
        nan_err = {"mae": np.nan, "rmse": np.nan}
        out = {
            "type": "m",
            "code_version": SGDML_CODE_VERSION,
            "dataset_name": str(info.get("dataset_name", "unknown")),
            "dataset_theory": str(info.get("dataset_theory", "unknown")),
            "solver_name": str(info.get("solver", "analytic")).replace("closed", "analytic"),
            "z": self.z,
            "idxs_train": np.asarray(info.get("idxs_train", []), dtype=np.int64),
            "md5_train": str(info.get("dataset_hash", "")),
            "idxs_valid": np.asarray(info.get("idxs_valid", []), dtype=np.int64),
            "md5_valid": str(info.get("dataset_hash", "")),
            "n_test": 0,
            "md5_test": "",
            "f_err": _err_dict(info.get("valid_f_err"), 1.0 / fe, nan_err),
            "e_err": _err_dict(info.get("valid_e_err"), 1.0 / fe, nan_err),
            "R_desc": self.R_desc.T.copy(),
            # α solves (K + λI)(−α) = F/std and is dimensionless, and so is Jα: only std and c carry
            # the energy unit (scaling α too would scale the kernel part of E and F by 1/fe twice)
            "R_d_desc_alpha": self.R_d_desc_alpha,
            "c": float(self.c) / fe,
            "std": float(self.std) / fe,
            "sig": float(self.sigma),
            "lam": float(self.lam),
            "alphas_F": np.asarray(self.alphas).reshape(-1),
            "perms": self.perms,
            "tril_perms_lin": tril_perms_lin(self.q()),
            "use_E": bool(info.get("use_E", True)),
            "r_unit": "Ang",
            "e_unit": energy_unit,
        }
        if self.lattice is not None:
            out["lattice"] = np.asarray(self.lattice)
        if rm is not None:
            out["desc_type"] = 2
            out["rm_arr"] = rm
        if self.alphas_E is not None:
            out["alphas_E"] = self.alphas_E  # dimensionless, like alphas_F
        for key in ("solver_tol", "solver_iters", "solver_resid", "norm_y_train"):
            if key in info:
                out[key] = info[key]
        if "inducing_pts_idxs" in info:
            out["inducing_pts_idxs"] = np.asarray(info["inducing_pts_idxs"], dtype=np.int64)
        return out

    def save_sgdml(self, path, energy_unit: str = "kcal/mol") -> Path:
        """Write an sgdml 1.0.3 model file (atomically); energies in ``energy_unit``, lengths Å."""
        return _atomic_savez(path, self.to_sgdml_arrays(energy_unit), allow_pickle=True)


@dataclass(frozen=True)
class SGDML(Model):
    """sGDML as a :class:`~biomlff.potential.Model` (parameters: :meth:`GDMLModel.params`).

    Static settings: ``n_atoms``, the descriptor's pair list ``pairs`` (a, b), the model's own
    ``lattice`` (columns, Å; None = free space) and ``chunk``, the training rows per step of the
    batched path. :meth:`apply` takes the analytic batched path (descriptor GEMMs, F = Jᵀg) when
    ``params`` has the prepared ``rows`` — it is what :meth:`GDMLModel.predict` runs — and autodiff
    of :meth:`energy` otherwise. A global model: no pair lists; the batch needs ``positions`` only."""

    n_atoms: int
    pairs: tuple
    lattice: tuple | None = None
    chunk: int | None = None
    name: str = field(default="sgdml", compare=False)

    def row_inputs(self, row) -> dict:
        return {}

    def energy(self, params, inputs, positions, pairs, cell=None):
        from .predict import potential_energy

        return potential_energy(params, positions, pairs, cell)

    def apply(self, params, batch) -> dict:
        """``energy`` (B,) eV and ``forces`` (B, N, 3) eV/Å of ``batch["positions"]`` (B, N, 3) Å."""
        if "rows" not in params:
            return super().apply(params, batch)
        from .predict import batch_energy_forces

        a, b = (np.asarray(v) for v in self.pairs)
        lattice = None if self.lattice is None else np.asarray(self.lattice)
        x, c = descriptor_and_jacobian(batch["positions"], a, b, lattice)
        rows = params["rows"]
        ae = rows[5] if len(rows) > 5 else None
        e, f = batch_energy_forces(
            x, c, *rows[:5], params["sigma"], params["std"], params["c"], a, b, self.n_atoms, self.chunk, ae
        )
        return {"energy": e, "forces": f}


def from_sgdml_arrays(f: dict[str, Any], source: str = "<arrays>") -> GDMLModel:
    """Build a model from sgdml 1.0.3 model arrays; energies converted from ``e_unit`` (default
    kcal/mol, sgdml's usual unit) to eV. Only Å lengths are supported."""
    for key in ("R_desc", "R_d_desc_alpha", "sig", "std", "c", "z", "perms"):
        if key not in f:
            raise DataError(f"{source}: sgdml model lacks key {key!r}")
    alphas_E = None
    if "alphas_E" in f and f["alphas_E"] is not None and np.size(f["alphas_E"]):
        alphas_E = np.asarray(f["alphas_E"], dtype=np.float64).reshape(-1)
    r_unit = str(f["r_unit"]) if "r_unit" in f else "Ang"
    if units.length_factor(r_unit) != 1.0:
        raise DataError(f"{source}: only models in Å are supported (r_unit={r_unit!r})")
    e_unit = str(f["e_unit"]) if "e_unit" in f else "kcal/mol"
    fe = units.energy_factor(e_unit)
    z = np.asarray(f["z"])
    n = len(z)
    m = np.asarray(f["R_desc"]).shape[1]
    # α and R_d_desc_alpha are dimensionless (labels are F/std): only std and c change with the unit
    alphas = np.asarray(f["alphas_F"]).reshape(m, n, 3) if "alphas_F" in f else None
    info = {
        "source": source,
        "imported_from": "sgdml",
        "e_unit_file": e_unit,
        "dataset_name": str(f.get("dataset_name", "")),
        "dataset_theory": str(f.get("dataset_theory", "")),
        "idxs_train": np.asarray(f.get("idxs_train", [])).tolist(),
        "idxs_valid": np.asarray(f.get("idxs_valid", [])).tolist(),
        "dataset_hash": str(f.get("md5_train", "")),
        "solver": str(f.get("solver_name", "")),
        "use_E": bool(f.get("use_E", True)),
    }
    lattice = np.asarray(f["lattice"]) if "lattice" in f and f["lattice"] is not None else None
    R_desc = np.asarray(f["R_desc"])
    u = np.asarray(f["R_d_desc_alpha"])
    pairs = None
    d_full = n * (n - 1) // 2
    if "desc_type" in f and f["desc_type"] is not None and int(f["desc_type"]) == 2:
        # rGDML: descriptor without the pairs in rm_arr (spec §13)
        if "rm_arr" not in f:
            raise DataError(f"{source}: desc_type = 2 (reduced descriptor) but no rm_arr")
        try:
            pairs = pairs_from_removed(n, f["rm_arr"])
        except ModelError as exc:
            raise DataError(f"{source}: rm_arr does not match the molecule ({n} atoms): {exc}") from exc
        d = len(pairs[0])
        if R_desc.shape[0] == d_full and d != d_full:  # full-length arrays: drop the removed rows
            keep = np.setdiff1d(np.arange(d_full), np.asarray(f["rm_arr"]).astype(np.int64))
            R_desc = R_desc[keep]
            u = u[:, keep]
        info["rm_arr"] = np.asarray(f["rm_arr"]).astype(np.int64).tolist()
    else:
        d = d_full
    if R_desc.shape[0] != d or u.shape != (m, d):
        raise DataError(
            f"{source}: R_desc {R_desc.shape} / R_d_desc_alpha {u.shape} do not match the "
            f"descriptor of {n} atoms with {d} pairs"
        )
    return GDMLModel(
        z=z,
        R_desc=R_desc.T,
        R_d_desc_alpha=u,
        sigma=float(f["sig"]),
        std=float(f["std"]) * fe,
        c=float(f["c"]) * fe,
        perms=np.asarray(f["perms"]),
        lam=float(f.get("lam", 1e-10)),
        alphas=alphas,
        alphas_E=alphas_E,
        lattice=lattice,
        pairs=pairs,
        info=info,
    )


def _err_dict(err, factor, default):
    if not err:
        return default
    return {"mae": float(err["mae"]) * factor, "rmse": float(err["rmse"]) * factor}


def _atomic_savez(path, arrays: dict, allow_pickle: bool = False) -> Path:
    """np.savez_compressed through :func:`biomlff.data.atomic_path` (temp file + rename); a missing
    ``.npz`` suffix is added and missing parent folders are created."""

    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {k: (np.array(v, dtype=object) if isinstance(v, dict) else v) for k, v in arrays.items()}
    return atomic_savez(path, arrays, compressed=True, make_parents=True)
