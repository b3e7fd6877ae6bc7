"""Generic speech units: k-means over MFCC frames (HuBERT's first-iteration targets), and their quality.

    units = MFCCUnits(k=100, frame_rate=25.0).fit(clips, sample_rate=16000)     # clips: list of (T,) audio
    ids = units(audio, sample_rate=16000)                                     # (S,) int64 at 25 frames/s
    pnmi(ids, phoneme_ids)                                                    # vs. frame labels, in [0, 1]

Any speech gets units this way (no alignment needed); the speech corpus's time-aligned phoneme ids are the
offline default and the upper reference. `pnmi` is phone-normalised mutual information I(phone; unit) / H(phone)
(Hsu et al., HuBERT, arXiv 2106.07447), `purity` the accuracy of mapping each unit to its most frequent phone.
The model saves as config.json + model.safetensors (its centroids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..audio.io import resample
from ..audio.mel import MelSpectrogram
from ..errors import ConfigError, ShapeError
from ..nn.kmeans import kmeans, nearest
from .base import PretrainedModel


@dataclass
class MFCCUnitsConfig:
    k: int = 100
    frame_rate: float = 25.0
    sample_rate: int = 16000
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = True

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ConfigError(f"k must be an integer >= 2, got {self.k!r}")
        if not self.frame_rate > 0 or (self.sample_rate / self.frame_rate) % 1:
            raise ConfigError(f"frame_rate must divide the sample rate {self.sample_rate}, got {self.frame_rate}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ConfigError(f"n_mfcc must be in [1, n_mels={self.n_mels}], got {self.n_mfcc}")


def _dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    n = torch.arange(n_mels, dtype=torch.float32)
    k = torch.arange(n_mfcc, dtype=torch.float32)[:, None]
    basis = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis  # (n_mfcc, n_mels), orthonormal DCT-II


def _deltas(x: torch.Tensor) -> torch.Tensor:
    """(S, D) -> first differences over +-2 frames (the usual regression formula)."""
    padded = torch.cat([x[:1], x[:1], x, x[-1:], x[-1:]])
    return (padded[3:-1] - padded[1:-3] + 2 * (padded[4:] - padded[:-4])) / 10.0


class MFCCUnits(PretrainedModel):
    """MFCC (+ deltas) frames at `frame_rate`, quantized to the nearest of `k` k-means centroids."""

    def __init__(self, k: int = 100, frame_rate: float = 25.0, sample_rate: int = 16000, n_mels: int = 40,
                 n_mfcc: int = 13, deltas: bool = True):
        super().__init__()
        self.config = MFCCUnitsConfig(k, float(frame_rate), sample_rate, n_mels, n_mfcc, deltas)
        hop = int(round(sample_rate / frame_rate))
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=4 * hop if 4 * hop <= 2048 else 2048,
                                  hop_length=hop, n_mels=n_mels, log_floor=1e-6)
        dim = n_mfcc * (3 if deltas else 1)
        self.register_buffer("dct", _dct_matrix(n_mfcc, n_mels), persistent=False)
        self.register_buffer("centroids", torch.zeros(k, dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def features(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """(T,) audio -> normalised MFCC features `(S, D)` with S = round(T / hop)."""
        if not isinstance(audio, torch.Tensor) or audio.ndim != 1 or audio.numel() == 0:
            raise ShapeError("audio must be a non-empty 1-D float tensor (T,)")
        if sample_rate is not None and sample_rate != self.config.sample_rate:
            audio = resample(audio, sample_rate, self.config.sample_rate)
        hop = self.mel.config.hop_length
        n = max(1, int(round(audio.numel() / hop)))
        logmel = self.mel(audio.float())[:, :n]  # (n_mels, S)
        mfcc = (self.dct @ logmel).T  # (S, n_mfcc)
        if self.config.deltas:
            d1 = _deltas(mfcc)
            mfcc = torch.cat([mfcc, d1, _deltas(d1)], dim=1)
        return (mfcc - self.mean) / self.std

    @torch.no_grad()
    def fit(self, clips: list[torch.Tensor], sample_rate: int | None = None, iters: int = 20,
            generator: torch.Generator | None = None) -> MFCCUnits:
        """Fit the normalisation and the k centroids on the clips' frames; returns self."""
        if not clips:
            raise ShapeError("fit needs at least one clip")
        self.mean.zero_()
        self.std.fill_(1.0)
        frames = torch.cat([self.features(c, sample_rate) for c in clips])
        if frames.shape[0] < self.config.k:
            raise ShapeError(f"{frames.shape[0]} frames are fewer than k={self.config.k} clusters")
        self.mean.copy_(frames.mean(0))
        self.std.copy_(frames.std(0).clamp_min(1e-5))
        self.centroids.copy_(kmeans((frames - self.mean) / self.std, self.config.k, iters=iters, generator=generator))
        return self

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """(T,) audio -> unit ids `(S,)` int64."""
        return nearest(self.features(audio, sample_rate), self.centroids).long()


def _joint(units: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    units, labels = torch.as_tensor(units).reshape(-1).long(), torch.as_tensor(labels).reshape(-1).long()
    if units.shape != labels.shape or units.numel() == 0:
        raise ShapeError(f"units and labels must be equally long non-empty sequences, got {tuple(units.shape)} "
                         f"and {tuple(labels.shape)}")
    _, u = torch.unique(units, return_inverse=True)
    _, y = torch.unique(labels, return_inverse=True)
    joint = torch.zeros(int(y.max()) + 1, int(u.max()) + 1, dtype=torch.float64)
    joint.index_put_((y, u), torch.ones_like(y, dtype=torch.float64), accumulate=True)
    return joint / joint.sum()


def pnmi(units: torch.Tensor, labels: torch.Tensor) -> float:
    """Phone-normalised mutual information I(label; unit) / H(label) of two frame-aligned id sequences."""
    p = _joint(units, labels)
    py, pu = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    nz = p > 0
    mi = float((p[nz] * (p[nz] / (py @ pu)[nz]).log()).sum())
    h = float(-(py[py > 0] * py[py > 0].log()).sum())
    return mi / h if h > 0 else 0.0


def purity(units: torch.Tensor, labels: torch.Tensor) -> float:
    """Phone purity: the share of frames whose label is their unit's most frequent label."""
    return float(_joint(units, labels).max(0).values.sum())


__all__ = ["MFCCUnits", "MFCCUnitsConfig", "pnmi", "purity"]
