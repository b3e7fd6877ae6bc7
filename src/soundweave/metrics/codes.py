"""Codebook statistics of a codec's codes: how many codes each level uses, and how evenly."""

from __future__ import annotations

import torch


def code_usage(codes: torch.Tensor, codebook_size: int) -> list[dict[str, float]]:
    """Per level: how many distinct codes `codes` (B, N, Q) use, and the perplexity of their distribution."""
    flat = codes.reshape(-1, codes.shape[-1])
    levels = []
    for level in range(flat.shape[-1]):
        counts = torch.bincount(flat[:, level].clamp_min(0), minlength=codebook_size).float()
        p = counts[counts > 0] / counts.sum().clamp_min(1)
        levels.append({"used": int((counts > 0).sum()), "perplexity": round(float(torch.exp(-(p * p.log()).sum())), 2)})
    return levels


__all__ = ["code_usage"]
