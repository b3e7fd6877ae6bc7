"""MuLaN's audio tower: `AudioSpectrogramTransformer` (AST) over log-mel patches (see soundweave.models.mulan)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...audio.io import check_sample_rate
from ...audio.mel import MelConfig, MelSpectrogram
from ...errors import ConfigError, ShapeError
from ...nn.attention import Transformer
from ..base import PretrainedModel
from .common import _as_batch, _random_bands, _resample_batch, sincos_2d


@dataclass
class ASTConfig:
    dim: int = 512
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    dropout: float = 0.0
    sample_rate: int = 16000
    spec_n_fft: int = 512
    spec_win_length: int | None = 400
    spec_hop_length: int | None = None  # None = win_length // 2
    n_mels: int | None = 64
    patch_size: tuple[int, int] = (16, 16)  # (mel bins, frames)
    spec_mean: float = -5.0  # log-mel normalisation: (log_mel - mean) / std
    spec_std: float = 4.0
    spec_aug_stretch_factor: float | None = 0.8  # time stretch rate ~ U[f, 1/f] in training; None = off
    spec_aug_freq_mask: int = 8  # max width (mel bins) of each frequency mask
    spec_aug_time_mask: int = 20  # max width (frames) of each time mask
    spec_aug_num_masks: int = 2
    patch_dropout: float = 0.25  # fraction of patches dropped in training (also a speed-up)
    max_seconds: float = 10.0

    def __post_init__(self):
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.spec_win_length is not None and self.spec_win_length > self.spec_n_fft:
            raise ConfigError(f"spec_win_length {self.spec_win_length} > spec_n_fft {self.spec_n_fft}")
        if self.spec_hop_length is None:
            self.spec_hop_length = max(1, (self.spec_win_length or self.spec_n_fft) // 2)
        if self.n_mels is None:
            self.n_mels = min(64, self.spec_n_fft // 4)
        if len(self.patch_size) != 2 or min(self.patch_size) < 1:
            raise ConfigError(
                f"patch_size must be two positive ints (mel bins, frames), got {self.patch_size}"
            )
        if self.dim % 4:
            raise ConfigError(f"AST dim must be divisible by 4 (2-D sin-cos positions), got {self.dim}")
        if not 0.0 <= self.patch_dropout < 1.0:
            raise ConfigError(f"patch_dropout must be in [0, 1), got {self.patch_dropout}")
        if self.spec_aug_stretch_factor is not None and not 0 < self.spec_aug_stretch_factor <= 1:
            raise ConfigError(
                f"spec_aug_stretch_factor must be in (0, 1] or None, got {self.spec_aug_stretch_factor}"
            )
        if self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {self.max_seconds}")
        check_sample_rate(self.sample_rate)


class AudioSpectrogramTransformer(PretrainedModel):
    """Audio Spectrogram Transformer (Gong et al. 2021, arXiv 2104.01778) over log-mel patches.

    forward(wavs (B, T) or (T,), mask=(B, T) bool keep, sample_rate=None) -> pooled (B, dim).
    `sample_rate` (default: the config's) is resampled to the model's rate at the edge.
    """

    def __init__(self, dim: int = 512, depth: int = 6, heads: int = 8, dim_head: int = 64, **kwargs):
        super().__init__()
        self.config = c = ASTConfig(dim=dim, depth=depth, heads=heads, dim_head=dim_head, **kwargs)
        self.dim = c.dim
        self.mel = MelSpectrogram(
            MelConfig(
                sample_rate=c.sample_rate,
                n_fft=c.spec_n_fft,
                hop_length=c.spec_hop_length,
                win_length=c.spec_win_length,
                n_mels=c.n_mels,
            )
        )
        pf, pt = c.patch_size
        self.to_patch = nn.Sequential(nn.Linear(pf * pt, c.dim), nn.LayerNorm(c.dim))
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.dim_head, c.ff_mult, c.dropout)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def min_samples(self) -> int:
        """The shortest audio that fills one patch of frames."""
        return (self.config.patch_size[1] - 1) * self.config.spec_hop_length

    @property
    def floor_value(self) -> float:
        """The normalised log-mel of silence (also used for padding)."""
        return (math.log(self.mel.config.log_floor) - self.config.spec_mean) / self.config.spec_std

    @property
    def max_samples(self) -> int:
        return int(self.config.max_seconds * self.config.sample_rate)

    def prepare(self, wavs, mask=None, sample_rate=None):
        """Validate, resample and crop: -> (wavs (B, T), mask (B, T) | None) at the model's rate."""
        wavs, mask = _as_batch(wavs, mask)
        sr = check_sample_rate(sample_rate) if sample_rate is not None else self.sample_rate
        if sr != self.sample_rate:
            wavs, mask = _resample_batch(wavs, mask, sr, self.sample_rate)
        if wavs.shape[-1] > self.max_samples:  # over-long: keep the start (MuLaN.get_audio_latents windows)
            wavs = wavs[..., : self.max_samples]
            mask = mask[..., : self.max_samples] if mask is not None else None
        lengths = mask.sum(-1) if mask is not None else torch.full((wavs.shape[0],), wavs.shape[-1])
        short = (lengths < self.min_samples).nonzero().flatten().tolist()
        if short:
            raise ShapeError(
                f"audio item(s) {short} have {lengths[short[0]].item()} samples, shorter than one patch "
                f"({self.min_samples} samples = {self.min_samples / self.sample_rate:.3f} s at "
                f"{self.sample_rate} Hz); pad them or drop them"
            )
        return wavs, mask

    def spectrogram(self, wavs: torch.Tensor, mask: torch.Tensor | None = None):
        """(B, T) -> normalised log-mel (B, n_mels, frames) and the frame mask (B, frames)."""
        c = self.config
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            mel = self.mel(wavs.float())
        mel = (mel - c.spec_mean) / c.spec_std
        frames = mel.shape[-1]
        if mask is None:
            frame_mask = torch.ones(wavs.shape[0], frames, dtype=torch.bool, device=wavs.device)
        else:
            centres = (torch.arange(frames, device=wavs.device) * c.spec_hop_length).clamp(
                max=wavs.shape[-1] - 1
            )
            frame_mask = mask[:, centres]
            # padding frames carry nothing: same values as the patch-grid padding
            mel = mel.masked_fill(~frame_mask[:, None, :], self.floor_value)
        return mel, frame_mask

    def spec_augment(self, mel: torch.Tensor, frame_mask: torch.Tensor):
        """Training-time SpecAugment: time stretch (one rate per batch), frequency and time masks
        (per item)."""
        c = self.config
        if c.spec_aug_stretch_factor is not None and c.spec_aug_stretch_factor < 1.0:
            lo, hi = math.log(c.spec_aug_stretch_factor), -math.log(c.spec_aug_stretch_factor)
            rate = math.exp(lo + (hi - lo) * float(torch.rand(())))
            frames = max(c.patch_size[1], round(mel.shape[-1] / rate))
            mel = F.interpolate(mel, size=frames, mode="linear", align_corners=False)
            frame_mask = F.interpolate(frame_mask[:, None].float(), size=frames, mode="nearest")[:, 0] > 0.5
        b, nf, nt = mel.shape
        fmask = _random_bands(b, nf, c.spec_aug_freq_mask, c.spec_aug_num_masks, mel.device)
        tmask = _random_bands(b, nt, c.spec_aug_time_mask, c.spec_aug_num_masks, mel.device)
        mel = mel.masked_fill(fmask[:, :, None] | tmask[:, None, :], 0.0)
        return mel, frame_mask

    def patchify(self, mel: torch.Tensor, frame_mask: torch.Tensor):
        """(B, F, frames) -> tokens (B, h*w, dim) with positions, and the patch mask (B, h*w)."""
        pf, pt = self.config.patch_size
        floor = self.floor_value
        pad_f = (-mel.shape[1]) % pf
        pad_t = (-mel.shape[2]) % pt
        if pad_f or pad_t:
            mel = F.pad(mel, (0, pad_t, 0, pad_f), value=floor)
            frame_mask = F.pad(frame_mask, (0, pad_t), value=False)
        h, w = mel.shape[1] // pf, mel.shape[2] // pt
        patches = rearrange(mel, "b (h p1) (w p2) -> b (h w) (p1 p2)", p1=pf, p2=pt)
        tokens = self.to_patch(patches) + sincos_2d(h, w, self.dim, device=mel.device).to(patches.dtype)
        time_valid = rearrange(frame_mask, "b (w p2) -> b w p2", p2=pt).any(-1)
        patch_mask = time_valid[:, None, :].expand(-1, h, -1).reshape(mel.shape[0], h * w)
        return tokens, patch_mask

    def drop_patches(self, tokens: torch.Tensor, patch_mask: torch.Tensor):
        """Keep a random (1 - patch_dropout) share of the patches (real patches first)."""
        n = tokens.shape[1]
        keep = max(1, int(n * (1.0 - self.config.patch_dropout)))
        if keep >= n:
            return tokens, patch_mask
        scores = torch.rand(patch_mask.shape, device=tokens.device) + patch_mask.float()
        idx = scores.topk(keep, dim=1).indices
        tokens = tokens.gather(1, idx[..., None].expand(-1, -1, tokens.shape[-1]))
        return tokens, patch_mask.gather(1, idx)

    def forward(
        self, wavs: torch.Tensor, mask: torch.Tensor | None = None, sample_rate: int | None = None
    ) -> torch.Tensor:
        wavs, mask = self.prepare(wavs, mask, sample_rate)
        wavs = wavs.to(self.to_patch[0].weight.device)
        mask = mask.to(wavs.device) if mask is not None else None
        mel, frame_mask = self.spectrogram(wavs, mask)
        if self.training:
            mel, frame_mask = self.spec_augment(mel, frame_mask)
        tokens, patch_mask = self.patchify(mel, frame_mask)
        if self.training and self.config.patch_dropout > 0:
            tokens, patch_mask = self.drop_patches(tokens, patch_mask)
        x = self.transformer(tokens, mask=patch_mask)
        weights = patch_mask.to(x.dtype)[..., None]
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
