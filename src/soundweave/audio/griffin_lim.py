"""Phase reconstruction in torch: mel -> linear magnitude (non-negative least squares) and Griffin-Lim.

Batched over the first axis, runs on any device. `momentum > 0` gives the fast Griffin-Lim of
Perraudin et al. (2013), which is also what librosa uses by default (momentum 0.99).
"""

from __future__ import annotations

import torch

from .mel import stft


def mel_to_linear(mel: torch.Tensor, filters: torch.Tensor, n_iter: int = 10, eps: float = 1e-10,
                  pinv: torch.Tensor | None = None) -> torch.Tensor:
    """Non-negative `S` with `filters @ S ~= mel`: `(B, M, T)` -> `(B, F, T)`.

    Starts from the clamped pseudo-inverse and refines with multiplicative NNLS updates
    (Lee & Seung), which keep every entry non-negative. `pinv` may pass a cached pseudo-inverse.
    """
    fb = filters.to(mel)
    pinv = torch.linalg.pinv(fb) if pinv is None else pinv.to(mel)
    spec = torch.matmul(pinv, mel).clamp_min(0)
    spec = spec + mel.amax(dim=(-2, -1), keepdim=True) * 1e-8 + eps
    fbt = fb.transpose(0, 1)
    numer = torch.matmul(fbt, mel)
    for _ in range(n_iter):  # filters^T (filters S): two thin products instead of one F x F gram product
        spec = spec * numer / (torch.matmul(fbt, torch.matmul(fb, spec)) + eps)
    return spec


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
                n_iter: int = 32, momentum: float = 0.99, length: int | None = None,
                generator: torch.Generator | None = None, init: str = "random") -> torch.Tensor:
    """Waveform whose STFT magnitude approximates `magnitude` `(B, F, T)` -> `(B, samples)`.

    samples = (T - 1) * hop_length unless `length` is given. `init='random'` draws phases from
    `generator` (seedable); `init='zeros'` starts from zero phase.
    """
    squeeze = magnitude.ndim == 2
    mag = magnitude[None] if squeeze else magnitude
    win_length = win_length or n_fft
    window = torch.hann_window(win_length, device=mag.device, dtype=mag.dtype)
    if init == "random":
        phase = torch.rand(mag.shape, generator=generator, device=generator.device if generator else mag.device)
        angles = torch.polar(torch.ones_like(mag), 2 * torch.pi * phase.to(mag))
    elif init == "zeros":
        angles = torch.ones_like(mag, dtype=torch.complex64 if mag.dtype != torch.float64 else torch.complex128)
    else:
        raise ValueError(f"init must be 'random' or 'zeros', got {init!r}")
    out_len = length or (mag.shape[-1] - 1) * hop_length
    rebuilt = torch.zeros_like(angles)
    factor = momentum / (1 + momentum)
    for _ in range(n_iter):
        previous = rebuilt
        audio = torch.istft(mag * angles, n_fft, hop_length, win_length, window=window, center=True, length=out_len)
        rebuilt = stft(audio, n_fft, hop_length, win_length, center=True, pad_mode="constant", window=window)
        angles = rebuilt - factor * previous
        angles = angles / (angles.abs() + 1e-16)
    audio = torch.istft(mag * angles, n_fft, hop_length, win_length, window=window, center=True, length=out_len)
    return audio[0] if squeeze else audio

