"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `ema_model`, a frozen copy whose parameters follow the trained ones.

    decay at optimizer step s is min(decay, (1 + s) / (10 + s)) so early averages are not dominated by
    the random initialisation. Buffers (e.g. running statistics, codebooks) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.ema_model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.current_decay(step)
        for ema_p, p in zip(self.ema_model.parameters(), model.parameters(), strict=True):
            if p.dtype.is_floating_point:
                ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - d)
            else:
                ema_p.copy_(p)
        for ema_b, b in zip(self.ema_model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
