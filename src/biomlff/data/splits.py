"""Train/validation/test splits with a record that names the exact data.

A :class:`Split` holds disjoint frame indices and the content hash of the dataset they index
(:meth:`Dataset.content_hash`), so a model can always say which frames of which data it was trained
on, and applying a split to different data is an error. Splits are saved as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..fileio import atomic_path

PARTS = ("train", "valid", "test")


@dataclass
class Split:
    """Disjoint frame indices into the dataset whose content hash is ``source_hash``."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    n_frames: int
    source_hash: str
    method: str = "random"
    seed: int | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for p in PARTS:
            setattr(self, p, np.asarray(getattr(self, p), dtype=np.int64).reshape(-1))
        _check_disjoint(self.train, self.valid, self.test, self.n_frames)

    def indices(self, part: str) -> np.ndarray:
        if part not in PARTS:
            raise DataError(f"split part {part!r} is not one of {PARTS}")
        return getattr(self, part)

    def check(self, ds) -> None:
        """Raise DataError unless ``ds`` is the dataset this split was made for."""
        if len(ds) != self.n_frames:
            raise DataError(f"split was made for {self.n_frames} frames, dataset has {len(ds)}")
        h = ds.content_hash()
        if h != self.source_hash:
            raise DataError(
                f"split was made for data with content hash {self.source_hash[:16]}…, this dataset has "
                f"{h[:16]}… (different frames or labels)"
            )

    def apply(self, ds, part: str | None = None):
        """The subset(s) of ``ds`` (checked against the stored hash): one Dataset for ``part``, else a
        dict {'train', 'valid', 'test'}."""
        self.check(ds)
        if part is not None:
            return ds.subset(self.indices(part))
        return {p: ds.subset(getattr(self, p)) for p in PARTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "biomlff-split",
            "version": 1,
            "source": self.source,
            "source_hash": self.source_hash,
            "n_frames": int(self.n_frames),
            "method": self.method,
            "seed": self.seed,
            "info": self.info,
            **{p: getattr(self, p).tolist() for p in PARTS},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<split>") -> Split:
        missing = [k for k in ("source_hash", "n_frames", *PARTS) if k not in d]
        if missing:
            raise DataError(f"{source}: split record lacks {missing}")
        return cls(
            train=d["train"],
            valid=d["valid"],
            test=d["test"],
            n_frames=int(d["n_frames"]),
            source_hash=str(d["source_hash"]),
            method=d.get("method", ""),
            seed=d.get("seed"),
            source=d.get("source", ""),
            info=d.get("info", {}),
        )

    def save(self, path) -> None:
        """Write the record as JSON (atomically)."""
        with atomic_path(path) as tmp:
            # one line per entry, index lists inline (readable even for long lists)
            d = self.to_dict()
            body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items())
            tmp.write_text("{\n" + body + "\n}\n")

    @classmethod
    def load(cls, path) -> Split:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            d = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a split record (invalid JSON: {exc})") from None
        if not isinstance(d, dict):
            raise DataError(f"{path}: not a split record")
        return cls.from_dict(d, source=str(path))


def _check_disjoint(train, valid, test, n_frames: int) -> None:
    for name, idx in zip(PARTS, (train, valid, test), strict=True):
        if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
            raise DataError(f"split: {name} index out of range 0..{n_frames - 1}")
        if np.unique(idx).size != idx.size:
            raise DataError(f"split: {name} indices contain duplicates")
    for (na, a), (nb, b) in (
        (("train", train), ("valid", valid)),
        (("train", train), ("test", test)),
        (("valid", valid), ("test", test)),
    ):
        common = np.intersect1d(a, b)
        if common.size:
            raise DataError(f"split: {na} and {nb} share {common.size} frames (e.g. frame {int(common[0])})")


def _count(value: int | float | None, n: int, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and 0 < value < 1:
        return int(round(value * n))
    if int(value) != value or value < 0:
        raise DataError(f"split: {name} must be a non-negative integer or a fraction in (0, 1), got {value}")
    return int(value)


def make_split(ds, n_train, n_valid=0, n_test=None, *, seed: int = 0, source: str = "") -> Split:
    """Random disjoint split of ``ds`` (seeded with ``seed``, numpy PCG64). Counts are integers or
    fractions of the frames; ``n_test=None`` puts all remaining frames in test."""
    n = len(ds)
    a = _count(n_train, n, "n_train")
    b = _count(n_valid, n, "n_valid") or 0
    c = _count(n_test, n, "n_test")
    if c is None:
        c = n - a - b
    if a + b + c > n or c < 0:
        raise DataError(
            f"split: train {a} + valid {b} + test {c} frames exceed the {n} frames of the dataset"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return Split(
        train=np.sort(perm[:a]),
        valid=np.sort(perm[a : a + b]),
        test=np.sort(perm[a + b : a + b + c]),
        n_frames=n,
        source_hash=ds.content_hash(),
        method="random",
        seed=int(seed),
        source=source,
    )


def split_from_indices(ds, train, valid=(), test=(), *, source: str = "") -> Split:
    """Split with explicit frame indices (checked: in range, no duplicates, disjoint)."""
    return Split(
        train=np.asarray(train, dtype=np.int64),
        valid=np.asarray(valid, dtype=np.int64),
        test=np.asarray(test, dtype=np.int64),
        n_frames=len(ds),
        source_hash=ds.content_hash(),
        method="indices",
        source=source,
    )
