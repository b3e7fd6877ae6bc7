"""Frame features that semantic tokens are clustered from.

Two kinds, both `(B, T)` audio at their `sample_rate` -> `(B, S, D)` frames at `rate` Hz,
S = ceil(T / hop) with hop = sample_rate / rate:

- `MusicFeatures` (offline default, nothing to download): hand-made music descriptors in the spirit of
  HuBERT's first iteration (which clusters MFCCs): per analysis frame (hop `sample_rate / 100`)
  MFCC (20) and their deltas (20), a 12-bin chroma (pitch-class energy, per-frame normalised), onset
  strength (positive log-mel flux) and log energy; then pooled to `rate` Hz (mean, except onset: max).
- `HFHiddenFeatures`: one hidden layer of a transformers speech/music model (`HubertModel`,
  `Wav2Vec2BertModel`, MERT-v0 which loads as `HubertModel`, ...), average-pooled from the model's frame
  rate down to `rate` (50 -> 25 Hz), optionally per-frame normalised (MERT).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.mel import mel_filterbank, stft
from ..errors import CheckpointError, ConfigError

ANALYSIS_RATE = 100  # analysis frames per second before pooling


def dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II `(n_out, n_in)` (MFCC from log-mel)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


def chroma_matrix(sample_rate: int, n_fft: int, fmin: float = 55.0, fmax: float = 4200.0) -> torch.Tensor:
    """`(12, n_fft // 2 + 1)`: each STFT bin between fmin and fmax votes for its pitch class (A = 0),
    with a triangular weight of its distance (in semitones) to the nearest pitch class centre."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    out = torch.zeros(12, freqs.numel(), dtype=torch.float64)
    use = (freqs >= fmin) & (freqs <= min(fmax, sample_rate / 2))
    semis = 12 * torch.log2(freqs[use] / 440.0)
    for pc in range(12):
        dist = torch.remainder(semis - pc + 6, 12) - 6  # signed distance to pitch class pc, in [-6, 6)
        out[pc, use] = (1 - dist.abs()).clamp_min(0)
    return out.float()


def pool_frames(x: torch.Tensor, factor: int, frames: int, mode: str = "mean") -> torch.Tensor:
    """(B, L, D) at a fine rate -> (B, frames, D): groups of `factor` (the last group may be short)."""
    need = frames * factor
    if x.shape[1] < need:  # repeat the last frame so every output frame has `factor` inputs
        x = torch.cat([x, x[:, -1:].expand(-1, need - x.shape[1], -1)], dim=1)
    x = x[:, :need].reshape(x.shape[0], frames, factor, x.shape[-1])
    return x.amax(2) if mode == "max" else x.mean(2)


class MusicFeatures(nn.Module):
    """Hand-made music frame features: MFCC + delta, chroma, onset strength, log energy -> (B, S, 54)."""

    def __init__(self, sample_rate: int = 16000, rate: float = 25.0, n_mels: int = 64, n_mfcc: int = 20):
        super().__init__()
        self.sample_rate, self.rate = int(sample_rate), float(rate)
        self.analysis_hop = self.sample_rate // ANALYSIS_RATE
        hop = self.sample_rate / self.rate
        factor = hop / self.analysis_hop
        if not hop.is_integer() or not factor.is_integer():
            raise ConfigError(f"rate {rate} Hz must divide {ANALYSIS_RATE} Hz analysis frames at {sample_rate} Hz "
                              "into whole groups (e.g. 25 or 50 Hz at 16 kHz)")
        self.hop, self.factor = int(hop), int(factor)
        self.n_fft = 1024 if self.sample_rate >= 16000 else 512
        self.register_buffer("mel_fb", mel_filterbank(self.sample_rate, self.n_fft, n_mels), persistent=False)
        self.register_buffer("dct", dct_matrix(n_mels, n_mfcc), persistent=False)
        self.register_buffer("chroma_fb", chroma_matrix(self.sample_rate, self.n_fft), persistent=False)
        self.dim = 2 * n_mfcc + 12 + 2

    def num_frames(self, num_samples: int) -> int:
        return max(1, math.ceil(num_samples / self.hop))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        frames = self.num_frames(wavs.shape[-1])
        power = stft(wavs.float(), self.n_fft, self.analysis_hop).abs().pow(2)  # (B, F, L)
        log_mel = torch.log(self.mel_fb @ power + 1e-6)  # (B, M, L)
        mfcc = self.dct @ log_mel  # (B, 20, L)
        delta = F.pad(mfcc, (1, 1), mode="replicate")
        delta = (delta[..., 2:] - delta[..., :-2]) / 2
        chroma = self.chroma_fb @ power
        chroma = chroma / chroma.sum(1, keepdim=True).clamp_min(1e-8)
        flux = F.relu(log_mel[..., 1:] - log_mel[..., :-1]).mean(1, keepdim=True)
        onset = F.pad(flux, (1, 0))
        energy = torch.log(power.sum(1, keepdim=True) + 1e-6)
        mean_part = torch.cat([mfcc, delta, chroma * 12, energy], dim=1).transpose(1, 2)
        pooled = pool_frames(mean_part, self.factor, frames)
        onset = pool_frames(onset.transpose(1, 2), self.factor, frames, mode="max")
        return torch.cat([pooled, onset], dim=-1)  # (B, S, 54)


