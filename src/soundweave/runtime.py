"""Device, precision and randomness helpers shared by models, pipelines and training."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random

import numpy as np
import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16")

log = logging.getLogger(__name__)

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that exclude its native bf16 kernels
_NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


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


def onednn_isa_cap() -> str:
    """The oneDNN ISA cap set in the environment (ONEDNN_MAX_CPU_ISA, or its old name DNNL_MAX_CPU_ISA), upper
    case; "" when none is set."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()


@functools.cache
def cpu_bf16_native() -> bool:
    """True when this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16), the only CPUs on which bf16 is faster
    than fp32. Elsewhere PyTorch emulates bf16 products: on an AVX2 EPYC a 1024^3 matmul ran at 0.4 GFLOPS in bf16
    against 27.6 in fp32 (one thread), and a SoundStorm training step 8.7x slower. Honours ONEDNN_MAX_CPU_ISA."""
    if hasattr(torch.cpu, "get_capabilities"):
        caps = torch.cpu.get_capabilities()
        native = bool(caps.get("avx512_bf16", False) or caps.get("amx_bf16", False))
    else:  # older torch
        native = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    return native and onednn_isa_cap() not in _NO_BF16_ISAS


def default_precision(device: torch.device | str) -> str:
    """The precision a pipeline uses on `device` when none is given: bf16 on a CPU with native bf16 (where it is
    the faster path), else fp32 - GPUs and every other CPU."""
    return "bf16" if torch.device(device).type == "cpu" and cpu_bf16_native() else "fp32"


_warned_slow_bf16 = False


def warn_if_slow_bf16(device: torch.device | str, precision: str) -> None:
    """Log once per process when bf16 is asked for on a CPU that only emulates it (many times slower than fp32)."""
    global _warned_slow_bf16
    if precision != "bf16" or torch.device(device).type != "cpu" or cpu_bf16_native() or _warned_slow_bf16:
        return
    _warned_slow_bf16 = True
    log.warning("bf16 on this CPU (%s, no AVX512-BF16 or AMX) is emulated and runs many times slower than fp32 "
                "(about 9x for a SoundStorm training step, up to 70x for large matmuls, measured on AVX2); "
                "use fp32 here (leave out --bf16 / precision='bf16')", torch.backends.cpu.get_cpu_capability())


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context that runs in bf16 autocast when precision == 'bf16', else does nothing (bf16 on a CPU without
    native bf16 logs a warning once: see `cpu_bf16_native`)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    warn_if_slow_bf16(device, precision)
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
