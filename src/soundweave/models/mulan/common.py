"""Helpers shared by the MuLaN towers: l2 normalisation, 2-D sin-cos positions, SpecAugment bands, batching
and resampling at the edge."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...audio.io import check_audio, resample
from ...errors import ConfigError, ShapeError


def l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def sincos_2d(h: int, w: int, dim: int, device=None, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos positions for an (h, w) grid -> (h * w, dim). Half the channels encode the row
    (frequency patch), half the column (time patch); defined for any w, so it extrapolates in time."""
    if dim % 4:
        raise ConfigError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    omega = 1.0 / temperature ** (
        torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim // 4 - 1 or 1)
    )
    y = y.flatten().float()[:, None] * omega[None, :]
    x = x.flatten().float()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


def _random_bands(batch: int, size: int, max_width: int, count: int, device) -> torch.Tensor:
    """`count` random bands of width U{0..max_width} per row -> bool (batch, size), True = masked."""
    out = torch.zeros(batch, size, dtype=torch.bool, device=device)
    if max_width <= 0 or count <= 0 or size <= 0:
        return out
    ar = torch.arange(size, device=device)[None, :]
    for _ in range(count):
        width = torch.randint(0, min(max_width, size) + 1, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (size - width + 1)).long()
        out |= (ar >= start) & (ar < start + width)
    return out


def _as_batch(wavs, mask):
    wavs = check_audio(wavs, "wavs")
    if wavs.ndim == 1:
        wavs = wavs[None]
        mask = mask[None] if mask is not None and mask.ndim == 1 else mask
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape != wavs.shape:
            raise ShapeError(
                f"mask must be a bool tensor shaped like wavs {tuple(wavs.shape)}, got "
                f"{None if not isinstance(mask, torch.Tensor) else tuple(mask.shape)}"
            )
        mask = mask.bool()
    return wavs, mask


def _resample_batch(wavs, mask, orig_sr: int, target_sr: int):
    """Resample (B, T) audio at the edge; the mask follows the scaled valid lengths."""
    out = resample(wavs.detach(), orig_sr, target_sr).to(wavs.device)
    if mask is None:
        return out, None
    lengths = (mask.sum(-1).float() * target_sr / orig_sr).round().long()
    return out, torch.arange(out.shape[-1], device=out.device)[None, :] < lengths[:, None]