class HFHiddenFeatures(nn.Module):
    """One hidden layer of a transformers audio model, pooled to `rate` Hz: (B, T) -> (B, S, hidden).

    `source`: a hub id (needs network the first time) or a local folder written by `save_pretrained` of
    any transformers audio model. `layer`: index into `hidden_states` (0 = before the first layer).
    """

    def __init__(self, source: str | os.PathLike, layer: int, rate: float = 25.0, normalize: bool = False,
                 sample_rate: int = 16000):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from .base import resolve_pretrained

        folder = resolve_pretrained(source)
        try:
            config = AutoConfig.from_pretrained(folder)
            with torch.device("cpu"):  # real weights, even when built inside a meta-device context
                self.model = AutoModel.from_pretrained(folder)
        except Exception as exc:
            raise CheckpointError(f"could not load a transformers audio model from {str(source)!r}: {exc}") from exc
        self.model.eval().requires_grad_(False)
        self.folder = Path(folder)
        self.layer, self.rate, self.normalize, self.sample_rate = int(layer), float(rate), normalize, sample_rate
        layers = getattr(config, "num_hidden_layers", None)
        if layers is not None and not 0 <= self.layer <= layers:
            raise ConfigError(f"layer {layer} does not exist: {source} has hidden states 0..{layers}")
        self.extractor = None
        if (self.folder / "preprocessor_config.json").is_file():
            from transformers import AutoFeatureExtractor

            self.extractor = AutoFeatureExtractor.from_pretrained(self.folder)
        self.model_type = config.model_type
        self.dim = config.hidden_size
        if self.model_type == "wav2vec2-bert":  # fbank frames at 100 Hz stacked by 2 -> 50 Hz
            native = 50.0
        else:
            strides = getattr(config, "conv_stride", None)
            if not strides:
                raise ConfigError(f"cannot tell the frame rate of a {self.model_type} model")
            native = sample_rate / math.prod(strides)
        factor = native / self.rate
        if factor < 1 or abs(factor - round(factor)) > 1e-6:
            raise ConfigError(f"{source} makes {native:g} frames/s; rate {rate} Hz must divide it")
        self.factor, self.hop = int(round(factor)), int(round(sample_rate / self.rate))

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    def num_frames(self, num_samples: int) -> int:
        return max(1, math.ceil(num_samples / self.hop))

    @torch.no_grad()
    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        frames = self.num_frames(wavs.shape[-1])
        device = next(self.model.parameters()).device
        if self.model_type == "wav2vec2-bert":
            if self.extractor is None:
                raise CheckpointError(f"{self.folder} has no preprocessor_config.json (SeamlessM4TFeatureExtractor)")
            inputs = self.extractor(list(wavs.cpu().numpy()), sampling_rate=self.sample_rate, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in inputs.items()}
        else:
            x = wavs.float().to(device)
            if self.extractor is not None and getattr(self.extractor, "do_normalize", False):
                x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-7)
            # the conv front end drops the tail: pad to whole frames so S = ceil(T / hop)
            x = F.pad(x, (0, frames * self.hop - x.shape[-1] + self.hop))
            inputs = {"input_values": x}
        hidden = self.model(**inputs, output_hidden_states=True).hidden_states[self.layer].float()
        if self.normalize:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        return pool_frames(hidden, self.factor, frames)


__all__ = ["HFHiddenFeatures", "MusicFeatures", "chroma_matrix", "dct_matrix", "pool_frames"]
