"""Spectrogram pictures for people: one or more clips as log-mel images stacked in one PNG, labelled.

    save_spectrograms("compare.png", [("original", clip, 16000), ("reconstruction", recon, 16000)])

Each row is the clip's log-mel spectrogram (low frequencies at the bottom, 80 dB range below the loudest of all
rows, so loudness differences show) under a one-line caption. Uses Pillow only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .io import check_audio, resample
from .mel import MelSpectrogram


def save_spectrograms(path: str | Path, rows: list[tuple[str, torch.Tensor, int]], *, sample_rate: int = 16000,
                      n_mels: int = 128, pixels_per_second: int = 100, height: int = 160) -> Path:
    """Write a PNG of `rows` [(label, audio (T,), sr)]; all are resampled to `sample_rate` first."""
    hop = sample_rate // pixels_per_second
    mel = MelSpectrogram(sample_rate=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=n_mels, log_floor=1e-10)
    specs = []
    for _, audio, sr in rows:
        audio = check_audio(audio).reshape(-1)
        audio = resample(audio, sr, sample_rate) if sr != sample_rate else audio
        specs.append(mel(audio).numpy() * (10 / np.log(10)))  # natural log of power -> dB
    top = max(float(s.max()) for s in specs)
    width = max(s.shape[1] for s in specs)
    caption = 14
    canvas = Image.new("L", (width, len(rows) * (height + caption)), color=0)
    draw = ImageDraw.Draw(canvas)
    for i, ((label, _, sr), spec) in enumerate(zip(rows, specs, strict=True)):
        scaled = np.clip((spec - (top - 80.0)) / 80.0, 0.0, 1.0)[::-1]  # low frequencies at the bottom
        image = Image.fromarray((scaled * 255).astype(np.uint8)).resize((spec.shape[1], height), Image.BILINEAR)
        y = i * (height + caption)
        draw.text((2, y + 1), f"{label} ({spec.shape[1] / pixels_per_second:.2f} s @ {sr} Hz)", fill=255)
        canvas.paste(image, (0, y + caption))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


__all__ = ["save_spectrograms"]
