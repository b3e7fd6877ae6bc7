"""Learning-rate schedules as LambdaLR multipliers."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..errors import ConfigError

SCHEDULES = ("cosine", "constant", "linear")


def lr_multiplier(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine",
                  min_ratio: float = 0.1) -> float:
    """Linear warm-up to 1 over `warmup_steps`, then cosine/linear decay to `min_ratio` (or constant)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    raise ConfigError(f"lr schedule must be one of {SCHEDULES}, got {schedule!r}")


class WarmupSchedule:
    """Picklable-free callable for LambdaLR (its state_dict then holds only numbers)."""

    def __init__(self, warmup_steps: int, total_steps: int, schedule: str, min_ratio: float):
        if schedule not in SCHEDULES:
            raise ConfigError(f"lr schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.schedule, self.min_ratio = schedule, min_ratio

    def __call__(self, step: int) -> float:
        return lr_multiplier(step, self.warmup_steps, self.total_steps, self.schedule, self.min_ratio)


def make_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int, schedule: str = "cosine",
                   min_ratio: float = 0.1) -> LambdaLR:
    return LambdaLR(optimizer, WarmupSchedule(warmup_steps, total_steps, schedule, min_ratio))
