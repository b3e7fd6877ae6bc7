"""Reading, writing, resampling and checking audio.

Audio in memory is float32 torch `(T,)` / `(B, T)` mono or `(C, T)` multi-channel, sample rate beside it.
soundfile decodes (wav, flac, ogg, mp3 with libsndfile >= 1.1), soxr resamples. Every failure is an
`AudioError` subclass that names the input and says what to do.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from ..errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    ShapeError,
)

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
DEFAULT_MAX_SECONDS = 3600.0

PathOrBytes = str | os.PathLike | bytes | bytearray | io.IOBase


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str


def check_sample_rate(sr: object, name: str = "sample rate") -> int:
    """Return `sr` as int if it is a sane rate (1 kHz .. 768 kHz), else raise SampleRateError."""
    if isinstance(sr, bool) or not isinstance(sr, (int, float, np.integer, np.floating)):
        raise SampleRateError(f"{name} must be a number of Hz, got {sr!r}")
    if not math.isfinite(float(sr)) or float(sr) != int(sr):
        raise SampleRateError(f"{name} must be a whole number of Hz, got {sr!r}")
    if not MIN_SAMPLE_RATE <= int(sr) <= MAX_SAMPLE_RATE:
        raise SampleRateError(
            f"{name} {int(sr)} Hz is outside the supported range {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    return int(sr)


def check_audio(audio: torch.Tensor | np.ndarray, name: str = "audio") -> torch.Tensor:
    """Validate samples: non-empty, finite, at most 2-D. Returns a float32 tensor."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise ShapeError(f"{name} must be a torch tensor or numpy array, got {type(audio).__name__}")
    if audio.ndim == 0 or audio.ndim > 2:
        raise ShapeError(f"{name} must be (T,) or (B, T), got shape {tuple(audio.shape)}")
    if audio.shape[-1] == 0:
        raise EmptyAudioError(f"{name} has zero samples")
    if not audio.is_floating_point():
        audio = audio.float()
    if not torch.isfinite(audio).all():
        bad = (~torch.isfinite(audio)).sum().item()
        raise NonFiniteAudioError(f"{name} has {bad} NaN/Inf samples; clean or drop it")
    return audio.float()


def _describe(source: PathOrBytes) -> str:
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, io.IOBase):
        return "<file object>"
    return repr(str(source))


def _open(source: PathOrBytes):
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise EmptyAudioError("audio bytes are empty")
        return io.BytesIO(bytes(source))
    if isinstance(source, io.IOBase):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise AudioFileNotFoundError(f"audio file {str(path)!r} does not exist")
    if path.is_dir():
        raise AudioDecodeError(f"{str(path)!r} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"audio file {str(path)!r} is empty (0 bytes)")
    return str(path)


def info(source: PathOrBytes) -> AudioInfo:
    """Sample rate, channels, frames and duration without decoding the samples."""
    handle = _open(source)
    try:
        i = sf.info(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioDecodeError(f"{_describe(source)} is not a readable audio file: {exc}") from exc
    return AudioInfo(str(source) if not isinstance(source, (bytes, bytearray, io.IOBase)) else _describe(source),
                     i.samplerate, i.channels, i.frames, i.frames / i.samplerate if i.samplerate else 0.0,
                     i.format, i.subtype)


def resample(audio: torch.Tensor, orig_sr: int, target_sr: int, quality: str = "HQ") -> torch.Tensor:
    """Resample (T,) or (B, T) audio with soxr. Returns the input unchanged when rates match."""
    orig_sr = check_sample_rate(orig_sr, "source sample rate")
    target_sr = check_sample_rate(target_sr, "target sample rate")
    audio = check_audio(audio)
    if orig_sr == target_sr:
        return audio
    device = audio.device
    x = audio.detach().cpu().numpy().astype(np.float32)
    if x.ndim == 1:
        y = soxr.resample(x, orig_sr, target_sr, quality=quality)
    else:  # soxr wants (frames, channels)
        y = soxr.resample(x.T.copy(), orig_sr, target_sr, quality=quality).T
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)


def load(source: PathOrBytes, sr: int | None = None, mono: bool = True, *,
         max_seconds: float | None = DEFAULT_MAX_SECONDS, offset: float = 0.0,
         duration: float | None = None) -> tuple[torch.Tensor, int]:
    """Read audio from a path, bytes or file object.

    Returns `(audio, sample_rate)`: float32 `(T,)` when `mono` (channels averaged), else `(C, T)`.
    `sr` resamples to that rate. `offset`/`duration` (seconds) read a window. Files longer than
    `max_seconds` (None = no limit) raise `AudioTooLongError` before any samples are decoded.
    """
    if sr is not None:
        sr = check_sample_rate(sr, "requested sample rate")
    handle = _open(source)
    name = _describe(source)
    try:
        with sf.SoundFile(handle) as f:
            file_sr, frames = f.samplerate, f.frames
            check_sample_rate(file_sr, f"sample rate of {name}")
            if max_seconds is not None and frames / file_sr > max_seconds and duration is None:
                raise AudioTooLongError(
                    f"{name} lasts {frames / file_sr:.1f} s, over the maximum of {max_seconds:.1f} s; "
                    "pass a larger max_seconds (or None), or a duration to read a window"
                )
            start = int(round(offset * file_sr))
            if start:
                f.seek(min(start, frames))
            count = -1 if duration is None else int(round(duration * file_sr))
            data = f.read(frames=count, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioDecodeError(f"{name} could not be decoded as audio (corrupt, truncated or not audio): {exc}") \
            from exc
    if data.shape[0] == 0:
        raise EmptyAudioError(f"{name} holds zero samples")
    audio = torch.from_numpy(data.T.copy())  # (C, T)
    if not torch.isfinite(audio).all():
        raise NonFiniteAudioError(f"{name} contains NaN/Inf samples")
    if mono:
        audio = audio.mean(dim=0)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, file_sr


def save(path: str | os.PathLike, audio: torch.Tensor | np.ndarray, sr: int, *, subtype: str | None = None) -> Path:
    """Write (T,) or (C, T) float audio; the format follows the suffix (.wav, .flac, .ogg). Clips to [-1, 1]."""
    sr = check_sample_rate(sr)
    audio = check_audio(audio).detach().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = audio.clamp(-1.0, 1.0).numpy()
    if data.ndim == 2:
        data = data.T
    try:
        sf.write(str(path), data, sr, subtype=subtype)
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        raise AudioDecodeError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def to_mono(audio: torch.Tensor) -> torch.Tensor:
    """(C, T) -> (T,) by averaging channels; (T,) unchanged."""
    return audio.mean(dim=0) if audio.ndim == 2 else audio


def fix_length(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the last axis to `length` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
