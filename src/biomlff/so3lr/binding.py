"""Dimer binding energies with SO3LR as the SO3LR paper computes them.

E_bind = E(complex) − E(the same complex with the monomers translated ≥ ``separation`` Å apart), both
evaluated at the complex's total charge with an lr cutoff of 1000 Å; in the translated complex the
partial charges are conserved per monomer (each monomer's charges add up to its own charge, the
excess being redistributed within the monomer). E(AB) − E(A) − E(B) would be wrong for charged
monomers: SO3LR was trained without energies, so totals at different total charges are not on a
common scale. Energies in eV, positions Å.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..geometry import separate_fragments as separate  # noqa: F401  (public name kept)
from ..potential import ChemicalSystem
from .model import TERMS


def fragment_arrays(n_atoms: int, fragments) -> np.ndarray:
    """Per-atom fragment ids from a list of atom-index lists (every atom in exactly one fragment)."""
    ids = np.full(n_atoms, -1, dtype=np.int32)
    for k, frag in enumerate(fragments):
        frag = np.asarray(frag, dtype=int)
        if frag.size == 0:
            raise ConfigError(f"fragment {k} is empty")
        if frag.min() < 0 or frag.max() >= n_atoms:
            raise ConfigError(f"fragment {k} has atom indices outside 0..{n_atoms - 1}")
        if np.any(ids[frag] >= 0):
            raise ConfigError(f"fragment {k} overlaps another fragment")
        ids[frag] = k
    if np.any(ids < 0):
        raise ConfigError(f"atoms {np.nonzero(ids < 0)[0][:10].tolist()} belong to no fragment")
    return ids


def binding_energy(
    atomic_numbers,
    positions,
    fragment_ids,
    fragment_charges=None,
    *,
    separation: float = 1000.0,
    multiplicity: int = 1,
    params=None,
    model=None,
    **settings,
) -> dict:
    """Binding energy (eV) of a complex made of fragments (negative = bound).

    Args:
        atomic_numbers (N,), positions (N, 3) Å of the complex; fragment_ids (N,) fragment index per
        atom (0..F−1); fragment_charges (F,) in e (default 0 each); separation: minimal distance (Å)
        between fragments in the separated complex. ``settings``: :class:`~biomlff.settings.ModelSettings`
        fields (here lr_cutoff 1000 Å as in the paper and float64 unless given; filters "exact" |
        "tabulated", None: tabulated in float32, exact in float64).
        model: a trained :class:`~biomlff.so3lr.modelfile.SO3LRModel` instead of the pretrained SO3LR.

    Returns dict with ``binding_energy``, ``complex_energy``, ``separated_energy`` and ``terms``
    (binding contribution of each energy term), all eV."""
    from ..system import System
    from .evaluate import evaluate_systems

    ids = np.asarray(fragment_ids, dtype=np.int32)
    n_frag = int(ids.max()) + 1 if ids.size else 0
    if n_frag < 2:
        raise ConfigError("a binding energy needs at least two fragments")
    q = np.zeros(n_frag) if fragment_charges is None else np.asarray(fragment_charges, dtype=float)
    total = float(q.sum())
    from ..settings import ModelSettings
    from .modelfile import SO3LRModel

    source = SO3LRModel.of("so3lr" if model is None else model)
    # the paper's gas-phase setting: lr cutoff 1000 Å, float64
    if "lr_cutoff" in settings and settings["lr_cutoff"] is None:
        settings["lr_cutoff"] = "none"  # an explicit None means all pairs
    settings = ModelSettings.of({"lr_cutoff": 1000.0, "precision": "float64"}, **settings)
    so3, _ = source.unbound(None, settings)
    inputs = so3.inputs(ChemicalSystem(atomic_numbers, total, multiplicity, (ids, q)))  # validates
    params = source.weights_for(so3, params)
    x = np.asarray(positions, dtype=float)
    z, mult = inputs["species"], float(inputs["spin"]) + 1.0
    frags = (inputs["frag_ids"], inputs["frag_charges"])
    systems = [
        # the complex: charge conserved over the whole complex
        System(z, x, charge=total, multiplicity=mult),
        System(z, separate(x, ids, separation), charge=total, multiplicity=mult, fragments=frags),
    ]
    a, b = evaluate_systems(systems, so3, params, batch_size=1)
    return {
        "binding_energy": float(a["energy"] - b["energy"]),
        "complex_energy": float(a["energy"]),
        "separated_energy": float(b["energy"]),
        "terms": {k: float(a["energy_terms"][k] - b["energy_terms"][k]) for k in TERMS},
    }


def parse_atom_ranges(text: str, n_atoms: int) -> list[int]:
    """0-based atom indices from a fragment spec such as '0-5,9' (ranges inclusive); ConfigError
    unless every index lies in 0..n_atoms-1."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"--fragment {text!r}: expected 0-based atom indices like '0-5,9'") from None
    if not out or min(out) < 0 or max(out) >= n_atoms:
        raise ConfigError(f"--fragment {text!r}: indices must lie in 0..{n_atoms - 1}")
    return out


def frame_fragments(info: dict, n_atoms: int, specs=None, charges=None) -> tuple[list, list[float]]:
    """Fragments (lists of atom indices) and their charges (e) for one structure: from ``specs``
    ('0-5,9' per fragment, see :func:`parse_atom_ranges`) or else the info keys
    ``selection_a``/``selection_b`` (sapt10k style); charges from ``charges``, else the info keys
    ``charge_a``/``charge_b`` (two fragments), else 0. ConfigError when there are no fragments or
    the counts differ."""
    if specs:
        frags = [parse_atom_ranges(t, n_atoms) for t in specs]
    elif "selection_a" in info and "selection_b" in info:
        frags = [list(np.atleast_1d(info[k]).astype(int)) for k in ("selection_a", "selection_b")]
    else:
        raise ConfigError("give the fragments with --fragment (once per fragment)")
    if charges is not None:
        charges = list(charges)
    elif "charge_a" in info and "charge_b" in info and len(frags) == 2:
        charges = [float(info["charge_a"]), float(info["charge_b"])]
    else:
        charges = [0.0] * len(frags)
    if len(charges) != len(frags):
        raise ConfigError(f"{len(charges)} charges given for {len(frags)} fragments")
    return frags, charges
