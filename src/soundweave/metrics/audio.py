"""Audio quality metrics: SI-SDR, spectral convergence, log-mel distance."""

from __future__ import annotations

import torch

from ..audio.mel import MelSpectrogram


def si_sdr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per item, for `(B, T)` or `(T,)` audio.

    Both signals are made zero-mean; the estimate is projected on the reference. Higher is better.
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    ref = reference[..., :n].float()
    est = estimate[..., :n].float()
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """||reference - estimate||_F / ||reference||_F over the last two axes (magnitude spectrograms)."""
    num = torch.linalg.norm((reference - estimate).flatten(-2), dim=-1)
    den = torch.linalg.norm(reference.flatten(-2), dim=-1).clamp_min(1e-12)
    return num / den


def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                 n_ffts: tuple[int, ...] = (512, 1024, 2048), n_mels: int = 64) -> torch.Tensor:
    """Mean L1 distance between log-mel spectrograms at several resolutions, per item. Lower is better."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = reference[..., :n].float(), estimate[..., :n].float()
    total = 0.0
    for n_fft in n_ffts:
        mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels).to(ref.device)
        total = total + (mel(ref) - mel(est)).abs().mean(dim=(-2, -1))
    return total / len(n_ffts)
