"""Self-describing model files of trained or fine-tuned SO3krates/SO3LR models.

One ``.npz`` file (loaded with ``allow_pickle=False``, written atomically), a container of kind
"so3krates-model" (:func:`biomlff.fileio.save_tree`), holds

* every parameter leaf as a float32 array under ``params/<flax path>``, and
* ``__meta__``: the container's UTF-8 JSON header, whose metadata hold the format name and version
  (2; version 1 files, with these metadata as the whole ``__meta__``, still load), the architecture
  (:class:`~biomlff.so3lr.architecture.Architecture`), the elements trained on, units (eV, Å, e),
  the per-element reference energies (eV; also folded into the ``energy_offset`` leaf), default
  inference settings (long-range cutoff, dispersion switch), provenance (dataset content hashes,
  split indices, training configuration, package version) and a SHA-256 checksum of the weights,
  verified on load.

:func:`load_model` returns a :class:`SO3LRModel`; everything that takes a model (``--model PATH`` in
``biomlff eval``, ``md``, ``bind``; :class:`biomlff.calculators.SO3LRCalculator` via ``model=``) builds
its :class:`~biomlff.potential.Potential` through :meth:`SO3LRModel.potential`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ModelError
from ..fileio import open_npz, read_tree, save_tree, tree_header
from .architecture import PUBLISHED, Architecture

FORMAT = "biomlff-so3krates-model"
#: 2: a container of kind MODEL_KIND (fileio.save_tree); 1: the layout before it (still read)
FORMAT_VERSION = 2
MODEL_KIND = "so3krates-model"
#: what the messages call these files
MODEL_FILE = "SO3krates model file"


@dataclass
class SO3LRModel:
    """A parameterised SO3krates/SO3LR model: architecture, weights (nested dict of float32 arrays),
    elements it knows (atomic numbers) and metadata (units, provenance, reference energies)."""

    arch: Architecture
    params: dict
    elements: tuple[int, ...]
    meta: dict = field(default_factory=dict)
    name: str = "so3krates"

    @classmethod
    def published(cls, params=None) -> SO3LRModel:
        """The pretrained SO3LR (weights from the user cache unless ``params`` is given)."""
        from .model import TRAINED_ELEMENTS
        from .weights import load_params

        return cls(PUBLISHED, load_params() if params is None else params, TRAINED_ELEMENTS, {}, "so3lr")

    @classmethod
    def lazy_published(cls) -> SO3LRModel:
        """The pretrained SO3LR without its weights (``params=None``): they are loaded from the user
        cache only when a potential is built, after the input checks
        (:func:`biomlff.models.build_potential`)."""
        from .model import TRAINED_ELEMENTS

        return cls(PUBLISHED, None, TRAINED_ELEMENTS, {}, "so3lr")

    @classmethod
    def of(cls, source) -> SO3LRModel:
        """The model behind ``source``: an SO3LRModel (as is), "so3lr" (the published model, weights
        loaded lazily) or a model file path (:func:`load_model`)."""
        if isinstance(source, SO3LRModel):
            return source
        if str(source).lower() == "so3lr":
            return cls.lazy_published()
        return load_model(source)

    def unbound(self, system=None, settings=None):
        """``(SO3LR model without weights, resolved settings)`` for ``system`` (anything
        :func:`biomlff.settings.system_of` takes; None = free space): ``settings`` (a
        :class:`~biomlff.settings.ModelSettings` or mapping) resolved once against this file's inference
        metadata (:meth:`ModelSettings.resolve`) and the model built by the one builder
        :func:`biomlff.so3lr.model.build_so3lr`. Cheap: batched paths call it per frame and group frames
        by the (hashable) model."""
        from ..settings import ModelSettings, system_of
        from .model import build_so3lr

        sysm = None if system is None else system_of(system)
        r = ModelSettings.of(settings).resolve(sysm, self.meta.get("inference"))
        model = build_so3lr(
            r,
            arch=self.arch,
            elements=self.elements,
            name=self.name,
            cell=None if sysm is None else sysm.cell,
            charge=0.0 if sysm is None else float(sysm.charge),
        )
        return model, r

    def weights_for(self, model, params=None):
        """The weights (``params``, else this model's, else the installed SO3LR weights) ready for
        ``model``'s config (radial tables added for tabulated filters)."""
        from .model import so3lr_params

        return so3lr_params(model, self.params if params is None else params)

    def bind(self, system, settings=None, params=None):
        """:class:`~biomlff.potential.Potential` of this model for ``system`` (a
        :class:`~biomlff.potential.ChemicalSystem` or anything :func:`~biomlff.settings.system_of`
        takes) with ``settings`` resolved by :meth:`ModelSettings.resolve`; ``params`` overrides the
        weights. The builder behind :func:`biomlff.models.build_potential` for SO3LR models."""
        from ..settings import system_of
        from .model import bind_so3lr

        sysm = system_of(system)
        model, _ = self.unbound(sysm, settings)
        return bind_so3lr(model, sysm, self.params if params is None else params)

    def potential(self, atomic_numbers, *, lr_cutoff: float | None | str = "auto", **kwargs: Any):
        """:class:`~biomlff.potential.Potential` of this model for one system (:meth:`bind`; keywords:
        charge e, multiplicity, fragments, cell Å, params, and the
        :class:`~biomlff.settings.ModelSettings` fields: dispersion_damping Å, precision, filters,
        electrostatics, ...). ``lr_cutoff="auto"`` (or the former "default"): the model file's setting
        (:meth:`ModelSettings.resolve`); None: all pairs. ModelError naming any element the model was
        not trained on."""
        from ..potential import ChemicalSystem

        system = ChemicalSystem(
            atomic_numbers,
            float(kwargs.pop("charge", 0.0)),
            int(kwargs.pop("multiplicity", 1)),
            kwargs.pop("fragments", None),
            cell=kwargs.pop("cell", None),
        )
        params = kwargs.pop("params", None)
        lr = "auto" if lr_cutoff == "default" else ("none" if lr_cutoff is None else lr_cutoff)
        return self.bind(system, {"lr_cutoff": lr, **kwargs}, params)

    def save(self, path) -> Path:
        """Write the model file atomically; returns its path."""
        return save_model(path, self)


def save_model(path, model: SO3LRModel) -> Path:
    """Write ``model`` to ``path`` (.npz) atomically (temporary file + rename)."""
    from .. import __version__
    from .weights import checksum, flatten, unflatten, validate_tree

    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    flat = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in flatten(model.params).items()}
    validate_tree(unflatten(dict(flat)), str(path), model.arch)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": model.name,
        "architecture": model.arch.to_dict(),
        "elements": [int(z) for z in model.elements],
        "units": {"energy": "eV", "length": "Angstrom", "charge": "e", "dipole": "e*Angstrom"},
        "sha256": checksum(flat),
        "package_version": __version__,
        **{k: v for k, v in model.meta.items() if k not in ("format", "version", "sha256")},
    }
    return save_tree(path, {"params": unflatten(flat)}, meta, kind=MODEL_KIND)


