"""Training and fine-tuning of SO3krates/SO3LR models (see docs/training.md).

``train(TrainConfig(...))`` trains a new model or fine-tunes the pretrained SO3LR and writes a
self-describing model file that :func:`biomlff.so3lr.modelfile.load_model` reads back.
"""

from .config import TrainConfig
from .loss import LossSpec, batch_loss, batch_predictions
from .trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "LossSpec", "batch_loss", "batch_predictions", "train"]
