"""STFT, mel filterbanks and log-mel spectrograms in torch (batched, any device).

The filterbank matches librosa's defaults (Slaney mel scale, Slaney area normalisation) so spectrogram
images made here agree with images made by audio-diffusion's librosa-based `Mel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from .io import check_audio, check_sample_rate


def hz_to_mel(freq: torch.Tensor | float, htk: bool = False) -> torch.Tensor:
    f = torch.as_tensor(freq, dtype=torch.float64)
    if htk:
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return torch.where(f >= min_log_hz, min_log_mel + torch.log(f.clamp_min(1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: torch.Tensor | float, htk: bool = False) -> torch.Tensor:
    m = torch.as_tensor(mels, dtype=torch.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filters, shape `(n_mels, n_fft // 2 + 1)`, float32 (on the default device: inside a
    `torch.device("meta")` block, where models are sized before anything is allocated, a meta tensor)."""
    sample_rate = check_sample_rate(sample_rate)
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ConfigError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    if n_mels < 1 or n_fft < 2:
        raise ConfigError(f"n_mels and n_fft must be positive, got n_mels={n_mels}, n_fft={n_fft}")
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    with torch.device("cpu"):  # two numbers (also inside a meta-device block)
        lo, hi = (float(hz_to_mel(float(f), htk)) for f in (fmin, fmax))
    mel_pts = torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64)
    hz_pts = mel_to_hz(mel_pts, htk)
    fdiff = hz_pts[1:] - hz_pts[:-1]
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        weights *= (2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels]))[:, None]
    elif norm is not None:
        raise ConfigError(f"norm must be 'slaney' or None, got {norm!r}")
    return weights.float()


def stft(audio: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
         center: bool = True, pad_mode: str = "constant", window: torch.Tensor | None = None) -> torch.Tensor:
    """Complex STFT of (T,) or (B, T) audio -> (B, n_fft//2+1, frames) (batch axis kept if given)."""
    win_length = win_length or n_fft
    if window is None:
        window = torch.hann_window(win_length, device=audio.device, dtype=audio.dtype)
    squeeze = audio.ndim == 1
    x = audio[None] if squeeze else audio
    spec = torch.stft(x, n_fft, hop_length, win_length, window=window, center=center, pad_mode=pad_mode,
                      return_complex=True)
    return spec[0] if squeeze else spec


@dataclass
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    log: bool = True
    log_floor: float = 1e-5
    center: bool = True


class MelSpectrogram(nn.Module):
    """Waveform `(B, T)` at `sample_rate` -> (log-)mel spectrogram `(B, n_mels, frames)`.

    frames = T // hop_length + 1 when `center`. With `log`, returns `log(max(mel, log_floor))`.
    """

    def __init__(self, config: MelConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or MelConfig(**kwargs)
        c = self.config
        check_sample_rate(c.sample_rate)
        self.register_buffer("filters", mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(c.win_length or c.n_fft), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        c = self.config
        return num_samples // c.hop_length + 1 if c.center else (num_samples - c.n_fft) // c.hop_length + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        audio = check_audio(audio)
        squeeze = audio.ndim == 1
        x = audio[None] if squeeze else audio
        c = self.config
        if not c.center and x.shape[-1] < c.n_fft:
            raise ShapeError(f"audio of {x.shape[-1]} samples is shorter than n_fft={c.n_fft}")
        spec = stft(x.float(), c.n_fft, c.hop_length, c.win_length, c.center, window=self.window).abs()
        if c.power != 1.0:
            spec = spec.pow(c.power)
        mel = torch.matmul(self.filters, spec)
        if c.log:
            mel = torch.log(mel.clamp_min(c.log_floor))
        return mel[0] if squeeze else mel


def log_mel_spectrogram(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop_length: int = 256,
                        n_mels: int = 80, **kwargs) -> torch.Tensor:
    """Functional form of `MelSpectrogram` (builds the filterbank each call; use the module in loops)."""
    module = MelSpectrogram(MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                      **kwargs)).to(audio.device)
    return module(audio)


def power_to_db(power: torch.Tensor, top_db: float | None = 80.0, amin: float = 1e-10,
                ref: str | float = "max") -> torch.Tensor:
    """10*log10(power / ref), floored at (max - top_db). `ref='max'` uses each item's own maximum.

    Works on (F, T) or (B, F, T); per-item reductions over the last two axes.
    """
    db = 10.0 * torch.log10(power.clamp_min(amin))
    if ref == "max":
        db = db - db.amax(dim=(-2, -1), keepdim=True)
    else:
        db = db - 10.0 * math.log10(max(amin, float(ref)))
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db


def db_to_power(db: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, db / 10.0)
