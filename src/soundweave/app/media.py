"""Audio coming in (checked uploads) and files going out (WAV, spectrogram PNG, settings JSON).

Every upload goes through `read_upload`, which turns anything unusable into a `SoundweaveError` whose message
names the file and says what to do: not audio, an absurd or too-low sample rate, too long for the tab,
too short, silent. Outputs are written into a fresh folder per request with names that say what they are
(`mel-sample-seed7.wav`), so the players' download buttons give sensible file names.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..audio import MelSpectrogram, info, load, save
from ..errors import AudioError, AudioTooLongError, ConfigError, SampleRateError, SoundweaveError

MIN_SAMPLE_RATE = 8000
SILENCE_DBFS = -60.0
MIN_SECONDS = 0.25
SPECTROGRAM_HEIGHT = 256
KEEP_RESULTS = 200  # result folders kept on disk; older ones are removed

# a dark-to-bright colour ramp (black, purple, red, orange, pale yellow) for spectrogram images
_RAMP = np.array([[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]],
                 dtype=np.float32)


def read_upload(path: str | Path | None, *, sample_rate: int, max_seconds: float, min_seconds: float = MIN_SECONDS,
                what: str = "the audio clip") -> torch.Tensor:
    """An uploaded file -> float32 mono `(T,)` at `sample_rate`, or a SoundweaveError saying what is wrong."""
    if path is None or str(path).strip() == "":
        raise ConfigError(f"upload {what} first (wav, flac, ogg or mp3)")
    name = Path(str(path)).name
    try:
        return _read(str(path), name, sample_rate, max_seconds, min_seconds)
    except SoundweaveError as exc:  # name the upload by its file name, not the server's temp path
        message = str(exc).replace(repr(str(path)), name).replace(str(path), name)
        raise type(exc)(message) from None


def _read(path: str, name: str, sample_rate: int, max_seconds: float, min_seconds: float) -> torch.Tensor:
    meta = info(path)  # AudioFileNotFoundError / EmptyAudioError / AudioDecodeError name the file
    if meta.sample_rate < MIN_SAMPLE_RATE:
        raise SampleRateError(f"{name} is sampled at {meta.sample_rate} Hz; the app needs audio sampled at "
                              f"{MIN_SAMPLE_RATE} Hz or more (44.1 kHz, 22.05 kHz and 16 kHz are all fine)")
    if meta.duration > max_seconds:
        raise AudioTooLongError(f"{name} lasts {meta.duration:.1f} s; this tab takes clips of at most "
                                f"{max_seconds:g} s: trim it, or start the app with a larger --max-seconds")
    audio, _ = load(path, sr=sample_rate, max_seconds=None)
    seconds = audio.shape[-1] / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{name} lasts {seconds:.2f} s; this tab needs at least {min_seconds:g} s of audio")
    peak = float(audio.abs().max())
    if peak <= 0 or 20 * math.log10(peak) < SILENCE_DBFS:
        level = "-inf" if peak <= 0 else f"{20 * math.log10(peak):.0f}"
        raise AudioError(f"{name} is silent (peak {level} dBFS, below {SILENCE_DBFS:g} dBFS); upload a clip "
                         "with sound in it")
    return audio


class OutputFolder:
    """A root folder holding one subfolder per request (the newest `KEEP_RESULTS` are kept)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "soundweave-app"
        self.root.mkdir(parents=True, exist_ok=True)

    def new(self, prefix: str) -> Path:
        folder = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{prefix}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        self._prune()
        return folder

    def _prune(self) -> None:
        folders = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name[:8].isdigit()),
                         key=lambda p: p.name)
        for old in folders[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)


def colorize(gray: np.ndarray) -> Image.Image:
    """uint8 `(H, W)` (0 = quiet) -> an RGB image through the colour ramp."""
    x = gray.astype(np.float32) / 255.0 * (len(_RAMP) - 1)
    lo = np.clip(np.floor(x).astype(int), 0, len(_RAMP) - 2)
    frac = (x - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    return Image.fromarray(rgb.round().astype(np.uint8), mode="RGB")


def spectrogram_image(audio: torch.Tensor | np.ndarray, sample_rate: int, top_db: float = 80.0,
                      n_mels: int = 128) -> Image.Image:
    """A log-mel spectrogram picture of `(T,)` audio: low frequencies at the bottom, 80 dB of range."""
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).flatten()
    n_fft = 2048 if sample_rate > 32000 else 1024
    mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, log=False)
    power = mel(wave[None])[0].clamp_min(1e-10)
    db = 10 * torch.log10(power)
    db = (db - db.max()).clamp_min(-top_db)
    gray = ((db + top_db) / top_db * 255).round().to(torch.uint8).numpy()[::-1]
    image = colorize(np.ascontiguousarray(gray))
    width = max(256, min(1600, image.width))
    return image.resize((width, SPECTROGRAM_HEIGHT), Image.BILINEAR)


def mel_image_picture(array: np.ndarray) -> Image.Image:
    """A mel-diffusion spectrogram image (uint8 `(H, W)`, row 0 = lowest) shown colourised, low at the bottom."""
    image = colorize(np.ascontiguousarray(np.asarray(array, dtype=np.uint8)[::-1]))
    scale = max(1, SPECTROGRAM_HEIGHT // image.height)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def write_wav(folder: Path, stem: str, audio, sample_rate: int) -> Path:
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).flatten()
    return save(folder / f"{stem}.wav", wave, sample_rate)


def write_png(folder: Path, stem: str, image: Image.Image) -> Path:
    path = folder / f"{stem}.png"
    image.save(path)
    return path


def write_settings(folder: Path, stem: str, settings: dict[str, Any]) -> Path:
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(settings, indent=2, default=str))
    return path


def seconds_of(audio, sample_rate: int) -> float:
    return round(int(np.asarray(audio).shape[-1]) / sample_rate, 3)


__all__ = ["OutputFolder", "colorize", "mel_image_picture", "read_upload", "seconds_of", "spectrogram_image",
           "write_png", "write_settings", "write_wav"]