def is_model_file(path) -> bool:
    """True if ``path`` is a biomlff SO3krates model file."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with open_npz(path, MODEL_FILE) as z:
            header = tree_header(z)
            if header is not None:
                return header.get("kind") == MODEL_KIND
            return "__meta__" in z.files and any(k.startswith("params/") for k in z.files)
    except (OSError, DataError):
        return False


def load_model(path) -> SO3LRModel:
    """Read a model file written by :func:`save_model`, or by biomlff before the one container
    (format version 1), checksum verified. ``path`` may also be ``"so3lr"``: the pretrained SO3LR
    from the user cache."""
    from .weights import checksum, flatten, unflatten, validate_tree

    if str(path).lower() == "so3lr":
        return SO3LRModel.published()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    with open_npz(path, MODEL_FILE) as z:
        if "__meta__" not in z.files:
            raise ModelError(f"{path}: not a biomlff SO3krates model file (no __meta__ entry)")
        if tree_header(z) is not None:
            tree, meta = read_tree(z, kind=MODEL_KIND)
            flat = flatten(tree.get("params") or {})
        else:  # version 1: the same entries, the metadata as the whole __meta__
            meta = json.loads(bytes(z["__meta__"]).decode())
            flat = {k[len("params/") :]: z[k] for k in z.files if k.startswith("params/")}
    if not isinstance(meta, dict):
        raise DataError(f"{MODEL_FILE} {path}: its __meta__ entry is not model metadata")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: model format version {meta['version']} is newer than this biomlff")
    if checksum(flat) != meta.get("sha256"):
        raise ModelError(f"{path}: weights checksum mismatch (corrupt file)")
    arch = Architecture.from_dict(meta["architecture"])
    params = validate_tree(unflatten(flat), str(path), arch)
    return SO3LRModel(
        arch, params, tuple(int(z) for z in meta["elements"]), meta, meta.get("name", "so3krates")
    )
