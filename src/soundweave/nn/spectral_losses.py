"""Reconstruction losses for waveform codecs, on `(B, T)` audio.

- `MultiScaleMelLoss`: SoundStream's multi-scale spectral loss - for window sizes s = 2^i (hop s / 4),
  the L1 distance of mel magnitudes plus alpha_s times the L2 distance (over mel bins) of their logs,
  alpha_s = sqrt(s / 2) as in the paper, here divided by the largest scale's alpha so it stays <= 1.
- `MultiResolutionSTFTLoss`: spectral convergence + log-magnitude L1 over several FFT sizes.

Both are plain modules with non-persistent buffers (filterbanks, windows), so they add nothing to a
model's checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..audio.mel import mel_filterbank
from ..errors import ConfigError

MAX_POWER = 20  # windows up to 2**20 samples (~22 s at 48 kHz)


def _check_sizes(name: str, sizes) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or not 2 <= s <= 2**MAX_POWER for s in sizes):
        raise ConfigError(f"{name} must be whole numbers of samples in 2..{2**MAX_POWER}, got {sizes!r}")
    return sizes


def _magnitude(audio: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(audio.float(), n_fft, hop, n_fft, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec.abs()


class MultiScaleMelLoss(nn.Module):
    """sum_s mean|M_s(x) - M_s(y)| + alpha_s * sqrt(mean(log M_s(x) - log M_s(y))^2), averaged over scales."""

    def __init__(self, sample_rate: int, window_powers: Sequence[int] = (6, 7, 8, 9, 10, 11), n_mels: int = 64,
                 eps: float = 1e-5):
        super().__init__()
        powers = list(window_powers)
        if not powers or any(isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= MAX_POWER for p in powers):
            raise ConfigError(f"window powers of two must be whole numbers in 1..{MAX_POWER}, got {powers!r}")
        self.sizes = [2**p for p in powers]
        self.eps = eps
        for s in self.sizes:
            self.register_buffer(f"fb_{s}", mel_filterbank(sample_rate, s, min(n_mels, s // 2)), persistent=False)
            self.register_buffer(f"win_{s}", torch.hann_window(s), persistent=False)

    def forward(self, reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        total = reference.new_zeros(())
        for s in self.sizes:
            fb, win = getattr(self, f"fb_{s}"), getattr(self, f"win_{s}")
            ref = fb @ _magnitude(reference, s, s // 4, win)
            est = fb @ _magnitude(estimate, s, s // 4, win)
            l1 = (ref - est).abs().mean()
            log_diff = (ref + self.eps).log() - (est + self.eps).log()
            log_l2 = log_diff.pow(2).mean(dim=-2).clamp_min(1e-12).sqrt().mean()
            total = total + l1 + math.sqrt(s / 2) * log_l2 / math.sqrt(self.sizes[-1] / 2)
        return total / len(self.sizes)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence (batch-level ||X - Y||_F / ||X||_F) + mean |log|X| - log|Y||, averaged over FFT
    sizes (hop = n_fft / 4)."""

    def __init__(self, fft_sizes: Sequence[int] = (512, 1024, 2048), eps: float = 1e-5):
        super().__init__()
        self.sizes, self.eps = _check_sizes("STFT loss FFT sizes", fft_sizes), eps
        for s in self.sizes:
            self.register_buffer(f"win_{s}", torch.hann_window(s), persistent=False)

    def forward(self, reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        total = reference.new_zeros(())
        for s in self.sizes:
            win = getattr(self, f"win_{s}")
            ref = _magnitude(reference, s, s // 4, win)
            est = _magnitude(estimate, s, s // 4, win)
            # over the whole batch, with an RMS magnitude floor: silent crops must not divide by ~0
            ref_norm = torch.linalg.norm(ref).clamp_min(0.05 * math.sqrt(ref.numel()))
            sc = torch.linalg.norm(ref - est) / ref_norm
            log_mag = ((ref + self.eps).log() - (est + self.eps).log()).abs().mean()
            total = total + sc + log_mag
        return total / len(self.sizes)
