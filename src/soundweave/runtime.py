"""Device, precision and randomness helpers shared by models, pipelines and training."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return `device` if given, else the best available: cuda > mps > cpu."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context that runs in bf16 autocast when precision == 'bf16', else does nothing."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_generator(seed: int | None = None, generator: torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> torch.Generator | None:
    """`generator` if given, else a fresh generator seeded with `seed`, else None (global RNG)."""
    if generator is not None:
        return generator
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
