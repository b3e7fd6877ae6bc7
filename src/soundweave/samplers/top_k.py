"""Top-k filtering of logits, shared by every sampler in soundweave (MaskGIT decoding in SoundStorm, the
autoregressive SemanticTransformer and TextToSemantic)."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def check_top_k(top_k) -> int | None:
    """`top_k` as given when it is None or a positive integer; otherwise a ConfigError."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
    return top_k


def keep_top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Logits `(..., C)` with all but each row's `top_k` largest set to -inf (unchanged for None or k >= C)."""
    if top_k is None or top_k >= logits.shape[-1]:
        return logits
    kth = logits.topk(top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


__all__ = ["check_top_k", "keep_top_k"]
