"""Multi-scale STFT discriminator and the adversarial / feature-matching losses of neural codecs.

Each scale takes the complex STFT (real and imaginary parts as two input channels, `(B, 2, frames,
freq)`) and runs 2-D convolutions that stride along frequency and dilate along time, ending in a
one-channel map of logits. Every intermediate activation is returned for feature matching.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    """One scale: complex STFT with `n_fft` (hop n_fft / 4) -> logits map + feature maps."""

    def __init__(self, n_fft: int, channels: int = 32, dilations: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        layers = [weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4)))]
        for d in dilations:
            layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1),
                                                padding=(d, 4))))
        layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.layers = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(audio.float(), self.n_fft, self.n_fft // 4, self.n_fft, window=self.window,
                          return_complex=True)  # (B, F, frames)
        x = torch.stack((spec.real, spec.imag), dim=1).transpose(-1, -2)  # (B, 2, frames, F)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several `STFTDiscriminator`s at different FFT sizes; `(B, T)` -> list of (logits, features)."""

    def __init__(self, fft_sizes: Sequence[int] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(n, channels) for n in fft_sizes)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [scale(audio) for scale in self.scales]


def discriminator_hinge_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """mean over scales of E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)]
    return sum(losses) / len(losses)


def generator_hinge_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """mean over scales of E[relu(1 - D(G(z)))]."""
    return sum(F.relu(1 - f).mean() for f in fake) / len(fake)


def feature_matching_loss(real: Sequence[Sequence[torch.Tensor]], fake: Sequence[Sequence[torch.Tensor]]
                          ) -> torch.Tensor:
    """Mean relative L1 between the discriminator's features of real (detached) and generated audio."""
    terms = []
    for real_feats, fake_feats in zip(real, fake, strict=True):
        for r, f in zip(real_feats, fake_feats, strict=True):
            r = r.detach()
            terms.append((r - f).abs().mean() / r.abs().mean().clamp_min(1e-5))
    return sum(terms) / len(terms)
