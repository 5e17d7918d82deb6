"""Training configuration: one flat, validated dataclass, read from YAML with overrides.

Every key is documented in docs/training.md (an example config is docs/train_example.yaml). An
unknown key, a non-positive learning rate, an empty split, an unknown strategy … is a ConfigError
that names it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from .loss import DEFAULT_WEIGHTS

STRATEGIES = ("scratch", "full", "freeze-embedding", "last-layer+heads")
OPTIMIZERS = ("amsgrad", "adamw", "adam")


@dataclass
class TrainConfig:
    """All settings of a training or fine-tuning run (units: eV, Å; lr per step).

    data / valid_data / test_data: dataset files (any format biomlff reads); with only ``data``, the
    frames are split into n_train / n_valid (seeded with split_seed). energy_key, forces_key,
    energy_unit, …: passed to the dataset reader (e.g. rMD17: energy_key='energies').
    model: "scratch" (new model with ``architecture``), "so3lr" (the pretrained model) or a model file.
    strategy: scratch | full | freeze-embedding | last-layer+heads (which parameters train).
    """

    # data
    data: str = ""
    valid_data: str | None = None
    n_train: int | float | None = None
    n_valid: int | float | None = None
    split_seed: int = 0
    reader: dict = field(default_factory=dict)
    # model
    model: str = "scratch"
    strategy: str = "scratch"
    architecture: dict = field(default_factory=dict)
    lr_cutoff: float | str | None = "auto"
    #: any other :class:`biomlff.settings.ModelSettings` field (e.g. dispersion_damping), resolved
    #: with lr_cutoff and precision by the rule of every path (the model file records them)
    model_settings: dict = field(default_factory=dict)
    init_seed: int = 0
    # loss
    forces_weight: float = DEFAULT_WEIGHTS["forces"]
    dipole_weight: float = DEFAULT_WEIGHTS["dipole"]
    hirshfeld_weight: float = DEFAULT_WEIGHTS["hirshfeld_ratios"]
    energy_weight: float = DEFAULT_WEIGHTS["energy"]
    robust: bool = False
    robust_scale: float = 0.1
    fit_reference_energies: bool = True
    # optimisation
    optimizer: str = "amsgrad"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay_rate: float = 0.85
    decay_steps: int | str = "auto"
    clip_norm: float = 10.0
    ema_decay: float = 0.0
    batch_size: int = 8
    epochs: int = 100
    max_steps: int | None = None
    max_time: float | None = None
    patience: int | None = None
    precision: str = "float32"
    seed: int = 0
    devices: int = 1
    # replay against forgetting (fine-tuning)
    replay_weight: float = 0.0
    replay_batch_size: int = 4
    replay_copies: int = 3
    replay_rattle: float = 0.05
    replay_data: str | None = None
    # output
    output: str = "model.npz"
    workdir: str | None = None
    checkpoint_every: int = 200
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; see docs/training.md for the keys")
        return cls(**d).validate()

    @classmethod
    def from_yaml(cls, path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The config of a YAML file (keys with ``-`` or ``_``) with ``overrides`` (None = not given)
        on top: the loader ``biomlff md --config`` uses too (:func:`biomlff.options.merge_options`)."""
        from ..options import read_yaml_mapping

        d = read_yaml_mapping(path)
        d.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(d, str(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> TrainConfig:
        if not self.data:
            raise ConfigError("config: 'data' (the training dataset file) is required")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"config: strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.model == "scratch" and self.strategy != "scratch":
            raise ConfigError(
                f"config: strategy {self.strategy!r} fine-tunes a trained model; set model: so3lr (or a "
                "model file), or strategy: scratch"
            )
        if self.model != "scratch" and self.strategy == "scratch":
            self.strategy = "full"
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"config: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.precision not in ("float32", "float64"):
            raise ConfigError(f"config: precision must be float32 or float64, got {self.precision!r}")
        pos = {
            "lr": self.lr,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "devices": self.devices,
            "checkpoint_every": self.checkpoint_every,
            "decay_rate": self.decay_rate,
        }
        for k, v in pos.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"config: {k} must be a positive number, got {v!r}")
        for k in (
            "forces_weight",
            "dipole_weight",
            "hirshfeld_weight",
            "energy_weight",
            "replay_weight",
            "weight_decay",
            "ema_decay",
            "warmup_steps",
            "clip_norm",
        ):
            v = getattr(self, k)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"config: {k} must be ≥ 0, got {v!r}")
        if self.ema_decay >= 1:
            raise ConfigError(f"config: ema_decay must be < 1, got {self.ema_decay}")
        if not (self.forces_weight or self.dipole_weight or self.hirshfeld_weight or self.energy_weight):
            raise ConfigError("config: every loss weight is 0: nothing to train on")
        if self.batch_size % self.devices:
            raise ConfigError(
                f"config: batch_size {self.batch_size} is not divisible by devices {self.devices}"
            )
        if self.decay_steps != "auto" and (not isinstance(self.decay_steps, int) or self.decay_steps < 1):
            raise ConfigError(
                f"config: decay_steps must be 'auto' or a positive integer, got {self.decay_steps!r}"
            )
        if self.replay_weight and self.model == "scratch":
            raise ConfigError(
                "config: replay needs a pretrained model to label the replay frames (model: so3lr)"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"config: max_steps must be ≥ 1, got {self.max_steps}")
        return self

    def loss_spec(self):
        from .loss import LossSpec

        return LossSpec(
            self.forces_weight,
            self.dipole_weight,
            self.hirshfeld_weight,
            self.energy_weight,
            bool(self.robust),
            float(self.robust_scale),
        )

    def label_weights(self) -> dict:
        return self.loss_spec().weights()
