"""Training: the shared Trainer, checkpoints, EMA, LR schedules, and per-model training steps."""

from .ema import EMA
from .trainer import EpochSampler, Trainer, TrainerConfig, TrainResult

__all__ = ["EMA", "EpochSampler", "TrainResult", "Trainer", "TrainerConfig"]
