"""Dynamic int8 linear layers for CPU inference (weights int8 per output channel, activations quantized on
the fly per call), through PyTorch's quantized engine - oneDNN where available, which uses AMX / VNNI
int8 instructions.

On the 2-core Xeon (AMX) this project is measured on, a (500 x 1024) @ (1024 x 4096) product takes
about 5 ms in int8 against 8.5 ms in bf16 and 24 ms in fp32; each layer's output differs from fp32 by
about 1.3% (relative L2), against 0.3% for bf16 (see benchmarks/aligner_latency.py for a whole model).

    packs = Int8Linears()
    with int8_engine():
        y = packs.linear(x, weight, bias)     # x float (..., K), weight (N, K) -> float (..., N)

Packed weights are cached per weight tensor and rebuilt when the tensor changes in place (an optimizer
step) or is replaced.

On a CPU without VNNI / AMX int8 instructions (AVX2, or AVX-512 without VNNI) the products sum pairs of
u8 x s8 products in saturating int16, which 8-bit activations overflow (a tiny aligner's output fell to
cosine 0.67 against fp32); activations are then quantized to 7 bits (`reduce_range`, as PyTorch's x86
qconfig does), which keeps a layer within about 2% of fp32.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from ..runtime import onednn_isa_cap

ENGINES = ("onednn", "x86", "fbgemm")


def int8_available() -> bool:
    """True when this PyTorch build has a quantized engine that runs dynamic int8 linears on the CPU."""
    return any(e in torch.backends.quantized.supported_engines for e in ENGINES)


@contextlib.contextmanager
def int8_engine():
    """Select the best quantized engine (oneDNN first) for the duration of the block, then restore it."""
    previous = torch.backends.quantized.engine
    engine = next(e for e in ENGINES if e in torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    try:
        yield engine
    finally:
        torch.backends.quantized.engine = previous


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first one with int8 dot-product instructions
_NO_VNNI_ISAS = {"SSE41", "AVX", "AVX2", "AVX512_CORE"}


@functools.cache
def int8_reduce_range(engine: str) -> bool:
    """True when `engine`'s int8 products have no VNNI / AMX here, so 8-bit activations could saturate their
    int16 pair sums: activations are then quantized to 7 bits. Honours a oneDNN ISA cap (ONEDNN_MAX_CPU_ISA)."""
    if hasattr(torch.cpu, "get_capabilities"):
        caps = torch.cpu.get_capabilities()
        vnni = any(caps.get(flag, False) for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))
    else:  # older torch: AVX-512 VNNI only
        vnni = bool(getattr(torch.cpu, "_is_vnni_supported", lambda: True)())
    if engine in ("onednn", "x86") and onednn_isa_cap() in _NO_VNNI_ISAS:
        vnni = False
    return not vnni


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8 quantization of a (N, K) float weight."""
    w = weight.detach().float()
    if w.ndim != 2:
        raise ValueError(f"expected a (N, K) weight, got {tuple(w.shape)}")
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    return torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)


class Int8Linears:
    """A cache of packed int8 weights keyed by the float weight tensor (identity and in-place version)."""

    def __init__(self):
        self._packs: dict[tuple[int, ...], tuple[tuple[int, ...], str, tuple[torch.Tensor, ...], object]] = {}

    def clear(self) -> None:
        self._packs.clear()

    def packed(self, weights: tuple[torch.Tensor, ...], biases: tuple[torch.Tensor | None, ...], engine: str):
        """The packed int8 weight of the (N1 + N2 + ..., K) concatenation of `weights` (and their biases)."""
        key = tuple(id(w) for w in weights)
        version = tuple(w._version for w in weights) + tuple(-1 if b is None else b._version for b in biases)
        hit = self._packs.get(key)
        if hit is not None and hit[0] == version and hit[1] == engine and all(
                a is b for a, b in zip(hit[2], weights, strict=True)):
            return hit[3]
        with warnings.catch_warnings():  # quantized-tensor creation is flagged as deprecated in recent torch
            warnings.simplefilter("ignore", UserWarning)
            weight = torch.cat([w.detach().reshape(w.shape[0], -1).float() for w in weights])
            bias = None
            if any(b is not None for b in biases):
                bias = torch.cat([torch.zeros(w.shape[0]) if b is None else b.detach().float()
                                  for w, b in zip(weights, biases, strict=True)])
            pack = torch.ops.quantized.linear_prepack(quantize_weight(weight), bias)
        self._packs[key] = (version, engine, weights, pack)
        return pack

    def linear(self, x: torch.Tensor, weight: torch.Tensor | tuple[torch.Tensor, ...],
               bias: torch.Tensor | tuple[torch.Tensor | None, ...] | None = None) -> torch.Tensor:
        """x (..., K) float -> (..., N) fp32. A (N, K, 1) pointwise-convolution weight is accepted too, and
        a tuple of weights (with a tuple of biases) runs as one product over their concatenation (e.g. the
        q, k and v projections). Call inside `int8_engine()`."""
        weights = weight if isinstance(weight, tuple) else (weight,)
        biases = bias if isinstance(bias, tuple) else (bias,) * len(weights)
        engine = torch.backends.quantized.engine
        pack = self.packed(weights, biases, engine)
        return torch.ops.quantized.linear_dynamic(x.float().contiguous(), pack, int8_reduce_range(engine))
