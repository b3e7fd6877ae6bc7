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


def time_call(fn, repeats: int = 3, warmup: int = 1, reduce=None) -> float:
    """Seconds one call of `fn()` takes: `warmup` untimed calls, then `repeats` timed ones reduced with
    `reduce` (default: the median). Used by the benchmarks."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return (reduce or statistics.median)(times)


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def reset_peak_rss() -> None:
    """Linux: restart the peak resident-set-size count (VmHWM) from now; elsewhere does nothing."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process in MiB (Linux), or None where it cannot be read."""
    return _proc_status_mib("VmHWM")


def rss_mib() -> float | None:
    """Current resident set size of this process in MiB (Linux), or None."""
    return _proc_status_mib("VmRSS")
